// The SAM-5 LUN field (§4.7) <-> LUN number, the one codec for both the transport (the
// 8-byte LUN of a PDU, as a bigint) and the SCSI core (REPORT LUNS entries). LUNs 0..255
// use the peripheral device method (byte 0 = 0x00), 256..16383 the flat space method
// (0x40 | high bits); both decode, single level only.

/** Decode the 8-byte LUN field; returns -1 for an addressing method we do not serve. */
export function decodeLun(raw: bigint): number {
  const first = Number(raw >> 48n) & 0xffff;
  const method = first >> 14;
  if (method === 0 || method === 1) {
    // Only single-level LUNs: the remaining six bytes must be zero.
    if ((raw & 0xffffffffffffn) !== 0n) return -1;
    return first & 0x3fff;
  }
  return -1;
}

/** The 8-byte LUN field of a LUN number, as the bigint the PDU codec carries. */
export function encodeLun(lun: number): bigint {
  const first = lun < 256 ? lun : 0x4000 | (lun & 0x3fff);
  return BigInt(first) << 48n;
}

/** The 8-byte LUN field of a LUN number, written at `at` of `buf` (REPORT LUNS). */
export function writeLunField(buf: Buffer, lun: number, at: number): void {
  buf.writeBigUInt64BE(encodeLun(lun), at);
}
