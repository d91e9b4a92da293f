// What every command gets: where to write, where it runs. Commands never call process.exit
// themselves except `serve` (signals); they return an exit code.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface CliContext {
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  cwd: string;
  env: NodeJS.ProcessEnv;
}

export const EXIT = {
  OK: 0,
  /** Runtime failure, or `config check` found errors. */
  FAILURE: 1,
  /** `serve` refused to start because the config is invalid. */
  CONFIG: 2,
} as const;

export function defaultContext(): CliContext {
  return { stdout: process.stdout, stderr: process.stderr, cwd: process.cwd(), env: process.env };
}

export function out(ctx: CliContext, text = ''): void {
  ctx.stdout.write(text.endsWith('\n') ? text : `${text}\n`);
}

export function err(ctx: CliContext, text = ''): void {
  ctx.stderr.write(text.endsWith('\n') ? text : `${text}\n`);
}

export const DEFAULT_CONFIG_FILE = 'iscsi-target.yaml';

export interface ConfigChoice {
  /** The file to use (as the user wrote it, or ./iscsi-target.yaml), or undefined: none. */
  file?: string;
  /** True when --config was given. */
  explicit: boolean;
}

/** --config FILE, else ./iscsi-target.yaml when it exists, else none. */
export function chooseConfigFile(ctx: CliContext, option: string | undefined): ConfigChoice {
  if (option !== undefined) return { file: option, explicit: true };
  const candidate = path.join(ctx.cwd, DEFAULT_CONFIG_FILE);
  if (fs.existsSync(candidate)) {
    return { file: path.relative(process.cwd(), candidate) || DEFAULT_CONFIG_FILE, explicit: false };
  }
  return { explicit: false };
}
