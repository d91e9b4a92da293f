// Prometheus metrics (prom-client), served on `metrics.listen` when the config has it, and
// the same counters for `iscsi-target top` (the `stats` request), kept whether or not the
// endpoint is configured.
//
// The command path only bumps numbers in a per-volume record (no allocation per command:
// the record is created at a volume's first command); prom-client reads them at scrape time
// through collect() callbacks, and the latency histogram is a custom collector over the same
// fixed bucket arrays.
import * as http from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { Portal } from '../config/model';
import { formatPortal } from '../config/portal';
import type { Command, Session } from '../iscsi/session';
import type { ServerObserver, TargetServer } from '../iscsi/server';
import { SenseKey, senseKeyOf } from '../scsi/sense';

/**
 * Upper bounds (seconds) of the latency buckets: from 10 µs (a page-cache read answers in
 * 20-50 µs here), fine below a millisecond where most commands land, up to 10 s.
 */
export const LATENCY_BUCKETS = [
  0.00001, 0.00002, 0.00003, 0.00004, 0.00005, 0.000075, 0.0001, 0.00015, 0.0002, 0.0003, 0.0005, 0.00075, 0.001, 0.002, 0.003, 0.005,
  0.0075, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10,
];
const OPS = ['read', 'write', 'other'] as const;
/** Slots of every bucket array: one per bound, and a last one for commands above 10 s. */
const SLOTS = LATENCY_BUCKETS.length + 1;

/** Bucket index of a latency (LATENCY_BUCKETS.length: above the last bound). */
function bucketOf(seconds: number): number {
  let b = 0;
  while (b < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[b]) b++;
  return b;
}

class OpStats {
  commands = 0;
  seconds = 0;
  readonly buckets = new Float64Array(SLOTS);
}

class VolumeStats {
  readonly ops = [new OpStats(), new OpStats(), new OpStats()];
  readBytes = 0;
  writtenBytes = 0;
  checkConditions = 0;
  otherErrors = 0;
  /** CHECK CONDITIONs that were unit attentions (news, not failures; `top` leaves them out as `status` does). */
  unitAttentions = 0;
}

/** A session's latencies (its command and byte counters are the session's own). */
class SessionLatency {
  readonly buckets = new Float64Array(SLOTS);
}

/** What `top` and the `stats` request read: the same counters as the metrics. */
export interface StatsSnapshot {
  /** Upper bounds of the latency buckets, seconds; each buckets array has one more slot (above the last). */
  bounds: number[];
  volumes: {
    name: string;
    reads: number;
    writes: number;
    others: number;
    readBytes: number;
    writtenBytes: number;
    errors: number;
    /** Commands in the task set now (received, not yet answered), over every session. */
    queued: number;
    buckets: number[];
  }[];
  sessions: {
    tsih: number;
    initiator: string;
    target: string | null;
    address: string;
    commands: number;
    readBytes: number;
    writtenBytes: number;
    errors: number;
    queued: number;
    buckets: number[];
  }[];
}

export class TargetMetrics implements ServerObserver {
  readonly registry = new Registry();
  private readonly volumes = new Map<string, VolumeStats>();
  private readonly sessionLatency = new WeakMap<Session, SessionLatency>();
  private loginFailures = 0;
  private http?: http.Server;

