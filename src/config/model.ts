// The typed configuration model (see shared/DESIGN.md "Config model").
// `src/config/load.ts` turns YAML into this; everything else reads only this.

export interface Portal {
  host: string; // "0.0.0.0", "127.0.0.1", "::1", ...
  port: number; // default 3260
}

export interface VolumeConfig {
  name: string;
  /** File or block device path (relative paths resolve against the config file's folder;
   *  the built-in default resolves against the working directory). Absent for memory volumes. */
  path?: string;
  /** Bytes. Required for new files and memory volumes; read from the device/file otherwise. */
  size?: number;
  readonly: boolean;
  /** Logical block size: 512 (default) or 4096. */
  blockSize: 512 | 4096;
  /**
   * Physical block size in bytes, 512 or 4096 and at least blockSize (READ CAPACITY(16)
   * LOGICAL BLOCKS PER PHYSICAL BLOCK): 4096 on a 512-byte volume is "512e". Absent: blockSize.
   */
  physicalBlockSize?: 512 | 4096;
  /**
   * Encryption at rest (AES-256-XTS, backstore/encrypted.ts): `encryption: true` or
   * `encryption: { keyFile: PATH }`. keyFile (absolute after loading) defaults to
   * `<path>.key`; memory volumes keep the key in memory. Absent: not encrypted.
   */
  encryption?: { keyFile?: string };
  /** A RAM-only volume (tests, scratch): `memory: true`. */
  memory: boolean;
  /**
   * A Ceph RBD image (`rbd: POOL/IMAGE`) instead of a path: created when missing if `size`
   * is given, grown when `size` is larger than the image (never shrunk).
   */
  rbd?: { pool: string; image: string };
  /** For RBD volumes: the cluster to use, the volume's `ceph:` over the top-level one (set after loading). */
  ceph?: CephConfig;
  /**
   * The identity hosts see (scsi/identity.ts): VPD 0x80 serial number and the NAA designator
   * as "naa.<hex>". Absent: the one kept in `<path>.identity.json` (generated for a new
   * volume). Set them to take over a volume from another target.
   */
  serial?: string;
  wwn?: string;
  /**
   * May several hosts (ACL entries or open targets) map it? Only for cluster-aware
   * filesystems; without it, a second host mapping the volume is a config error.
   */
  shared: boolean;
  /**
   * ALUA: the target port group (gateway) that owns the volume: its paths are
   * active/optimized, every other gateway's are `others` (default active/non-optimized).
   * Absent: every path is active/optimized.
   */
  owner?: number;
  others?: AluaStateName;
}

/** Asymmetric access states a config may name (`others:`). */
export type AluaStateName = 'non-optimized' | 'standby' | 'unavailable';

/**
 * This daemon as one gateway among several serving the same volumes (ALUA, scsi/alua.ts).
 * Each gateway is one target port group; each of its portals one target port, numbered
 * (group - 1) * 256 + portal index + 1.
 */
export interface GatewayConfig {
  /** This gateway's target port group, 1..255. Default 1. */
  group: number;
  /** The other gateways' groups, and how many portals each has (default: as many as this one). */
  peers: { group: number; portals?: number }[];
}

/** How to reach a Ceph cluster (`ceph: { conf, user }`); defaults /etc/ceph/ceph.conf and admin. */
export interface CephConfig {
  /** ceph.conf (absolute after loading). */
  conf?: string;
  /** cephx user, without "client.". */
  user?: string;
}

export type ChapAlgorithmName = 'md5' | 'sha1' | 'sha256';

export interface ChapCredentials {
  user: string;
  secret: string;
  /** In `chap:` only: the weakest CHAP algorithm this initiator may use (`minAlgorithm: sha256`). */
  minAlgorithm?: ChapAlgorithmName;
}

export interface AclConfig {
  initiator: string;
  /** LUN number -> volume name. Absent: the target's `luns` apply. */
  luns?: Map<number, string>;
  chap?: ChapCredentials;
  /** Mutual CHAP: the target's own credentials toward this initiator. */
  mutual?: ChapCredentials;
  /**
   * May this initiator send TARGET WARM RESET / TARGET COLD RESET? Absent: the target's
   * setting, else no (refused with "function authorization failed", as LIO does). Even when
   * allowed, a reset reaches only this initiator's own LUs and sessions.
   */
  allowTargetReset?: boolean;
}

