// The target server: portals (TCP listeners), the logical units behind the
// configured volumes, the targets and the session registry. Connections ask it
// for names, access, session bookkeeping and target-wide task management.

import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import { LIMIT_DEFAULTS, type Config, type LimitsConfig, type TargetConfig } from '../config/model';
import { resolveAccess } from '../acl/access';
import { openBackstore } from '../backstore/open';
import type { Backstore } from '../backstore/backstore';
import { LogicalUnit } from '../scsi/logical-unit';
import { AluaTopology, LocalAluaStates, relativePortId } from '../scsi/alua';
import { aluaStatesFor } from '../config/alua';
import { applyAlua, groupsOf } from './gateway';
import { formatWwn, openWithIdentity } from '../scsi/identity';
import { ASC } from '../scsi/sense';
import type { ItNexus } from '../scsi/task';
import { Connection } from './connection';
import type { ConnectionHost } from './connection-host';
import { LoginBudget, LoginFailures } from './login-guard';
import { sendTargetsAnswer } from './discovery';
import { performTmf, TmfResponse } from '../scsi/task-management';
import type { ChapCredentialsPair, LoginOutcome } from './login';
import { DEFAULT_LIMITS, TargetLimits } from './negotiation';
import { Session } from './session';
import type { Command } from './session';
import type { ChapCredentials, VolumeConfig } from '../config/model';
import { CHAP_ALGORITHM_BY_NAME, strongerAlgorithm } from './chap';
import { formatPortal } from '../config/portal';
import type { ConfigDiff, SessionVerdict } from '../admin/diff';

/** Sees every finished command and failed login (metrics, src/admin/metrics.ts). */
export interface ServerObserver {
  commandDone(session: Session, cmd: Command, status: number, dataInBytes: number, sense?: Buffer): void;
  loginFailed(): void;
}

/** What apply() did, for the CLI's answer and the log. */
export interface ApplyReport {
  opened: string[];
  closed: string[];
  resized: { name: string; from: number; to: number }[];
  listening: string[];
  stoppedListening: string[];
  endedSessions: { initiator: string; target: string; why: string }[];
  lunsAdded: { initiator: string; target: string; luns: number[] }[];
}

export interface ServerOptions {
  config: Config;
  logger: Logger;
  limits?: Partial<TargetLimits>;
  timeouts?: Partial<ConnectionHost['timeouts']>;
  /** Overrides of the config's `limits:` (tests). */
  bounds?: Partial<LimitsConfig>;
}

export class TargetServer implements ConnectionHost {
  readonly logger: Logger;
  readonly limits: TargetLimits;
  readonly timeouts: ConnectionHost['timeouts'];
  /** Resource bounds: config `limits:` over defaults (see LimitsConfig). */
  readonly bounds: LimitsConfig;
  /** Listening portals; each is its own target portal group (tpgt = relative target port id). */
  readonly addresses: { host: string; port: number; tpgt: number }[] = [];
  /** This gateway's target port group (config gateway.group), fixed while it runs. */
  readonly group: number;
  /** Every gateway's target port groups and ports (ALUA), shared by all logical units. */
  readonly topology: AluaTopology;
  private config: Config;
  private readonly listeners: net.Server[] = [];
  /** Volume name -> logical unit. */
  readonly units = new Map<string, LogicalUnit>();
  private readonly targets = new Map<string, TargetConfig>();
  readonly sessions = new Map<Session, Connection>();
  private readonly connections = new Set<Connection>();
  /** Recent login failures per remote address: count and time of the last one. */
  private readonly loginFailures = new LoginFailures();
  private readonly loginBudget: LoginBudget<Connection>;
  /** Listener of each configured portal ("host:port" as configured), for apply(). */
  private readonly portalListeners = new Map<string, { srv: net.Server; address: { host: string; port: number; tpgt: number } }>();
  /** Metrics hooks; undefined when metrics are off. */
  observer?: ServerObserver;
  private nextTsih = 1;
  private nextConnId = 1;
  private stopping = false;

