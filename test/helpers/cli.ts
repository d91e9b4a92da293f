// The CLI's main() in this process, with its own context: quicker than a child process, for
// tests about what a command decides and prints rather than about the process around it.
import * as os from 'node:os';
import { PassThrough } from 'node:stream';
import { main } from '../../src/cli/index';
import type { CliContext } from '../../src/cli/context';

/** `iscsi-target ARGS` through main(): its exit code and what it wrote (cwd: the temp folder, env: empty, unless `over` sets them). */
export async function runMain(args: string[], over: Partial<CliContext> = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  stdout.on('data', (d) => (out += d));
  stderr.on('data', (d) => (err += d));
  const ctx: CliContext = { stdout, stderr, cwd: os.tmpdir(), env: {}, installed: false, ...over };
  // main() sets process.exitCode for the real program; the test runner must not see it.
  const saved = process.exitCode;
  const code = await main(['node', 'iscsi-target', ...args], ctx);
  process.exitCode = saved;
  return { code, out, err };
}
