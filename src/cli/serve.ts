// `iscsi-target serve [--config FILE]`: the daemon.
//
// Config: --config FILE, else ./iscsi-target.yaml if present, else the built-in default.
// Invalid config: every error on stderr, exit 2, nothing started. Start failure (port in
// use, volume cannot open): logged, exit 1. SIGTERM/SIGINT: drain and exit 0; a second
// signal exits at once with 1.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Command } from 'commander';
import type { Logger } from 'pino';
import { ConfigError, formatIssue, loadConfigDetailed, type ConfigIssue } from '../config/load';
import { defaultConfig } from '../config/default';
import type { Config } from '../config/model';
import { formatPortal } from '../config/portal';
import { createLogger, stdoutIsJournal } from '../log';
import { plural } from '../text';
import { sdNotify } from '../admin/sd-notify';
import { attachInstructions } from './attach';
import { DEFAULT_CONFIG_FILE, EXIT, chooseConfigFile, err, errIssues, out, type CliContext } from './context';
import { addConfigOption, type ConfigOptions } from './options';

export interface ServeOptions extends ConfigOptions {
  logLevel?: string;
}

/** What `serve` needs from the target: TargetServer.start by default (tests pass a fake). */
export interface RunningServer {
  readonly addresses: { host: string; port: number }[];
  stop(): Promise<void>;
}
export type StartServer = (opts: { config: Config; logger: Logger }) => Promise<RunningServer>;

const startTargetServer: StartServer = async (opts) => {
  // Loaded here, not at the top, so that other commands (config check, ...) do not load
  // the whole target.
  const { TargetServer } = await import('../iscsi/server');
  return TargetServer.start(opts);
};

/** Loads the config `serve` would run. Returns the config or prints errors and returns an exit code. */
export async function loadServeConfig(
  ctx: CliContext,
  opts: ConfigOptions,
): Promise<{ config: Config; warnings: ConfigIssue[]; builtIn: boolean } | { exitCode: number }> {
  const choice = chooseConfigFile(ctx, opts.config);
  if (!choice.file) return { config: defaultConfig(ctx.cwd), warnings: [], builtIn: true };
  try {
    const { config, warnings } = await loadConfigDetailed(choice.file);
    return { config, warnings, builtIn: false };
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    errIssues(ctx, e.errors);
    err(ctx, `${choice.file}: ${plural(e.errors.length, 'error')}; not starting`);
    return { exitCode: EXIT.CONFIG };
  }
}

async function startHint(e: unknown, env: NodeJS.ProcessEnv): Promise<string> {
  const text = `${(e as NodeJS.ErrnoException)?.code ?? ''} ${(e as Error)?.message ?? ''}`;
  if (/EADDRINUSE/.test(text)) {
    const port = Number(/cannot listen on .*:(\d+):/.exec(text)?.[1]);
    const { whoListens, describeListener } = await import('../admin/who-listens');
    const who = Number.isInteger(port) ? await whoListens(port, env).catch(() => undefined) : undefined;
    if (who?.ours) return ` (${describeListener(who)} already listens there: stop it first, or change portals in the config)`;
    if (who) return ` (${describeListener(who)} already listens there: stop it, or change portals in the config)`;
    return " (another process already listens there, perhaps another target such as tgt or the kernel's LIO: stop it, or change portals in the config)";
  }
  if (/EADDRNOTAVAIL/.test(text)) return ' (that address is not on this machine: check portals in the config)';
  if (/EACCES|EPERM/.test(text)) return ' (permission denied: check the volume path permissions, or use a port above 1023)';
  return '';
}

function exitAfterFlush(logger: Logger | undefined, code: number): never {
  try {
    logger?.flush();
  } catch {
    /* ignore */
  }
  process.exit(code);
}

