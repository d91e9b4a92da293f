// libiscsi's SCSI/iSCSI conformance suite (`iscsi-test-cu`) against the real daemon.
//
//   npm run test:conformance                 run, compare with conformance-expected.txt
//   npm run test:conformance -- --update     ... and rewrite the expectations + docs/conformance.md
//   npm run test:conformance -- --tests ALL.Read10     one suite or test (compares only those)
//
// What it does: starts `iscsi-target serve` on a free loopback port with one target holding
//   LUN 0  thin      1 GiB thin (sparse) file volume, 512-byte blocks: the volume under test
//   LUN 1  golden    64 MiB read-only volume
//   LUN 2  thin512e  1 GiB thin volume with physicalBlockSize 4096 (8 logical blocks per physical)
//   LUN 3  sealed    256 MiB thin volume with encryption at rest (AES-256-XTS)
// and runs these passes of `iscsi-test-cu -d -S -v` (each with a -t list file written to
// conformance-results/tests-PASS.txt):
//   main                every suite but Sanitize on LUN 0, multipath URL given twice
//   sanitize            the Sanitize suite on LUN 0, one URL. With two URLs the suite's second
//                       session is the multipath one, which stays logged in for the whole suite:
//                       Sanitize.Reservations leaves it holding a RESERVE(6) it never releases,
//                       so the next test's SANITIZE is (rightly) refused with RESERVATION
//                       CONFLICT. With one URL libiscsi opens and logs out a second session
//                       per test, and the I_T nexus loss releases the reservation (SPC-4).
//   sanitize-encrypted  the Sanitize suite but Reset on LUN 3: CRYPTOGRAPHIC ERASE is offered
//                       only where there is a key to destroy (Reset exercises an OVERWRITE's
//                       progress across resets, and costs a 60 s poll: LUN 0 covers it)
//   lbppb               CompareAndWrite, WriteSame10/16, Unmap, ReadCapacity16 on LUN 2: five
//                       of their tests skip unless a physical block holds several logical ones.
//                       GetLBAStatus stays on LUN 0: libiscsi 1.19's UnmapSingle asks for the
//                       status of LBA i+1 and demands a first descriptor starting at i+LBPPB,
//                       which SBC-3 forbids (the first descriptor describes the starting LBA)
//                       whenever LBPPB > 1, so no conforming target passes it there.
//   readonly            the ReadOnly suite on LUN 1
// Each pass has a hard timeout and an inactivity watchdog; if the daemon exits during a pass, or
// a pass hangs, it is killed, the later passes are not run and the whole thing fails loudly.
//
// Verdicts: one per distinct SUITE.TEST name of the ALL family (230 in libiscsi 1.19), named as
// in test/interop/baselines/tgt-1.0.85-libiscsi-1.19.txt. CUnit "passed" with a "[SKIPPED]"
// message inside the test is a SKIP; CUnit "FAILED" is a FAIL; a test seen in several passes keeps
// the stronger verdict (FAIL > PASS > SKIP): a failure anywhere counts, and e.g.
// ReadOnly.ReadOnlySBC counts from the read-only LUN.
//
// A regression is a test that conformance-expected.txt says PASS and that is not PASS now: the
// script exits 1 and lists them. Raw logs, the daemon's log and results.json go to
// conformance-results/ (git-ignored).
//
// The test names come from `iscsi-test-cu -l` (the `ALL` family holds every SCSI and iSCSI suite
// once; running without -t would repeat them under SCSI, iSCSI and LINUX), so a newer libiscsi
// with more tests simply shows more rows.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ROOT, startDaemon, which, type Daemon } from '../helpers/daemon';

export type Verdict = 'PASS' | 'SKIP' | 'FAIL';

export const INTEROP_DIR = path.join(ROOT, 'test', 'interop');
export const EXPECTED_FILE = path.join(INTEROP_DIR, 'conformance-expected.txt');
export const BASELINE_FILE = path.join(INTEROP_DIR, 'baselines', 'tgt-1.0.85-libiscsi-1.19.txt');
export const BASELINE_LABEL = 'tgt 1.0.85';
export const DOC_FILE = path.join(ROOT, 'docs', 'conformance.md');
export const RESULTS_DIR = path.join(ROOT, 'conformance-results');

export const TARGET_IQN = 'iqn.2026-11.io.iscsi-target:conformance';
export const THIN_SIZE = '1GiB';
const SEALED_SIZE = '256MiB';
const RO_SIZE_BYTES = 64 * 1024 * 1024;

export interface TestResult {
  name: string;
  verdict: Verdict;
  /** One line: the first [FAILED]/[SKIPPED] message and the failed assertion. */
  reason?: string;
  /** Which run decided the verdict. */
  run: string;
  /** The test's own output lines (messages and CUnit assertion failures). */
  output: string[];
}

// ---------------------------------------------------------------------------------------------
// Parsing CUnit "verbose" output of iscsi-test-cu

export interface ParsedRun {
  tests: Map<string, TestResult>;
  /** The test that had started but printed no verdict (the run was cut short). */
  unfinished?: string;
  /** Suites whose CUnit init failed (their tests did not run). */
  suiteInitFailures: string[];
  /** CUnit's own "tests" row of the run summary, when the run got that far. */
  summary?: { total: number; ran: number; passed: number; failed: number };
}

const SCSI_STATUS: Record<number, string> = {
  0: 'GOOD',
  2: 'CHECK CONDITION',
  4: 'CONDITION MET',
  8: 'BUSY',
  24: 'RESERVATION CONFLICT',
  40: 'TASK SET FULL',
  48: 'ACA ACTIVE',
  64: 'TASK ABORTED',
};

