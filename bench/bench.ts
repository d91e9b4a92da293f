// `npm run bench`: our target side by side with tgt (the userspace C target), on loopback,
// each serving an identical volume on tmpfs, driven by the same independent clients
// (libiscsi's iscsi-perf for reads, qemu-img bench for writes).
//
// Installs nothing: it checks for the tools and says what to install. Each workload runs
// against both targets in one run, alternating (ours, tgt, then tgt, ours, ...), so the
// load of a shared machine hits both alike; compare the ratios, not the absolute figures.
// For every sample it records IOPS, MB/s, the target's CPU time (utime + stime from
// /proc/PID/stat) and its peak RSS (VmHWM). Results: a table on stdout, JSON and an SVG
// chart under bench/results/ (and bench/latest.{json,svg} with --save-latest).

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { renderChart } from './chart';
import { createImage, findCluster, missingRbdTools, removeImages, tgtBsopts, type RbdCluster } from './rbd';
import { runAsync as runClient } from '../test/helpers/daemon';

const ROOT = path.resolve(__dirname, '..', '..');
const BIN = path.join(ROOT, 'bin', 'iscsi-target');
const RESULTS = path.join(ROOT, 'bench', 'results');
const OUR_IQN = 'iqn.2026-11.io.iscsi-target:bench';
const TGT_IQN = 'iqn.2026-11.io.iscsi-target:bench-tgt';
const CLK_TCK = 100; // sysconf(_SC_CLK_TCK) on Linux

// ------------------------------------------------------------------ workloads

export interface Workload {
  id: string;
  title: string;
  client: 'iscsi-perf' | 'qemu-img';
  /** Bytes per I/O. */
  size: number;
  depth: number;
  random?: boolean;
  write?: boolean;
  /** qemu-img bench request count for a full run (about 3 s on tgt here). */
  count?: number;
  /** Where the volume lives: tmpfs, a file on the machine's disk (through the page cache), or an RBD image. */
  medium: 'tmpfs' | 'disk' | 'rbd';
}

const TMPFS_WORKLOADS: Omit<Workload, 'medium'>[] = [
  { id: 'read-4k-qd1', title: '4 KiB read, QD1', client: 'iscsi-perf', size: 4096, depth: 1 },
  { id: 'randread-4k-qd32', title: '4 KiB random read, QD32', client: 'iscsi-perf', size: 4096, depth: 32, random: true },
  { id: 'read-128k-qd8', title: '128 KiB read, QD8', client: 'iscsi-perf', size: 131072, depth: 8 },
  { id: 'write-4k-qd1', title: '4 KiB write, QD1', client: 'qemu-img', size: 4096, depth: 1, write: true, count: 30000 },
  { id: 'write-4k-qd32', title: '4 KiB write, QD32', client: 'qemu-img', size: 4096, depth: 32, write: true, count: 120000 },
  { id: 'write-1m-qd8', title: '1 MiB write, QD8', client: 'qemu-img', size: 1 << 20, depth: 8, write: true, count: 2500 },
];

// Writes to a one-OSD cluster are far slower than to tmpfs: fewer requests keep a run near 3 s.
const RBD_COUNTS: Record<string, number> = { 'write-4k-qd1': 1500, 'write-4k-qd32': 40000, 'write-1m-qd8': 800 };

/** Each workload on a tmpfs volume, then the same on a volume file on the disk (`-disk`). */
export const DEFAULT_WORKLOADS: Workload[] = [
  ...TMPFS_WORKLOADS.map((w): Workload => ({ ...w, medium: 'tmpfs' })),
  ...TMPFS_WORKLOADS.map((w): Workload => ({ ...w, id: `${w.id}-disk`, title: `${w.title}, disk`, medium: 'disk' })),
];

/** The same on an RBD image (`-rbd`): only with --rbd, as they need a Ceph cluster. */
export const RBD_WORKLOADS: Workload[] = TMPFS_WORKLOADS.map((w): Workload => ({
  ...w,
  id: `${w.id}-rbd`,
  title: `${w.title}, rbd`,
  medium: 'rbd',
  count: RBD_COUNTS[w.id] ?? w.count,
}));

export const WORKLOADS: Workload[] = [...DEFAULT_WORKLOADS, ...RBD_WORKLOADS];

type TargetName = 'ours' | 'tgt' | 'base';

interface Options {
  quick: boolean;
  workloads: Workload[];
  digests: boolean[];
  repeat: number;
  seconds: number;
  volumeMiB: number;
  memoryCheck: boolean;
  saveLatest: boolean;
  /** Add the RBD rows (RBD_WORKLOADS) to the default set. */
  rbd: boolean;
  targets: TargetName[];
  /** bin/iscsi-target to run as "ours" (another build, for before/after comparisons). */
  oursBin: string;
  /** Another build run as a third target, "base", in the same rotation (same-run A/B). */
  baseBin?: string;
}

