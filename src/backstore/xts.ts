// AES-256-XTS (IEEE 1619) over many data units in a few OpenSSL calls.
//
// OpenSSL's "aes-256-xts" takes the tweak at cipher set-up, so encrypting a request of N
// blocks that way is N createCipheriv calls: about 80 MiB/s for 512-byte blocks, on the
// event loop. XTS is defined on plain AES, though:
//
//   T_0 = AES-enc(K2, tweak)            T_{j+1} = T_j * x  in GF(2^128), little-endian
//   C_j = AES-enc(K1, P_j xor T_j) xor T_j       P_j = AES-dec(K1, C_j xor T_j) xor T_j
//
// so here every data unit's T_0 comes from one AES-256-ECB call over all the tweaks (K2),
// the mask T_j is spread over the request in JS (a shift and a conditional 0x87, branch-
// free), and the data goes through one AES-256-ECB call (K1) between two XORs with it. The
// AES itself stays OpenSSL's. Data units are whole multiples of 16 bytes (512 or 4096), so
// no ciphertext stealing. test/unit/backstore-encrypted.test.ts checks the output against
// OpenSSL's own aes-256-xts, byte for byte.
//
// The 32-bit views need a little-endian host (x86, arm64): xtsSupported() says so, and the
// caller uses the per-block OpenSSL path elsewhere.

import { createCipheriv, createDecipheriv } from 'node:crypto';
import * as os from 'node:os';

const LE = os.endianness() === 'LE';

/** Bulk XTS needs a little-endian host (the mask is built in 32-bit words). */
export function xtsSupported(): boolean {
  return LE;
}

/**
 * Encrypt (or decrypt) `src` (whole data units of `unit` bytes, the first with tweak
 * `firstTweak`, then +1 each) into a new Buffer. `key` is the 64-byte XTS key K1 || K2.
 */
export function xtsBulk(key: Buffer, src: Buffer, unit: number, firstTweak: number, encrypt: boolean): Buffer {
  const len = src.length;
  if (len === 0) return Buffer.alloc(0);
  if (unit % 16 !== 0 || len % unit !== 0) throw new Error('xts: whole 16-byte-multiple data units only');
  const units = len / unit;
  const mask = masks(key.subarray(32, 64), units, unit, firstTweak);

  // work = src xor mask, in an aligned buffer of our own.
  const work = Buffer.allocUnsafeSlow(len);
  src.copy(work);
  xorInto(new Uint32Array(work.buffer, work.byteOffset, len >>> 2), mask);

  const k1 = key.subarray(0, 32);
  const c = encrypt ? createCipheriv('aes-256-ecb', k1, null) : createDecipheriv('aes-256-ecb', k1, null);
  c.setAutoPadding(false);
  const head = c.update(work);
  const tail = c.final();
  let out = tail.length === 0 ? head : Buffer.concat([head, tail]);
  if (out.length !== len) throw new Error('aes-256-ecb: short output');
  if (out.byteOffset % 4 !== 0) out = Buffer.from(out);
  xorInto(new Uint32Array(out.buffer, out.byteOffset, len >>> 2), mask);
  return out;
}

/** T_j for every 16-byte lane of every data unit, as 32-bit little-endian words. */
function masks(k2: Buffer, units: number, unit: number, firstTweak: number): Uint32Array {
  const tweaks = Buffer.alloc(units * 16);
  for (let i = 0; i < units; i++) tweaks.writeBigUInt64LE(BigInt(firstTweak + i), i * 16);
  const c = createCipheriv('aes-256-ecb', k2, null);
  c.setAutoPadding(false);
  let t0s = Buffer.concat([c.update(tweaks), c.final()]);
  if (t0s.byteOffset % 4 !== 0) t0s = Buffer.from(t0s);
  const t = new Uint32Array(t0s.buffer, t0s.byteOffset, units * 4);

  const lanes = unit / 16;
  const m = new Uint32Array((units * unit) >>> 2);
  let w = 0;
  for (let u = 0; u < units; u++) {
    let a = t[u * 4];
    let b = t[u * 4 + 1];
    let c2 = t[u * 4 + 2];
    let d = t[u * 4 + 3];
    for (let q = 0; q < lanes; q++) {
      m[w++] = a;
      m[w++] = b;
      m[w++] = c2;
      m[w++] = d;
      // Multiply by x: shift the 128-bit little-endian value left by one; the bit shifted
      // out of the top folds back in as 0x87 (x^128 = x^7 + x^2 + x + 1).
      const carry = d >>> 31;
      d = ((d << 1) | (c2 >>> 31)) >>> 0;
      c2 = ((c2 << 1) | (b >>> 31)) >>> 0;
      b = ((b << 1) | (a >>> 31)) >>> 0;
      a = ((a << 1) ^ (0x87 & -carry)) >>> 0;
    }
  }
  t0s.fill(0);
  return m;
}

function xorInto(dst: Uint32Array, mask: Uint32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i] ^= mask[i];
}