/** Make a libiscsi message readable: "status 24" -> "status 24 (RESERVATION CONFLICT)". */
export function annotate(msg: string): string {
  return msg.replace(/\bstatus (\d+)\b(?! \()/g, (m, n: string) => {
    const name = SCSI_STATUS[Number(n)];
    return name ? `${m} (${name})` : m;
  });
}

function reasonOf(verdict: Verdict, output: string[]): string | undefined {
  const msgs = output.map((l) => l.trim()).filter((l) => l.length > 0);
  if (verdict === 'SKIP') {
    const s = msgs.find((l) => l.includes('[SKIPPED]'));
    return s ? s.replace(/^.*?\[SKIPPED\]\s*/, '') : undefined;
  }
  if (verdict !== 'FAIL') return undefined;
  const isAssert = (l: string): boolean => /^\d+\. \S+:\d+/.test(l);
  const asserts = msgs.filter(isAssert).map((l) => l.replace(/^\d+\.\s+/, '').replace(/\s+-\s+/, ' '));
  const messages = msgs.filter((l) => !isAssert(l));
  const failed = messages.filter((l) => l.includes('[FAILED]')).map((l) => l.replace(/^.*?\[FAILED\]\s*/, ''));
  const other = messages.filter((l) => !l.includes('[FAILED]') && !l.includes('[SKIPPED]'));
  const parts: string[] = [];
  if (failed.length > 0) parts.push(annotate(failed[0]) + (failed.length > 1 ? ` (+${failed.length - 1} more [FAILED])` : ''));
  else if (other.length > 0) parts.push(annotate(other[0]));
  if (asserts.length > 0) parts.push(`at ${asserts[0]}${asserts.length > 1 ? ` (+${asserts.length - 1} more)` : ''}`);
  return parts.join(' ') || 'CUnit FAILED';
}

function rank(v: Verdict): number {
  return v === 'FAIL' ? 2 : v === 'PASS' ? 1 : 0;
}

/**
 * Parse the stdout of one `iscsi-test-cu` run (CUnit basic interface, verbose mode).
 *
 * CUnit prints "\nSuite: S", then per test "\n  Test: T ..." and, after the test's setup,
 * body and teardown ran, "passed" or "FAILED" (followed by numbered assertion lines). libiscsi's
 * messages ("    [SKIPPED] ...", "    [FAILED] ...") come in between. Text after the verdict
 * and before the next "Test:" belongs to suite cleanup/init, not to the test.
 */
export function parseCuOutput(text: string, run: string): ParsedRun {
  const tests = new Map<string, TestResult>();
  const suiteInitFailures: string[] = [];
  let summary: ParsedRun['summary'];
  let suite = '?';
  let cur: { name: string; output: string[]; verdict?: 'passed' | 'FAILED' } | null = null;

  const finish = (): void => {
    if (!cur || !cur.verdict) return;
    let verdict: Verdict;
    if (cur.verdict === 'FAILED') verdict = 'FAIL';
    else verdict = cur.output.some((l) => l.includes('[SKIPPED]')) ? 'SKIP' : 'PASS';
    const r: TestResult = { name: cur.name, verdict, run, output: cur.output, reason: reasonOf(verdict, cur.output) };
    const prev = tests.get(cur.name);
    if (!prev || rank(verdict) > rank(prev.verdict)) tests.set(cur.name, r);
    cur = null;
  };

  const body = (t: string): void => {
    if (!cur) return;
    if (!cur.verdict) {
      const v = /^(passed|FAILED)/.exec(t);
      if (v) {
        cur.verdict = v[1] as 'passed' | 'FAILED';
        // The rest of this line is suite-level chatter; ignore it.
        return;
      }
      cur.output.push(t);
    } else if (cur.verdict === 'FAILED' && /^\s+\d+\. \S+:\d+/.test(t)) {
      // The last assertion line may carry the next suite's set-up chatter ("   [SKIPPED] ...").
      cur.output.push(t.replace(/\s{3,}\[(SKIPPED|FAILED|INFO|OK)\].*$/, ''));
    }
  };

  for (const line of text.split(/\r?\n/)) {
    let m = /^Suite: (.+?)\s*$/.exec(line);
    if (m) {
      finish();
      suite = m[1];
      continue;
    }
    m = /^\s*WARNING - Suite initialization failed for '(.+?)'/.exec(line) ?? /Suite initialization failed.*?'(.+?)'/.exec(line);
    if (m) {
      finish();
      suiteInitFailures.push(m[1]);
      continue;
    }
    m = /^ {2}Test: (.+?) \.\.\.(.*)$/.exec(line);
    if (m) {
      finish();
      cur = { name: `${suite}.${m[1]}`, output: [] };
      if (m[2].length > 0) body(m[2]);
      continue;
    }
    m = /^\s+tests\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)/.exec(line);
    if (m && (!cur || cur.verdict)) {
      finish();
      summary = { total: Number(m[1]), ran: Number(m[2]), passed: Number(m[3]), failed: Number(m[4]) };
      continue;
    }
    body(line);
  }
  let unfinished: string | undefined;
  const last = cur as { name: string; verdict?: string } | null;
  if (last && !last.verdict) unfinished = last.name;
  finish();
  return { tests, unfinished, suiteInitFailures, summary };
}

// ---------------------------------------------------------------------------------------------
// Verdict files (the baseline and the expectations): "PASS|SKIP|FAIL Suite.Test" per line

export function readVerdicts(file: string): Map<string, Verdict> {
  const out = new Map<string, Verdict>();
  if (!fs.existsSync(file)) return out;
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    const m = /^(PASS|SKIP|FAIL)\s+(\S+)\s*$/.exec(line);
    if (m) out.set(m[2], m[1] as Verdict);
  }
  return out;
}