export interface Sample {
  target: TargetName;
  workload: string;
  digest: boolean;
  rep: number;
  iops: number;
  mbps: number;
  /** Target CPU seconds used during the run (all threads). */
  cpuSeconds: number;
  /** Target CPU microseconds per I/O. */
  cpuUsPerIo: number;
  /** Target peak RSS so far (VmHWM), MiB. */
  peakRssMiB: number;
  seconds: number;
}

export interface Row {
  workload: string;
  title: string;
  digest: boolean;
  ours?: Aggregate;
  tgt?: Aggregate;
  /** ours / tgt of the median IOPS. */
  ratio?: number;
  /** --base-bin: that build's figures, and ours / base. */
  base?: Aggregate;
  baseRatio?: number;
}

export interface Aggregate {
  iops: number;
  mbps: number;
  cpuUsPerIo: number;
  peakRssMiB: number;
  samples: number[];
}

// ------------------------------------------------------------------ options

const USAGE = `usage: npm run bench -- [options]
  --quick               short runs (about 1 s each), one repetition
  --workloads a,b       only these workloads (${WORKLOADS.map((w) => w.id).join(', ')})
  --digest off|on|both  CRC32C header digest (default both; libiscsi has no data digest)
  --repeat N            alternating repetitions per workload (default 3, quick 1)
  --seconds S           iscsi-perf run time in seconds (default 3, quick 1)
  --volume-mib N        size of each volume (default 512)
  --rbd                 add the rows on RBD images (-rbd workloads): needs a Ceph cluster,
                        $CEPH_CONF or the one \`bash scripts/ceph-cluster.sh start\` starts;
                        naming an -rbd workload in --workloads implies it
  --memory-check        first run 8 sessions x QD32 (128 KiB reads, 1 MiB writes) against
                        each target and report its peak RSS
  --only ours|tgt       run one target only (no ratios)
  --ours-bin PATH        run another build's bin/iscsi-target as "ours" (before/after runs)
  --base-bin PATH       also run this build's bin/iscsi-target as a third target, "base",
                        in the same rotation (before/after in one run; adds ours/base)
  --save-latest         also write bench/latest.json and bench/latest.svg (for the README)
`;

