// Soak: many concurrent sessions of mixed, verified I/O against the real daemon for a
// set time. Each session owns a region of a file-backed volume and keeps a model of what
// every 4 KiB block of it should hold (a seed per block: contents are generated from
// it), so every read is checked. The mix: writes of 1..64 blocks (some FUA), reads of
// random ranges, SYNCHRONIZE CACHE, NOP, and now and then a logout and fresh login.
// Reports operations, errors (must be 0) and the daemon's RSS over time.
//
//   npm run soak -- --sessions 32 --minutes 10

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Initiator } from '../src/initiator/initiator';
import { processRssMiB, startDaemon } from '../test/helpers/daemon';

const IQN = 'iqn.2026-11.io.iscsi-target:soak';
const BLOCK = 4096;
const SECTORS = BLOCK / 512;

export interface SoakOptions {
  sessions?: number;
  seconds?: number;
  /** Blocks (4 KiB) each session owns. */
  regionBlocks?: number;
  sampleEverySeconds?: number;
  log?: (line: string) => void;
}

export interface SoakReport {
  sessions: number;
  seconds: number;
  ops: { writes: number; reads: number; syncs: number; nops: number; relogins: number };
  bytes: { writtenMiB: number; readMiB: number };
  errors: string[];
  rssMiB: { start: number; peak: number; end: number; samples: Array<[number, number]> };
  exitCode: number | null;
}

/** Contents of one block from its seed: cheap to make, and different for every seed and block. */
function blockContents(seed: number, block: number, out: Buffer, at: number): void {
  let x = (seed ^ Math.imul(block + 1, 0x9e3779b1)) >>> 0 || 1;
  for (let i = 0; i < BLOCK; i += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out.writeUInt32LE(x, at + i);
  }
}