export interface Totals {
  tests: number;
  pass: number;
  skip: number;
  fail: number;
}

export function totals(verdicts: Iterable<Verdict>): Totals {
  const t: Totals = { tests: 0, pass: 0, skip: 0, fail: 0 };
  for (const v of verdicts) {
    t.tests++;
    if (v === 'PASS') t.pass++;
    else if (v === 'SKIP') t.skip++;
    else t.fail++;
  }
  return t;
}

export function formatTotals(t: Totals): string {
  return `tests ${t.tests} pass ${t.pass} skip ${t.skip} fail ${t.fail}`;
}

export function formatVerdicts(results: Map<string, TestResult>, header: string[]): string {
  const names = [...results.keys()].sort();
  const lines = header.map((h) => `# ${h}`);
  for (const n of names) lines.push(`${results.get(n)!.verdict} ${n}`);
  lines.push(formatTotals(totals(names.map((n) => results.get(n)!.verdict))));
  return lines.join('\n') + '\n';
}

export interface Comparison {
  /** Expected PASS, not PASS now. */
  regressions: { name: string; now: Verdict; reason?: string }[];
  /** PASS now, expected something else (or not listed). */
  improvements: { name: string; was: Verdict | 'absent' }[];
  /** Other changes (SKIP <-> FAIL, new tests), informative only. */
  changes: { name: string; was: Verdict | 'absent'; now: Verdict }[];
}

export function compare(expected: Map<string, Verdict>, results: Map<string, TestResult>): Comparison {
  const c: Comparison = { regressions: [], improvements: [], changes: [] };
  for (const [name, r] of [...results].sort(([a], [b]) => a.localeCompare(b))) {
    const was = expected.get(name) ?? 'absent';
    if (was === 'PASS' && r.verdict !== 'PASS') c.regressions.push({ name, now: r.verdict, reason: r.reason });
    else if (was !== 'PASS' && r.verdict === 'PASS') c.improvements.push({ name, was });
    else if (was !== r.verdict) c.changes.push({ name, was, now: r.verdict });
  }
  return c;
}

// ---------------------------------------------------------------------------------------------
// Running iscsi-test-cu under a watchdog

export interface CuRun {
  name: string;
  args: string[];
  stdout: string;
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  /** Killed for exceeding the hard timeout. */
  timedOut: boolean;
  /** Killed for printing nothing for too long. */
  idle: boolean;
  /** The daemon exited while this run was going on. */
  daemonDied: boolean;
  logFile: string;
}

interface RunCuOptions {
  name: string;
  args: string[];
  cwd: string;
  logFile: string;
  timeoutMs: number;
  idleMs: number;
  daemon: Daemon;
  echo?: (line: string) => void;
}

function runCu(o: RunCuOptions): Promise<CuRun> {
  // stdbuf makes libiscsi's printf line-buffered into our pipe, so the inactivity watchdog
  // and the log see progress as it happens (and a killed run loses nothing).
  const useStdbuf = which('stdbuf');
  const cmd = useStdbuf ? 'stdbuf' : 'iscsi-test-cu';
  const argv = useStdbuf ? ['-oL', '-eL', 'iscsi-test-cu', ...o.args] : o.args;
  const log = fs.createWriteStream(o.logFile);
  log.write(`# iscsi-test-cu ${o.args.join(' ')}\n`);
  const started = Date.now();
  return new Promise((resolve) => {
    // stdbuf execs iscsi-test-cu, so the child's pid is iscsi-test-cu's.
    const child = spawn(cmd, argv, { cwd: o.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    // If this process goes away mid-run (Ctrl-C, a test-runner timeout), take the run with it.
    const onExit = (): void => {
      child.kill('SIGKILL');
    };
    process.once('exit', onExit);
    child.on('error', (e) => log.write(`\n# conformance: cannot run ${cmd}: ${e.message}\n`));
    let stdout = '';
    let lastOutput = Date.now();
    let timedOut = false;
    let idle = false;
    let daemonDied = false;
    let partial = '';
    const kill = (): void => {
      child.kill('SIGTERM');
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      }, 3000).unref();
    };
    child.stdout.on('data', (c: Buffer) => {
      const s = c.toString('utf8');
      stdout += s;
      log.write(s);
      lastOutput = Date.now();
      if (o.echo) {
        partial += s;
        const lines = partial.split('\n');
        partial = lines.pop()!;
        for (const l of lines) o.echo(l);
      }
    });
    child.stderr.on('data', (c: Buffer) => {
      log.write(c);
      lastOutput = Date.now();
    });
    const onDaemonExit = (): void => {
      daemonDied = true;
      log.write(`\n# conformance: the target daemon exited during this run; killing iscsi-test-cu\n`);
      kill();
    };
    o.daemon.proc.once('exit', onDaemonExit);
    const timer = setInterval(() => {
      const now = Date.now();
      if (!timedOut && now - started > o.timeoutMs) {
        timedOut = true;
        log.write(`\n# conformance: hard timeout of ${Math.round(o.timeoutMs / 1000)} s reached; killing iscsi-test-cu\n`);
        kill();
      } else if (!idle && !timedOut && now - lastOutput > o.idleMs) {
        idle = true;
        log.write(`\n# conformance: no output for ${Math.round(o.idleMs / 1000)} s (hang); killing iscsi-test-cu\n`);
        kill();
      }
    }, 1000);
    child.on('close', (code, signal) => {
      clearInterval(timer);
      process.removeListener('exit', onExit);
      o.daemon.proc.removeListener('exit', onDaemonExit);
      log.end();
      resolve({
        name: o.name,
        args: o.args,
        stdout,
        exitCode: code,
        signal,
        durationMs: Date.now() - started,
        timedOut,
        idle,
        daemonDied,
        logFile: o.logFile,
      });
    });
  });
}

