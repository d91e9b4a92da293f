// CRC32C (Castagnoli) digests for iSCSI header and data digests (RFC 7143 §13.1,
// Appendix B.4). The checksum itself comes from @node-rs/crc32, which uses the
// SSE4.2 / ARMv8 CRC instructions; there is no JS table loop here.
//
// On the wire a digest travels least-significant byte first: the RFC's example of
// 32 zero bytes has CRC 0x8a9136aa and is transmitted as `aa 36 91 8a`.

import { crc32c as nativeCrc32c } from '@node-rs/crc32';

/** Size of a header or data digest on the wire. */
export const DIGEST_LENGTH = 4;

/**
 * CRC32C of `buf`. Pass the result of a previous call as `init` to continue the
 * checksum over a further buffer: `crc32c(b, crc32c(a)) === crc32c(concat(a, b))`.
 */
export function crc32c(buf: Uint8Array, init = 0): number {
  return nativeCrc32c(buf, init) >>> 0;
}

/** CRC32C over several buffers taken as one byte stream. */
export function crc32cOf(bufs: readonly Uint8Array[]): number {
  let crc = 0;
  for (let i = 0; i < bufs.length; i++) crc = nativeCrc32c(bufs[i], crc);
  return crc >>> 0;
}

/** Write a digest value at `offset` in wire order (little-endian). Returns the offset after it. */
export function writeDigest(buf: Buffer, offset: number, value: number): number {
  return buf.writeUInt32LE(value >>> 0, offset);
}

/** Read a digest value stored at `offset` in wire order (little-endian). */
export function readDigest(buf: Buffer, offset: number): number {
  return buf.readUInt32LE(offset);
}

/** A fresh 4-byte buffer holding `value` in wire order. */
export function digestBytes(value: number): Buffer {
  const b = Buffer.allocUnsafe(DIGEST_LENGTH);
  b.writeUInt32LE(value >>> 0, 0);
  return b;
}

/** True when the 4 bytes at `offset` of `buf` are the CRC32C of `covered`. */
export function verifyDigest(covered: Uint8Array, buf: Buffer, offset: number): boolean {
  return buf.readUInt32LE(offset) === crc32c(covered);
}
