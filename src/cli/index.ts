// The `iscsi-target` command line (commander). bin/iscsi-target calls main(process.argv).
//
// Each command lives in its own module with a register function; to add one (volume, target,
// acl, portal, status, probe, reload: issue 5) write src/cli/<name>.ts exporting
// register<Name>(program, ctx, setExit) and add it to COMMANDS below. Commands take
// --config via addConfigOption and --json via addJsonOption (src/cli/options.ts), return an
// exit code through setExit, and write through ctx (src/cli/context.ts).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Command, CommanderError, Option } from 'commander';
import { plural } from '../text';
import { registerConfigCommands } from './config-cmd';
import { CONFIG_ENV, DEFAULT_CONFIG_FILE, EXIT, SYSTEM_CONFIG_FILE, collectJsonFailure, defaultContext, type CliContext } from './context';
import { registerServe } from './serve';
import { registerVolume } from './volume';
import { registerTarget } from './target';
import { registerAcl } from './acl';
import { registerStatus } from './status';
import { registerProbe } from './probe';
import { registerDiscovery } from './discovery';
import { registerTop } from './top';
import { registerCompletion } from './completion';

export type RegisterCommand = (program: Command, ctx: CliContext, setExit: (code: number) => void) => void;

export const COMMANDS: RegisterCommand[] = [
  registerServe,
  registerConfigCommands,
  registerVolume,
  registerTarget,
  registerAcl,
  registerDiscovery,
  registerStatus,
  registerTop,
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
    .version(version(), '-v, --version')
    // Options before the command are the program's (--config, -v), after it the command's
    // own: `status -v` is verbose, `-v` alone the version.
    .enablePositionalOptions()
    .addOption(
      new Option(
        '-c, --config <file>',
        `config file (default: $${CONFIG_ENV}, else ./${DEFAULT_CONFIG_FILE}, else ${SYSTEM_CONFIG_FILE} for an installed program)`,
      ),
    )
    .showHelpAfterError('(run iscsi-target --help for usage)')
    .configureOutput({
      writeOut: (s) => ctx.stdout.write(s),
      writeErr: (s) => ctx.stderr.write(s),
    })
    .exitOverride();
  for (const register of COMMANDS) register(program, ctx, setExit);
  registerCompletion(program, ctx, setExit, version());
  program.addHelpText(
    'after',
    `
Examples:
  $ iscsi-target serve                                  # ./iscsi-target.yaml, else a 1 GiB default volume
  $ iscsi-target volume create db-a --size 20GiB
  $ iscsi-target target create iqn.2026-11.io.example:san1
  $ iscsi-target acl add iqn.2026-11.io.example:san1 iqn.1994-05.com.redhat:host-a --lun 0=db-a
  $ iscsi-target status                                 # who is logged in
  $ iscsi-target top                                    # live IOPS, throughput, latency per volume and session
  $ iscsi-target --config /etc/iscsi-target/iscsi-target.yaml config check
  $ iscsi-target log-level debug                        # more detail in the running daemon's log

Each command has its own help: iscsi-target volume create --help`,
  );
  // --config before the command counts as if given after it (the command's own wins).
  program.hook('preAction', (root, action) => {
    const global = root.opts<{ config?: string }>().config;
    if (global !== undefined && action.opts<{ config?: string }>().config === undefined) action.setOptionValue('config', global);
  });
  return program;
}

/** Runs the CLI; sets process.exitCode and resolves with it. */
export async function main(argv: string[] = process.argv, ctx: CliContext = defaultContext()): Promise<number> {
  let code: number = EXIT.OK;
  const program = buildProgram(ctx, (c) => (code = c));
  // -V was the version flag before -v; it still is.
  if (argv[2] === '-V') argv = [...argv.slice(0, 2), '--version', ...argv.slice(3)];
  // --json: a failure is answered in JSON on stdout too, whatever the command.
  const json = argv.slice(2).includes('--json') ? collectJsonFailure(ctx) : undefined;
  try {
    await program.parseAsync(argv);
  } catch (e) {
    if (e instanceof CommanderError) {
      // --help and --version end with exitCode 0; usage errors have been printed already.
      code = e.exitCode;
      if (code !== 0) json?.messages.push(e.message.replace(/^error: /, ''));
    } else {
      ctx.stderr.write(`error: ${(e as Error)?.stack ?? String(e)}\n`);
      json?.messages.push((e as Error)?.message ?? String(e));
      code = EXIT.FAILURE;
    }
  }
  if (json && code !== EXIT.OK && !json.stdoutUsed) {
    const message =
      json.messages.join('; ') || (json.errors.length > 0 ? plural(json.errors.length, 'config error') : `failed (exit ${code})`);
    ctx.stdout.write(`${JSON.stringify({ ok: false, message, errors: json.errors }, null, 2)}\n`);
  }
  process.exitCode = code;
  return code;
}
