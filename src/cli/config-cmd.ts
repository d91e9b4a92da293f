// `iscsi-target config check [--config FILE] [--json]`
import type { Command } from 'commander';
import { ConfigError, formatIssue, loadConfigDetailed, type ConfigIssue } from '../config/load';
import { plural } from '../text';
import {
  CONFIG_ENV,
  DEFAULT_CONFIG_FILE,
  SYSTEM_CONFIG_FILE,
  EXIT,
  chooseConfigFile,
  err,
  errIssues,
  out,
  type CliContext,
} from './context';
import { addConfigOption, addJsonOption, type ConfigOptions, type JsonOptions } from './options';

export interface CheckResult {
  ok: boolean;
  file: string;
  volumes?: number;
  targets?: number;
  errors: ConfigIssue[];
  warnings: ConfigIssue[];
}

export async function checkConfigFile(file: string): Promise<CheckResult> {
  try {
    const { config, warnings } = await loadConfigDetailed(file);
    return { ok: true, file, volumes: config.volumes.size, targets: config.targets.length, errors: [], warnings };
  } catch (e) {
    if (e instanceof ConfigError) return { ok: false, file, errors: e.errors, warnings: e.warnings };
    throw e;
  }
}

export async function runConfigCheck(ctx: CliContext, opts: ConfigOptions & JsonOptions): Promise<number> {
  const choice = chooseConfigFile(ctx, opts.config);
  if (!choice.file) {
    const message = ctx.installed
      ? `no config file: neither ./${DEFAULT_CONFIG_FILE} nor ${ctx.systemConfigFile ?? SYSTEM_CONFIG_FILE} exists (give one with --config FILE or $${CONFIG_ENV})`
      : `no config file: ./${DEFAULT_CONFIG_FILE} does not exist (give one with --config FILE or $${CONFIG_ENV})`;
    if (opts.json)
      out(ctx, JSON.stringify({ ok: false, file: null, errors: [{ file: '', line: 0, col: 0, key: '', message }], warnings: [] }, null, 2));
    else err(ctx, `error: ${message}`);
    return EXIT.FAILURE;
  }
  const r = await checkConfigFile(choice.file);
  if (opts.json) {
    out(ctx, JSON.stringify(r, null, 2));
    return r.ok ? EXIT.OK : EXIT.FAILURE;
  }
  if (r.ok) {
    out(ctx, `OK: ${plural(r.volumes!, 'volume')}, ${plural(r.targets!, 'target')} (${r.file})`);
    for (const w of r.warnings) out(ctx, `warning: ${formatIssue(w)}`);
    return EXIT.OK;
  }
  errIssues(ctx, r.errors);
  for (const w of r.warnings) err(ctx, `warning: ${formatIssue(w)}`);
  err(ctx, `${r.file}: ${plural(r.errors.length, 'error')}; nothing was applied`);
  return EXIT.FAILURE;
}

export function registerConfigCommands(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  const config = program.command('config').description('check config files');
  addJsonOption(
    addConfigOption(
      config.command('check').description('validate a config file; report every error with file:line and key (exit 1 on errors)'),
    ),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target config check
  $ iscsi-target config check --config /etc/iscsi-target/iscsi-target.yaml --json`,
    )
    .action(async (opts: ConfigOptions & JsonOptions) => {
      setExit(await runConfigCheck(ctx, opts));
    });
}
