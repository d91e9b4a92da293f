// The real daemon for the e2e test, kept on one port and one volume folder across restarts
// (test/helpers/daemon.ts picks a new port and removes its folder on stop).

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { BIN, canConnect } from '../test/helpers/daemon';

export class E2eTarget {
  private proc?: ChildProcess;
  private out = '';
  starts = 0;

  constructor(
    readonly dir: string,
    readonly port: number,
    readonly configFile = path.join(dir, 'iscsi-target.yaml'),
    /** Extra environment; `bareServe` runs plain `serve` in `dir` (its default ./iscsi-target.yaml). */
    private readonly opts: { env?: NodeJS.ProcessEnv; bareServe?: boolean } = {},
  ) {}

  /** The running daemon's process id. */
  get pid(): number | undefined {
    return this.proc?.pid;
  }

  output(): string {
    return this.out;
  }

  async start(): Promise<void> {
    const args = this.opts.bareServe ? ['serve'] : ['serve', '--config', this.configFile];
    const proc = spawn(process.execPath, [BIN, ...args], {
      cwd: this.dir,
      env: { ...process.env, LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'info', ...this.opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.proc = proc;
    this.starts++;
    const tag = `--- daemon start ${this.starts} ---\n`;
    this.out += tag;
    proc.stdout.on('data', (c) => (this.out += c));
    proc.stderr.on('data', (c) => (this.out += c));
    const deadline = Date.now() + 15000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`daemon exited early (${proc.exitCode}):\n${this.out}`);
      if (await canConnect(this.port)) return;
      if (Date.now() > deadline) {
        proc.kill('SIGKILL');
        throw new Error(`daemon did not listen on ${this.port}:\n${this.out}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Stop the daemon: SIGTERM drains, SIGKILL is a crash. Resolves with its exit code or signal. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<string> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return 'not running';
    const exited = new Promise<string>((r) => proc.once('exit', (code, sig) => r(sig ?? String(code))));
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 20000);
    const how = await exited;
    clearTimeout(timer);
    return how;
  }
}
