// Network fuzzer: records the PDUs of real sessions (the built-in initiator doing login,
// INQUIRY, READ CAPACITY, writes through immediate, unsolicited and solicited data, reads,
// Text, NOP, task management and logout, plus a discovery session), then replays mutated
// versions (bit flips, length fields, opcode swaps, truncation, splicing, field edge values,
// garbage) against a running daemon for a bounded count or time. After each batch a fresh
// session on a separate, ACL-protected target writes and reads back a pattern, and the
// daemon's RSS is sampled. Crashes (the daemon exiting) must be 0.
//
//   npm run fuzz -- --pdus 1000000          # or --seconds 600; --seed N; --port P (own daemon otherwise)

import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Initiator } from '../src/initiator/initiator';
import { padLength } from '../src/iscsi/pdu/serializer';
import { processRssMiB, startDaemon, type Daemon } from '../test/helpers/daemon';
import { rng } from '../test/unit/pdu-fixtures';

export const FUZZ_TARGET = 'iqn.2026-11.io.iscsi-target:fuzz';
export const HEALTH_TARGET = 'iqn.2026-11.io.iscsi-target:health';
const HEALTH_INITIATOR = 'iqn.2026-11.io.iscsi-target:health-checker';

export interface FuzzOptions {
  /** Stop after this many PDUs (default 100000). */
  pdus?: number;
  /** Stop after this many seconds, whichever comes first. */
  seconds?: number;
  seed?: number;
  /** PDUs per batch between health checks. */
  batch?: number;
  /** Connections at once. */
  concurrency?: number;
  log?: (line: string) => void;
}

export interface FuzzReport {
  pdus: number;
  connections: number;
  /** Bytes the target answered, and connections it closed itself (a sign the input got through). */
  receivedBytes: number;
  closedByTarget: number;
  batches: number;
  crashes: number;
  healthFailures: string[];
  rssMiB: { start: number; peak: number; end: number; samples: number[] };
  seconds: number;
  seed: number;
  daemonOutputTail?: string;
}

/** One PDU frame as recorded (no digests), and which session kind it belongs to. */
interface Recording {
  login: Buffer[];
  ffp: Buffer[];
  discoveryLogin: Buffer[];
  discoveryFfp: Buffer[];
}

const YAML = `portals: ["127.0.0.1:PORT"]
volumes:
  fuzzvol: { memory: true, size: 16MiB }
  healthvol: { memory: true, size: 16MiB }
targets:
  - iqn: ${FUZZ_TARGET}
    luns: { 0: fuzzvol }
  - iqn: ${HEALTH_TARGET}
    acls:
      - initiator: ${HEALTH_INITIATOR}
        luns: { 0: healthvol }
limits:
  loginTimeout: 5
`;

/** Split a byte stream (no digests) into PDU frames. */
export function frames(stream: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  while (stream.length - off >= 48) {
    const ahs = stream[off + 4] * 4;
    const dsl = (stream[off + 5] << 16) | (stream[off + 6] << 8) | stream[off + 7];
    const len = 48 + ahs + dsl + padLength(dsl);
    if (stream.length - off < len) break;
    out.push(Buffer.from(stream.subarray(off, off + len)));
    off += len;
  }
  return out;
}

/** Run `fn` with an initiator whose client->target bytes pass through a recording proxy. */
async function recordThrough(port: number, fn: (proxyPort: number) => Promise<void>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const proxy = net.createServer((client) => {
    const up = net.connect({ host: '127.0.0.1', port });
    client.on('data', (c: Buffer) => {
      chunks.push(Buffer.from(c));
      up.write(c);
    });
    up.on('data', (c: Buffer) => client.write(c));
    const end = () => {
      client.destroy();
      up.destroy();
    };
    client.on('close', end);
    up.on('close', end);
    client.on('error', end);
    up.on('error', end);
  });
  await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', () => r()));
  try {
    await fn((proxy.address() as net.AddressInfo).port);
  } finally {
    proxy.close();
  }
  return Buffer.concat(chunks);
}