export async function runSoak(opts: SoakOptions = {}): Promise<SoakReport> {
  const sessions = opts.sessions ?? 32;
  const seconds = opts.seconds ?? 60;
  const regionBlocks = opts.regionBlocks ?? 2048; // 8 MiB each
  const log = opts.log ?? (() => undefined);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-soak-'));
  const volumeMiB = Math.ceil((sessions * regionBlocks * BLOCK) / 1048576);
  const prev = process.env.TEST_LOG_LEVEL;
  process.env.TEST_LOG_LEVEL = 'warn';
  const daemon = await startDaemon(
    `portals: ["127.0.0.1:PORT"]\nvolumes:\n  soak: { path: ${path.join(dir, 'soak.img')}, size: ${volumeMiB}MiB }\ntargets:\n  - iqn: ${IQN}\n    luns: { 0: soak }\n`,
  );
  if (prev === undefined) delete process.env.TEST_LOG_LEVEL;
  else process.env.TEST_LOG_LEVEL = prev;
  const pid = daemon.proc.pid!;
  const report: SoakReport = {
    sessions,
    seconds,
    ops: { writes: 0, reads: 0, syncs: 0, nops: 0, relogins: 0 },
    bytes: { writtenMiB: 0, readMiB: 0 },
    errors: [],
    rssMiB: { start: NaN, peak: 0, end: NaN, samples: [] },
    exitCode: null,
  };
  const started = Date.now();
  const deadline = started + seconds * 1000;
  let written = 0;
  let read = 0;
  const sample = () => {
    const rss = processRssMiB(pid);
    const t = Math.round((Date.now() - started) / 1000);
    report.rssMiB.samples.push([t, rss]);
    if (Number.isNaN(report.rssMiB.start)) report.rssMiB.start = rss;
    report.rssMiB.peak = Math.max(report.rssMiB.peak, rss);
    report.rssMiB.end = rss;
    log(`${t}s: ${report.ops.writes} writes, ${report.ops.reads} verified reads, ${report.errors.length} errors, daemon RSS ${rss} MiB`);
  };
  const sampler = setInterval(sample, (opts.sampleEverySeconds ?? 5) * 1000);

  const session = async (n: number) => {
    const base = n * regionBlocks; // first 4 KiB block of this session's region
    const model = new Uint32Array(regionBlocks); // seed per block; 0 = never written (reads as zeros)
    let rnd = (n + 1) * 2654435761;
    const next = (k: number) => {
      rnd ^= rnd << 13;
      rnd >>>= 0;
      rnd ^= rnd >>> 17;
      rnd ^= rnd << 5;
      rnd >>>= 0;
      return rnd % k;
    };
    const connect = () =>
      Initiator.connect({ host: '127.0.0.1', port: daemon.port, targetName: IQN, initiatorName: `iqn.2026-11.io.iscsi-target:soak-${n}` });
    let ini = await connect();
    await ini.testUnitReady(0);
    const fail = (what: string) => {
      if (report.errors.length < 100) report.errors.push(`session ${n}: ${what}`);
    };
    try {
      while (Date.now() < deadline) {
        const r = next(100);
        const count = 1 + next(64);
        const first = next(regionBlocks - count + 1);
        try {
          if (r < 45) {
            const seed = (next(0xfffffffe) + 1) >>> 0;
            const buf = Buffer.allocUnsafe(count * BLOCK);
            for (let i = 0; i < count; i++) blockContents(seed, base + first + i, buf, i * BLOCK);
            await ini.write(0, (base + first) * SECTORS, buf, 512, r < 10);
            for (let i = 0; i < count; i++) model[first + i] = seed;
            report.ops.writes++;
            written += buf.length;
          } else if (r < 92) {
            const got = await ini.read(0, (base + first) * SECTORS, count * SECTORS);
            const want = Buffer.alloc(count * BLOCK);
            for (let i = 0; i < count; i++) if (model[first + i]) blockContents(model[first + i], base + first + i, want, i * BLOCK);
            if (!got.equals(want)) {
              let bad = 0;
              while (bad < count && got.subarray(bad * BLOCK, (bad + 1) * BLOCK).equals(want.subarray(bad * BLOCK, (bad + 1) * BLOCK)))
                bad++;
              fail(`read of blocks ${first}+${count} differs from the model at block ${first + bad}`);
            }
            report.ops.reads++;
            read += got.length;
          } else if (r < 96) {
            const res = await ini.command(0, Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
            if (res.status !== 0) fail(`SYNCHRONIZE CACHE status ${res.status}`);
            report.ops.syncs++;
          } else if (r < 99) {
            const echo = Buffer.from(`soak ${n}`);
            if (!(await ini.nop(echo)).equals(echo)) fail('NOP-In did not echo');
            report.ops.nops++;
          } else {
            await ini.logout();
            ini = await connect();
            await ini.testUnitReady(0);
            report.ops.relogins++;
          }
        } catch (e) {
          fail((e as Error).message);
          if (ini.isClosed) {
            ini = await connect();
            await ini.testUnitReady(0);
          }
        }
      }
    } finally {
      await ini.logout().catch(() => ini.close());
    }
  };

  try {
    await Promise.all(
      Array.from({ length: sessions }, (_, n) => session(n).catch((e: Error) => report.errors.push(`session ${n}: ${e.message}`))),
    );
  } finally {
    clearInterval(sampler);
    sample();
    report.bytes = { writtenMiB: Math.round(written / 1048576), readMiB: Math.round(read / 1048576) };
    report.seconds = Math.round((Date.now() - started) / 1000);
    if (daemon.proc.exitCode !== null) report.errors.push(`daemon exited with ${daemon.proc.exitCode}: ${daemon.output().slice(-2000)}`);
    report.exitCode = await daemon.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return report;
}

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

if (require.main === module && !process.env.NODE_TEST_CONTEXT) {
  const minutes = arg('minutes') !== undefined ? Number(arg('minutes')) : undefined;
  const secs = arg('seconds') !== undefined ? Number(arg('seconds')) : undefined;
  runSoak({
    sessions: arg('sessions') !== undefined ? Number(arg('sessions')) : 32,
    seconds: secs ?? (minutes !== undefined ? minutes * 60 : 60),
    sampleEverySeconds: arg('sample') !== undefined ? Number(arg('sample')) : 10,
    log: (l) => console.log(`[${new Date().toISOString()}] ${l}`),
  }).then(
    (r) => {
      console.log(JSON.stringify(r, null, 2));
      const ok = r.errors.length === 0 && r.exitCode === 0;
      console.log(ok ? 'soak: OK' : 'soak: FAILED');
      process.exit(ok ? 0 : 1);
    },
    (err: unknown) => {
      console.error('soak: FAILED', err);
      process.exit(1);
    },
  );
}
