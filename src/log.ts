// The one logger: pino, pretty (colour, local time) on a terminal, JSON lines otherwise.
// Secrets (CHAP) are redacted wherever they appear under the usual names.
import pino from 'pino';
import pinoPretty from 'pino-pretty';

export type Logger = pino.Logger;

export interface LoggerOptions {
  /** pino level; default $LOG_LEVEL, else 'info'. */
  level?: string;
  /** Force pretty (true) or JSON (false); default: pretty when stdout is a TTY. */
  pretty?: boolean;
  /** Where to write (default stdout). Pretty output colours only when this is a TTY. */
  destination?: NodeJS.WritableStream;
  /** Logger name (shown in every line). */
  name?: string;
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

const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export function createLogger(opts: LoggerOptions = {}): pino.Logger {
  let level = (opts.level ?? process.env.LOG_LEVEL ?? 'info').toLowerCase();
  let badLevel: string | undefined;
  if (!LEVELS.includes(level)) {
    badLevel = level;
    level = 'info';
  }
  const dest = opts.destination ?? process.stdout;
  const isTty = !!(dest as NodeJS.WriteStream).isTTY;
  const pretty = opts.pretty ?? isTty;
  const options: pino.LoggerOptions = {
    level,
    name: opts.name,
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
    serializers: { err: pino.stdSerializers.err, error: pino.stdSerializers.err },
  };
  let stream: pino.DestinationStream;
  if (pretty) {
    // A synchronous in-process stream (no worker thread), so nothing is lost on exit.
    stream = pinoPretty({
      colorize: isTty,
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname',
      singleLine: true,
      destination: dest,
      sync: true,
    });
  } else if (dest === process.stdout) {
    stream = pino.destination({ fd: 1, sync: true });
  } else {
    stream = dest as pino.DestinationStream;
  }
  const logger = pino(options, stream);
  if (badLevel) logger.warn(`LOG_LEVEL ${JSON.stringify(badLevel)} is not one of ${LEVELS.join(', ')}; using info`);
  return logger;
}
