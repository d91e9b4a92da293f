// Logical block provisioning (SBC-3 §4.7): every decision about it in one place, read by
// READ CAPACITY(16) (LBPME, LBPRZ), VPD 0xB2 (LBPU, LBPWS, LBPWS10, LBPRZ, provisioning
// type), VPD 0xB0 (the UNMAP limits), UNMAP, WRITE SAME with UNMAP and GET LBA STATUS.
//
// Volumes are thin: a sparse file whose blocks are allocated on first write, and UNMAP /
// WRITE SAME (UNMAP) give space back by punching holes. Every backstore makes an unmapped
// range read back as zeros (punching, or writing zeros where it cannot punch), so LBPRZ is
// honest for all of them. A fully provisioned ("thick") volume is for later (issue 5): it
// would answer here with type 0 and no unmap support.

import { LIMITS } from './limits';
import type { LogicalUnit } from './logical-unit';

export const enum ProvisioningType {
  Full = 0,
  Resource = 1,
  Thin = 2,
}

export interface Provisioning {
  /** LBPME: logical block provisioning management enabled. */
  readonly lbpme: boolean;
  /** LBPRZ: an unmapped block reads as zeros. */
  readonly lbprz: boolean;
  /** LBPU: UNMAP is supported. */
  readonly lbpu: boolean;
  /** LBPWS / LBPWS10: WRITE SAME(16) / (10) with the UNMAP bit deallocates. */
  readonly lbpws: boolean;
  readonly lbpws10: boolean;
  /** ANC_SUP: anchored blocks (never). */
  readonly anchorSupported: boolean;
  readonly type: ProvisioningType;
}

const THIN: Provisioning = Object.freeze({
  lbpme: true,
  lbprz: true,
  lbpu: true,
  lbpws: true,
  lbpws10: true,
  anchorSupported: false,
  type: ProvisioningType.Thin,
});

/** How a logical unit is provisioned. */
export function provisioningOf(_lu: LogicalUnit): Provisioning {
  return THIN;
}

/**
 * Logical blocks per physical block (2^LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT in READ
 * CAPACITY(16)); LOWEST ALIGNED LBA is always 0.
 */
export function logicalBlocksPerPhysicalBlock(lu: LogicalUnit): number {
  return Math.max(1, Math.floor(lu.physicalBlockSize / lu.blockSize));
}

/** READ CAPACITY(16) byte 13, low nibble. */
export function physicalBlockExponent(lu: LogicalUnit): number {
  return Math.log2(logicalBlocksPerPhysicalBlock(lu));
}

/**
 * The unit in which UNMAP / WRITE SAME (UNMAP) can really deallocate, in blocks, aligned to
 * LBA 0: the larger of the physical block and the filesystem block a hole is punched in.
 * A range that covers only part of one is not deallocated there: UNMAP zeros those blocks
 * (LBPRZ), WRITE SAME writes its data, and GET LBA STATUS reports them mapped.
 */
export function unmapGranularity(lu: LogicalUnit): number {
  return Math.max(logicalBlocksPerPhysicalBlock(lu), Math.floor(LIMITS.unmapGranularityBytes / lu.blockSize), 1);
}

/** The UNMAP-related fields of VPD 0xB0, in blocks. */
export function unmapLimits(lu: LogicalUnit): {
  maxLbaCount: number;
  maxDescriptors: number;
  granularity: number;
  granularityAlignment: number;
} {
  if (!provisioningOf(lu).lbpu) return { maxLbaCount: 0, maxDescriptors: 0, granularity: 0, granularityAlignment: 0 };
  return {
    maxLbaCount: LIMITS.maxUnmapBlocks,
    maxDescriptors: LIMITS.maxUnmapDescriptors,
    // A granularity of one block is no hint at all: report it as 0 (not reported).
    // Saying 1 also makes qemu 7.x's iscsi driver, which derives its allocation-map
    // cluster from this field, probe 4 KiB-block LUNs with unaligned lengths and abort.
    granularity: unmapGranularity(lu) > 1 ? unmapGranularity(lu) : 0,
    granularityAlignment: 0, // = LOWEST ALIGNED LBA
  };
}
