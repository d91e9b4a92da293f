// The one interface every volume store implements. A backstore sees byte ranges
// only: no SCSI, no iSCSI. Errors are thrown as Node errors with their `code`
// (EIO, ENOSPC, ...); the SCSI core maps them to sense data.

import type { MappedView } from './file-mapping';

/** What mapStatus() reports about the bytes from an offset on. */
export interface ExtentStatus {
  /** True when the range is allocated (holds data); false when it is a hole. */
  mapped: boolean;
  /** How many bytes from the offset share that status (> 0, at most the length asked). */
  length: number;
}

/**
 * What read() or write() returns when the I/O already completed before the call returned
 * (small requests on a memory filesystem, page-cache hits): the SCSI core then answers the
 * command in the same turn, without a promise hop per layer.
 */
export const DONE_INLINE: Promise<void> = Promise.resolve();

export interface Backstore {
  /** Human-readable location: the file or device path, or "memory". */
  readonly path: string;
  /** Current size in bytes (a multiple of the volume's block size). */
  readonly size: number;
  readonly readonly: boolean;
  /** Fill `buf` completely from byte `offset`. Short reads past EOF read zeros. */
  read(buf: Buffer, offset: number): Promise<void>;
  /**
   * Only on stores whose medium is memory (a file on tmpfs): a read-only view of
   * [offset, offset + length) over the store's own pages, for a READ to send without
   * copying it first, or null when that range must be read with read(). Writes to the
   * range wait until the view is released, so `release` must be called once the bytes
   * have been sent (or will never be).
   */
  readView?(offset: number, length: number): MappedView | null;
  /** Write all of `buf` at byte `offset`. */
  write(buf: Buffer, offset: number): Promise<void>;
  /**
   * Deallocate [offset, offset + length) where the store can (punch a hole, discard), and
   * make the range read back as zeros in every case (writing zeros where it cannot).
   */
  unmap(offset: number, length: number): Promise<void>;
  /**
   * Allocation status of the bytes from `offset` (at most `length` of them), for GET LBA
   * STATUS. A store that cannot tell leaves it out: everything then counts as mapped.
   */
  mapStatus?(offset: number, length: number): Promise<ExtentStatus>;
  /**
   * Only on stores that encrypt (encrypted.ts): replace the key so that nothing written
   * before can be read back (SANITIZE CRYPTOGRAPHIC ERASE). Absent: no crypto erase.
   */
  cryptoErase?(): Promise<void>;
  /**
   * Only on stores that can grow while open (a regular file, and layers over one): extend
   * to `size` bytes, sparsely; never shrinks. Absent: the size is fixed (block devices,
   * memory volumes).
   */
  readonly grow?: (size: number) => Promise<void>;
  /**
   * The regular file behind the store, under any layers: state that belongs to the volume
   * is kept beside it (persistent reservations with APTPL). Absent: no such file.
   */
  readonly file?: string;
  /**
   * Only on stores that keep metadata with the data itself (RBD image metadata): state that
   * every gateway serving the volume must agree on, such as its identity. Absent: none.
   */
  getMetadata?(key: string): Promise<string | undefined>;
  setMetadata?(key: string, value: string): Promise<void>;
  /** With metadata: a name of the volume that every gateway computes alike (RBD: fsid/pool id/image id). */
  uniqueId?(): string;
  /**
   * COMPARE AND WRITE done by the store as one atomic operation (RBD: in the OSD, so across
   * gateways): null when `cmp` matched what [offset, offset + cmp.length) holds and `data`
   * was written, else the offset from `offset` of the first differing byte (nothing written).
   * Absent: the SCSI core reads, compares and writes under its own range lock.
   */
  compareAndWrite?(cmp: Buffer, data: Buffer, offset: number): Promise<{ mismatchOffset: number } | null>;
  /** WRITE SAME done by the store: `block` repeated over [offset, offset + length). Absent: the core writes chunks. */
  writeSame?(block: Buffer, offset: number, length: number): Promise<void>;
  /**
   * Only on stores whose size someone else can change (RBD: another gateway grows the
   * image): `listener` runs after `size` changed that way. A grow through this store's own
   * grow() may call it too. Resolves once watching.
   */
  watchSize?(listener: () => void): Promise<void>;
  /** Make every completed write durable (fdatasync). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** Zeros for stores that write them where they cannot deallocate. */
export const ZERO_CHUNK_BYTES = 1024 * 1024;
let zeroChunk: Buffer | null = null;

/** Write zeros over [offset, offset + length) with `write`, a megabyte at a time. */
export async function writeZeros(write: (buf: Buffer, offset: number) => Promise<void>, offset: number, length: number): Promise<void> {
  zeroChunk ??= Buffer.alloc(ZERO_CHUNK_BYTES);
  for (let done = 0; done < length;) {
    const n = Math.min(length - done, ZERO_CHUNK_BYTES);
    await write(n === ZERO_CHUNK_BYTES ? zeroChunk : zeroChunk.subarray(0, n), offset + done);
    done += n;
  }
}