  private constructor(opts: ServerOptions) {
    this.config = opts.config;
    this.logger = opts.logger;
    this.bounds = { ...LIMIT_DEFAULTS, ...opts.config.limits, ...opts.bounds };
    const b = this.bounds;
    this.limits = { ...DEFAULT_LIMITS, queueDepth: b.queueDepth, ...opts.limits };
    this.timeouts = { loginMs: b.loginTimeoutMs, nopIntervalMs: b.nopIntervalMs, nopTimeoutMs: b.nopTimeoutMs, ...opts.timeouts };
    this.loginBudget = new LoginBudget(b, this.logger);
    for (const t of opts.config.targets) this.targets.set(t.iqn.toLowerCase(), t);
    this.group = opts.config.gateway?.group ?? 1;
    this.topology = new AluaTopology(groupsOf(opts.config, []));
  }

  /** Opens every volume, binds every portal; rejects with a clear Error if a volume or port fails. */
  static async start(opts: ServerOptions): Promise<TargetServer> {
    const server = new TargetServer(opts);
    try {
      await server.openVolumes();
      for (const [i, portal] of opts.config.portals.entries()) await server.listen(portal.host, portal.port, i);
      server.topology.update(groupsOf(opts.config, server.addresses));
    } catch (err) {
      await server.stop();
      throw err;
    }
    return server;
  }

  private async openVolumes(): Promise<void> {
    for (const vol of this.config.volumes.values()) this.units.set(vol.name, await this.openUnit(vol));
  }

  private async openUnit(vol: VolumeConfig): Promise<LogicalUnit> {
    const baseDir = path.dirname(path.resolve(this.config.source));
    const { id, store } = await openWithIdentity(
      vol,
      () => openBackstore(vol, baseDir, { logger: this.logger, gatewayGroup: this.group }),
      baseDir,
      {
        logger: this.logger,
        taken: (i) => this.identityOwner(i),
      },
    );
    const alua = new LocalAluaStates();
    alua.set(aluaStatesFor(vol, this.topology.groups), 0);
    const lu = new LogicalUnit({
      name: vol.name,
      serial: id.serial,
      naa: id.naa,
      backstore: store,
      blockSize: vol.blockSize,
      physicalBlockSize: vol.physicalBlockSize,
      readonly: vol.readonly,
      logger: this.logger.child({ volume: vol.name }),
      // Persistent reservations with APTPL live next to a volume file; block devices
      // and memory volumes keep them in memory only.
      statePath: store.file !== undefined ? `${store.file}.pr.json` : undefined,
      alua: { topology: this.topology, store: alua },
      writeAgeLimitMs: vol.rbd ? this.bounds.writeAgeLimitMs : 0, // only RBD: see scsi/write-age.ts
    });
    lu.onPreemptAbort = (nexusIds, unit) => this.abortForNexuses(nexusIds, unit);
    await store.watchSize?.(() => {
      this.logger.info({ volume: vol.name, bytes: store.size }, 'volume size changed in Ceph: CAPACITY DATA HAS CHANGED');
      lu.capacityChanged();
    });
    this.logger.info(
      {
        volume: vol.name,
        path: store.path,
        bytes: store.size,
        blockSize: vol.blockSize,
        readonly: vol.readonly,
        serial: id.serial,
        wwn: formatWwn(id.naa),
      },
      'volume open',
    );
    return lu;
  }

  /** The open volume that already has this serial or NAA designator. */
  private identityOwner(id: { serial: string; naa: Buffer }): string | undefined {
    for (const lu of this.units.values()) if (lu.naa.equals(id.naa) || lu.serial === id.serial) return lu.name;
    return undefined;
  }

  /** PREEMPT AND ABORT: the preempted nexuses' tasks on this unit end without response. */
  private abortForNexuses(nexusIds: readonly string[], unit: LogicalUnit): void {
    const ids = new Set(nexusIds);
    for (const [s, conn] of this.sessions) {
      if (!ids.has(s.nexus.id)) continue;
      for (const cmd of [...s.tasks.values()]) {
        if (s.luns.get(cmd.lun) === unit)
          conn.abort(cmd).catch((err: unknown) => this.logger.error({ err }, 'abort after PREEMPT AND ABORT failed'));
      }
    }
  }

