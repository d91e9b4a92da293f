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
import { ConfigError, formatIssue, newWarnings, parseConfigDetailed, type ConfigIssue } from '../config/load';
import type { Config } from '../config/model';
import { EXIT, configFileFor, err, errIssues, out, type CliContext } from './context';
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
  errIssues(ctx, errors);
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
  let warnings: ConfigIssue[];
  try {
    warnings = parseConfigDetailed(text, file, { checkFiles: true }).warnings;
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
    // Only what this change brought: the file's old warnings were shown when they came.
    const fresh = newWarnings(warningsOf(base, file), warnings);
    if (opts.json) out(ctx, JSON.stringify({ ok: true, applied: 'file', file, what, warnings: fresh }, null, 2));
    else {
      out(ctx, `${what}: written to ${file}; no daemon is running for it, so it applies at the next start`);
      for (const w of fresh) err(ctx, `warning: ${formatIssue(w)}`);
    }
    return { code: EXIT.OK, applied: 'file' };
  }
  if (!reply.ok) return refuse(ctx, opts, reply.message, reply.errors);
  if (!('report' in reply)) return refuse(ctx, opts, 'unexpected answer from the daemon');
  if (opts.json) {
    out(
      ctx,
      JSON.stringify(
        {
          ok: true,
          applied: 'live',
          file,
          what,
          ms: reply.ms,
          report: reply.report,
          warnings: reply.warnings,
          restartNeeded: reply.restartNeeded,
        },
        null,
        2,
      ),
    );
  } else {
    out(ctx, `${what}: applied by the running daemon in ${reply.ms.toFixed(1)} ms and written to ${file}`);
    const r = reply.report;
    for (const s of r.endedSessions) out(ctx, `  ended the session of ${s.initiator} on ${s.target}: ${s.why}`);
    for (const s of r.lunsAdded) out(ctx, `  ${s.initiator} on ${s.target} now also sees LUN ${s.luns.join(', ')}`);
    for (const p of r.listening) out(ctx, `  listening on ${p}`);
    for (const p of r.stoppedListening) out(ctx, `  no longer listening on ${p}`);
    for (const v of r.resized) out(ctx, `  ${v.name} grew from ${v.from} to ${v.to} bytes (sessions get CAPACITY DATA HAS CHANGED)`);
  }
  if (!opts.json) {
    for (const part of reply.restartNeeded ?? []) out(ctx, `  ${part} changed: that takes effect when the target restarts`);
    for (const w of reply.warnings) err(ctx, `warning: ${formatIssue(w)}`);
  }
  return { code: EXIT.OK, applied: 'live', reply };
}

/** The warnings of config text (none when it does not parse). */
function warningsOf(text: string, file: string): ConfigIssue[] {
  try {
    return parseConfigDetailed(text, file).warnings;
  } catch {
    return [];
  }
}

function refuse(ctx: CliContext, opts: JsonOptions, message: string, errors: ConfigIssue[] = []): ChangeResult {
  if (opts.json) out(ctx, JSON.stringify({ ok: false, message, errors }, null, 2));
  else {
    printIssues(ctx, errors);
    err(ctx, `error: ${message}`);
  }
  return { code: EXIT.FAILURE };
}