export async function runServe(ctx: CliContext, opts: ServeOptions, start: StartServer = startTargetServer): Promise<number> {
  const loaded = await loadServeConfig(ctx, opts);
  if ('exitCode' in loaded) return loaded.exitCode;
  const { config, warnings, builtIn } = loaded;

  const logger = createLogger({ level: opts.logLevel });
  if (builtIn) {
    logger.info(
      `no --config given and ./${DEFAULT_CONFIG_FILE} not found: using the built-in default (1 GiB sparse volume under luns/, one open target)`,
    );
    for (const v of config.volumes.values()) {
      if (v.path) fs.mkdirSync(path.dirname(v.path), { recursive: true });
    }
  } else {
    logger.info(
      { config: config.source },
      `config ${config.source}: ${plural(config.volumes.size, 'volume')}, ${plural(config.targets.length, 'target')}`,
    );
  }
  for (const w of warnings) logger.warn({ key: w.key || undefined, line: w.line || undefined }, formatIssue(w));

  process.on('uncaughtException', (e) => {
    logger.fatal({ err: e }, `uncaught exception: ${e.message}; exiting`);
    exitAfterFlush(logger, EXIT.FAILURE);
  });
  process.on('unhandledRejection', (e) => {
    logger.fatal({ err: e }, `unhandled promise rejection: ${(e as Error)?.message ?? String(e)}; exiting`);
    exitAfterFlush(logger, EXIT.FAILURE);
  });

  let server: RunningServer | undefined;
  let admin: { close(): Promise<void> } | undefined;
  let startFailed = false;
  let stopping = false;
  let started: (() => void) | undefined;
  const startedP = new Promise<void>((r) => (started = r));
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, `${signal} again: exiting now without draining`);
      exitAfterFlush(logger, EXIT.FAILURE);
    }
    stopping = true;
    logger.info({ signal }, `${signal}: stopping (draining sessions, flushing and closing volumes)`);
    sdNotify('STOPPING=1\nSTATUS=stopping: draining sessions, flushing volumes');
    (async () => {
      await startedP;
      if (startFailed) return; // the start failure path exits
      try {
        await admin?.close().catch((e: unknown) => logger.error({ err: e }, 'closing the control socket failed'));
        await server?.stop();
        logger.info('stopped');
        exitAfterFlush(logger, EXIT.OK);
      } catch (e) {
        logger.error({ err: e }, `stop failed: ${(e as Error).message}`);
        exitAfterFlush(logger, EXIT.FAILURE);
      }
    })().catch((e: unknown) => {
      logger.error({ err: e }, 'stop failed');
      exitAfterFlush(logger, EXIT.FAILURE);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);

  try {
    server = await start({ config, logger });
  } catch (e) {
    startFailed = true;
    logger.debug({ err: e }, 'start failure');
    logger.error(`could not start: ${(e as Error)?.message ?? String(e)}${await startHint(e, ctx.env)}`);
    exitAfterFlush(logger, EXIT.FAILURE);
  } finally {
    started!();
  }
  if (stopping) return EXIT.OK; // the signal handler stops and exits

  // Control socket, SIGHUP reload and metrics (issue 5), for the real target only.
  if ('apply' in server) {
    const { startAdmin } = await import('../admin/daemon');
    try {
      const file = builtIn ? path.join(ctx.cwd, DEFAULT_CONFIG_FILE) : config.source;
      admin = await startAdmin(server as import('../iscsi/server').TargetServer, file, logger, { builtIn, warnings });
    } catch (e) {
      logger.error(`could not start: ${(e as Error)?.message ?? String(e)}`);
      await server.stop().catch(() => undefined);
      exitAfterFlush(logger, EXIT.FAILURE);
    }
  }

  logger.info({ portals: server.addresses.map(formatPortal), targets: config.targets.map((t) => t.iqn) }, 'serving');
  // How to attach, for whoever started it by hand; under systemd it would be a dozen journal entries.
  if (!stdoutIsJournal(ctx.env)) out(ctx, attachInstructions(config, server.addresses));
  // systemd (Type=notify): up only now, with every portal listening and the control socket open.
  sdNotify(
    `READY=1\nSTATUS=serving ${plural(config.targets.length, 'target')} on ${server.addresses.map(formatPortal).join(' ')}\nMAINPID=${process.pid}`,
  );
  return EXIT.OK; // the listening server keeps the process alive
}

export function registerServe(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  addConfigOption(
    program.command('serve').description('run the iSCSI target (without a config: ./iscsi-target.yaml, else a built-in 1 GiB default)'),
  )
    .option('--log-level <level>', 'fatal, error, warn, info, debug or trace (default: $LOG_LEVEL or info)')
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target serve                          # ./iscsi-target.yaml, else the built-in 1 GiB default
  $ iscsi-target serve --config /etc/iscsi-target/iscsi-target.yaml
  $ LOG_LEVEL=debug iscsi-target serve          # logins in detail (trace: every PDU)
  $ systemctl start iscsi-target                # the same, under systemd (the .deb installs the unit)`,
    )
    .action(async (opts: ServeOptions) => {
      setExit(await runServe(ctx, opts));
    });
}
