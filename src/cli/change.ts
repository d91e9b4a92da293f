// How every editing command changes the config: edit the YAML (comments kept), validate the
// result, then hand it to the running daemon (which applies it as a diff and writes the file
// only on success) or, with no daemon, write the file atomically ourselves.
import * as fs from 'node:fs';
import type { Document } from 'yaml';
import { writeFileAtomic } from '../admin/atomic-write';
import { EditError, keepLayout, openDocument } from '../admin/config-edit';
import { controlRequest } from '../admin/control-socket';
import { sha256 } from '../admin/controller';
import type { ApplyReply, ControlReply } from '../admin/protocol';
import { ConfigError, formatIssue, parseConfigDetailed, type ConfigIssue } from '../config/load';
import type { Config } from '../config/model';
import { EXIT, configFileFor, err, out, type CliContext } from './context';
import type { ConfigOptions, JsonOptions } from './options';

/** The config file an editing command works on (created when missing). */
export function editTarget(ctx: CliContext, opts: ConfigOptions): string {
  return configFileFor(ctx, opts.config);
}

export function readText(file: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return '';
    throw e;
  }
}

/** The config as the file has it now (for list commands), or the errors. */
export function readConfig(file: string): { config: Config } | { errors: ConfigIssue[] } {
  try {
    return { config: parseConfigDetailed(readText(file), file).config };
  } catch (e) {
    if (e instanceof ConfigError) return { errors: e.errors };
    throw e;
  }
}

export function printIssues(ctx: CliContext, errors: ConfigIssue[]): void {
  for (const e of errors) err(ctx, `error: ${formatIssue(e)}`);
}

export interface ChangeResult {
  code: number;
  /** 'live': the daemon applied it; 'file': no daemon, written to the file; undefined: refused. */
  applied?: 'live' | 'file';
  reply?: ApplyReply;
}

export async function proposeChange(
  ctx: CliContext,
  opts: ConfigOptions & JsonOptions,
  what: string,
  edit: (doc: Document) => void,
): Promise<ChangeResult> {
  const file = editTarget(ctx, opts);
  const base = readText(file);
  let text: string;
  try {
    const doc = openDocument(base);
    edit(doc);
    text = keepLayout(base, String(doc));
  } catch (e) {
    if (!(e instanceof EditError)) throw e;
    return refuse(ctx, opts, e.message);
  }
  try {
    parseConfigDetailed(text, file, { checkFiles: true });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return refuse(ctx, opts, `the change would make ${file} invalid; nothing was changed`, e.errors);
  }
  let reply: ControlReply | undefined;
  try {
    reply = await controlRequest(file, { op: 'apply', text, baseSha256: sha256(base) }, ctx.env);
  } catch (e) {
    return refuse(ctx, opts, `${(e as Error).message}; nothing was changed`);
  }
  if (reply === undefined) {
    await writeFileAtomic(file, text);
    if (opts.json) out(ctx, JSON.stringify({ ok: true, applied: 'file', file, what }, null, 2));
    else out(ctx, `${what}: written to ${file}; no daemon is running for it, so it applies at the next start`);
    return { code: EXIT.OK, applied: 'file' };
  }
  if (!reply.ok) return refuse(ctx, opts, reply.message, reply.errors);
  if (!('report' in reply)) return refuse(ctx, opts, 'unexpected answer from the daemon');
  if (opts.json) {
    out(ctx, JSON.stringify({ ok: true, applied: 'live', file, what, ms: reply.ms, report: reply.report }, null, 2));
  } else {
    out(ctx, `${what}: applied by the running daemon in ${reply.ms.toFixed(1)} ms and written to ${file}`);
    const r = reply.report;
    for (const s of r.endedSessions) out(ctx, `  ended the session of ${s.initiator} on ${s.target}: ${s.why}`);
    for (const s of r.lunsAdded) out(ctx, `  ${s.initiator} on ${s.target} now also sees LUN ${s.luns.join(', ')}`);
    for (const p of r.listening) out(ctx, `  listening on ${p}`);
    for (const p of r.stoppedListening) out(ctx, `  no longer listening on ${p}`);
    for (const v of r.resized) out(ctx, `  ${v.name} grew from ${v.from} to ${v.to} bytes (sessions get CAPACITY DATA HAS CHANGED)`);
  }
  for (const w of reply.warnings) err(ctx, `warning: ${formatIssue(w)}`);
  return { code: EXIT.OK, applied: 'live', reply };
}

function refuse(ctx: CliContext, opts: JsonOptions, message: string, errors: ConfigIssue[] = []): ChangeResult {
  if (opts.json) out(ctx, JSON.stringify({ ok: false, message, errors }, null, 2));
  else {
    printIssues(ctx, errors);
    err(ctx, `error: ${message}`);
  }
  return { code: EXIT.FAILURE };
}