function parseArgs(argv: string[]): Options {
  const o: Options = {
    quick: false,
    workloads: DEFAULT_WORKLOADS,
    digests: [false, true],
    repeat: 0,
    seconds: 0,
    volumeMiB: 512,
    memoryCheck: false,
    saveLatest: false,
    rbd: false,
    targets: ['ours', 'tgt'],
    oursBin: BIN,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    switch (a) {
      case '--quick':
        o.quick = true;
        break;
      case '--workloads': {
        const ids = val().split(',');
        o.workloads = ids.map((id) => {
          const w = WORKLOADS.find((x) => x.id === id);
          if (!w) throw new Error(`unknown workload ${id}; known: ${WORKLOADS.map((x) => x.id).join(', ')}`);
          return w;
        });
        break;
      }
      case '--digest': {
        const v = val();
        if (v === 'off') o.digests = [false];
        else if (v === 'on') o.digests = [true];
        else if (v === 'both') o.digests = [false, true];
        else throw new Error(`--digest takes off, on or both`);
        break;
      }
      case '--repeat':
        o.repeat = positiveInt(a, val());
        break;
      case '--seconds':
        o.seconds = positiveInt(a, val());
        break;
      case '--volume-mib':
        o.volumeMiB = positiveInt(a, val());
        break;
      case '--memory-check':
        o.memoryCheck = true;
        break;
      case '--only': {
        const v = val();
        if (v !== 'ours' && v !== 'tgt') throw new Error('--only takes ours or tgt');
        o.targets = [v];
        break;
      }
      case '--ours-bin':
        o.oursBin = path.resolve(val());
        break;
      case '--base-bin':
        o.baseBin = path.resolve(val());
        break;
      case '--save-latest':
        o.saveLatest = true;
        break;
      case '--rbd':
        o.rbd = true;
        break;
      case '-h':
      case '--help':
        process.stdout.write(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown option ${a}\n${USAGE}`);
    }
  }
  if (o.baseBin !== undefined) o.targets = [...o.targets, 'base'];
  if (o.rbd && o.workloads === DEFAULT_WORKLOADS) o.workloads = WORKLOADS;
  if (o.workloads.some((w) => w.medium === 'rbd')) o.rbd = true;
  if (o.repeat === 0) o.repeat = o.quick ? 1 : 3;
  if (o.seconds === 0) o.seconds = o.quick ? 1 : 3;
  return o;
}

function positiveInt(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} takes a positive whole number, got ${v}`);
  return n;
}

// ------------------------------------------------------------------ tools

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/** The tools each target needs, or the apt-get line that installs what is missing. */
function checkTools(o: Options): string | null {
  const missing = new Set<string>();
  if (o.targets.includes('tgt') && (!have('tgtd') || !have('tgtadm'))) missing.add('tgt');
  if (o.rbd) for (const p of missingRbdTools(have, o.targets.includes('tgt'))) missing.add(p);
  const needPerf = o.workloads.some((w) => w.client === 'iscsi-perf') || o.memoryCheck;
  if (needPerf && !have('iscsi-perf')) missing.add('libiscsi-bin');
  if (o.workloads.some((w) => w.client === 'qemu-img')) {
    if (!have('qemu-img')) {
      missing.add('qemu-utils');
      missing.add('qemu-block-extra');
    } else {
      // The iscsi driver lives in qemu-block-extra (block-iscsi.so).
      const help = spawnSync('qemu-img', ['--help'], { encoding: 'utf8' }).stdout ?? '';
      const formats = /Supported formats:(.*)/.exec(help)?.[1] ?? '';
      if (!/\biscsi\b/.test(formats)) missing.add('qemu-block-extra');
    }
  }
  if (missing.size === 0) return null;
  return `missing tools; install them with:\n  apt-get install ${[...missing].join(' ')}`;
}

// ------------------------------------------------------------------ processes

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RunningTarget {
  name: TargetName;
  proc: ChildProcess;
  port: number;
  iqn: string;
  /** LUN of the tmpfs volume, of the disk one, and of the RBD image (with --rbd). */
  lun: number;
  diskLun: number;
  rbdLun: number;
  output(): string;
  stop(): Promise<void>;
}

/** The LUN a workload runs on. */
function lunFor(t: RunningTarget, w: Workload): number {
  return w.medium === 'disk' ? t.diskLun : w.medium === 'rbd' ? t.rbdLun : t.lun;
}

function procStats(pid: number): { cpuSeconds: number; hwmMiB: number; rssMiB: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the command name (which may hold spaces) start at ") ".
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(f[11]) + Number(f[12]); // utime, stime (fields 14, 15)
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0);
  return { cpuSeconds: ticks / CLK_TCK, hwmMiB: kb('VmHWM') / 1024, rssMiB: kb('VmRSS') / 1024 };
}

function waitExit(proc: ChildProcess, ms: number): Promise<boolean> {
  if (proc.exitCode !== null || proc.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    proc.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function stopProc(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  proc.kill('SIGTERM');
  if (!(await waitExit(proc, 5000))) {
    proc.kill('SIGKILL');
    await waitExit(proc, 2000);
  }
}

async function waitListening(proc: ChildProcess, port: number, out: () => string, what: string): Promise<void> {
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`${what} exited early (${proc.exitCode}):\n${out()}`);
    if (await canConnect(port)) return;
    if (Date.now() > deadline) throw new Error(`${what} did not listen on ${port}:\n${out()}`);
    await sleep(100);
  }
}

async function startOurs(
  bin: string,
  dir: string,
  volume: string,
  diskVolume: string,
  volumeBytes: number,
  diskBytes: number,
  name: 'ours' | 'base' = 'ours',
  rbd?: { cluster: RbdCluster; image: string },
): Promise<RunningTarget> {
  const port = await freePort();
  const configFile = path.join(dir, `iscsi-target-${name}.yaml`);
  fs.writeFileSync(
    configFile,
    [
      `portals: ["127.0.0.1:${port}"]`,
      ...(rbd ? [`ceph: { conf: ${JSON.stringify(rbd.cluster.conf)}, user: ${rbd.cluster.user} }`] : []),
      `volumes:`,
      `  bench: { path: ${JSON.stringify(volume)}, size: ${volumeBytes} }`,
      `  bench-disk: { path: ${JSON.stringify(diskVolume)}, size: ${diskBytes} }`,
      ...(rbd ? [`  bench-rbd: { rbd: rbd/${rbd.image} }`] : []),
      `targets:`,
      `  - iqn: ${OUR_IQN}`,
      `    luns: { 0: bench, 1: bench-disk${rbd ? ', 2: bench-rbd' : ''} }`,
      ``,
    ].join('\n'),
  );
  let out = '';
  // node runs the daemon directly, so the child's pid is the target's own (for /proc).
  const proc = spawn(process.execPath, [bin, 'serve', '--config', configFile], {
    cwd: dir,
    env: { ...process.env, LOG_LEVEL: 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const keep = (c: Buffer) => {
    out += c.toString();
    if (out.length > 1_000_000) out = out.slice(-500_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  await waitListening(proc, port, () => out, 'iscsi-target');
  return { name, proc, port, iqn: OUR_IQN, lun: 0, diskLun: 1, rbdLun: 2, output: () => out, stop: () => stopProc(proc) };
}

/** A tgtadm control port whose socket is not in use (a system tgtd keeps its own). */
function freeControlPort(): number {
  for (;;) {
    const p = 20000 + Math.floor(Math.random() * 12000); // tgtd takes at most 32767
    if (!fs.existsSync(`/var/run/tgtd/socket.${p}`)) return p;
  }
}

async function startTgt(volume: string, diskVolume: string, rbd?: { cluster: RbdCluster; image: string }): Promise<RunningTarget> {
  const port = await freePort();
  const control = freeControlPort();
  let out = '';
  // Without CEPH_ARGS: bs_rbd would apply it (rados_conf_parse_env) and ours would not.
  const env = { ...process.env };
  delete env.CEPH_ARGS;
  const proc = spawn('tgtd', ['-f', '-C', String(control), '--iscsi', `portal=127.0.0.1:${port}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  proc.stdout.on('data', (c) => (out += c));
  proc.stderr.on('data', (c) => (out += c));
  await waitListening(proc, port, () => out, 'tgtd');
  const adm = (...args: string[]) => {
    const r = spawnSync('tgtadm', ['-C', String(control), '--lld', 'iscsi', ...args], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`tgtadm ${args.join(' ')} failed: ${r.stderr || r.stdout}`);
  };
  try {
    adm('--op', 'new', '--mode', 'target', '--tid', '1', '-T', TGT_IQN);
    adm('--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '1', '-b', volume);
    adm('--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '2', '-b', diskVolume);
    if (rbd) {
      // bs_rbd: conf= and id= name the ceph.conf and cephx user (else librbd's search path and client.admin).
      const bs = ['--bstype', 'rbd', '--bsopts', tgtBsopts(rbd.cluster)];
      adm('--op', 'new', '--mode', 'logicalunit', '--tid', '1', '--lun', '3', ...bs, '-b', `rbd/${rbd.image}`);
    }
    adm('--op', 'bind', '--mode', 'target', '--tid', '1', '-I', 'ALL');
  } catch (err) {
    await stopProc(proc);
    throw err;
  }
  const stop = async () => {
    // tgtd's own way out ("system delete"); signals remain the fallback.
    spawnSync('tgtadm', ['-C', String(control), '--op', 'delete', '--mode', 'system'], { stdio: 'ignore', timeout: 5000 });
    if (!(await waitExit(proc, 3000))) await stopProc(proc);
    for (const f of [`/var/run/tgtd/socket.${control}`, `/var/run/tgtd/socket.${control}.lock`]) fs.rmSync(f, { force: true });
  };
  return { name: 'tgt', proc, port, iqn: TGT_IQN, lun: 1, diskLun: 2, rbdLun: 3, output: () => out, stop };
}

// ------------------------------------------------------------------ clients

function iscsiUrl(t: RunningTarget, digest: boolean, lun = t.lun): string {
  return `iscsi://127.0.0.1:${t.port}/${t.iqn}/${lun}` + (digest ? '?header_digest=crc32c' : '?header_digest=none');
}

interface ClientResult {
  ios: number;
  seconds: number;
}

async function runIscsiPerf(t: RunningTarget, w: Workload, digest: boolean, seconds: number): Promise<ClientResult> {
  const blocks = w.size / 512;
  const args = ['-t', String(seconds), '-m', String(w.depth), '-b', String(blocks)];
  if (w.random) args.push('-r');
  args.push(iscsiUrl(t, digest, lunFor(t, w)));
  const start = process.hrtime.bigint();
  const r = await runClient('iscsi-perf', args, (seconds + 30) * 1000);
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  // The last progress line carries the run's average: "iops average N (M MB/s)".
  const all = [...r.out.matchAll(/iops average (\d+)/g)];
  if (r.code !== 0 || all.length === 0) {
    throw new Error(`iscsi-perf ${args.join(' ')} failed (exit ${r.code}):\n${r.out.slice(-2000)}`);
  }
  const iops = Number(all[all.length - 1][1]);
  return { ios: iops * seconds, seconds: Math.min(seconds, elapsed) };
}

async function runQemuBench(t: RunningTarget, w: Workload, digest: boolean, quick: boolean): Promise<ClientResult> {
  const count = Math.max(w.depth * 4, Math.round((w.count ?? 10000) / (quick ? 4 : 1)));
  const opts = [
    'driver=iscsi',
    'transport=tcp',
    `portal=127.0.0.1:${t.port}`,
    `target=${t.iqn}`,
    `lun=${lunFor(t, w)}`,
    `header-digest=${digest ? 'crc32c' : 'none'}`,
  ].join(',');
  const args = ['bench', '-w', '-d', String(w.depth), '-s', String(w.size), '-c', String(count), '-t', 'none', '--image-opts', opts];
  const r = await runClient('qemu-img', args, 300_000);
  const m = /Run completed in ([\d.]+) seconds/.exec(r.out);
  if (r.code !== 0 || !m) throw new Error(`qemu-img ${args.join(' ')} failed (exit ${r.code}):\n${r.out.slice(-2000)}`);
  return { ios: count, seconds: Number(m[1]) };
}

async function flushRbdLun(t: RunningTarget): Promise<void> {
  const opts = `driver=iscsi,transport=tcp,portal=127.0.0.1:${t.port},target=${t.iqn},lun=${t.rbdLun}`;
  const args = ['bench', '-w', '-c', '4', '-d', '1', '-s', '4096', '--flush-interval', '1', '-t', 'none', '--image-opts', opts];
  const r = await runClient('qemu-img', args, 60_000);
  if (r.code !== 0) throw new Error(`qemu-img ${args.join(' ')} failed (exit ${r.code}):\n${r.out.slice(-2000)}`);
}

async function measure(t: RunningTarget, w: Workload, digest: boolean, rep: number, o: Options): Promise<Sample> {
  const pid = t.proc.pid!;
  const before = procStats(pid);
  const r = w.client === 'iscsi-perf' ? await runIscsiPerf(t, w, digest, o.seconds) : await runQemuBench(t, w, digest, o.quick);
  const after = procStats(pid);
  const iops = r.ios / r.seconds;
  const cpu = after.cpuSeconds - before.cpuSeconds;
  return {
    target: t.name,
    workload: w.id,
    digest,
    rep,
    iops: Math.round(iops),
    mbps: Math.round((iops * w.size) / 1e6),
    cpuSeconds: round(cpu, 2),
    cpuUsPerIo: round((cpu * 1e6) / r.ios, 1),
    peakRssMiB: round(after.hwmMiB, 1),
    seconds: round(r.seconds, 2),
  };
}

export interface MemoryCheck {
  sessions: number;
  depth: number;
  /** Peak RSS after 8 x QD32 x 128 KiB random reads. */
  readPeakRssMiB: number;
  readIops: number;
  /** Peak RSS after that and 8 x QD32 x 1 MiB writes (the peak only grows). */
  writePeakRssMiB: number;
  writeMBps: number;
}

/**
 * Many sessions with many commands each: 8 sessions at QD32 of 128 KiB random reads, then
 * 8 at QD32 of 1 MiB writes, and the target's peak RSS (VmHWM) after each.
 */
async function memoryCheck(t: RunningTarget, seconds: number, quick: boolean): Promise<MemoryCheck> {
  const sessions = 8;
  const reads: Promise<{ code: number | null; out: string }>[] = [];
  for (let i = 0; i < sessions; i++) {
    reads.push(
      runClient(
        'iscsi-perf',
        ['-t', String(seconds), '-r', '-m', '32', '-b', '256', '-i', `iqn.2026-11.io.iscsi-target:bench-mem-${i}`, iscsiUrl(t, false)],
        (seconds + 30) * 1000,
      ),
    );
  }
  let readIops = 0;
  for (const r of await Promise.all(reads)) {
    const all = [...r.out.matchAll(/iops average (\d+)/g)];
    if (r.code !== 0 || all.length === 0) throw new Error(`memory check: iscsi-perf failed:\n${r.out.slice(-2000)}`);
    readIops += Number(all[all.length - 1][1]);
  }
  const readPeak = procStats(t.proc.pid!).hwmMiB;

  const count = quick ? 100 : 300;
  const writes: Promise<{ code: number | null; out: string }>[] = [];
  const start = process.hrtime.bigint();
  for (let i = 0; i < sessions; i++) {
    const opts = `driver=iscsi,transport=tcp,portal=127.0.0.1:${t.port},target=${t.iqn},lun=${t.lun},initiator-name=iqn.2026-11.io.iscsi-target:bench-memw-${i}`;
    writes.push(
      runClient('qemu-img', ['bench', '-w', '-d', '32', '-s', '1M', '-c', String(count), '-t', 'none', '--image-opts', opts], 300_000),
    );
  }
  for (const r of await Promise.all(writes)) {
    if (r.code !== 0 || !/Run completed/.test(r.out)) {
      throw new Error(
        `memory check: qemu-img failed:\n${r.out.slice(-2000)}\n--- ${t.name} output (last lines):\n${t.output().slice(-3000)}`,
      );
    }
  }
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  return {
    sessions,
    depth: 32,
    readPeakRssMiB: round(readPeak, 1),
    readIops,
    writePeakRssMiB: round(procStats(t.proc.pid!).hwmMiB, 1),
    writeMBps: Math.round((sessions * count * 1.048576) / elapsed),
  };
}

// ------------------------------------------------------------------ volumes

/** A volume full of non-zero data, so reads move real pages rather than tmpfs holes. */
function makeVolume(file: string, bytes: number): void {
  const chunk = Buffer.alloc(1 << 20);
  for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((i * 2654435761) >>> 0, i);
  const fd = fs.openSync(file, 'w', 0o600);
  try {
    for (let off = 0; off < bytes; off += chunk.length) fs.writeSync(fd, chunk, 0, Math.min(chunk.length, bytes - off), off);
    fs.fdatasyncSync(fd); // a disk volume starts with nothing dirty to write back
  } finally {
    fs.closeSync(fd);
  }
}

// ------------------------------------------------------------------ report

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function aggregate(samples: Sample[]): Aggregate | undefined {
  if (samples.length === 0) return undefined;
  const pick = (f: (s: Sample) => number) => median(samples.map(f));
  return {
    iops: Math.round(pick((s) => s.iops)),
    mbps: Math.round(pick((s) => s.mbps)),
    cpuUsPerIo: round(
      pick((s) => s.cpuUsPerIo),
      1,
    ),
    peakRssMiB: round(Math.max(...samples.map((s) => s.peakRssMiB)), 1),
    samples: samples.map((s) => s.iops),
  };
}

export function buildRows(samples: Sample[], workloads: Workload[], digests: boolean[]): Row[] {
  const rows: Row[] = [];
  for (const w of workloads) {
    for (const d of digests) {
      const of = (t: TargetName) => samples.filter((s) => s.workload === w.id && s.digest === d && s.target === t);
      const row: Row = { workload: w.id, title: w.title, digest: d };
      const ours = aggregate(of('ours'));
      const tgt = aggregate(of('tgt'));
      if (ours) row.ours = ours;
      if (tgt) row.tgt = tgt;
      if (ours && tgt && tgt.iops > 0) row.ratio = round(ours.iops / tgt.iops, 2);
      const base = aggregate(of('base'));
      if (base) row.base = base;
      if (ours && base && base.iops > 0) row.baseRatio = round(ours.iops / base.iops, 2);
      rows.push(row);
    }
  }
  return rows;
}

function fmtIops(n: number): string {
  return n >= 10000 ? `${(n / 1000).toFixed(1)}K` : n >= 1000 ? `${(n / 1000).toFixed(2)}K` : String(n);
}

function fmtRate(a: Aggregate | undefined, w: Workload): string {
  if (!a) return '-';
  return w.size >= 65536 ? `${(a.mbps / 1000).toFixed(2)} GB/s` : `${fmtIops(a.iops)} IOPS`;
}

export function formatTable(rows: Row[]): string {
  const header = ['workload', 'digest', 'ours', 'tgt', 'ours/tgt', 'CPU µs/IO ours', 'CPU µs/IO tgt'];
  const lines = rows.map((r) => {
    const w = WORKLOADS.find((x) => x.id === r.workload)!;
    return [
      r.title,
      r.digest ? 'CRC32C' : 'none',
      fmtRate(r.ours, w),
      fmtRate(r.tgt, w),
      r.ratio !== undefined ? `${r.ratio.toFixed(2)}×` : '-',
      r.ours ? r.ours.cpuUsPerIo.toFixed(1) : '-',
      r.tgt ? r.tgt.cpuUsPerIo.toFixed(1) : '-',
    ];
  });
  if (rows.some((r) => r.base)) {
    header.push('base', 'ours/base', 'CPU µs/IO base');
    rows.forEach((r, i) => {
      const w = WORKLOADS.find((x) => x.id === r.workload)!;
      lines[i].push(
        fmtRate(r.base, w),
        r.baseRatio !== undefined ? `${r.baseRatio.toFixed(2)}×` : '-',
        r.base ? r.base.cpuUsPerIo.toFixed(1) : '-',
      );
    });
  }
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i].length)));
  const fmt = (cells: string[]) => '| ' + cells.map((c, i) => c.padEnd(widths[i])).join(' | ') + ' |';
  return [fmt(header), '|' + widths.map((w) => '-'.repeat(w + 2)).join('|') + '|', ...lines.map(fmt)].join('\n');
}

// ------------------------------------------------------------------ main

async function main(): Promise<number> {
  let o: Options;
  try {
    o = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`bench: ${(e as Error).message}\n`);
    return 2;
  }
  const missing = checkTools(o);
  if (missing) {
    process.stderr.write(`bench: ${missing}\n`);
    return 1;
  }
  if (!fs.existsSync('/dev/shm')) {
    process.stderr.write('bench: /dev/shm (tmpfs) is not there; the volumes live on it\n');
    return 1;
  }
  const log = (s: string) => process.stderr.write(s + '\n');
  let cluster: RbdCluster | undefined;
  if (o.rbd) {
    try {
      cluster = findCluster(ROOT);
    } catch (e) {
      process.stderr.write(`bench: ${(e as Error).message}\n`);
      return 1;
    }
  }
  const loadAtStart = os.loadavg().map((x) => round(x, 2));
  const dir = fs.mkdtempSync(path.join('/dev/shm', 'iscsi-bench-'));
  const volumeBytes = o.volumeMiB * 1024 * 1024;
  // Disk volumes: files on the machine's own filesystem (BENCH_DISK_DIR, default /var/tmp),
  // used through the page cache as most users run; tiny when no disk workload runs.
  const wantDisk = o.workloads.some((w) => w.medium === 'disk');
  const diskDir = fs.mkdtempSync(path.join(wantDisk ? (process.env.BENCH_DISK_DIR ?? '/var/tmp') : dir, 'iscsi-bench-disk-'));
  const diskBytes = wantDisk ? volumeBytes : 1024 * 1024;
  const targets: RunningTarget[] = [];
  let interrupted = false;
  const cleanup = async () => {
    for (const t of targets) await t.stop().catch(() => undefined);
    if (cluster) {
      const left = await removeImages(cluster);
      if (left.length) log(`bench: could not remove RBD images ${left.join(', ')} (rbd rm them)`);
    }
    fs.rmSync(diskDir, { recursive: true, force: true });
    fs.rmSync(dir, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    interrupted = true;
    log('\nbench: interrupted; stopping targets');
    cleanup().then(
      () => process.exit(130),
      () => process.exit(130),
    );
  });

  try {
    log(`bench: creating ${o.volumeMiB} MiB volumes on tmpfs (${dir})${wantDisk ? ` and on disk (${diskDir})` : ''}`);
    const started: Partial<Record<TargetName, RunningTarget>> = {};
    for (const name of o.targets) {
      const vol = path.join(dir, `${name}.img`);
      makeVolume(vol, volumeBytes);
      const diskVol = path.join(diskDir, `${name}.img`);
      makeVolume(diskVol, diskBytes);
      // The image starts with the tmpfs volume's data (created before this target starts).
      const rbd = cluster && { cluster, image: createImage(cluster, name, vol) };
      if (rbd) log(`bench: RBD image rbd/${rbd.image} (${o.volumeMiB} MiB) for ${name}`);
      const t =
        name === 'tgt'
          ? await startTgt(vol, diskVol, rbd)
          : await startOurs(name === 'base' ? o.baseBin! : o.oursBin, dir, vol, diskVol, volumeBytes, diskBytes, name, rbd);
      targets.push(t);
      started[name] = t;
      log(
        `bench: ${name === 'tgt' ? 'tgtd' : name === 'base' ? 'iscsi-target (base)' : 'iscsi-target'} listening on 127.0.0.1:${t.port} (pid ${t.proc.pid})`,
      );
    }

    // librbd runs an image in writethrough until the client's first flush
    // (rbd_cache_writethrough_until_flush), then in its cache policy (writearound, which
    // acknowledges writes before the OSD does). Initiators flush, so that is the steady
    // state: a few writes and a flush take both targets there before the first sample.
    if (cluster) for (const t of targets) await flushRbdLun(t);

    // First, while the targets are fresh: VmHWM is a peak over the process's life.
    let memory: Partial<Record<TargetName, MemoryCheck>> | undefined;
    if (o.memoryCheck) {
      memory = {};
      for (const name of o.targets) {
        process.stderr.write(`memory check against ${name}: 8 sessions x QD32, 128 KiB random reads then 1 MiB writes ... `);
        const m = await memoryCheck(started[name]!, o.quick ? 2 : 5, o.quick);
        memory[name] = m;
        log(
          `peak RSS ${m.readPeakRssMiB} MiB after reads (${fmtIops(m.readIops)} IOPS), ${m.writePeakRssMiB} MiB after writes (${m.writeMBps} MB/s)`,
        );
      }
    }

    const samples: Sample[] = [];
    const total = o.workloads.length * o.digests.length * o.repeat * o.targets.length;
    let n = 0;
    let flip = false;
    for (const w of o.workloads) {
      for (const d of o.digests) {
        for (let rep = 0; rep < o.repeat; rep++) {
          // ABBA order: whichever target runs second in one round runs first in the next.
          const order = flip ? [...o.targets].reverse() : o.targets;
          flip = !flip;
          for (const name of order) {
            if (interrupted) return 130;
            const t = started[name]!;
            n++;
            process.stderr.write(
              `[${String(n).padStart(String(total).length)}/${total}] ${w.id.padEnd(17)} digest=${d ? 'on ' : 'off'} ${name.padEnd(4)} ... `,
            );
            const s = await measure(t, w, d, rep, o);
            samples.push(s);
            const rate = w.size >= 65536 ? `${(s.mbps / 1000).toFixed(2)} GB/s` : `${fmtIops(s.iops)} IOPS`;
            log(`${rate}  cpu ${s.cpuSeconds.toFixed(2)} s  (${s.cpuUsPerIo} µs/IO)  peak RSS ${s.peakRssMiB} MiB`);
          }
        }
      }
    }

    // Header digests must really have been negotiated: our log says so for each login.
    const ours = started.ours;
    if (ours && o.digests.includes(true) && !/"HeaderDigest":"CRC32C"/.test(ours.output())) {
      throw new Error('no login negotiated HeaderDigest=CRC32C: the digest runs did not use digests');
    }

    const rows = buildRows(samples, o.workloads, o.digests);
    const table = formatTable(rows);
    process.stdout.write('\n' + table + '\n');
    if (memory?.ours) {
      const m = memory.ours;
      const verdict = (x: number) => (x < 200 ? 'under' : 'OVER');
      process.stdout.write(
        `\nmemory, iscsi-target, 8 sessions x QD32: peak RSS ${m.readPeakRssMiB} MiB with 128 KiB reads (${verdict(m.readPeakRssMiB)} 200 MiB), ` +
          `${m.writePeakRssMiB} MiB with 1 MiB writes (${verdict(m.writePeakRssMiB)} 200 MiB)` +
          (memory.tgt ? `; tgtd ${memory.tgt.readPeakRssMiB} / ${memory.tgt.writePeakRssMiB} MiB` : '') +
          '\n',
      );
    }

    const meta = {
      date: new Date().toISOString(),
      /** The commit of the tree "ours" was built from ("-dirty": with uncommitted changes). */
      commit: gitCommit(path.dirname(o.oursBin)),
      machine: {
        cpus: os.cpus().length,
        cpuModel: os.cpus()[0]?.model ?? 'unknown',
        memoryGiB: round(os.totalmem() / 2 ** 30, 1),
        kernel: os.release(),
        os: osName(),
        node: process.version,
        tgt: tgtVersion(),
        ...(cluster ? { ceph: cephVersion(cluster.conf) } : {}),
        loadAverageAtStart: loadAtStart,
        loadAverageAtEnd: os.loadavg().map((x) => round(x, 2)),
      },
      options: {
        quick: o.quick,
        repeat: o.repeat,
        seconds: o.seconds,
        volumeMiB: o.volumeMiB,
        rbd: o.rbd,
        digests: o.digests.map((d) => (d ? 'crc32c' : 'none')),
        workloads: o.workloads.map((w) => w.id),
        oursBin: path.relative(ROOT, o.oursBin) || o.oursBin,
        ...(o.baseBin !== undefined ? { baseBin: path.relative(ROOT, o.baseBin) || o.baseBin } : {}),
      },
    };
    const result = { ...meta, rows, samples, memory };
    fs.mkdirSync(RESULTS, { recursive: true });
    const stamp = meta.date.replace(/[:.]/g, '-');
    const jsonFile = path.join(RESULTS, `bench-${stamp}.json`);
    const svgFile = path.join(RESULTS, `bench-${stamp}.svg`);
    fs.writeFileSync(jsonFile, JSON.stringify(result, null, 2) + '\n');
    const svg = renderChart(
      rows,
      WORKLOADS,
      `iscsi-target vs tgt ${meta.machine.tgt} — ${meta.machine.cpus} cores, loopback, ${[...new Set(o.workloads.map((w) => w.medium))].join(', ')} (${meta.date.slice(0, 10)}, ${meta.commit})`,
    );
    fs.writeFileSync(svgFile, svg);
    log(`\nbench: wrote ${path.relative(ROOT, jsonFile)} and ${path.relative(ROOT, svgFile)}`);
    if (o.saveLatest) {
      fs.copyFileSync(jsonFile, path.join(ROOT, 'bench', 'latest.json'));
      fs.copyFileSync(svgFile, path.join(ROOT, 'bench', 'latest.svg'));
      log('bench: copied them to bench/latest.json and bench/latest.svg');
    }
    return 0;
  } finally {
    if (!interrupted) await cleanup();
  }
}

/** `git describe --always --dirty` of the tree holding `dir`, or 'unknown' outside git. */
function gitCommit(dir: string): string {
  const r = spawnSync('git', ['-C', dir, 'describe', '--always', '--dirty', '--abbrev=12'], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : 'unknown';
}

function osName(): string {
  try {
    return /PRETTY_NAME="([^"]+)"/.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? os.type();
  } catch {
    return os.type();
  }
}

function cephVersion(conf: string): string {
  const r = spawnSync('ceph', ['--conf', conf, 'version'], { encoding: 'utf8', timeout: 20_000 });
  return (r.stdout || '').trim() || 'unknown';
}

function tgtVersion(): string {
  const r = spawnSync('tgtd', ['-V'], { encoding: 'utf8' });
  return (r.stdout || r.stderr || '').trim() || 'unknown';
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err) => {
      process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
