// Byte sizes as people write them in configs and on the command line.
//
//   1048576  "1048576"  "512KiB"  "256MiB"  "20GiB"  "1TiB"  "20G"  "512M"  "4K"  "1.5GiB"  "20 gib"
//
// Every unit is binary (1G = 1 GiB = 2^30 bytes), as in qemu-img and targetcli. "GB"/"MB"/...
// are refused because they are ambiguous (SI 10^9 or binary 2^30?). The result must be a
// whole number of bytes that a JS number holds exactly.

export class SizeError extends Error {
  override name = 'SizeError';
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 2 ** 10,
  kib: 2 ** 10,
  m: 2 ** 20,
  mib: 2 ** 20,
  g: 2 ** 30,
  gib: 2 ** 30,
  t: 2 ** 40,
  tib: 2 ** 40,
  p: 2 ** 50,
  pib: 2 ** 50,
};

const AMBIGUOUS = new Set(['kb', 'mb', 'gb', 'tb', 'pb']);

const HINT = '(use e.g. 20GiB)';

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  return String(value);
}

/**
 * Parse a size into bytes. Throws SizeError with a message naming the value, e.g.
 * `"20Q" is not a size (use e.g. 20GiB)`.
 */
export function parseSize(value: number | string): number {
  let bytes: number;
  if (typeof value === 'number') {
    if (!Number.isFinite(value)) throw new SizeError(`${show(value)} is not a size ${HINT}`);
    bytes = value;
  } else if (typeof value === 'string') {
    const m = /^\s*([+-]?)(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)\s*$/i.exec(value);
    if (!m) throw new SizeError(`${show(value)} is not a size ${HINT}`);
    const [, sign, num, unitRaw] = m;
    const unit = unitRaw.toLowerCase();
    if (AMBIGUOUS.has(unit)) {
      const fix = `${unit[0].toUpperCase()}iB`;
      throw new SizeError(`${show(value)}: "${unitRaw}" is ambiguous; write ${num}${fix} (binary) or the number of bytes`);
    }
    const mult = UNITS[unit];
    if (mult === undefined) {
      throw new SizeError(`${show(value)} is not a size: unknown unit "${unitRaw}" ${HINT}`);
    }
    bytes = Number(num) * mult;
    if (sign === '-') bytes = -bytes;
  } else {
    throw new SizeError(`${show(value)} is not a size ${HINT}`);
  }
  if (bytes < 0 || Object.is(bytes, -0)) throw new SizeError(`${show(value)}: a size cannot be negative`);
  if (!Number.isInteger(bytes)) {
    throw new SizeError(`${show(value)} is not a whole number of bytes`);
  }
  if (bytes > Number.MAX_SAFE_INTEGER) throw new SizeError(`${show(value)} is too large`);
  return bytes;
}

/** Like parseSize, but returns an error message instead of throwing. */
export function tryParseSize(value: unknown): { ok: true; bytes: number } | { ok: false; error: string } {
  if (typeof value !== 'number' && typeof value !== 'string') {
    return { ok: false, error: `${show(value)} is not a size ${HINT}` };
  }
  try {
    return { ok: true, bytes: parseSize(value) };
  } catch (err) {
    return { ok: false, error: (err as Error).message };
  }
}

const HUMAN_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'] as const;

/**
 * For humans: "0 B", "512 B", "4 KiB", "1 GiB", "1.5 GiB", "20 GiB", "1.23 TiB".
 * Up to two decimals, trailing zeros dropped.
 */
export function formatSize(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  const neg = bytes < 0;
  let v = Math.abs(bytes);
  let i = 0;
  while (v >= 1024 && i < HUMAN_UNITS.length - 1) {
    v /= 1024;
    i++;
  }
  let text = i === 0 ? String(v) : v.toFixed(2).replace(/\.?0+$/, '');
  // Rounding can reach 1024 (e.g. 1023.999 MiB): move to the next unit.
  if (text === '1024' && i < HUMAN_UNITS.length - 1) {
    text = '1';
    i++;
  }
  return `${neg ? '-' : ''}${text} ${HUMAN_UNITS[i]}`;
}

/**
 * For writing back into a config file: the largest binary unit that divides the size
 * exactly ("20GiB", "512MiB", "4KiB"), else the plain byte count (1000).
 */
export function formatSizeForConfig(bytes: number): string | number {
  for (let i = HUMAN_UNITS.length - 1; i >= 1; i--) {
    const unit = 1024 ** i;
    if (bytes >= unit && bytes % unit === 0) return `${bytes / unit}${HUMAN_UNITS[i]}`;
  }
  return bytes;
}
