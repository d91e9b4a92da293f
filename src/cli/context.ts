// What every command gets: where to write, where it runs. Commands never call process.exit
// themselves except `serve` (signals); they return an exit code.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { formatIssue, type ConfigIssue } from '../config/load';

export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  cwd: string;
  env: NodeJS.ProcessEnv;
  /**
   * Runs from an installed package (npm install -g, the .deb), not from a source checkout:
   * then SYSTEM_CONFIG_FILE is the default config. Default: decided by defaultContext().
   */
  installed?: boolean;
  /** The system-wide config of an installed program (tests point it elsewhere). */
  systemConfigFile?: string;
}

export const EXIT = {
  OK: 0,
  /** Runtime failure, or `config check` found errors. */
  FAILURE: 1,
  /** `serve` refused to start because the config is invalid. */
  CONFIG: 2,
} as const;

/** The package's own folder (the one holding package.json and bin/). */
export const PACKAGE_ROOT = path.resolve(__dirname, '../../..');

/**
 * A source checkout has tsconfig.json beside package.json; the package that `npm pack` makes
 * (and so `npm install -g` and the .deb) does not: that is an installed program.
 */
export function runsInstalled(root = PACKAGE_ROOT): boolean {
  return !fs.existsSync(path.join(root, 'tsconfig.json'));
}

export function defaultContext(): CliContext {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    cwd: process.cwd(),
    env: process.env,
    installed: runsInstalled(),
    systemConfigFile: SYSTEM_CONFIG_FILE,
  };
}

/**
 * With --json, what a failing command said on stderr, so that main() can answer with JSON
 * on stdout when the command itself printed none (every refusal, on every command).
 */
export interface JsonFailure {
  stdoutUsed: boolean;
  messages: string[];
  errors: ConfigIssue[];
}

const jsonFailures = new WeakMap<CliContext, JsonFailure>();

/** main() turns this on when --json is among the arguments. */
export function collectJsonFailure(ctx: CliContext): JsonFailure {
  const f: JsonFailure = { stdoutUsed: false, messages: [], errors: [] };
  jsonFailures.set(ctx, f);
  return f;
}

export function out(ctx: CliContext, text = ''): void {
  const f = jsonFailures.get(ctx);
  if (f) f.stdoutUsed = true;
  ctx.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function err(ctx: CliContext, text = ''): void {
  const f = jsonFailures.get(ctx);
  if (f && text.startsWith('error: ')) f.messages.push(text.slice(7).trimEnd());
  ctx.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

/** Config errors, as "error: file:line:col: key: message" lines (and structured under --json). */
export function errIssues(ctx: CliContext, issues: readonly ConfigIssue[]): void {
  const f = jsonFailures.get(ctx);
  for (const i of issues) {
    f?.errors.push(i);
    ctx.stderr.write(`error: ${formatIssue(i)}\n`);
  }
}

export const DEFAULT_CONFIG_FILE = 'iscsi-target.yaml';
/** The default config of an installed program (the .deb creates its folder). */
export const SYSTEM_CONFIG_FILE = '/etc/iscsi-target/iscsi-target.yaml';
/** Names the config file when --config is not given. */
export const CONFIG_ENV = 'ISCSI_TARGET_CONFIG';

export interface ConfigChoice {
  /** The file to use (as the user wrote it, or a default), or undefined: none exists. */
  file?: string;
  /** True when --config or $ISCSI_TARGET_CONFIG named it. */
  explicit: boolean;
}

/**
 * Which config a command uses: --config FILE (before or after the command), else
 * $ISCSI_TARGET_CONFIG, else ./iscsi-target.yaml when it exists, else (installed program
 * only) /etc/iscsi-target/iscsi-target.yaml when it exists, else none.
 */
export function chooseConfigFile(ctx: CliContext, option: string | undefined): ConfigChoice {
  if (option !== undefined && option !== '') return { file: option, explicit: true };
  const fromEnv = ctx.env[CONFIG_ENV];
  if (fromEnv) return { file: fromEnv, explicit: true };
  const candidate = path.join(ctx.cwd, DEFAULT_CONFIG_FILE);
  if (fs.existsSync(candidate)) {
    // Shown as ./iscsi-target.yaml's short name when that is where the process runs.
    const short = path.resolve(ctx.cwd) === process.cwd() ? path.relative(process.cwd(), candidate) : candidate;
    return { file: short || DEFAULT_CONFIG_FILE, explicit: false };
  }
  const system = ctx.systemConfigFile ?? SYSTEM_CONFIG_FILE;
  if (ctx.installed && fs.existsSync(system)) return { file: system, explicit: false };
  return { explicit: false };
}

/**
 * The config file a command that edits or asks the daemon works on, as an absolute path:
 * chooseConfigFile's choice, else ./iscsi-target.yaml (created by the first edit).
 */
export function configFileFor(ctx: CliContext, option: string | undefined): string {
  return path.resolve(ctx.cwd, chooseConfigFile(ctx, option).file ?? DEFAULT_CONFIG_FILE);
}
