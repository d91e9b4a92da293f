// Constants that describe our logical units to initiators: inquiry strings, the made-up
// company id of our NAA designators, and the block limits (VPD 0xB0) we advertise and
// enforce. Kept free of imports so every SCSI module can use it without import cycles.

/** Block limits we advertise (VPD 0xB0) and enforce. */
export const LIMITS = {
  /** MAXIMUM TRANSFER LENGTH, in bytes (converted to blocks per LU). */
  maxTransferBytes: 16 * 1024 * 1024,
  /** OPTIMAL TRANSFER LENGTH, in bytes. */
  optimalTransferBytes: 1024 * 1024,
  /** MAXIMUM COMPARE AND WRITE LENGTH, in blocks (one byte in VPD 0xB0). */
  maxCompareAndWriteBlocks: 255,
  /** MAXIMUM WRITE SAME LENGTH, in bytes. */
  maxWriteSameBytes: 256 * 1024 * 1024,
  /** MAXIMUM UNMAP LBA COUNT: blocks one UNMAP may deallocate in all (libiscsi deems > 2^20 insane). */
  maxUnmapBlocks: 1024 * 1024,
  /** MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT. */
  maxUnmapDescriptors: 1024,
  /** OPTIMAL UNMAP GRANULARITY, in bytes: the filesystem block a hole is punched in. */
  unmapGranularityBytes: 4096,
  /** MAXIMUM ATOMIC TRANSFER LENGTH, in bytes (never above MAXIMUM TRANSFER LENGTH). */
  maxAtomicTransferBytes: 16 * 1024 * 1024,
} as const;

/** A made-up IEEE company id (24 bits, with the locally-administered bit set) for NAA designators. */
export const COMPANY_ID = 0x0a15c5;

/** T10 vendor identification (8 ASCII characters). */
export const VENDOR_ID = 'ISCSI-TS';
/** Product identification (up to 16 ASCII characters, space padded). */
export const PRODUCT_ID = 'VIRTUAL-DISK';
/** Product revision level (4 ASCII characters). */
export const PRODUCT_REVISION = '0001';
