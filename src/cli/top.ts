// `iscsi-target top`: a live view of sessions and volumes, refreshed every second: IOPS,
// throughput, latency p50/p99, queue depth and errors. It reads the daemon's command
// counters (the `stats` request: the same numbers the metrics endpoint and `status` give)
// twice and shows the difference. `--once` prints one frame and exits; `--json` prints
// frames as JSON lines (both for scripts and tests); on a terminal, q or Ctrl-C quits.
import type { Command } from 'commander';
import { controlRequest } from '../admin/control-socket';
import type { StatsReply } from '../admin/protocol';
import { editTarget } from './change';
import { EXIT, err, out, type CliContext } from './context';
import { addConfigOption, addJsonOption, type ConfigOptions, type JsonOptions } from './options';
import { formatDuration, table } from './table';
import { plural } from '../text';

interface TopOptions extends ConfigOptions, JsonOptions {
  interval?: string;
  once?: boolean;
  count?: string;
}

export interface Rates {
  iops: number;
  readBps: number;
  writeBps: number;
  /** Seconds; null when no command finished in the interval. */
  p50: number | null;
  p99: number | null;
  queued: number;
  /** Errors in the interval, and since the daemon started. */
  newErrors: number;
  errors: number;
}

export interface TopFrame {
  pid: number;
  uptimeSeconds: number;
  /** Length of the interval the rates cover, seconds. */
  seconds: number;
  /** The lowest latency bound: a quantile at or below it reads "< bound". */
  floor: number;
  volumes: ({ name: string } & Rates)[];
  sessions: ({ tsih: number; initiator: string; target: string | null; address: string } & Rates)[];
}

/**
 * The q-quantile of a latency histogram (counts per bucket; bounds are the buckets' upper
 * bounds, one slot more for those above the last), interpolated within its bucket.
 */
export function quantile(counts: readonly number[], bounds: readonly number[], q: number): number | null {
  const total = counts.reduce((a, b) => a + b, 0);
  if (total <= 0) return null;
  const want = q * total;
  let cum = 0;
  for (let i = 0; i < counts.length; i++) {
    const n = counts[i];
    if (n > 0 && cum + n >= want) {
      if (i >= bounds.length) return bounds[bounds.length - 1]; // above the last bound: at least that
      const lo = i === 0 ? 0 : bounds[i - 1];
      const hi = bounds[i];
      return lo + ((want - cum) / n) * (hi - lo);
    }
    cum += n;
  }
  return bounds[bounds.length - 1];
}

function diff(a: readonly number[] | undefined, b: readonly number[]): number[] {
  return b.map((v, i) => Math.max(0, v - (a?.[i] ?? 0)));
}

function rates(
  seconds: number,
  bounds: readonly number[],
  prev: { commands: number; readBytes: number; writtenBytes: number; errors: number; buckets: number[] } | undefined,
  cur: { commands: number; readBytes: number; writtenBytes: number; errors: number; buckets: number[]; queued: number },
): Rates {
  const d = diff(prev?.buckets, cur.buckets);
  const per = (x: number, y: number | undefined) => Math.max(0, x - (y ?? 0)) / seconds;
  return {
    iops: per(cur.commands, prev?.commands),
    readBps: per(cur.readBytes, prev?.readBytes),
    writeBps: per(cur.writtenBytes, prev?.writtenBytes),
    p50: quantile(d, bounds, 0.5),
    p99: quantile(d, bounds, 0.99),
    queued: cur.queued,
    newErrors: Math.max(0, cur.errors - (prev?.errors ?? 0)),
    errors: cur.errors,
  };
}

/** What changed between two `stats` answers, per second. */
export function frame(prev: StatsReply, cur: StatsReply): TopFrame {
  const seconds = Math.max(0.001, (cur.at - prev.at) / 1000);
  const pv = new Map(prev.volumes.map((v) => [v.name, v]));
  const ps = new Map(prev.sessions.map((s) => [`${s.tsih}/${s.initiator}`, s]));
  return {
    pid: cur.pid,
    uptimeSeconds: cur.uptimeSeconds,
    seconds,
    floor: cur.bounds[0] ?? 0,
    volumes: cur.volumes.map((v) => {
      const p = pv.get(v.name);
      const sum = (x: typeof v) => x.reads + x.writes + x.others;
      return {
        name: v.name,
        ...rates(seconds, cur.bounds, p && { ...p, commands: sum(p) }, { ...v, commands: sum(v) }),
      };
    }),
    sessions: cur.sessions.map((s) => ({
      tsih: s.tsih,
      initiator: s.initiator,
      target: s.target,
      address: s.address,
      ...rates(seconds, cur.bounds, ps.get(`${s.tsih}/${s.initiator}`), s),
    })),
  };
}

function count(n: number): string {
  if (n >= 1e6) return `${(n / 1e6).toFixed(n >= 1e7 ? 0 : 1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(n >= 1e4 ? 0 : 1)}K`;
  return n >= 10 || n === 0 ? n.toFixed(0) : n.toFixed(1);
}

function rate(bps: number): string {
  const units = ['B/s', 'KiB/s', 'MiB/s', 'GiB/s'];
  let v = bps;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v >= 100 || u === 0 ? v.toFixed(0) : v.toFixed(1)} ${units[u]}`;
}

function latency(s: number | null, floor: number): string {
  if (s === null) return '-';
  if (s <= floor) return `<${latency(floor + 1e-12, 0)}`;
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(s < 0.01 ? 2 : 1)} ms`;
  return `${s.toFixed(2)} s`;
}