/** The distinct SUITE.TEST names of the ALL family, as `iscsi-test-cu -l` lists them. */
export function listTests(): string[] {
  const r = spawnSync('iscsi-test-cu', ['-l'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`iscsi-test-cu -l failed: ${r.stderr}`);
  const names = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const parts = line.trim().split('.');
    if (parts.length === 3 && parts[0] === 'ALL') names.add(`${parts[1]}.${parts[2]}`);
  }
  return [...names].sort();
}

/** The suites of the ALL family in `iscsi-test-cu -l` order (the order they run in). */
export function listSuites(): string[] {
  const r = spawnSync('iscsi-test-cu', ['-l'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`iscsi-test-cu -l failed: ${r.stderr}`);
  const out: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const parts = line.trim().split('.');
    if (parts.length === 2 && parts[0] === 'ALL' && !out.includes(parts[1])) out.push(parts[1]);
  }
  return out;
}

/**
 * The -t list file's lines for a set of SUITE.TEST names: one `ALL.SUITE` line for a suite
 * taken whole, else one `ALL.SUITE.TEST` line per test, suites in the order they are listed.
 */
export function testList(tests: readonly string[], suites: readonly string[], all: readonly string[]): string[] {
  const want = new Set(tests);
  const lines: string[] = [];
  for (const suite of suites) {
    const inSuite = all.filter((n) => n.startsWith(`${suite}.`));
    const picked = inSuite.filter((n) => want.has(n));
    if (picked.length === 0) continue;
    if (picked.length === inSuite.length) lines.push(`ALL.${suite}`);
    else for (const n of picked) lines.push(`ALL.${n}`);
  }
  return lines;
}

/**
 * Tests that need more than one logical block per physical block (they skip with "LBPPB < 2"
 * on LUN 0): run on LUN 2, a 512e volume (physicalBlockSize 4096), with the rest of their
 * suites. GetLBAStatus is not among them (see the header).
 */
export const LBPPB_SUITES = ['CompareAndWrite', 'WriteSame10', 'WriteSame16', 'Unmap', 'ReadCapacity16'];

export interface Pass {
  name: string;
  tests: string[];
  urls: string[];
}

/**
 * The passes of a run (see the header): main (multipath, LUN 0, every suite but Sanitize),
 * sanitize (single path, LUN 0), sanitize-encrypted (single path, LUN 3), lbppb (LUN 2,
 * 512e), readonly (LUN 1). A test run in several passes keeps the strongest verdict.
 */
export function planPasses(universe: readonly string[], url: string): Pass[] {
  const sanitize = universe.filter((n) => n.startsWith('Sanitize.'));
  return [
    { name: 'main', tests: universe.filter((n) => !n.startsWith('Sanitize.')), urls: [`${url}/0`, `${url}/0`] },
    { name: 'sanitize', tests: sanitize, urls: [`${url}/0`] },
    // Sanitize.Reset checks an OVERWRITE still runs 4 s after it started and then polls only
    // every 60 s: it runs on LUN 0 (above), not again here on the small encrypted volume.
    { name: 'sanitize-encrypted', tests: sanitize.filter((n) => n !== 'Sanitize.Reset'), urls: [`${url}/3`] },
    { name: 'lbppb', tests: universe.filter((n) => LBPPB_SUITES.includes(n.split('.')[0])), urls: [`${url}/2`] },
    { name: 'readonly', tests: universe.filter((n) => n.startsWith('ReadOnly.')), urls: [`${url}/1`] },
  ];
}

function toolVersion(): string {
  const r = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'libiscsi-bin'], { encoding: 'utf8' });
  return r.status === 0 && r.stdout ? `libiscsi-bin ${r.stdout}` : 'libiscsi-bin (version unknown)';
}

/** fnmatch-ish test of a SUITE.TEST name against a -t pattern FAMILY[.SUITE[.TEST]] (family ignored). */
function selected(name: string, pattern: string): boolean {
  const glob = (g: string) =>
    new RegExp(
      '^' +
        g
          .replace(/[.+^${}()|\\]/g, '\\$&')
          .replace(/\*/g, '.*')
          .replace(/\?/g, '.') +
        '$',
    );
  return pattern.split(',').some((p) => {
    const [, suite = '*', test = '*'] = p.split('.');
    const [s, t] = name.split('.');
    return glob(suite).test(s) && glob(test).test(t);
  });
}

// ---------------------------------------------------------------------------------------------
// The whole run

export interface ConformanceOptions {
  /** `-t` pattern for the main run (default: ALL = every distinct test once). */
  tests?: string;
  /** Hard limit for the main run (the read-only run gets a fifth of it). */
  timeoutMs?: number;
  /** Kill a run that prints nothing for this long. */
  idleMs?: number;
  resultsDir?: string;
  expectedFile?: string;
  baselineFile?: string;
  /** Echo suite, test and failure lines of iscsi-test-cu as they come. */
  echo?: boolean;
  /**
   * Other YAML for the thin volumes (LUN 0 and the 512e LUN 2), e.g. RBD images
   * (`{ rbd: rbd/x, size: 1GiB }`), and top-level YAML to add (a `ceph:` section).
   */
  volumes?: { thin?: string; thin512e?: string; topLevel?: string };
  log?: (s: string) => void;
}

export interface ConformanceResult {
  results: Map<string, TestResult>;
  totals: Totals;
  comparison: Comparison;
  baseline: Map<string, Verdict>;
  expected: Map<string, Verdict>;
  runs: CuRun[];
  /** Crash, hang, timeout, unclean daemon stop, unparseable output: each one fails the run. */
  problems: string[];
  durationMs: number;
  full: boolean;
  expectedFile: string;
  toolVersion: string;
  resultsDir: string;
}

