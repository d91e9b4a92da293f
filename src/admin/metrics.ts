// Prometheus metrics (prom-client), served on `metrics.listen` when the config has it.
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

/** Upper bounds (seconds) of the latency buckets. */
export const LATENCY_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10];
const OPS = ['read', 'write', 'other'] as const;

class OpStats {
  commands = 0;
  seconds = 0;
  readonly buckets = new Float64Array(LATENCY_BUCKETS.length);
}

class VolumeStats {
  readonly ops = [new OpStats(), new OpStats(), new OpStats()];
  readBytes = 0;
  writtenBytes = 0;
  checkConditions = 0;
  otherErrors = 0;
}

export class TargetMetrics implements ServerObserver {
  readonly registry = new Registry();
  private readonly volumes = new Map<string, VolumeStats>();
  private loginFailures = 0;
  private http?: http.Server;

  constructor(private readonly server: TargetServer) {
    collectDefaultMetrics({ register: this.registry, prefix: 'iscsi_target_' });
    const volumes = this.volumes;
    const self = this;
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
        for (const [v, st] of volumes) OPS.forEach((op, i) => this.inc({ volume: v, op }, st.ops[i]!.commands));
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
    new Counter({
      name: 'iscsi_target_login_failures_total',
      help: 'Logins refused (unknown target, not admitted, failed CHAP, bad parameters)',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(self.loginFailures);
      },
    });
    const srv = this.server;
    new Counter({
      name: 'iscsi_target_connection_faults_total',
      help: 'Connections closed because handling their input threw (a bug, contained to that connection; the log has the stack)',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(srv.connectionFaults);
      },
    });
    new Counter({
      name: 'iscsi_target_login_evictions_total',
      help: 'Connections still in login closed to make room for newer ones (limits.maxLoginConnections, maxLoginConnectionsPerAddress)',
      registers: [this.registry],
      collect() {
        this.reset();
        this.inc(srv.loginEvictions);
      },
    });
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
        const o = st.ops[i]!;
        let cum = 0;
        LATENCY_BUCKETS.forEach((le, b) => {
          cum += o.buckets[b]!;
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

  commandDone(session: Session, cmd: Command, status: number, dataInBytes: number): void {
    const lu = session.luns.get(cmd.lun);
    if (!lu) return;
    let st = this.volumes.get(lu.name);
    if (!st) this.volumes.set(lu.name, (st = new VolumeStats()));
    const o = st.ops[cmd.read ? 0 : cmd.write ? 1 : 2]!;
    const seconds = Number(process.hrtime.bigint() - cmd.startedAt) / 1e9;
    o.commands++;
    o.seconds += seconds;
    let b = 0;
    while (b < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[b]!) b++;
    if (b < LATENCY_BUCKETS.length) o.buckets[b]!++;
    st.readBytes += dataInBytes;
    if (status === 0) {
      if (cmd.write) st.writtenBytes += cmd.expectedLength;
    } else if (status === 2) st.checkConditions++;
    else st.otherErrors++;
  }

  loginFailed(): void {
    this.loginFailures++;
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
      srv.once('error', (e: NodeJS.ErrnoException) => reject(new Error(`metrics: cannot listen on ${formatPortal(portal)}: ${e.code ?? e.message}`)));
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
