// The one logger: pino, in one of three formats:
//   - journal: under systemd's journal (JOURNAL_STREAM names our stdout, sd-daemon(3)), one
//     text line per entry with its syslog priority as a "<N>" prefix, so that
//     `journalctl -p warning` works; journald adds the time and pid itself;
//   - pretty (colour, local time) on a terminal;
//   - JSON lines otherwise.
// $LOG_FORMAT (journal, pretty, json) overrides the choice. The level can change while the
// daemon runs (setLogLevel, `iscsi-target log-level`); logFlags lets hot paths (a trace
// line per PDU) test it with one property read. Secrets (CHAP) are redacted wherever they
// appear under the usual names.
import * as fs from 'node:fs';
import pino from 'pino';
import pinoPretty from 'pino-pretty';

export type Logger = pino.Logger;

export type LogFormat = 'journal' | 'pretty' | 'json';

export interface LoggerOptions {
  /** pino level; default $LOG_LEVEL, else 'info'. */
  level?: string;
  /** Force pretty (true) or JSON (false); default: see format. */
  pretty?: boolean;
  /** Output format; default $LOG_FORMAT, else journal under journald, pretty on a TTY, else JSON. */
  format?: LogFormat;
  /** Where to write (default stdout). Pretty output colours only when this is a TTY. */
  destination?: NodeJS.WritableStream;
  /** Logger name (shown in every line). */
  name?: string;
  /** Environment to read LOG_LEVEL, LOG_FORMAT and JOURNAL_STREAM from (default process.env). */
  env?: NodeJS.ProcessEnv;
}

const SECRET_KEYS = ['secret', 'password', 'chapSecret', 'CHAP_R', 'CHAP_C'];

/** Redaction paths: the keys above at top level, one level down, and in CHAP blocks of ACLs. */
export const REDACT_PATHS: string[] = [
  ...SECRET_KEYS,
  ...SECRET_KEYS.map((k) => `*.${k}`),
  ...SECRET_KEYS.map((k) => `*.*.${k}`),
  'chap.secret',
  'mutual.secret',
  '*.chap.secret',
  '*.mutual.secret',
  'acl.chap.secret',
  'acl.mutual.secret',
  'acls[*].chap.secret',
  'acls[*].mutual.secret',
  'target.acls[*].chap.secret',
  'target.acls[*].mutual.secret',
  'targets[*].acls[*].chap.secret',
  'targets[*].acls[*].mutual.secret',
  'config.targets[*].acls[*].chap.secret',
  'config.targets[*].acls[*].mutual.secret',
];

export const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LEVELS)[number];

/** `level` as a level of ours (any case accepted), or undefined when it is none. */
export function normalizeLogLevel(level: string): LogLevel | undefined {
  const l = level.toLowerCase();
  return (LEVELS as readonly string[]).includes(l) ? (l as LogLevel) : undefined;
}

export function unknownLogLevelMessage(level: string): string {
  return `unknown log level ${JSON.stringify(level)}: use one of ${LEVELS.join(', ')}`;
}

/** What hot paths test before building a debug or trace line (one property read). */
export const logFlags = { debug: false, trace: false };

/** The daemon's logger and every child it made, so that a level change reaches them all. */
let root: pino.Logger | undefined;
const children = new Set<WeakRef<pino.Logger>>();
let pruneAt = 1024;

function track(child: pino.Logger): void {
  children.add(new WeakRef(child));
  if (children.size >= pruneAt) {
    for (const ref of children) if (ref.deref() === undefined) children.delete(ref);
    pruneAt = Math.max(1024, children.size * 2);
  }
}

function updateFlags(level: string): void {
  const n = pino.levels.values[level] ?? Infinity;
  logFlags.debug = n <= pino.levels.values.debug;
  logFlags.trace = n <= pino.levels.values.trace;
}

/** The level of the daemon's logger. */
export function getLogLevel(): string {
  return root?.level ?? 'info';
}

/**
 * Change the level of the daemon's logger and of every child logger (pino children keep the
 * level they were made with). Throws on an unknown level.
 */
export function setLogLevel(level: string): void {
  const l = normalizeLogLevel(level);
  if (l === undefined) throw new Error(unknownLogLevelMessage(level));
  if (root) root.level = l;
  for (const ref of children) {
    const c = ref.deref();
    if (c === undefined) children.delete(ref);
    else c.level = l;
  }
  updateFlags(l);
}

