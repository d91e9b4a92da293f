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
  /** A RAM-only volume (tests, scratch): `memory: true`. */
  memory: boolean;
  /**
   * May several hosts (ACL entries or open targets) map it? Only for cluster-aware
   * filesystems; without it, a second host mapping the volume is a config error.
   */
  shared: boolean;
}

export interface ChapCredentials {
  user: string;
  secret: string;
}

export interface AclConfig {
  initiator: string;
  /** LUN number -> volume name. Absent: the target's `luns` apply. */
  luns?: Map<number, string>;
  chap?: ChapCredentials;
  /** Mutual CHAP: the target's own credentials toward this initiator. */
  mutual?: ChapCredentials;
}

export interface TargetConfig {
  iqn: string;
  /** LUN number -> volume name, seen by every permitted initiator (unless its ACL has its own). */
  luns: Map<number, string>;
  /** Absent or empty: every initiator may log in. */
  acls: AclConfig[];
}

export interface Config {
  /** Where this config came from (file path), or "<built-in default>". */
  source: string;
  portals: Portal[];
  volumes: Map<string, VolumeConfig>;
  targets: TargetConfig[];
  /** CHAP required of every Discovery session (optional). */
  discovery?: { chap?: ChapCredentials; mutual?: ChapCredentials };
  /** Prometheus metrics endpoint (optional): `metrics: { listen: "127.0.0.1:9287" }`. */
  metrics?: { listen: Portal };
}