export interface TargetConfig {
  iqn: string;
  /** LUN number -> volume name, seen by every permitted initiator (unless its ACL has its own). */
  luns: Map<number, string>;
  /** Absent or empty: every initiator may log in. */
  acls: AclConfig[];
  /** Target resets for every initiator of this target (an ACL's own setting wins). Default false. */
  allowTargetReset?: boolean;
}

export interface Config {
  /** Where this config came from (file path), or "<built-in default>". */
  source: string;
  portals: Portal[];
  volumes: Map<string, VolumeConfig>;
  targets: TargetConfig[];
  /** CHAP required of every Discovery session (optional). */
  discovery?: { chap?: ChapCredentials; mutual?: ChapCredentials };
  /** `security: { minChapAlgorithm: sha256 }`: the weakest CHAP algorithm any login may use. */
  security?: { minChapAlgorithm?: ChapAlgorithmName };
  /** Resource limits and timers (`limits:`); every field has a default (see LIMIT_DEFAULTS). */
  limits?: LimitsConfig;
  /** `gateway: { group: 1, peers: [2] }`; absent: group 1, no peers. */
  gateway?: GatewayConfig;
  /** Prometheus metrics endpoint (optional): `metrics: { listen: "127.0.0.1:9287" }`. */
  metrics?: { listen: Portal };
  /** The Ceph cluster of RBD volumes that set none of their own. */
  ceph?: CephConfig;
}

/**
 * What one hostile or broken peer may cost the target, and when silent peers are dropped.
 * Times are in milliseconds here (seconds in the YAML).
 */
export interface LimitsConfig {
  /**
   * Connections that have not finished login, at once. A newcomer beyond it closes the oldest
   * of them (never a logged-in session), so idle sockets cannot lock hosts out.
   */
  maxLoginConnections: number;
  /** The same, per remote address (IPv6: per /64): one address's newcomer closes its own oldest. */
  maxLoginConnectionsPerAddress: number;
  /** Sessions (Normal and Discovery) at once; a login beyond it gets "out of resources". */
  maxSessions: number;
  /** A connection that has not completed login by then is closed. */
  loginTimeoutMs: number;
  /** Send a NOP-In ping after this long without hearing from the initiator (0: never). */
  nopIntervalMs: number;
  /** An unanswered ping older than this drops the peer, if it owes data (or dropIdlePeers). */
  nopTimeoutMs: number;
  /** Also drop idle peers that do not answer pings (off: synchronous initiators never answer while idle). */
  dropIdlePeers: boolean;
  /**
   * A connection that owes the target Data-Out, or leaves its READ data unread, and makes no
   * progress for this long is closed: the data budgets it holds are shared by every host.
   */
  stallTimeoutMs: number;
  /** The CmdSN window: commands queued per session (MaxCmdSN - ExpCmdSN + 1). */
  queueDepth: number;
  /** Immediate (I bit) SCSI commands running at once per session, beyond the window. */
  maxImmediateCommands: number;
  /** Bytes of command data (Expected Data Transfer Length) in flight per connection. */
  connectionBufferBytes: number;
  /** On shutdown, how long initiators get to log out after the Async Message asking them to. */
  shutdownGraceMs: number;
  /** How long to keep reading an idle connection for its next command before sleeping (µs; 0: never). */
  busyPollUs: number;
  /**
   * RBD volumes: a write not yet handed to librbd this long after its command PDU arrived
   * fails (ABORTED COMMAND) instead, so a gateway that stalled cannot land it after the host
   * gave up on it and re-issued it elsewhere (docs/ha.md). 0: no bound.
   */
  writeAgeLimitMs: number;
}

export const LIMIT_DEFAULTS: LimitsConfig = {
  maxLoginConnections: 256,
  maxLoginConnectionsPerAddress: 64,
  maxSessions: 128,
  loginTimeoutMs: 15000,
  nopIntervalMs: 10000,
  nopTimeoutMs: 30000,
  dropIdlePeers: false,
  stallTimeoutMs: 5000,
  queueDepth: 128,
  maxImmediateCommands: 16,
  connectionBufferBytes: 256 * 1024 * 1024,
  shutdownGraceMs: 5000,
  busyPollUs: 50,
  writeAgeLimitMs: 5000,
};