/** Record a normal and a discovery session of the built-in initiator. */
export async function record(port: number): Promise<Recording> {
  const normal = frames(
    await recordThrough(port, async (p) => {
      const ini = await Initiator.connect({
        host: '127.0.0.1',
        port: p,
        targetName: FUZZ_TARGET,
        isid: Buffer.from([0x80, 1, 2, 3, 4, 5]),
      });
      await ini.testUnitReady(0);
      const inquiry = Buffer.from([0x12, 0, 0, 0, 0xff, 0]);
      await ini.command(0, inquiry, { readLength: 255 });
      await ini.command(0, Buffer.from([0x12, 1, 0x83, 0, 0xff, 0]), { readLength: 255 });
      await ini.readCapacity(0);
      await ini.write(0, 0, randomBytes(4096)); // immediate data
      await ini.write(0, 64, randomBytes(512 * 1024)); // immediate + unsolicited + R2T Data-Out
      await ini.write(0, 8, randomBytes(4096), 512, true); // FUA
      await ini.read(0, 0, 8);
      await ini.read(0, 64, 1024);
      await ini.command(0, Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]), {}); // SYNCHRONIZE CACHE
      await ini.command(0, Buffer.from([0x1a, 0, 0x3f, 0, 0xff, 0]), { readLength: 255 }); // MODE SENSE(6)
      await ini.command(0, Buffer.from([0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]), { readLength: 4096 }); // REPORT LUNS
      await ini.text([['SendTargets', '']]);
      await ini.nop(Buffer.from('ping'));
      await ini.taskManagement(2, 0); // ABORT TASK SET
      await ini.logout();
    }),
  );
  const discovery = frames(
    await recordThrough(port, async (p) => {
      const ini = await Initiator.connect({ host: '127.0.0.1', port: p });
      await ini.sendTargets('All');
      await ini.logout();
    }),
  );
  const split = (f: Buffer[]) => {
    const i = f.findIndex((b) => (b[0] & 0x3f) !== 0x03);
    return i < 0 ? [f, []] : [f.slice(0, i), f.slice(i)];
  };
  const [login, ffp] = split(normal);
  const [discoveryLogin, discoveryFfp] = split(discovery);
  return { login: login, ffp: ffp, discoveryLogin: discoveryLogin, discoveryFfp: discoveryFfp };
}

const OPCODES = [
  0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x10, 0x1c, 0x1d, 0x1e, 0x20, 0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x31, 0x32, 0x3c, 0x3f, 0x07,
  0x2a,
];
const EDGE32 = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff, 512, 4096, 262144, 0x01000000];

export class Mutator {
  readonly rnd: () => number;
  constructor(seed: number) {
    this.rnd = rng(seed); // xorshift32: reproducible runs from --seed
  }
  int(n: number): number {
    return Math.floor(this.rnd() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)];
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  /** One mutated version of `f` (or of a splice of `f` and `g`). */
  mutate(f: Buffer, g: Buffer): Buffer {
    const b = Buffer.from(f);
    switch (this.int(10)) {
      case 0:
      case 1: {
        // bit flips, mostly in the header
        const n = 1 + this.int(8);
        for (let i = 0; i < n; i++) {
          const at = this.rnd() < 0.8 ? this.int(48) : this.int(b.length);
          b[at] ^= 1 << this.int(8);
        }
        return b;
      }
      case 2: {
        // DataSegmentLength: edge values, off by a little, or huge; data left as it was
        const cur = (b[5] << 16) | (b[6] << 8) | b[7];
        const v = this.pick([0, 1, cur + 1, cur + 4, Math.max(0, cur - 1), 8192, 8193, 262144, 262145, 0xffffff, this.int(0x1000000)]);
        b[5] = (v >> 16) & 0xff;
        b[6] = (v >> 8) & 0xff;
        b[7] = v & 0xff;
        return b;
      }
      case 3:
        b[4] = this.pick([1, 2, 4, 0xff, this.int(256)]); // TotalAHSLength
        return b;
      case 4:
        b[0] = (b[0] & 0x40) | this.pick(OPCODES) | (this.rnd() < 0.3 ? 0x40 : 0); // opcode swap
        return b;
      case 5:
        return b.subarray(0, this.int(b.length)); // truncation: the stream goes out of step
      case 6: {
        const cut = this.int(Math.min(b.length, g.length) + 1); // splice two frames
        return Buffer.concat([b.subarray(0, cut), g.subarray(cut)]);
      }
      case 7: {
        const at = 8 + 4 * this.int(10); // a 32-bit field to an edge value
        b.writeUInt32BE(this.pick(EDGE32) >>> 0, at);
        return b;
      }
      case 8:
        b[1] = this.int(256); // flags
        return b;
      default:
        return this.bytes(1 + this.int(this.rnd() < 0.9 ? 96 : 2000)); // garbage
    }
  }
}