  /**
   * Listen on a portal. `index` is its place in the config's list; a portal added while
   * running whose place is taken by a live one gets the lowest free index, so a live
   * portal's relative target port id never changes under its sessions.
   */
  private listen(host: string, port: number, index: number): Promise<void> {
    const key = formatPortal({ host, port }).toLowerCase();
    const used = new Set(this.addresses.map((a) => a.tpgt));
    let tpgt = relativePortId(this.group, index);
    for (let i = 0; used.has(tpgt); i++) tpgt = relativePortId(this.group, i);
    return new Promise((resolve, reject) => {
      // Paused: the connection's channel takes the socket over before anything is read (socket-reads.ts).
      const srv = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(socket, tpgt));
      const onError = (err: NodeJS.ErrnoException) => {
        reject(new Error(`cannot listen on ${formatPortal({ host, port })}: ${err.code ?? err.message}`));
      };
      srv.once('error', onError);
      srv.listen({ host, port, backlog: 512 }, () => {
        srv.off('error', onError);
        srv.on('error', (err) => this.logger.error({ err }, 'listener error'));
        const addr = srv.address() as net.AddressInfo;
        const address = { host, port: addr.port, tpgt };
        this.addresses.push(address);
        this.listeners.push(srv);
        this.portalListeners.set(key, { srv, address });
        this.logger.info({ portal: formatPortal({ host, port: addr.port }), tpgt }, 'listening');
        resolve();
      });
    });
  }

  private accept(socket: net.Socket, tpgt: number): void {
    if (this.stopping) {
      socket.destroy();
      return;
    }
    const conn = new Connection(socket, this, this.nextConnId++, tpgt);
    this.connections.add(conn);
    this.loginBudget.enter(conn, socket.remoteAddress);
    conn.socket.on('close', () => {
      this.connections.delete(conn);
      this.loginBudget.leave(conn);
    });
  }

  /** Connections that have not finished login (tests, status). */
  get loginConnections(): number {
    return this.loginBudget.size;
  }

  /** Connections in login closed to make room (metrics). */
  get loginEvictions(): number {
    return this.loginBudget.evictions;
  }

  /** Stop accepting, let in-flight commands finish, close sessions, flush and close volumes. */
  async stop(): Promise<void> {
    this.stopping = true;
    // close() stops accepting at once but calls back only when every connection is gone.
    const closed = this.listeners.map((l) => new Promise<void>((r) => l.close(() => r())));
    await this.askLogouts();
    const running: Promise<void>[] = [];
    for (const session of this.sessions.keys()) {
      for (const c of session.tasks.values()) if (c.finished) running.push(c.finished);
    }
    // In-flight commands get a bounded time to finish and answer.
    await Promise.race([Promise.all(running), delay(10000)]);
    for (const conn of this.connections) conn.dropAfterLogoutRequest();
    await Promise.all([...closed, ...[...this.connections].map((c) => c.closedP)]);
    for (const lu of this.units.values()) {
      try {
        await lu.close();
      } catch (err) {
        this.logger.error({ err, volume: lu.name }, 'closing volume failed');
      }
    }
    this.units.clear();
  }

  /**
   * Shutdown, first step: every logged-in initiator is asked to log out (Async Message,
   * AsyncEvent 1, Parameter3 = limits.shutdownGrace in seconds) and given that long to do
   * it; stop() then lets their in-flight commands finish and drops them (AsyncEvent 2).
   */
  private async askLogouts(): Promise<void> {
    const graceMs = this.bounds.shutdownGraceMs;
    const conns = [...this.connections];
    if (conns.length === 0) return;
    const gone = conns.map((c) => c.requestLogout(graceMs / 1000));
    await Promise.race([Promise.all(gone), delay(graceMs)]);
    const stayed = conns.filter((c) => !c.socket.destroyed && this.connections.has(c));
    if (stayed.length > 0) this.logger.warn({ connections: stayed.length }, 'initiators did not log out in time; dropping them');
  }

  // ------------------------------------------------------------ live config (issue 5)

  /** The config being served. */
  get currentConfig(): Config {
    return this.config;
  }

  /**
   * Bring the running target to `next` (see src/admin/diff.ts). New volumes and portals are
   * opened first; if any fails, those are closed again and this throws with nothing changed.
   * Then the config is swapped, sessions the verdict ends are closed, new LUNs are added to
   * the others, and removed portals and volumes are closed. Other sessions are not touched.
   */
  async apply(next: Config, diff: ConfigDiff, verdict: (target: string, initiator: string) => SessionVerdict): Promise<ApplyReport> {
    const report: ApplyReport = {
      opened: [],
      closed: [],
      resized: [],
      listening: [],
      stoppedListening: [],
      endedSessions: [],
      lunsAdded: [],
    };
    const opened = new Map<string, LogicalUnit>();
    const newListeners: string[] = [];
    const undo = async () => {
      for (const lu of opened.values()) await lu.close().catch(() => undefined);
      for (const key of newListeners) {
        const l = this.portalListeners.get(key);
        if (!l) continue;
        this.portalListeners.delete(key);
        this.listeners.splice(this.listeners.indexOf(l.srv), 1);
        this.addresses.splice(this.addresses.indexOf(l.address), 1);
        l.srv.close();
      }
    };
    const grows: { lu: LogicalUnit; grow: NonNullable<Backstore['grow']>; from: number; size: number }[] = [];
    try {
      for (const name of diff.volumes.added) {
        const lu = await this.openUnitFrom(next, name);
        opened.set(name, lu);
        report.opened.push(name);
      }
      for (const r of diff.volumes.resized) {
        const lu = this.units.get(r.name);
        const store = lu?.backstore;
        if (!lu || !store || store.size === r.size) continue;
        if (store.grow === undefined)
          throw new Error(
            `volume ${r.name}: ${store.path} cannot grow while the target runs (a block device or memory volume keeps its size)`,
          );
        if (r.size < store.size)
          throw new Error(`volume ${r.name}: the file is ${store.size} bytes, larger than ${r.size}; shrinking would lose data`);
        grows.push({ lu, grow: store.grow, from: store.size, size: r.size });
      }
      for (const p of diff.portals.added) {
        const at = next.portals.findIndex((q) => formatPortal(q).toLowerCase() === formatPortal(p).toLowerCase());
        await this.listen(p.host, p.port, Math.max(0, at));
        newListeners.push(formatPortal(p).toLowerCase());
        report.listening.push(formatPortal(this.addresses[this.addresses.length - 1]));
      }
      // Growing is the last step that can fail; a grown file is harmless if a later step were to.
      for (const g of grows) {
        await g.grow(g.size);
        report.resized.push({ name: g.lu.name, from: g.from, to: g.size });
      }
    } catch (err) {
      await undo();
      throw err;
    }

    // Commit: nothing below can fail the change.
    this.config = next;
    this.targets.clear();
    for (const t of next.targets) this.targets.set(t.iqn.toLowerCase(), t);
    for (const [name, lu] of opened) this.units.set(name, lu);
    for (const g of grows) g.lu.capacityChanged();

    for (const [s, conn] of [...this.sessions]) {
      if (s.type !== 'Normal' || !s.targetName) continue;
      const v = verdict(s.targetName, s.initiatorName);
      if (v.action === 'end') {
        this.logger.info({ tsih: s.tsih, initiator: s.initiatorName, target: s.targetName }, `ending session: ${v.why}`);
        report.endedSessions.push({ initiator: s.initiatorName, target: s.targetName, why: v.why });
        this.closeSession(s);
        conn.destroy();
      } else if (v.action === 'add') {
        // SPC-4: the LUN inventory changed; the initiator learns it from its LUNs in use
        // (Linux rescans on REPORTED LUNS DATA HAS CHANGED).
        for (const lu of new Set(s.luns.values())) lu.queueUnitAttention(s.nexus, ASC.REPORTED_LUNS_DATA_HAS_CHANGED);
        const luns = new Map(s.luns);
        for (const [n, vol] of v.luns) {
          const lu = this.units.get(vol);
          if (lu) luns.set(n, lu);
        }
        s.luns = luns;
        report.lunsAdded.push({ initiator: s.initiatorName, target: s.targetName, luns: [...v.luns.keys()] });
      }
    }
    for (const p of diff.portals.removed) {
      const key = formatPortal(p).toLowerCase();
      const l = this.portalListeners.get(key);
      if (!l) continue;
      this.portalListeners.delete(key);
      this.listeners.splice(this.listeners.indexOf(l.srv), 1);
      this.addresses.splice(this.addresses.indexOf(l.address), 1);
      l.srv.close(); // open connections stay; only new ones are refused
      report.stoppedListening.push(formatPortal(l.address));
    }
    applyAlua(next, this.topology, this.addresses, this.units, this.logger);
    for (const name of diff.volumes.removed) {
      const lu = this.units.get(name);
      if (!lu) continue;
      this.units.delete(name);
      try {
        await lu.close();
      } catch (err) {
        this.logger.error({ err, volume: name }, 'closing volume failed');
      }
      report.closed.push(name);
    }
    return report;
  }

  private openUnitFrom(next: Config, name: string): Promise<LogicalUnit> {
    const vol = next.volumes.get(name)!;
    return this.openUnit(vol);
  }

  /** Connections closed because handling their input threw (metrics). */
  connectionFaults = 0;

  /** The fault boundary of one connection fired: count it (the connection logs and closes itself). */
  connectionFault(): void {
    this.connectionFaults++;
  }

  /** A command finished (status known); one call per command, for metrics. */
  commandDone(session: Session, cmd: Command, status: number, dataInBytes: number, sense?: Buffer): void {
    this.observer?.commandDone(session, cmd, status, dataInBytes, sense);
  }

  // ------------------------------------------------------------ LoginHost

  targetExists(name: string): string | undefined {
    return this.targets.get(name.toLowerCase())?.iqn;
  }

  mayAccess(targetName: string, initiatorName: string): boolean {
    const t = this.targets.get(targetName.toLowerCase());
    return !!t && resolveAccess(t, initiatorName).allowed;
  }

  chapFor(targetName: string | undefined, initiatorName: string): ChapCredentialsPair | undefined {
    let pair: { chap?: ChapCredentials; mutual?: ChapCredentials } | undefined;
    if (targetName === undefined) pair = this.config.discovery;
    else {
      const t = this.targets.get(targetName.toLowerCase());
      pair = t ? resolveAccess(t, initiatorName).acl : undefined;
    }
    if (!pair?.chap) return undefined;
    // The global floor and the ACL's own: the stronger one holds.
    const floor = this.config.security?.minChapAlgorithm;
    const own = pair.chap.minAlgorithm;
    const minAlgorithm = strongerAlgorithm(floor && CHAP_ALGORITHM_BY_NAME[floor], own && CHAP_ALGORITHM_BY_NAME[own]);
    return { chap: pair.chap, mutual: pair.mutual, minAlgorithm };
  }

  loginFailed(address: string): number {
    this.observer?.loginFailed();
    return this.loginFailures.failed(address);
  }

  loginSucceeded(address: string): void {
    this.loginFailures.succeeded(address);
  }

  sessionExists(tsih: number, initiatorName?: string, isid?: Buffer, targetName?: string): boolean {
    for (const s of this.sessions.keys()) {
      if (s.tsih !== tsih) continue;
      if (initiatorName === undefined) return true;
      return isid !== undefined && s.isFor(initiatorName, isid, targetName);
    }
    return false;
  }

  /** Under `limits.maxSessions`? A reinstatement (same initiator, ISID, target) replaces one, so it always may. */
  mayOpenSession(initiatorName: string, isid: Buffer, targetName: string | undefined): boolean {
    if (this.sessions.size < this.bounds.maxSessions) return true;
    for (const s of this.sessions.keys()) if (s.isFor(initiatorName, isid, targetName)) return true;
    return false;
  }

  allocateTsih(): number {
    for (;;) {
      const t = this.nextTsih;
      this.nextTsih = this.nextTsih >= 0xffff ? 1 : this.nextTsih + 1;
      if (!this.sessionExists(t)) return t;
    }
  }

  // ------------------------------------------------------------ sessions

  openSession(o: LoginOutcome, conn: Connection): Session {
    this.loginBudget.leave(conn);
    const isid = o.isid.toString('hex');
    // Session reinstatement (RFC 7143 §6.3.5): same initiator, ISID and target ends the old session.
    for (const [old, oldConn] of this.sessions) {
      if (old.isFor(o.initiatorName, o.isid, o.targetName)) {
        this.logger.info({ tsih: old.tsih, initiator: o.initiatorName }, 'session reinstated: closing the old one');
        this.closeSession(old);
        oldConn.destroy();
      }
    }
    const targetName = o.targetName ?? '';
    // The portal's TPGT is also its relative target port id (scsi/alua.ts numbering).
    const tpgt = conn.tpgt;
    const nexus: ItNexus = {
      id: `${o.initiatorName.toLowerCase()},i,0x${isid}|${targetName},t,0x${tpgt.toString(16).padStart(4, '0')}`,
      initiatorName: o.initiatorName,
      isid,
      targetName,
      relativePortId: tpgt,
    };
    const luns = new Map<number, LogicalUnit>();
    if (o.sessionType === 'Normal') {
      const t = this.targets.get(targetName.toLowerCase())!;
      for (const [lun, volume] of resolveAccess(t, o.initiatorName).luns) {
        const lu = this.units.get(volume);
        if (lu) luns.set(lun, lu);
      }
    }
    const session = new Session(
      o.tsih,
      o.isid,
      o.cid,
      o.initiatorName,
      o.sessionType,
      o.targetName,
      o.params,
      nexus,
      luns,
      o.cmdSN,
      this.limits.queueDepth,
    );
    this.sessions.set(session, conn);
    return session;
  }

  /** The I_T nexus ends (logout, connection loss or reinstatement): its RESERVE and state go. */
  closeSession(session: Session): void {
    if (!this.sessions.delete(session)) return;
    session.closed = true;
    for (const lu of new Set(session.luns.values())) lu.nexusLost(session.nexus);
  }

  sendTargets(initiatorName: string, value: string, session: Session, localAddress: string): Array<[string, string]> {
    return sendTargetsAnswer(this.config.targets, this.addresses, { initiatorName, value, session, localAddress }, this.logger);
  }

  /**
   * A task management function from `session` (src/scsi/task-management.ts has the
   * semantics): its scope is the session's own tasks and LUN map, and the tasks of any
   * session on those LUs for the functions that clear a task set.
   */
  taskManagement(session: Session, func: number, lun: number, refTaskTag: number): Promise<TmfResponse> {
    const conn = this.sessions.get(session);
    return performTmf(func, lun, refTaskTag, {
      nexus: session.nexus,
      luns: session.luns,
      mayResetTarget: this.mayResetTarget(session),
      abortTask: async (tag, l) => {
        const cmd = session.tasks.get(tag);
        if (cmd === undefined || cmd.lun !== l || conn === undefined) return false;
        await conn.abort(cmd);
        return true;
      },
      abortOwnTasks: async (l) => {
        if (conn === undefined) return;
        await Promise.all([...session.tasks.values()].filter((cmd) => cmd.lun === l).map((cmd) => conn.abort(cmd)));
      },
      abortAllTasks: async (lus) => {
        const waits: Promise<void>[] = [];
        for (const [s, c] of this.sessions) {
          for (const cmd of [...s.tasks.values()]) {
            const lu = s.luns.get(cmd.lun);
            if (lu !== undefined && lus.has(lu)) waits.push(c.abort(cmd));
          }
        }
        await Promise.all(waits);
      },
      endInitiatorSessions: () => {
        // Other initiators' sessions stay (their shared LUs report the reset); the issuing
        // session ends once its response is out (the connection does that).
        const me = session.initiatorName.toLowerCase();
        for (const [s, c] of [...this.sessions]) {
          if (s !== session && s.targetName === session.targetName && s.initiatorName.toLowerCase() === me) {
            this.closeSession(s);
            c.destroy();
          }
        }
      },
      refused: (why) =>
        this.logger.warn(
          { tsih: session.tsih, initiator: session.initiatorName, target: session.targetName, func },
          `task management refused: ${why}`,
        ),
    });
  }

  /** Does the session's initiator have allowTargetReset (its ACL's, else its target's)? */
  private mayResetTarget(session: Session): boolean {
    const t = session.targetName ? this.targets.get(session.targetName.toLowerCase()) : undefined;
    return t !== undefined && resolveAccess(t, session.initiatorName).allowTargetReset;
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