function tail(text: string, lines: number): string {
  return text
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((l) => (l.length > 400 ? `${l.slice(0, 400)}...` : l))
    .join('\n');
}

export async function runConformance(opts: ConformanceOptions = {}): Promise<ConformanceResult> {
  const log = opts.log ?? ((s: string) => console.log(s));
  const started = Date.now();
  const resultsDir = opts.resultsDir ?? RESULTS_DIR;
  const timeoutMs = opts.timeoutMs ?? Number(process.env.CONFORMANCE_TIMEOUT_MIN ?? 20) * 60_000;
  const idleMs = opts.idleMs ?? Number(process.env.CONFORMANCE_IDLE_SEC ?? 240) * 1000;
  const pattern = opts.tests ?? 'ALL';
  const full = pattern === 'ALL';
  fs.mkdirSync(resultsDir, { recursive: true });
  const problems: string[] = [];
  const healthProblems: string[] = [];

  const allTests = listTests();
  const suites = listSuites();
  const universe = allTests.filter((n) => selected(n, pattern));

  // The read-only volume must exist (the daemon never creates one); it lives beside the thin one.
  let work = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-conformance-'));
  while (/DIR|PORT/.test(work)) {
    fs.rmSync(work, { recursive: true, force: true });
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-conformance-'));
  }
  const roImage = path.join(work, 'readonly.img');
  fs.closeSync(fs.openSync(roImage, 'w'));
  fs.truncateSync(roImage, RO_SIZE_BYTES);

  const daemonLogFile = path.join(resultsDir, 'daemon.log');
  const daemonLog = fs.createWriteStream(daemonLogFile);
  let d: Daemon | undefined;
  const runs: CuRun[] = [];
  try {
    d = await startDaemon(`# iscsi-test-cu conformance run (test/interop/conformance.ts)
portals: ["127.0.0.1:PORT"]
${opts.volumes?.topLevel ?? ''}
volumes:
  thin: ${opts.volumes?.thin ?? `{ path: ${work}/thin.img, size: ${THIN_SIZE} }`}
  golden: { path: ${roImage}, size: 64MiB, readonly: true }
  thin512e: ${opts.volumes?.thin512e ?? `{ path: ${work}/thin512e.img, size: ${THIN_SIZE}, physicalBlockSize: 4096 }`}
  sealed: { path: ${work}/sealed.img, size: ${SEALED_SIZE}, encryption: true }
targets:
  - iqn: ${TARGET_IQN}
    luns: { 0: thin, 1: golden, 2: thin512e, 3: sealed }
    allowTargetReset: true   # the suite's Reserve6 and Sanitize tests send TARGET WARM/COLD RESET
`);
    const daemon = d;
    process.once('exit', () => {
      if (daemon.proc.exitCode === null && daemon.proc.signalCode === null) daemon.proc.kill('SIGKILL');
    });
    daemonLog.write(d.output());
    d.proc.stdout!.on('data', (c: Buffer) => daemonLog.write(c));
    d.proc.stderr!.on('data', (c: Buffer) => daemonLog.write(c));
    const url = `iscsi://127.0.0.1:${d.port}/${TARGET_IQN}`;
    log(`conformance: target on 127.0.0.1:${d.port}, ${toolVersion()}, results in ${path.relative(process.cwd(), resultsDir) || '.'}`);

    const echo = opts.echo
      ? (l: string) => (/^(Suite: | {2}Test: |passed|FAILED| {4}\[FAILED\]|\s+\d+\. \S+:\d+)/.test(l) ? log(l) : undefined)
      : undefined;
    // Each pass: a name, the tests (a -t list file, in `iscsi-test-cu -l` order) and the URLs.
    const passes = planPasses(universe, url);
    for (const p of passes) {
      if (p.tests.length === 0) continue;
      const listFile = path.join(resultsDir, `tests-${p.name}.txt`);
      fs.writeFileSync(listFile, testList(p.tests, suites, allTests).join('\n') + '\n');
      const r = await runCu({
        name: p.name,
        args: ['-d', '-S', '-v', '-t', listFile, ...p.urls],
        cwd: resultsDir,
        logFile: path.join(resultsDir, p.name === 'main' ? 'iscsi-test-cu.log' : `iscsi-test-cu-${p.name}.log`),
        timeoutMs: p.name === 'main' ? timeoutMs : Math.max(120_000, Math.round(timeoutMs / 4)),
        idleMs,
        daemon: d,
        echo,
      });
      runs.push(r);
      // After a crash or a hang there is nothing to learn from the other passes.
      if (r.daemonDied || r.idle || r.timedOut) break;
    }

    const daemonAlive = d.proc.exitCode === null && d.proc.signalCode === null;
    if (!daemonAlive) {
      healthProblems.push(
        `TARGET CRASH: the daemon exited (code ${d.proc.exitCode}, signal ${d.proc.signalCode}) during the run; ` +
          `last lines of ${daemonLogFile}:\n${tail(d.output(), 8)}`,
      );
    } else if (which('iscsi-inq')) {
      // Still answering? A wedged event loop or a stuck session table shows up here.
      const inq = spawnSync('iscsi-inq', [`${url}/0`], { encoding: 'utf8', timeout: 20_000 });
      if (inq.status !== 0) {
        const how = inq.status === null ? 'no answer within 20 s' : `exit ${inq.status}: ${(inq.stderr || inq.stdout).trim()}`;
        healthProblems.push(`TARGET UNRESPONSIVE after the run: iscsi-inq ${url}/0 -> ${how}`);
      }
    }
  } finally {
    if (d) {
      const wasAlive = d.proc.exitCode === null && d.proc.signalCode === null;
      const code = await d.stop();
      if (wasAlive && code !== 0) {
        healthProblems.push(
          `TARGET DID NOT STOP CLEANLY: SIGTERM -> ${code === null ? 'no exit within 20 s (killed)' : `exit code ${code}`}`,
        );
      }
    }
    await new Promise<void>((r) => daemonLog.end(() => r()));
    fs.rmSync(work, { recursive: true, force: true });
  }

  // Verdicts
  const results = new Map<string, TestResult>();
  for (const r of runs) {
    const parsed = parseCuOutput(r.stdout, r.name);
    if (r.daemonDied) problems.push(`TARGET CRASH during the ${r.name} run (iscsi-test-cu killed); see ${daemonLogFile}`);
    if (r.timedOut) problems.push(`HARD TIMEOUT: the ${r.name} run exceeded ${Math.round(timeoutMs / 60000)} min and was killed`);
    if (r.idle) problems.push(`HANG: the ${r.name} run printed nothing for ${Math.round(idleMs / 1000)} s and was killed`);
    if (parsed.unfinished) {
      const why = r.daemonDied
        ? 'target crashed'
        : r.timedOut
          ? 'hard timeout'
          : r.idle
            ? 'hang'
            : `iscsi-test-cu ended (${r.exitCode ?? r.signal})`;
      problems.push(`the ${r.name} run stopped inside ${parsed.unfinished} (${why}); see ${r.logFile}`);
      results.set(parsed.unfinished, {
        name: parsed.unfinished,
        verdict: 'FAIL',
        run: r.name,
        output: [],
        reason: `did not finish: ${why}`,
      });
    }
    for (const s of parsed.suiteInitFailures) problems.push(`the ${r.name} run: CUnit suite init failed for ${s} (login failed?)`);
    const clean = !r.daemonDied && !r.timedOut && !r.idle && !parsed.unfinished;
    // iscsi-test-cu exits 1 when a test failed; anything else (or 1 without a failed test) is odd.
    const anyFailed = [...parsed.tests.values()].some((t) => t.verdict === 'FAIL');
    if (clean && r.exitCode !== 0 && !(r.exitCode === 1 && anyFailed)) {
      problems.push(`the ${r.name} run: iscsi-test-cu exited with ${r.exitCode ?? r.signal}; see ${r.logFile}`);
    }
    if (clean && full && parsed.summary && parsed.summary.ran !== [...parsed.tests.keys()].length) {
      problems.push(
        `the ${r.name} run: CUnit says ${parsed.summary.ran} tests ran but ${parsed.tests.size} verdicts were parsed (output format changed?)`,
      );
    }
    for (const [name, t] of parsed.tests) {
      const prev = results.get(name);
      if (!prev || rank(t.verdict) > rank(prev.verdict)) results.set(name, t);
    }
  }
  for (const name of universe) {
    if (!results.has(name)) {
      results.set(name, {
        name,
        verdict: 'FAIL',
        run: '-',
        output: [],
        reason: 'not run (the run ended before this test, or its suite did not start)',
      });
    }
  }
  problems.push(...healthProblems);
  const resultTotals = totals([...results.values()].map((r) => r.verdict));
  if (full && universe.length === 0) problems.push('iscsi-test-cu -l listed no tests');

  const expectedFile = opts.expectedFile ?? EXPECTED_FILE;
  const expected = readVerdicts(expectedFile);
  const comparison = compare(full ? expected : new Map([...expected].filter(([n]) => results.has(n))), results);
  const baseline = readVerdicts(opts.baselineFile ?? BASELINE_FILE);
  const res: ConformanceResult = {
    results,
    totals: resultTotals,
    comparison,
    baseline,
    expected,
    runs,
    problems,
    durationMs: Date.now() - started,
    full,
    expectedFile,
    toolVersion: toolVersion(),
    resultsDir,
  };
  writeResults(res);
  return res;
}

