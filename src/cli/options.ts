// Options shared by commands, so that every command spells them the same way.
import { Option, type Command } from 'commander';
import { MAX_LUN } from '../config/load';
import { err, type CliContext } from './context';

export interface ConfigOptions {
  config?: string;
}

export interface JsonOptions {
  json?: boolean;
}

export function addConfigOption(cmd: Command): Command {
  return cmd.addOption(new Option('-c, --config <file>', 'config file (default: ./iscsi-target.yaml)'));
}

export function addJsonOption(cmd: Command): Command {
  return cmd.addOption(new Option('--json', 'machine-readable output (JSON on stdout)'));
}

/** Repeatable options (--lun 0=a --lun 1=b). */
export function collect(v: string, prev: string[] = []): string[] {
  return [...prev, v];
}

/** N=VOLUME specs (--lun) to a LUN map; prints why and returns undefined when one is wrong. */
export function parseLunMaps(ctx: CliContext, specs: string[]): Map<number, string> | undefined {
  const m = new Map<number, string>();
  for (const s of specs) {
    const r = /^(\d+)=(.+)$/.exec(s.trim());
    const n = r ? Number(r[1]) : NaN;
    if (!r || n > MAX_LUN) {
      err(ctx, `error: --lun ${s}: expected N=VOLUME with N in 0..${MAX_LUN}, e.g. --lun 0=db-a`);
      return undefined;
    }
    m.set(n, r[2]);
  }
  return m;
}

/** How a command names one CHAP pair: its flags, and the variable that may hold the secret. */
export interface ChapFlags {
  what: string;
  user: string;
  secret: string;
  env: string;
}
export const CHAP_FLAGS: ChapFlags = { what: 'CHAP', user: '--chap-user', secret: '--chap-secret', env: 'ISCSI_CHAP_SECRET' };
export const MUTUAL_FLAGS: ChapFlags = {
  what: 'mutual CHAP',
  user: '--mutual-user',
  secret: '--mutual-secret',
  env: 'ISCSI_MUTUAL_SECRET',
};

/**
 * An optional CHAP user and secret (the secret may come from the environment, out of ps's
 * sight): both or neither. Prints why and returns undefined when only one is given.
 */
export function chapPair(
  ctx: CliContext,
  flags: ChapFlags,
  user: string | undefined,
  secret: string | undefined,
): { chap?: { user: string; secret: string } } | undefined {
  const s = secret ?? ctx.env[flags.env];
  if ((user === undefined) !== (s === undefined)) {
    err(ctx, `error: ${flags.what} needs both ${flags.user} and ${flags.secret} (or $${flags.env})`);
    return undefined;
  }
  return { chap: user !== undefined ? { user, secret: s! } : undefined };
}