/** Write pieces to a fresh connection, reading (and dropping) what comes back; resolves when closed. */
function playConnection(
  port: number,
  pieces: Buffer[],
  lingerMs: number,
  counts: { received: number; closedByTarget: number },
): Promise<void> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      s.destroy();
      resolve();
    };
    s.on('error', finish);
    s.on('close', () => {
      if (!done) counts.closedByTarget++;
      finish();
    });
    s.on('data', (c: Buffer) => (counts.received += c.length));
    s.setTimeout(5000, finish);
    s.on('connect', () => {
      s.cork();
      for (const p of pieces) s.write(p);
      s.uncork();
      setTimeout(finish, lingerMs);
    });
  });
}

/** A fresh session on the health target writes a pattern and reads it back. */
export async function healthCheck(port: number): Promise<string | undefined> {
  let ini: Initiator | undefined;
  const work = async () => {
    ini = await Initiator.connect({
      host: '127.0.0.1',
      port,
      targetName: HEALTH_TARGET,
      initiatorName: HEALTH_INITIATOR,
      timeoutMs: 10000,
    });
    await ini.testUnitReady(0);
    const lba = Math.floor(Math.random() * 30000);
    const data = randomBytes(64 * 1024);
    await ini.write(0, lba, data);
    const back = await ini.read(0, lba, 128);
    if (!back.equals(data)) return 'read back differs from what was written';
    await ini.logout();
    return undefined;
  };
  try {
    return await Promise.race([work(), new Promise<string>((r) => setTimeout(() => r('health check timed out'), 15000).unref())]);
  } catch (e) {
    return `health check failed: ${(e as Error).message}`;
  } finally {
    ini?.close();
  }
}