/** Is our stdout the journal stream systemd told us of (JOURNAL_STREAM=dev:inode)? */
export function stdoutIsJournal(env: NodeJS.ProcessEnv = process.env, fd = 1): boolean {
  const js = env.JOURNAL_STREAM;
  if (!js) return false;
  const [dev, ino] = js.split(':');
  try {
    const st = fs.fstatSync(fd, { bigint: true });
    return String(st.dev) === dev && String(st.ino) === ino;
  } catch {
    return false;
  }
}

/** pino level -> syslog priority (sd-daemon(3) "<N>" prefixes). */
const PRIORITY: Record<number, number> = { 60: 2, 50: 3, 40: 4, 30: 6, 20: 7, 10: 7 };
const SKIP = new Set(['level', 'time', 'pid', 'hostname', 'msg', 'v']);

function fieldText(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"=]+$/.test(v) ? v : JSON.stringify(v);
  if (v !== null && typeof v === 'object') {
    const e = v as { type?: string; message?: string; stack?: string };
    // Errors as one line: journald splits entries at newlines.
    if (typeof e.message === 'string' && typeof e.stack === 'string')
      return JSON.stringify(
        e.stack
          .split('\n')
          .map((l) => l.trim())
          .join(' | '),
      );
    return JSON.stringify(v);
  }
  return String(v);
}

/** One pino JSON line -> "<6>message key=value ...". */
export function journalLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return `<6>${json.trimEnd()}\n`;
  }
  const prio = PRIORITY[o.level as number] ?? 6;
  let line = `<${prio}>${(typeof o.msg === 'string' ? o.msg : '').replace(/\n/g, ' ')}`;
  for (const [k, v] of Object.entries(o)) if (!SKIP.has(k) && v !== undefined) line += ` ${k}=${fieldText(v)}`;
  return `${line}\n`;
}

/** A pino destination that rewrites each JSON line for the journal. */
class JournalStream {
  constructor(private readonly out: { write(s: string): unknown }) {}
  write(chunk: string): void {
    let text = '';
    for (const line of chunk.split('\n')) if (line !== '') text += journalLine(line);
    this.out.write(text);
  }
  flushSync(): void {
    (this.out as { flushSync?: () => void }).flushSync?.();
  }
}

export function createLogger(opts: LoggerOptions = {}): pino.Logger {
  const env = opts.env ?? process.env;
  const askedLevel = (opts.level ?? env.LOG_LEVEL ?? 'info').toLowerCase();
  const known = normalizeLogLevel(askedLevel);
  const level = known ?? 'info';
  const badLevel = known === undefined ? askedLevel : undefined;
  const dest = opts.destination ?? process.stdout;
  const isTty = !!(dest as NodeJS.WriteStream).isTTY;
  let badFormat: string | undefined;
  let format: LogFormat;
  const asked = env.LOG_FORMAT?.toLowerCase();
  if (opts.pretty !== undefined) format = opts.pretty ? 'pretty' : 'json';
  else if (opts.format) format = opts.format;
  else if (asked === 'journal' || asked === 'pretty' || asked === 'json') format = asked;
  else {
    if (asked) badFormat = asked;
    format = dest === process.stdout && stdoutIsJournal(env) ? 'journal' : isTty ? 'pretty' : 'json';
  }
  const options: pino.LoggerOptions = {
    level,
    name: opts.name,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
    onChild: track,
  };
  let stream: pino.DestinationStream;
  if (format === 'pretty') {
    // A synchronous in-process stream (no worker thread), so nothing is lost on exit.
    stream = pinoPretty({
      colorize: isTty,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      singleLine: true,
      destination: dest,
      sync: true,
    });
  } else {
    const raw: pino.DestinationStream = dest === process.stdout ? pino.destination({ fd: 1, sync: true }) : dest;
    stream = format === 'journal' ? new JournalStream(raw) : raw;
  }
  const logger = pino(options, stream);
  root = logger;
  children.clear();
  updateFlags(level);
  if (badLevel) logger.warn(`LOG_LEVEL ${JSON.stringify(badLevel)} is not one of ${LEVELS.join(', ')}; using info`);
  if (badFormat) logger.warn(`LOG_FORMAT ${JSON.stringify(badFormat)} is not one of journal, pretty, json; using ${format}`);
  return logger;
}
