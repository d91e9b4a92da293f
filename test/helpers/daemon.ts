// Run the real daemon (`bin/iscsi-target serve`) on a free loopback port, and
// find the external tools the interop tests drive.

import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

export const ROOT = path.resolve(__dirname, '..', '..', '..');

// Daemons and CLI commands of the tests keep their control sockets in a private folder of
// this test process, not in /run/iscsi-target: that one belongs to whoever made it first on
// this machine (a packaged daemon's service user, say), and then a root daemon rightly
// refuses it. Tests that are about the folder choice set or clear the variable themselves.
if (!process.env.ISCSI_TARGET_RUN_DIR) {
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-test-run-'));
  process.env.ISCSI_TARGET_RUN_DIR = run;
  process.on('exit', () => fs.rmSync(run, { recursive: true, force: true }));
}
export const BIN = path.join(ROOT, 'bin', 'iscsi-target');

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** A process's resident set size in MiB (one decimal), NaN once it is gone. */
export function processRssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Math.round(Number(m[1]) / 102.4) / 10 : NaN;
  } catch {
    return NaN;
  }
}

export function which(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/**
 * Tools missing: skip with the reason outside CI, fail in CI (where .ci/run installs them),
 * so a green CI run never hides an interop test that did not run.
 */
export function requireTools(tools: string[]): string | undefined {
  const missing = tools.filter((t) => !which(t));
  if (missing.length === 0) return undefined;
  const msg = `missing ${missing.join(', ')} (apt-get install libiscsi-bin qemu-utils qemu-block-extra)`;
  if (process.env.CI) throw new Error(msg);
  return msg;
}

export interface Daemon {
  proc: ChildProcess;
  port: number;
  dir: string;
  configFile: string;
  output(): string;
  /** SIGTERM, wait for the exit; the folder is removed unless keepDir. */
  stop(opts?: { keepDir?: boolean }): Promise<number | null>;
}

export interface DaemonOptions {
  /**
   * Environment of the daemon: the whole of it (default: the test's, with LOG_LEVEL), so a
   * test can also leave variables out.
   */
  env?: NodeJS.ProcessEnv;
  /** A command the daemon runs under, e.g. ['setpriv', '--reuid=65534', ...]. */
  prefix?: string[];
  /** Give the folder and the config file to this uid (and gid) before starting. */
  owner?: number;
  /** Runs once the config file is written, before the daemon starts. */
  beforeStart?: (configFile: string) => Promise<void>;
  /** Run in this folder (a restart: stop the first with keepDir) instead of a new one. */
  dir?: string;
  /** Listen on this port (a restart) instead of a free one. */
  port?: number;
}

/** Start the daemon with the given YAML (where `PORT` and `DIR` are substituted). */
export async function startDaemon(yamlTemplate: string, opts: DaemonOptions = {}): Promise<Daemon> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-daemon-'));
  const port = opts.port ?? (await freePort());
  const configFile = path.join(dir, 'iscsi-target.yaml');
  fs.writeFileSync(configFile, yamlTemplate.replaceAll('PORT', String(port)).replaceAll('DIR', dir), { mode: 0o600 });
  if (opts.owner !== undefined) {
    fs.chownSync(dir, opts.owner, opts.owner);
    fs.chownSync(configFile, opts.owner, opts.owner);
  }
  await opts.beforeStart?.(configFile);
  let out = '';
  const argv = [...(opts.prefix ?? []), process.execPath, BIN, 'serve', '--config', configFile];
  const proc = spawn(argv[0], argv.slice(1), {
    cwd: dir,
    env: opts.env ?? { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.on('data', (c) => (out += c));
  proc.stderr.on('data', (c) => (out += c));
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  const deadline = Date.now() + 15000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`daemon exited early (${proc.exitCode}):\n${out}`);
    if (await canConnect(port)) break;
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`daemon did not listen on ${port}:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  // The control socket opens just after the portals: give it a moment (its log line says so;
  // at a quieter LOG_LEVEL the line never comes and this waits its 5 s out).
  for (const end = Date.now() + 5000; !/"msg":"serving"|serving$/m.test(out) && Date.now() < end && proc.exitCode === null;) {
    await new Promise((r) => setTimeout(r, 20));
  }
  if (proc.exitCode !== null || /could not start/.test(out)) {
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000).unref())]);
    throw new Error(`daemon exited early (${proc.exitCode}):\n${out}`);
  }
  return {
    proc,
    port,
    dir,
    configFile,
    output: () => out,
    async stop(o: { keepDir?: boolean } = {}) {
      proc.kill('SIGTERM');
      // The timer is unref'd: a pending one would hold the test process open for 20 s.
      const code = await Promise.race([exited, new Promise<null>((r) => setTimeout(() => r(null), 20000).unref())]);
      if (proc.exitCode === null) proc.kill('SIGKILL');
      if (!o.keepDir) fs.rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
export function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

/** Run a command, returning its exit status and output (never throws on non-zero). */
export function run(cmd: string, args: string[], timeoutMs = 120000): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` };
}

/** Run a command to its end (killed after timeoutMs): its exit code and stdout + stderr. */
export function runAsync(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (c) => (out += c));
    p.stderr.on('data', (c) => (out += c));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', reject);
    // 'close', not 'exit': exit can come before the last of stdout has been read (seen under
    // load: qemu-img exited 0 and its output was still empty).
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      // Say how it ended when it printed nothing itself (killed, or crashed with buffered output).
      if (code !== 0 && out === '') out = `(no output; ${signal ? `killed by ${signal}` : `exit code ${code}`})`;
      resolve({ code, out });
    });
  });
}

export interface CliOptions {
  /** Run against this daemon: `--config` its file, in its folder (unless cwd says otherwise). */
  daemon?: { configFile: string; dir: string };
  cwd?: string;
  /** The whole environment of the command (default: the test's). */
  env?: NodeJS.ProcessEnv;
  /** Kill it after this many ms. */
  timeout?: number;
}

export interface CliResult {
  /** Exit code; 1 when it was killed or did not start. */
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function cliArgs(args: string[], o: CliOptions): string[] {
  return [BIN, ...args, ...(o.daemon ? ['--config', o.daemon.configFile] : [])];
}

/** `iscsi-target ARGS` as a child process, without blocking this one (a daemon in this process keeps serving). */
export function cli(args: string[], o: CliOptions = {}): Promise<CliResult> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, cliArgs(args, o), { cwd: o.cwd ?? o.daemon?.dir, env: o.env, timeout: o.timeout }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

/** `iscsi-target ARGS` to its end, blocking (for a daemon in another process). */
export function cliSync(args: string[], o: CliOptions = {}): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, cliArgs(args, o), {
    cwd: o.cwd ?? o.daemon?.dir,
    env: o.env,
    timeout: o.timeout,
    encoding: 'utf8',
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The body of a GET (any status). */
export function httpGet(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(url, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}