  constructor(private readonly server: TargetServer) {
    collectDefaultMetrics({ register: this.registry, prefix: 'iscsi_target_' });
    const volumes = this.volumes;
    new Gauge({
      name: 'iscsi_target_sessions',
      help: 'Live iSCSI sessions per target (discovery sessions have target "")',
      labelNames: ['target'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const s of server.sessions.keys()) this.inc({ target: s.targetName ?? '' });
      },
    });
    new Counter({
      name: 'iscsi_target_commands_total',
      help: 'SCSI commands answered, per volume and kind',
      labelNames: ['volume', 'op'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [v, st] of volumes) OPS.forEach((op, i) => this.inc({ volume: v, op }, st.ops[i].commands));
      },
    });
    const bytes = (name: string, help: string, pick: (s: VolumeStats) => number) =>
      new Counter({
        name,
        help,
        labelNames: ['volume'],
        registers: [this.registry],
        collect() {
          this.reset();
          for (const [v, st] of volumes) this.inc({ volume: v }, pick(st));
        },
      });
    bytes('iscsi_target_read_bytes_total', 'Bytes read by initiators (Data-In)', (s) => s.readBytes);
    bytes('iscsi_target_written_bytes_total', 'Bytes written by initiators (Data-Out)', (s) => s.writtenBytes);
    new Counter({
      name: 'iscsi_target_command_errors_total',
      help: 'Commands not answered GOOD: CHECK CONDITION, or another status (BUSY, RESERVATION CONFLICT, ...)',
      labelNames: ['volume', 'status'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [v, st] of volumes) {
          this.inc({ volume: v, status: 'check_condition' }, st.checkConditions);
          this.inc({ volume: v, status: 'other' }, st.otherErrors);
        }
      },
    });
    // Counters without labels, read from the server (or this) at scrape time.
    const total = (name: string, help: string, read: () => number) =>
      new Counter({
        name,
        help,
        registers: [this.registry],
        collect() {
          this.reset();
          this.inc(read());
        },
      });
    const srv = this.server;
    total(
      'iscsi_target_login_failures_total',
      'Logins refused (unknown target, not admitted, failed CHAP, bad parameters)',
      () => this.loginFailures,
    );
    total(
      'iscsi_target_connection_faults_total',
      'Connections closed because handling their input threw (a bug, contained to that connection; the log has the stack)',
      () => srv.connectionFaults,
    );
    total(
      'iscsi_target_login_evictions_total',
      'Connections still in login closed to make room for newer ones (limits.maxLoginConnections, maxLoginConnectionsPerAddress)',
      () => srv.loginEvictions,
    );
    this.registry.registerMetric({
      name: 'iscsi_target_command_duration_seconds',
      get: async () => ({
        name: 'iscsi_target_command_duration_seconds',
        help: 'Time from a SCSI command PDU to its status, per volume and kind',
        type: 'histogram',
        aggregator: 'sum',
        values: this.histogramValues(),
      }),
    } as never);
  }

  private histogramValues(): { metricName: string; labels: Record<string, string | number>; value: number }[] {
    const out: { metricName: string; labels: Record<string, string | number>; value: number }[] = [];
    const name = 'iscsi_target_command_duration_seconds';
    for (const [v, st] of this.volumes) {
      OPS.forEach((op, i) => {
        const o = st.ops[i];
        let cum = 0;
        LATENCY_BUCKETS.forEach((le, b) => {
          cum += o.buckets[b];
          out.push({ metricName: `${name}_bucket`, labels: { volume: v, op, le }, value: cum });
        });
        out.push({ metricName: `${name}_bucket`, labels: { volume: v, op, le: '+Inf' }, value: o.commands });
        out.push({ metricName: `${name}_sum`, labels: { volume: v, op }, value: o.seconds });
        out.push({ metricName: `${name}_count`, labels: { volume: v, op }, value: o.commands });
      });
    }
    return out;
  }

  // ---- ServerObserver: the command path ----

  commandDone(session: Session, cmd: Command, status: number, dataInBytes: number, sense?: Buffer): void {
    const lu = session.luns.get(cmd.lun);
    if (!lu) return;
    let st = this.volumes.get(lu.name);
    if (!st) this.volumes.set(lu.name, (st = new VolumeStats()));
    const o = st.ops[cmd.read ? 0 : cmd.write ? 1 : 2];
    const seconds = (performance.now() - cmd.startedAt) / 1000;
    o.commands++;
    o.seconds += seconds;
    const b = bucketOf(seconds);
    o.buckets[b]++;
    let sl = this.sessionLatency.get(session);
    if (!sl) this.sessionLatency.set(session, (sl = new SessionLatency()));
    sl.buckets[b]++;
    st.readBytes += dataInBytes;
    if (status === 0) {
      if (cmd.write) st.writtenBytes += cmd.expectedLength;
    } else if (status === 2) {
      st.checkConditions++;
      if (sense !== undefined && senseKeyOf(sense) === SenseKey.UnitAttention) st.unitAttentions++;
    } else st.otherErrors++;
  }

  loginFailed(): void {
    this.loginFailures++;
  }

  // ---- `stats` (iscsi-target top) ----

  /** Every counter `top` shows, as they stand now (top takes differences between two). */
  snapshot(): StatsSnapshot {
    const queuedByVolume = new Map<string, number>();
    const sessions: StatsSnapshot['sessions'] = [];
    for (const [s, conn] of this.server.sessions) {
      for (const cmd of s.tasks.values()) {
        const lu = s.luns.get(cmd.lun);
        if (lu) queuedByVolume.set(lu.name, (queuedByVolume.get(lu.name) ?? 0) + 1);
      }
      if (s.type !== 'Normal') continue;
      const c = s.counters;
      sessions.push({
        tsih: s.tsih,
        initiator: s.initiatorName,
        target: s.targetName ?? null,
        address: conn.remote,
        commands: c.commands,
        readBytes: c.readBytes,
        writtenBytes: c.writtenBytes,
        errors: c.errors,
        queued: s.tasks.size,
        buckets: [...(this.sessionLatency.get(s)?.buckets ?? new Float64Array(SLOTS))],
      });
    }
    const volumes: StatsSnapshot['volumes'] = [];
    for (const name of this.server.units.keys()) {
      const st = this.volumes.get(name) ?? new VolumeStats();
      const buckets = new Array<number>(SLOTS).fill(0);
      for (const o of st.ops) o.buckets.forEach((n, i) => (buckets[i] += n));
      volumes.push({
        name,
        reads: st.ops[0].commands,
        writes: st.ops[1].commands,
        others: st.ops[2].commands,
        readBytes: st.readBytes,
        writtenBytes: st.writtenBytes,
        errors: st.checkConditions - st.unitAttentions + st.otherErrors,
        queued: queuedByVolume.get(name) ?? 0,
        buckets,
      });
    }
    return { bounds: [...LATENCY_BUCKETS], volumes, sessions };
  }

  // ---- HTTP endpoint ----

  async listen(portal: Portal, logger: Logger): Promise<string> {
    await this.close();
    const srv = http.createServer((req, res) => {
      if (req.method === 'GET' && (req.url === '/metrics' || req.url?.startsWith('/metrics?'))) {
        this.registry.metrics().then(
          (text) => {
            res.writeHead(200, { 'Content-Type': this.registry.contentType });
            res.end(text);
          },
          (err: unknown) => {
            res.writeHead(500);
            res.end(String(err));
          },
        );
        return;
      }
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('metrics are at /metrics\n');
    });
    await new Promise<void>((resolve, reject) => {
      srv.once('error', (e: NodeJS.ErrnoException) =>
        reject(new Error(`metrics: cannot listen on ${formatPortal(portal)}: ${e.code ?? e.message}`)),
      );
      srv.listen(portal.port, portal.host, () => resolve());
    });
    this.http = srv;
    const addr = srv.address() as { port: number };
    const where = formatPortal({ host: portal.host, port: addr.port });
    logger.info({ metrics: `http://${where}/metrics` }, 'metrics endpoint listening');
    return where;
  }

  async close(): Promise<void> {
    const srv = this.http;
    this.http = undefined;
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
  }
}
