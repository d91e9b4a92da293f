// Text keys (RFC 7143 §6): the data segment of Login and Text PDUs is a sequence
// of `key=value` strings, each terminated by a NUL byte, UTF-8 encoded.
//
// This module only frames the pairs. It does not validate key names or values
// against the negotiation rules (src/iscsi does that), and keeps duplicates and
// order as they arrived.

import { isUtf8 } from 'node:buffer';

export class TextKeyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TextKeyError';
  }
}

/**
 * Split a text data segment into `[key, value]` pairs, in order.
 *
 * - The final pair's terminating NUL is optional (some initiators omit it).
 * - Empty strings between NULs (e.g. trailing NUL padding) are skipped.
 * - A value may be empty (`Key=`) and may itself contain `=`; only the first `=`
 *   separates key from value.
 * - Throws TextKeyError on a pair without `=`, an empty key, or bytes that are
 *   not valid UTF-8.
 */
export function parseTextKeys(data: Buffer): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  const len = data.length;
  if (len === 0) return out;
  if (!isUtf8(data)) throw new TextKeyError('text data segment is not valid UTF-8');
  let pos = 0;
  while (pos < len) {
    let end = data.indexOf(0, pos);
    if (end === -1) end = len;
    if (end > pos) {
      const eq = data.indexOf(0x3d /* '=' */, pos);
      if (eq === -1 || eq >= end) {
        throw new TextKeyError(`text key without '=': ${JSON.stringify(data.toString('utf8', pos, end))}`);
      }
      if (eq === pos) {
        throw new TextKeyError(`empty text key: ${JSON.stringify(data.toString('utf8', pos, end))}`);
      }
      out.push([data.toString('utf8', pos, eq), data.toString('utf8', eq + 1, end)]);
    }
    pos = end + 1;
  }
  return out;
}

/**
 * Encode pairs as `key=value\0` each. Throws TextKeyError on an empty key, a key
 * containing `=` or NUL, or a value containing NUL.
 */
export function encodeTextKeys(pairs: Iterable<readonly [string, string]>): Buffer {
  let s = '';
  for (const [k, v] of pairs) {
    if (k.length === 0) throw new TextKeyError('empty text key');
    if (k.includes('=') || k.includes('\0')) throw new TextKeyError(`invalid text key: ${JSON.stringify(k)}`);
    if (v.includes('\0')) throw new TextKeyError(`text value for ${k} contains NUL`);
    s += k + '=' + v + '\0';
  }
  return Buffer.from(s, 'utf8');
}
