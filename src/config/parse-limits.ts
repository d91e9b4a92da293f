// The `limits:` section: what one peer may cost and when silent peers go.
import { LIMIT_DEFAULTS, type LimitsConfig } from './model';
import { formatSize, tryParseSize } from './size';
import { Checker, describe, type Entry } from './checker';
import { isScalar } from 'yaml';

/** `limits:` keys: [name, kind, lowest, highest]. Times are seconds (fractions allowed). */
export const LIMIT_KEYS: Record<string, { kind: 'count' | 'seconds' | 'bytes' | 'bool' | 'micros'; lo: number; hi: number }> = {
  maxLoginConnections: { kind: 'count', lo: 1, hi: 65535 },
  maxLoginConnectionsPerAddress: { kind: 'count', lo: 1, hi: 65535 },
  maxSessions: { kind: 'count', lo: 1, hi: 65535 },
  loginTimeout: { kind: 'seconds', lo: 1, hi: 3600 },
  nopInterval: { kind: 'seconds', lo: 0, hi: 3600 },
  nopTimeout: { kind: 'seconds', lo: 1, hi: 3600 },
  dropIdlePeers: { kind: 'bool', lo: 0, hi: 1 },
  stallTimeout: { kind: 'seconds', lo: 1, hi: 600 },
  queueDepth: { kind: 'count', lo: 1, hi: 65536 },
  maxImmediateCommands: { kind: 'count', lo: 1, hi: 1024 },
  connectionBuffer: { kind: 'bytes', lo: 1024 * 1024, hi: 64 * 1024 * 1024 * 1024 },
  shutdownGrace: { kind: 'seconds', lo: 0, hi: 600 },
  busyPoll: { kind: 'micros', lo: 0, hi: 1000 },
  writeAgeLimit: { kind: 'seconds', lo: 0, hi: 30 },
};

/** The `limits:` mapping; keys left out keep LIMIT_DEFAULTS. */
export function parseLimits(c: Checker, e: Entry): LimitsConfig | undefined {
  const m = c.map(e.value, e.keyNode, e.key, 'limits');
  if (!m) return undefined;
  const before = c.errors.length;
  const out: LimitsConfig = { ...LIMIT_DEFAULTS };
  for (const le of c.entries(m, e.key, [...Object.keys(LIMIT_KEYS), 'maxConnections'])) {
    if (le.name === 'maxConnections') {
      // Before issue 14 it counted connections still in login too, so idle sockets locked
      // hosts out; logged-in connections are bounded by maxSessions now.
      c.warn(
        le.keyNode,
        le.key,
        'maxConnections is no longer used: connections in login are bounded by maxLoginConnections and maxLoginConnectionsPerAddress, logged-in ones by maxSessions',
      );
      continue;
    }
    const spec = LIMIT_KEYS[le.name];
    const v = isScalar(le.value) ? le.value.value : undefined;
    if (spec.kind === 'bool') {
      const b = c.bool(le);
      if (b !== undefined) out.dropIdlePeers = b;
      continue;
    }
    let n: number | undefined;
    if (spec.kind === 'bytes') {
      const r = v === null || v === undefined ? undefined : tryParseSize(v);
      if (!r || !r.ok) {
        c.error(le.value ?? le.keyNode, le.key, `must be a size such as 256MiB${r && !r.ok ? `: ${r.error}` : ''}`);
        continue;
      }
      n = r.bytes;
    } else if (typeof v === 'number' && Number.isFinite(v) && (spec.kind === 'seconds' || Number.isInteger(v))) {
      n = v;
    } else {
      const what =
        spec.kind === 'seconds' ? 'a number of seconds' : spec.kind === 'micros' ? 'a whole number of microseconds' : 'a whole number';
      c.error(le.value ?? le.keyNode, le.key, `must be ${what}, not ${describe(le.value)}`);
      continue;
    }
    if (n < spec.lo || n > spec.hi) {
      const fmt = (x: number) => (spec.kind === 'bytes' ? formatSize(x) : String(x));
      const unit = spec.kind === 'seconds' ? ' seconds' : spec.kind === 'micros' ? ' microseconds' : '';
      c.error(le.value, le.key, `must be between ${fmt(spec.lo)} and ${fmt(spec.hi)}${unit}, not ${fmt(n)}`);
      continue;
    }
    switch (le.name) {
      case 'loginTimeout':
        out.loginTimeoutMs = Math.round(n * 1000);
        break;
      case 'nopInterval':
        out.nopIntervalMs = Math.round(n * 1000);
        break;
      case 'nopTimeout':
        out.nopTimeoutMs = Math.round(n * 1000);
        break;
      case 'stallTimeout':
        out.stallTimeoutMs = Math.round(n * 1000);
        break;
      case 'connectionBuffer':
        out.connectionBufferBytes = n;
        break;
      case 'shutdownGrace':
        out.shutdownGraceMs = Math.round(n * 1000);
        break;
      case 'busyPoll':
        out.busyPollUs = n;
        break;
      case 'writeAgeLimit':
        out.writeAgeLimitMs = Math.round(n * 1000);
        break;
      default:
        (out as unknown as Record<string, number>)[le.name] = n;
    }
  }
  return c.errors.length > before ? undefined : out;
}
