// `iscsi-target status` (live sessions) and `iscsi-target reload` (re-read the config).
import type { Command } from 'commander';
import { controlRequest } from '../admin/control-socket';
import { clientSocketPaths } from '../admin/socket-path';
import { formatSize } from '../config/size';
import { formatIssue } from '../config/load';
import { editTarget, printIssues } from './change';
import { EXIT, err, out, type CliContext } from './context';
import { addConfigOption, addJsonOption, type ConfigOptions, type JsonOptions } from './options';
import { formatDuration, table } from './table';
import { plural } from '../text';

type Opts = ConfigOptions & JsonOptions;

function noDaemon(ctx: CliContext, o: Opts, file: string): number {
  const message = `no daemon is running for ${file} (no control socket at ${clientSocketPaths(file, ctx.env).join(' or ')})`;
  if (o.json) out(ctx, JSON.stringify({ ok: false, message }, null, 2));
  else err(ctx, `error: ${message}`);
  return EXIT.FAILURE;
}

async function status(ctx: CliContext, o: Opts & { verbose?: boolean }): Promise<number> {
  const file = editTarget(ctx, o);
  const r = await controlRequest(file, { op: 'status' }, ctx.env);
  if (!r) return noDaemon(ctx, o, file);
  if (!r.ok || !('portals' in r)) {
    err(ctx, `error: ${r.ok ? 'unexpected answer' : r.message}`);
    return EXIT.FAILURE;
  }
  if (o.json) {
    out(ctx, JSON.stringify(r, null, 2));
    return EXIT.OK;
  }
  out(ctx, `daemon pid ${r.pid}, up ${formatDuration(r.uptimeSeconds)}, config ${r.config}`);
  out(ctx, `portals: ${r.portals.join(', ')}; ${plural(r.volumes.length, 'volume')} open`);
  out(ctx, '');
  if (r.sessions.length === 0) {
    out(ctx, 'no sessions');
    return EXIT.OK;
  }
  out(
    ctx,
    table(
      ['INITIATOR', 'ADDRESS', 'TARGET', 'LUNS', 'UPTIME', 'COMMANDS', 'READ', 'WRITTEN', 'ERRORS'],
      r.sessions.map((s) => [
        s.initiator,
        s.address,
        s.target ?? '(discovery)',
        s.luns.map((l) => `${l.lun}=${l.volume}`).join(',') || '-',
        formatDuration(s.uptimeSeconds),
        String(s.commands),
        formatSize(s.readBytes),
        formatSize(s.writtenBytes),
        String(s.errors),
      ]),
    ),
  );
  if (o.verbose) {
    for (const s of r.sessions) {
      out(
        ctx,
        `${s.initiator} (tsih ${s.tsih}): ${Object.entries(s.params)
          .map(([k, v]) => `${k}=${v}`)
          .join(' ')}`,
      );
      // Unit attentions are news (power on, capacity or LUN changes), not failures.
      out(
        ctx,
        `  unit attentions reported: ${s.unitAttentions}; reads done by busy polling: ${s.polledReads}; Data-Out bytes read in place: ${s.directBytes}`,
      );
    }
  } else {
    out(ctx, '(negotiated parameters and unit attentions: --verbose or --json)');
  }
  return EXIT.OK;
}

async function reload(ctx: CliContext, o: Opts): Promise<number> {
  const file = editTarget(ctx, o);
  const r = await controlRequest(file, { op: 'reload' }, ctx.env);
  if (!r) return noDaemon(ctx, o, file);
  if (o.json) out(ctx, JSON.stringify(r, null, 2));
  if (!r.ok) {
    if (!o.json) {
      printIssues(ctx, r.errors ?? []);
      err(ctx, `error: ${r.message}; the daemon keeps its current config`);
    }
    return EXIT.FAILURE;
  }
  if (!o.json && 'report' in r) {
    const later = r.restartNeeded ?? [];
    if (r.changed) out(ctx, `reloaded ${file} in ${r.ms.toFixed(1)} ms`);
    else if (later.length > 0) out(ctx, `reloaded ${file}: nothing to change while running`);
    else out(ctx, `reloaded ${file}: nothing changed`);
    for (const s of r.report.endedSessions) out(ctx, `  ended the session of ${s.initiator} on ${s.target}: ${s.why}`);
    for (const part of later)
      out(ctx, `  ${part} changed: that takes effect when the target restarts (e.g. systemctl restart iscsi-target)`);
    for (const w of r.warnings) err(ctx, `warning: ${formatIssue(w)}`);
  }
  return EXIT.OK;
}

async function logLevel(ctx: CliContext, level: string | undefined, o: Opts): Promise<number> {
  const file = editTarget(ctx, o);
  const r = await controlRequest(file, level === undefined ? { op: 'log-level' } : { op: 'log-level', level }, ctx.env);
  if (!r) return noDaemon(ctx, o, file);
  if (!r.ok || !('previous' in r)) {
    const message = r.ok ? 'unexpected answer' : r.message;
    if (o.json) out(ctx, JSON.stringify({ ok: false, message }, null, 2));
    else err(ctx, `error: ${message}`);
    return EXIT.FAILURE;
  }
  if (o.json) out(ctx, JSON.stringify(r, null, 2));
  else if (level === undefined) out(ctx, `log level: ${r.level}`);
  else
    out(
      ctx,
      r.previous === r.level
        ? `log level stays ${r.level}`
        : `log level ${r.previous} -> ${r.level} (until the daemon restarts; LOG_LEVEL or serve --log-level set it at start)`,
    );
  return EXIT.OK;
}

export function registerStatus(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  addJsonOption(addConfigOption(program.command('status').description('live sessions: initiator, address, target, LUNs, I/O counters')))
    .option('-v, --verbose', 'also the negotiated parameters')
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target status
  $ iscsi-target status -v                      # negotiated digests, burst lengths, ...
  $ iscsi-target --config /etc/iscsi-target/iscsi-target.yaml status --json`,
    )
    .action(async (o: Opts & { verbose?: boolean }) => setExit(await status(ctx, o)));
  addJsonOption(
    addConfigOption(program.command('reload').description('make the running daemon re-read its config (as SIGHUP does)')),
  ).action(async (o: Opts) => setExit(await reload(ctx, o)));
  addJsonOption(
    addConfigOption(
      program
        .command('log-level [level]')
        .description("show or change the running daemon's log level, live (fatal, error, warn, info, debug, trace)"),
    ),
  )
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target log-level            # what it is now
  $ iscsi-target log-level debug      # logins in detail, negotiation, discovery answers
  $ iscsi-target log-level trace      # also every PDU in and out
  $ iscsi-target log-level info`,
    )
    .action(async (level: string | undefined, o: Opts) => setExit(await logLevel(ctx, level, o)));
}
