// The `iscsi-target` command line (commander). bin/iscsi-target calls main(process.argv).
//
// Each command lives in its own module with a register function; to add one (volume, target,
// acl, portal, status, probe, reload: issue 5) write src/cli/<name>.ts exporting
// register<Name>(program, ctx, setExit) and add it to COMMANDS below. Commands take
// --config via addConfigOption and --json via addJsonOption (src/cli/options.ts), return an
// exit code through setExit, and write through ctx (src/cli/context.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError } from 'commander';
import { registerConfigCommands } from './config-cmd';
import { EXIT, defaultContext, type CliContext } from './context';
import { registerServe } from './serve';
import { registerVolume } from './volume';
import { registerTarget } from './target';
import { registerAcl } from './acl';
import { registerStatus } from './status';
import { registerProbe } from './probe';

export type RegisterCommand = (program: Command, ctx: CliContext, setExit: (code: number) => void) => void;

export const COMMANDS: RegisterCommand[] = [
  registerServe,
  registerConfigCommands,
  registerVolume,
  registerTarget,
  registerAcl,
  registerStatus,
  registerProbe,
];

function version(): string {
  try {
    const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as { version?: string };
    return pkg.version ?? '0.0.0';
  } catch {
    return '0.0.0';
  }
}

export function buildProgram(ctx: CliContext, setExit: (code: number) => void): Command {
  const program = new Command();
  program
    .name('iscsi-target')
    .description('An iSCSI target (RFC 7143): file- and block-device-backed SCSI disks over TCP')
    .version(version(), '-V, --version')
    .showHelpAfterError('(run iscsi-target --help for usage)')
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .exitOverride();
  for (const register of COMMANDS) register(program, ctx, setExit);
  return program;
}

/** Runs the CLI; sets process.exitCode and resolves with it. */
export async function main(argv: string[] = process.argv, ctx: CliContext = defaultContext()): Promise<number> {
  let code: number = EXIT.OK;
  const program = buildProgram(ctx, (c) => (code = c));
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end with exitCode 0; usage errors have been printed already.
      code = e.exitCode;
    } else {
      ctx.stderr.write(`error: ${(e as Error)?.stack ?? String(e)}\n`);
      code = EXIT.FAILURE;
    }
  }
  process.exitCode = code;
  return code;
}