// ---------------------------------------------------------------------------------------------
// Reports

/**
 * What is known about a test's failure beyond its log line (shown in docs/conformance.md while
 * the test fails). Keep each to what was verified.
 */
export const NOTES: Record<string, string> = {};

const RUN_DESCRIPTION = [
  'One daemon, one target, four LUNs, five passes of `iscsi-test-cu -d -S -v` (test/interop/conformance.ts):',
  '',
  '| pass | LUN | tests |',
  '|---|---|---|',
  '| main | 0: 1 GiB thin file volume, 512-byte blocks, multipath URL given twice | every suite but Sanitize |',
  '| sanitize | 0, one URL | Sanitize |',
  '| sanitize-encrypted | 3: 256 MiB thin volume, `encryption: true` (AES-256-XTS), one URL | Sanitize but Reset |',
  '| lbppb | 2: 1 GiB thin volume, `physicalBlockSize: 4096` (512e) | CompareAndWrite, WriteSame10/16, Unmap, ReadCapacity16 |',
  '| readonly | 1: 64 MiB read-only volume | ReadOnly |',
  '',
  'A test run in several passes keeps its strongest verdict (FAIL > PASS > SKIP): a failure in any pass counts.',
  '',
  '- **Sanitize runs with one URL.** With the multipath URL twice, libiscsi uses the second session for the',
  '  whole suite; Sanitize.Reservations leaves a RESERVE(6) on it that nothing releases, and the SANITIZE of the',
  '  next test, Sanitize.Reset, is then correctly refused with RESERVATION CONFLICT (SPC-2 reservations end only',
  '  with RELEASE, a reset or the loss of the I_T nexus). With one URL each test opens and logs out its own',
  '  second session, whose loss releases the reservation.',
  '- **The target allows target resets** (`allowTargetReset: true`): Reserve6.TargetWarmReset,',
  '  Reserve6.TargetColdReset and Sanitize.Reset send TARGET WARM/COLD RESET, which the default refuses',
  '  with "function authorization failed" (docs/security.md).',
  '- **CRYPTOGRAPHIC ERASE needs a key to destroy**, so it is offered (REPORT SUPPORTED OPERATION CODES, VPD B1h',
  '  WACEREQ) only on encrypted volumes; the CryptoErase tests pass on LUN 3 and skip on LUN 0.',
  '- **Five tests need several logical blocks per physical block** (they skip with "LBPPB < 2" on LUN 0) and',
  '  pass on LUN 2. GetLBAStatus.UnmapSingle is run on LUN 0 only: for LBPPB > 1, libiscsi 1.19 asks for the',
  '  status of LBA i+1 and demands a first descriptor starting at i+LBPPB, while SBC-3 (GET LBA STATUS) has the',
  '  first descriptor describe the starting LBA, so no conforming target can pass it there.',
  '',
];

function fmtDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

function mdEscape(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/</g, '&lt;');
}

export function renderMarkdown(r: ConformanceResult): string {
  const names = [...new Set([...r.results.keys(), ...r.baseline.keys()])].sort();
  const b = totals(names.filter((n) => r.baseline.has(n)).map((n) => r.baseline.get(n)!));
  const o = r.totals;
  const lines: string[] = [];
  lines.push('# Conformance: libiscsi `iscsi-test-cu`');
  lines.push('');
  lines.push('<!-- Generated by `npm run test:conformance -- --update` (test/interop/conformance.ts). Do not edit by hand. -->');
  lines.push('');
  lines.push(`| ${o.tests} distinct tests | ours | ${BASELINE_LABEL} |`);
  lines.push('|---|---:|---:|');
  lines.push(`| PASS | ${o.pass} | ${b.pass} |`);
  lines.push(`| SKIP | ${o.skip} | ${b.skip} |`);
  lines.push(`| FAIL | ${o.fail} | ${b.fail} |`);
  lines.push('');
  lines.push(...RUN_DESCRIPTION);
  lines.push(
    `Suite: ${r.toolVersion} (Debian). A test that CUnit counts as passed but that printed \`[SKIPPED]\` is a SKIP. ` +
      `${BASELINE_LABEL}'s column was measured on the same machine kind (test/interop/baselines/).`,
  );
  lines.push('');
  lines.push('`npm run test:conformance` repeats the run and fails on any test that test/interop/conformance-expected.txt');
  lines.push('says PASS and that no longer passes; `-- --update` rewrites that file and this page.');
  lines.push('');
  const fails = names.filter((n) => r.results.get(n)?.verdict === 'FAIL');
  if (fails.length > 0) {
    lines.push('## Failing tests');
    lines.push('');
    for (const n of fails) {
      lines.push(`- \`${n}\`: ${mdEscape(r.results.get(n)!.reason ?? '')}`);
      if (NOTES[n]) lines.push(`  - ${mdEscape(NOTES[n])}`);
    }
    lines.push('');
  }
  const skips = names.filter((n) => r.results.get(n)?.verdict === 'SKIP');
  if (skips.length > 0) {
    lines.push('## Skipped tests');
    lines.push('');
    for (const n of skips) lines.push(`- \`${n}\`: ${mdEscape(r.results.get(n)!.reason ?? '')}`);
    lines.push('');
  }
  lines.push('## Per test');
  lines.push('');
  lines.push(`| test | ours | ${BASELINE_LABEL} |`);
  lines.push('|---|---|---|');
  for (const n of names) {
    const ours = r.results.get(n)?.verdict ?? '-';
    const theirs = r.baseline.get(n) ?? '-';
    lines.push(`| ${n} | ${ours} | ${theirs} |`);
  }
  lines.push('');
  return lines.join('\n');
}

function writeResults(r: ConformanceResult): void {
  const json = {
    tool: r.toolVersion,
    target: TARGET_IQN,
    runs: r.runs.map((x) => ({
      name: x.name,
      args: x.args,
      exitCode: x.exitCode,
      signal: x.signal,
      durationMs: x.durationMs,
      timedOut: x.timedOut,
      idle: x.idle,
      daemonDied: x.daemonDied,
      log: path.basename(x.logFile),
    })),
    durationMs: r.durationMs,
    totals: r.totals,
    baselineTotals: totals(r.baseline.values()),
    problems: r.problems,
    regressions: r.comparison.regressions,
    improvements: r.comparison.improvements,
    changes: r.comparison.changes,
    tests: Object.fromEntries(
      [...r.results.values()]
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((t) => [
          t.name,
          {
            verdict: t.verdict,
            baseline: r.baseline.get(t.name) ?? null,
            reason: t.reason ?? null,
            run: t.run,
            output: t.output.slice(0, 40),
          },
        ]),
    ),
  };
  fs.writeFileSync(path.join(r.resultsDir, 'results.json'), JSON.stringify(json, null, 2) + '\n');
  fs.writeFileSync(path.join(r.resultsDir, 'verdicts.txt'), formatVerdicts(r.results, [`${r.toolVersion}, ${new Date().toISOString()}`]));
  fs.writeFileSync(path.join(r.resultsDir, 'conformance.md'), renderMarkdown(r));
}

export function expectationsText(r: ConformanceResult): string {
  return formatVerdicts(r.results, [
    'iscsi-test-cu verdicts this target is expected to keep (test/interop/conformance.ts).',
    'A test listed PASS that does not pass fails `npm run test:conformance` and `npm test`.',
    'Regenerate from a run with `npm run test:conformance -- --update`.',
  ]);
}