export async function runFuzz(opts: FuzzOptions = {}): Promise<FuzzReport> {
  const log = opts.log ?? (() => undefined);
  const maxPdus = opts.pdus ?? 100000;
  const deadline = opts.seconds !== undefined ? Date.now() + opts.seconds * 1000 : Infinity;
  const seed = opts.seed ?? Date.now() & 0x7fffffff;
  const batch = opts.batch ?? 20000;
  const concurrency = opts.concurrency ?? 8;
  const m = new Mutator(seed);
  const started = Date.now();

  const prevLevel = process.env.TEST_LOG_LEVEL;
  process.env.TEST_LOG_LEVEL = 'fatal'; // every bad PDU would be a warning line
  let daemon: Daemon;
  try {
    daemon = await startDaemon(YAML);
  } finally {
    if (prevLevel === undefined) delete process.env.TEST_LOG_LEVEL;
    else process.env.TEST_LOG_LEVEL = prevLevel;
  }
  const pid = daemon.proc.pid!;
  const report: FuzzReport = {
    pdus: 0,
    connections: 0,
    receivedBytes: 0,
    closedByTarget: 0,
    batches: 0,
    crashes: 0,
    healthFailures: [],
    rssMiB: { start: NaN, peak: 0, end: NaN, samples: [] },
    seconds: 0,
    seed,
  };
  const counts = { received: 0, closedByTarget: 0 };
  try {
    const rec = await record(daemon.port);
    log(
      `recorded ${rec.login.length} login + ${rec.ffp.length} full-feature PDUs, ${rec.discoveryLogin.length} + ${rec.discoveryFfp.length} discovery (seed ${seed})`,
    );
    const all = [...rec.login, ...rec.ffp, ...rec.discoveryLogin, ...rec.discoveryFfp];

    /** One connection's worth of (mostly mutated) PDUs. */
    const plan = (): Buffer[] => {
      const r = m.rnd();
      const discovery = r < 0.1;
      const isidByte = m.int(256); // ISID's last byte: many sessions, some reinstating each other
      const login = (discovery ? rec.discoveryLogin : rec.login).map((f) => {
        const b = Buffer.from(f);
        b[13] = isidByte;
        return b;
      });
      const pool = discovery ? rec.discoveryFfp : rec.ffp;
      const out: Buffer[] = [];
      const mutateLogin = m.rnd() < 0.15;
      for (const f of login) out.push(mutateLogin && m.rnd() < 0.5 ? m.mutate(f, m.pick(all)) : f);
      const n = 1 + m.int(48);
      let i = m.int(pool.length);
      const rate = m.pick([0.05, 0.2, 0.5, 1]);
      for (let k = 0; k < n; k++) {
        const f = pool[i++ % pool.length];
        if (m.rnd() < rate) out.push(m.mutate(f, m.pick(all)));
        else out.push(f);
        if (m.rnd() < 0.02) out.push(f); // duplicate
      }
      return out;
    };

    const sample = () => {
      const rss = processRssMiB(pid);
      report.rssMiB.samples.push(rss);
      if (Number.isNaN(report.rssMiB.start)) report.rssMiB.start = rss;
      report.rssMiB.peak = Math.max(report.rssMiB.peak, rss);
      report.rssMiB.end = rss;
      return rss;
    };
    sample();

    while (report.pdus < maxPdus && Date.now() < deadline) {
      let sentInBatch = 0;
      const lanes: Promise<void>[] = [];
      const lane = async () => {
        while (sentInBatch < batch && report.pdus < maxPdus && Date.now() < deadline) {
          const pieces = plan();
          sentInBatch += pieces.length;
          report.pdus += pieces.length;
          report.connections++;
          await playConnection(daemon.port, pieces, m.rnd() < 0.9 ? 5 : 100, counts);
        }
      };
      for (let i = 0; i < concurrency; i++) lanes.push(lane());
      await Promise.all(lanes);
      report.batches++;
      if (daemon.proc.exitCode !== null || daemon.proc.signalCode !== null) {
        report.crashes++;
        report.daemonOutputTail = daemon.output().slice(-4000);
        log(`daemon exited (${daemon.proc.exitCode ?? daemon.proc.signalCode}) after ${report.pdus} PDUs`);
        break;
      }
      const bad = await healthCheck(daemon.port);
      if (bad) report.healthFailures.push(`after ${report.pdus} PDUs: ${bad}`);
      const rss = sample();
      log(
        `${report.pdus} PDUs, ${report.connections} connections (${counts.closedByTarget} closed by the target, ${counts.received} bytes answered), daemon RSS ${rss} MiB${bad ? `, ${bad}` : ''}`,
      );
    }
  } finally {
    report.seconds = Math.round((Date.now() - started) / 100) / 10;
    report.receivedBytes = counts.received;
    report.closedByTarget = counts.closedByTarget;
    if (daemon.proc.exitCode !== null || daemon.proc.signalCode !== null) {
      if (report.crashes === 0) report.crashes++;
      report.daemonOutputTail ??= daemon.output().slice(-4000);
    }
    const code = await daemon.stop();
    if (code !== 0 && report.crashes === 0) report.healthFailures.push(`daemon exit code on SIGTERM: ${code}`);
  }
  return report;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (require.main === module && !process.env.NODE_TEST_CONTEXT) {
  const num = (n: string) => (arg(n) !== undefined ? Number(arg(n)) : undefined);
  runFuzz({
    pdus: num('pdus') ?? (arg('seconds') ? Infinity : 100000),
    seconds: num('seconds'),
    seed: num('seed'),
    batch: num('batch'),
    concurrency: num('concurrency'),
    log: (l) => console.log(`[${new Date().toISOString()}] ${l}`),
  }).then(
    (r) => {
      const { samples, ...rss } = r.rssMiB;
      console.log(JSON.stringify({ ...r, rssMiB: { ...rss, samples: samples.length } }, null, 2));
      const ok = r.crashes === 0 && r.healthFailures.length === 0;
      console.log(ok ? 'fuzz: OK' : 'fuzz: FAILED');
      process.exit(ok ? 0 : 1);
    },
    (err: unknown) => {
      console.error('fuzz: FAILED', err);
      process.exit(1);
    },
  );
}