function errors(r: Rates): string {
  return r.newErrors > 0 ? `${r.errors} (+${r.newErrors})` : String(r.errors);
}

const COLUMNS = ['IOPS', 'READ', 'WRITE', 'P50', 'P99', 'QUEUE', 'ERRORS'];
const cells = (r: Rates, floor: number) => [
  count(r.iops),
  rate(r.readBps),
  rate(r.writeBps),
  latency(r.p50, floor),
  latency(r.p99, floor),
  String(r.queued),
  errors(r),
];

/** The screen of one frame, as text. */
export function render(f: TopFrame, config: string, now = new Date()): string {
  const head =
    `iscsi-target top - ${now.toTimeString().slice(0, 8)}  pid ${f.pid}, up ${formatDuration(f.uptimeSeconds)}, ` +
    `${plural(f.sessions.length, 'session')}, ${plural(f.volumes.length, 'volume')}  (${config})\n` +
    `rates over the last ${f.seconds.toFixed(1)} s; latency from the command PDU to its status; QUEUE: commands in the target now\n\n`;
  const total = f.volumes.reduce((t, v) => ({ iops: t.iops + v.iops, r: t.r + v.readBps, w: t.w + v.writeBps }), { iops: 0, r: 0, w: 0 });
  const vols = table(
    ['VOLUME', ...COLUMNS],
    f.volumes.map((v) => [v.name, ...cells(v, f.floor)]),
  );
  const sessions =
    f.sessions.length === 0
      ? 'no sessions\n'
      : table(
          ['SESSION', 'INITIATOR', 'TARGET', ...COLUMNS],
          f.sessions.map((s) => [String(s.tsih), s.initiator, s.target ?? '(discovery)', ...cells(s, f.floor)]),
        );
  return `${head}${vols}total: ${count(total.iops)} IOPS, read ${rate(total.r)}, write ${rate(total.w)}\n\n${sessions}`;
}

async function stats(ctx: CliContext, file: string): Promise<StatsReply | string> {
  let r;
  try {
    r = await controlRequest(file, { op: 'stats' }, ctx.env, 10000);
  } catch (e) {
    return (e as Error).message;
  }
  if (!r) return `no daemon is running for ${file}`;
  if (!r.ok) return r.message;
  if (!('bounds' in r)) return 'the daemon does not answer stats (an older version?)';
  return r;
}

async function top(ctx: CliContext, o: TopOptions): Promise<number> {
  const file = editTarget(ctx, o);
  const interval = o.interval === undefined ? 1 : Number(o.interval);
  if (!Number.isFinite(interval) || interval < 0.1 || interval > 3600) {
    err(ctx, `error: --interval must be a number of seconds between 0.1 and 3600, not ${o.interval}`);
    return EXIT.FAILURE;
  }
  const frames = o.once ? 1 : o.count === undefined ? Infinity : Number(o.count);
  if (!(frames >= 1) || (Number.isFinite(frames) && !Number.isInteger(frames))) {
    err(ctx, `error: --count must be a whole number of frames, not ${o.count}`);
    return EXIT.FAILURE;
  }
  const stdout = ctx.stdout as NodeJS.WriteStream;
  const live = !o.json && !o.once && !!stdout.isTTY;
  let prev = await stats(ctx, file);
  if (typeof prev === 'string') {
    err(ctx, `error: ${prev}`);
    return EXIT.FAILURE;
  }
  let stop = false;
  let wake: (() => void) | undefined;
  const quit = () => {
    stop = true;
    wake?.();
  };
  const stdin = process.stdin;
  const keys = (k: Buffer) => {
    if (k[0] === 0x71 || k[0] === 0x03 || k[0] === 0x1b) quit(); // q, Ctrl-C, Esc
  };
  if (live && stdin.isTTY) {
    stdin.setRawMode(true);
    stdin.resume();
    stdin.on('data', keys);
  }
  process.once('SIGINT', quit);
  try {
    for (let n = 0; n < frames && !stop; n++) {
      await new Promise<void>((r) => {
        wake = r;
        setTimeout(r, interval * 1000);
      });
      if (stop) break;
      const cur = await stats(ctx, file);
      if (typeof cur === 'string') {
        err(ctx, `error: ${cur}`);
        return EXIT.FAILURE;
      }
      const f = frame(prev, cur);
      prev = cur;
      if (o.json) out(ctx, JSON.stringify(f));
      else if (live) stdout.write(`\x1b[H\x1b[2J${render(f, file)}\n(q to quit)`);
      else out(ctx, render(f, file));
    }
  } finally {
    process.off('SIGINT', quit);
    if (live && stdin.isTTY) {
      stdin.off('data', keys);
      stdin.setRawMode(false);
      stdin.pause();
      stdout.write('\n');
    }
  }
  return EXIT.OK;
}

export function registerTop(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  addJsonOption(
    addConfigOption(
      program.command('top').description('live view of sessions and volumes: IOPS, throughput, latency p50/p99, queue depth, errors'),
    ),
  )
    .option('--interval <seconds>', 'refresh every this many seconds (default 1)')
    .option('--once', 'print one frame (the rates over one interval) and exit')
    .option('--count <frames>', 'exit after this many frames')
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target top                       # refreshed every second; q quits
  $ iscsi-target top --once                # one frame, for a script or a ticket
  $ iscsi-target top --json --count 10     # ten frames, one JSON object per line`,
    )
    .action(async (o: TopOptions) => setExit(await top(ctx, o)));
}