/** Human summary: totals, problems, regressions, improvements (and the full table if asked). */
export function report(r: ConformanceResult, opts: { table?: boolean; updating?: boolean; log?: (s: string) => void } = {}): void {
  const log = opts.log ?? ((s: string) => console.log(s));
  const names = [...r.results.keys()].sort();
  if (opts.table) {
    const w = Math.max(...names.map((n) => n.length), 10);
    log('');
    log(`${'test'.padEnd(w)}  ours  ${BASELINE_LABEL}`);
    for (const n of names) {
      const ours = r.results.get(n)!.verdict;
      const theirs = r.baseline.get(n) ?? '-';
      const mark = ours === theirs ? '' : ours === 'PASS' ? '   +' : theirs === 'PASS' ? '   -' : '   ~';
      log(`${n.padEnd(w)}  ${ours}  ${theirs}${mark}`);
    }
  }
  const fails = names.filter((n) => r.results.get(n)!.verdict === 'FAIL');
  if (fails.length > 0) {
    log('');
    log(`FAIL (${fails.length}):`);
    const notRun = fails.filter((n) => r.results.get(n)!.run === '-');
    for (const n of fails) if (r.results.get(n)!.run !== '-') log(`  ${n}: ${r.results.get(n)!.reason ?? ''}`);
    if (notRun.length > 0)
      log(`  ${notRun.length} more not run (the run ended early): ${notRun.slice(0, 5).join(', ')}${notRun.length > 5 ? ', ...' : ''}`);
  }
  const b = totals(names.filter((n) => r.baseline.has(n)).map((n) => r.baseline.get(n)!));
  log('');
  log(`ours:            ${formatTotals(r.totals)}   (${fmtDuration(r.durationMs)})`);
  log(`${BASELINE_LABEL.padEnd(16)} ${formatTotals(b)}`);
  if (r.problems.length > 0) {
    log('');
    log('PROBLEMS:');
    for (const p of r.problems) log(`  ${p}`);
  }
  const c = r.comparison;
  if (c.regressions.length > 0) {
    log('');
    log(`REGRESSIONS (${c.regressions.length}): expected PASS in ${path.relative(ROOT, r.expectedFile)}, now:`);
    const shown = c.regressions.length > 40 ? c.regressions.slice(0, 40) : c.regressions;
    for (const x of shown) log(`  ${x.now} ${x.name}: ${x.reason ?? ''}`);
    if (shown.length < c.regressions.length) log(`  ... and ${c.regressions.length - shown.length} more (results.json)`);
  }
  if (c.improvements.length > 0) {
    log('');
    log(`Improvements (${c.improvements.length}): now PASS, expected ${'otherwise'}:`);
    for (const x of c.improvements) log(`  ${x.name} (was ${x.was})`);
    if (!opts.updating) log('Run `npm run test:conformance -- --update` to record them in the expectations file.');
  }
  if (c.changes.length > 0) {
    log('');
    log(`Other changes (${c.changes.length}, not failures):`);
    for (const x of c.changes) log(`  ${x.name}: ${x.was} -> ${x.now}`);
  }
  log('');
  log(`Logs: ${path.relative(process.cwd(), r.resultsDir) || '.'}/ (iscsi-test-cu.log, daemon.log, results.json, conformance.md)`);
}

// ---------------------------------------------------------------------------------------------
// CLI

async function main(argv: string[]): Promise<number> {
  const args = { update: false, force: false, tests: undefined as string | undefined, quiet: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--update') args.update = true;
    else if (a === '--force') args.force = true;
    else if (a === '--quiet') args.quiet = true;
    else if (a === '--tests' || a === '-t') args.tests = argv[++i];
    else if (a === '--help' || a === '-h') {
      console.log(
        'usage: npm run test:conformance -- [--update [--force]] [--tests FAMILY[.SUITE[.TEST]]] [--quiet]\n' +
          '  --update   rewrite test/interop/conformance-expected.txt and docs/conformance.md from this run\n' +
          '  --force    with --update: accept regressions (a PASS becoming SKIP/FAIL)\n' +
          '  --tests    run only these tests (e.g. ALL.ProutReserve); no update, partial comparison\n' +
          'env: CONFORMANCE_TIMEOUT_MIN (20), CONFORMANCE_IDLE_SEC (240)',
      );
      return 0;
    } else {
      console.error(`unknown argument ${a} (try --help)`);
      return 2;
    }
  }
  if (!which('iscsi-test-cu')) {
    console.error('iscsi-test-cu not found: apt-get install libiscsi-bin');
    return 2;
  }
  const r = await runConformance({ tests: args.tests, echo: !args.quiet });
  report(r, { table: !args.quiet, updating: args.update });
  const failed = r.problems.length > 0 || r.comparison.regressions.length > 0;
  if (args.update) {
    if (!r.full) {
      console.error('\n--update needs the full run (no --tests); expectations not written');
      return 1;
    }
    if (r.problems.length > 0) {
      console.error('\nthe run had problems (crash, hang, timeout); expectations not written');
      return 1;
    }
    if (r.comparison.regressions.length > 0 && !args.force) {
      console.error('\nregressions present; not lowering the expectations (add --force to accept them)');
      return 1;
    }
    fs.writeFileSync(EXPECTED_FILE, expectationsText(r));
    fs.mkdirSync(path.dirname(DOC_FILE), { recursive: true });
    fs.writeFileSync(DOC_FILE, renderMarkdown(r));
    console.log(`\nwrote ${path.relative(ROOT, EXPECTED_FILE)} and ${path.relative(ROOT, DOC_FILE)}`);
    return 0;
  }
  return failed ? 1 : 0;
}

// `node --test dist/test/` also executes this file (it lives under test/): do nothing there;
// conformance.test.ts is the test.
if (require.main === module && !process.env.NODE_TEST_CONTEXT) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
}
