// The daemon side of live configuration: validate a proposed config, apply it to the running
// TargetServer as a diff, and only then write it to the file. One change at a time.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { ConfigError, newWarnings, parseConfigDetailed, type ConfigIssue } from '../config/load';
import type { Config } from '../config/model';
import { formatPortal } from '../config/portal';
import { formatWwn } from '../config/identity';
import type { TargetServer } from '../iscsi/server';
import { prepareAtomicWrite } from './atomic-write';
import { diffConfig, diffIsEmpty, sessionVerdict } from './diff';
import type { ApplyReply, ControlReply, StatusReply } from './protocol';
import { sessionStatus } from './status';
import type { TargetMetrics } from './metrics';
import { getLogLevel, normalizeLogLevel, setLogLevel, unknownLogLevelMessage } from '../log';
import pino from 'pino';

export function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export class ConfigController {
  private queue: Promise<unknown> = Promise.resolve();
  private readonly startedAt = Date.now();
  /** Called after a change that moved the metrics endpoint. */
  onMetricsChanged?: (config: Config) => Promise<void>;
  /** The command counters (`stats`, iscsi-target top). */
  metrics?: TargetMetrics;

  constructor(
    readonly server: TargetServer,
    readonly configFile: string,
    private readonly logger: Logger,
    /** The daemon serves the built-in default: status answers, changes are refused. */
    private readonly builtIn = false,
    /** The warnings of the config the daemon started with (serve has logged them). */
    startWarnings: ConfigIssue[] = [],
  ) {
    this.startLimits = JSON.stringify(server.currentConfig.limits ?? {});
    this.warningsOf = { config: server.currentConfig, warnings: startWarnings };
  }

  /** Validate `text`, apply it, then write it to the config file. Refused whole on any error. */
  apply(text: string, baseSha256?: string): Promise<ControlReply> {
    if (this.builtIn) return Promise.resolve(this.builtInRefusal());
    return this.serial(() => this.applyNow(text, { write: true, baseSha256 }));
  }

  /** Re-read the config file and apply it (SIGHUP, `reload`). */
  reload(): Promise<ControlReply> {
    if (this.builtIn) return Promise.resolve(this.builtInRefusal());
    return this.serial(async () => {
      let text: string;
      try {
        text = await fs.promises.readFile(this.configFile, 'utf8');
      } catch (e) {
        return { ok: false, message: `cannot read ${this.configFile}: ${(e as Error).message}` };
      }
      return this.applyNow(text, { write: false });
    });
  }

  private builtInRefusal(): ControlReply {
    return {
      ok: false,
      message:
        `this daemon serves the built-in default, not ${this.configFile}, so it takes no changes: ` +
        'stop it, run the command again (it then writes that file), and start `iscsi-target serve`',
    };
  }

  status(): StatusReply {
    const s = this.server;
    return {
      ok: true,
      pid: process.pid,
      config: this.builtIn ? `(built-in default; no ${path.basename(this.configFile)})` : this.configFile,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      portals: s.addresses.map(formatPortal),
      volumes: [...s.units.values()].map((lu) => ({
        name: lu.name,
        bytes: lu.backstore.size,
        path: lu.backstore.path,
        serial: lu.serial,
        wwn: formatWwn(lu.naa),
      })),
      sessions: [...s.sessions].map(([session, conn]) => sessionStatus(session, conn.remote)),
    };
  }

  /** The counters `top` reads (the metrics' own), with the time they were read. */
  stats(): ControlReply {
    if (!this.metrics) return { ok: false, message: 'this daemon keeps no command counters' };
    return {
      ok: true,
      pid: process.pid,
      uptimeSeconds: Math.round((Date.now() - this.startedAt) / 1000),
      at: Number(process.hrtime.bigint() / 1000n) / 1000,
      ...this.metrics.snapshot(),
    };
  }

  /** Report, or change, the daemon's log level (every logger, live). */
  logLevel(level?: string): ControlReply {
    const previous = getLogLevel();
    if (level === undefined) return { ok: true, level: previous, previous };
    const to = normalizeLogLevel(level);
    if (to === undefined) return { ok: false, message: unknownLogLevelMessage(level) };
    // Logged at info under whichever of the two levels shows info lines.
    const say = () => this.logger.info({ previous, level: to }, `log level ${previous} -> ${to}`);
    const hidesInfo = pino.levels.values[to] === undefined || pino.levels.values[to] > pino.levels.values.info;
    if (hidesInfo) say();
    setLogLevel(to);
    if (!hidesInfo) say();
    return { ok: true, level: to, previous };
  }

  /** The limits the daemon started with (and runs with until a restart). */
  private readonly startLimits: string;
  /** The warnings of the config being served, to tell the new ones of a change. */
  private warningsOf?: { config: Config; warnings: ConfigIssue[] };

  private knownWarnings(current: Config): ConfigIssue[] {
    return this.warningsOf?.config === current ? this.warningsOf.warnings : [];
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async applyNow(text: string, opts: { write: boolean; baseSha256?: string }): Promise<ControlReply> {
    const t0 = process.hrtime.bigint();
    const file = this.configFile;
    if (opts.write && opts.baseSha256) {
      const current = await fs.promises.readFile(file, 'utf8').catch(() => '');
      if (sha256(current) !== opts.baseSha256) {
        return { ok: false, message: `${file} changed while this edit was being made; nothing was applied, run the command again` };
      }
    }
    let next: Config;
    let warnings: ConfigIssue[];
    try {
      const mode = (await fs.promises.stat(file).catch(() => undefined))?.mode;
      ({ config: next, warnings } = parseConfigDetailed(text, file, { checkFiles: true, fileMode: mode }));
    } catch (e) {
      if (e instanceof ConfigError) return { ok: false, message: 'the new config is not valid; nothing was changed', errors: e.errors };
      throw e;
    }
    const prev = this.server.currentConfig;
    const diff = diffConfig(prev, next);
    if (diff.refused.length > 0) {
      return {
        ok: false,
        message: 'the running target cannot make this change; nothing was changed',
        errors: diff.refused.map((message) => ({ file, line: 0, col: 0, key: '', message })),
      };
    }
    let write;
    try {
      write = opts.write ? await prepareAtomicWrite(file, text) : undefined;
    } catch (e) {
      return { ok: false, message: `${(e as Error).message}; nothing was changed` };
    }
    let report;
    try {
      report = await this.server.apply(next, diff, (target, initiator) => sessionVerdict(prev, next, target, initiator));
    } catch (e) {
      await write?.abort();
      this.logger.warn({ err: e }, `config change refused: ${(e as Error).message}`);
      return { ok: false, message: `${(e as Error).message}; nothing was changed` };
    }
    await write?.commit();
    if (diff.metricsChanged)
      await this.onMetricsChanged?.(next).catch((e) => this.logger.error({ err: e }, 'metrics endpoint change failed'));
    // Limits are read at start: the daemon runs with those until it restarts, however many
    // changes and reloads come in between.
    const restartNeeded: string[] = [];
    if (JSON.stringify(next.limits ?? {}) !== this.startLimits) restartNeeded.push('limits');
    if (diff.limitsChanged) this.logger.warn('limits changed: they are read at start, so they take effect when the target restarts');
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    const changed = !diffIsEmpty(diff);
    if (changed) this.logger.info({ ...report, ms: Math.round(ms * 10) / 10 }, opts.write ? 'config changed' : 'config reloaded');
    const fresh = newWarnings(this.knownWarnings(prev), warnings);
    this.warningsOf = { config: next, warnings };
    const reply: ApplyReply = { ok: true, changed, report, ms, warnings: fresh, restartNeeded };
    return reply;
  }
}
