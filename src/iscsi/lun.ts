// SAM LUN field <-> LUN number. We address LUNs 0..255 with the peripheral device
// method (byte 0 = 0x00) and 256..16383 with the flat space method (0x40 | high bits).

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

export function encodeLun(lun: number): bigint {
  const first = lun < 256 ? lun : 0x4000 | (lun & 0x3fff);
  return BigInt(first) << 48n;
}
