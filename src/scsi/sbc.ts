// SBC-3 block commands: READ CAPACITY 10/16, READ and WRITE 6/10/12/16, VERIFY
// 10/12/16, WRITE AND VERIFY 10/12/16, WRITE SAME 10/16, ORWRITE(16), COMPARE AND WRITE,
// SYNCHRONIZE CACHE 10/16, PRE-FETCH 10/16, READ DEFECT DATA 10/12, START STOP UNIT and
// PREVENT ALLOW MEDIUM REMOVAL; thin provisioning (UNMAP, WRITE SAME with UNMAP, GET LBA
// STATUS; decisions in provisioning.ts) and WRITE ATOMIC(16). SANITIZE is in sanitize.ts.
//
// Atomicity: every write takes a shared hold on its LBA range in the LU's range lock, and
// so does every read; COMPARE AND WRITE, ORWRITE and WRITE ATOMIC(16) take an exclusive
// hold, so no other command (from any session) sees or makes a half-done one.
//
// Each command has its own exported handler (read16, write16, ...) that decodes its CDB
// and calls the shared implementation (doRead, doWrite, ...).
//
// Transfer length vs the initiator's Expected Data Transfer Length (what libiscsi's
// iSCSIResiduals tests expect): the CDB is authoritative. A READ returns the CDB's length
// (the transport sends what fits and reports the residual). A WRITE writes the whole
// blocks the initiator actually sent, up to the CDB's length, and reports the CDB's
// length as dataOutLength so the transport can report the residual.
//
// LBAs are 64-bit: an LBA(16) above 2^53 is not exact as a JS number, but it is far
// beyond any capacity we can have (< 2^53 bytes), so `lba + count > blocks` still holds.

import type { LogicalUnit } from './logical-unit';
import type { Release } from './range-lock';
import { DONE_INLINE } from '../backstore/backstore';
import { LIMITS } from './limits';
import { dataBuffers } from './buffer-pool';
import { physicalBlockExponent, provisioningOf, unmapLimits } from './provisioning';
import {
  ASC,
  checkCondition,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  invalidOpcode,
  lbaOutOfRange,
  parameterListLengthError,
  SenseKey,
} from './sense';
import { ScsiStatus, type ScsiResult, type ScsiTask } from './task';

const EMPTY = Buffer.alloc(0);
/** Chunk size for commands that touch many blocks without a data buffer of that size. */
const CHUNK_BYTES = 1024 * 1024;

function good(): ScsiResult {
  return { status: ScsiStatus.Good };
}

function lba64(c: Buffer, at: number): number {
  return c.readUInt32BE(at) * 0x1_0000_0000 + c.readUInt32BE(at + 4);
}

/** LOGICAL BLOCK ADDRESS OUT OF RANGE unless [lba, lba + count) lies within the medium. */
function checkRange(lu: LogicalUnit, lba: number, count: number): void {
  if (lba + count > lu.blockCount) throw lbaOutOfRange();
}

/** A transfer longer than MAXIMUM TRANSFER LENGTH: INVALID FIELD IN CDB at the length field. */
function checkTransferLength(lu: LogicalUnit, count: number, lengthByte: number): void {
  if (count > lu.maxTransferBlocks) throw invalidFieldInCdb(lengthByte);
}

/** RDPROTECT / WRPROTECT / VRPROTECT / ORPROTECT: we have no protection information. */
function checkNoProtection(c: Buffer): void {
  if (c[1] & 0xe0) throw invalidFieldInCdb(1, 7);
}

// ================================================================== READ CAPACITY

/** READ CAPACITY(10): last LBA (0xFFFFFFFF when it does not fit) and block length. */
export function readCapacity10(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  const pmi = (c[8] & 0x01) !== 0;
  if (!pmi && c.readUInt32BE(2) !== 0) throw invalidFieldInCdb(2);
  const last = lu.blockCount - 1;
  const b = Buffer.alloc(8);
  b.writeUInt32BE(last > 0xfffffffe ? 0xffffffff : last, 0);
  b.writeUInt32BE(lu.blockSize, 4);
  return { status: ScsiStatus.Good, data: b };
}

/** READ CAPACITY(16) (SERVICE ACTION IN(16) / 0x10). */
export function readCapacity16(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const alloc = task.cdb.readUInt32BE(10);
  const b = Buffer.alloc(32);
  b.writeBigUInt64BE(BigInt(lu.blockCount - 1), 0);
  b.writeUInt32BE(lu.blockSize, 8);
  // 12: P_TYPE / PROT_EN = 0; 13: P_I_EXPONENT 0, LOGICAL BLOCKS PER PHYSICAL BLOCK EXPONENT
  // (provisioning.ts); 14..15: LBPME, LBPRZ (provisioning.ts), LOWEST ALIGNED LBA 0.
  b[13] = physicalBlockExponent(lu) & 0x0f;
  const prov = provisioningOf(lu);
  b[14] = (prov.lbpme ? 0x80 : 0) | (prov.lbprz ? 0x40 : 0);
  return { status: ScsiStatus.Good, data: alloc < b.length ? b.subarray(0, alloc) : b };
}

// ================================================================== READ

export function read6(lu: LogicalUnit, task: ScsiTask): ScsiResult | Promise<ScsiResult> {
  const c = task.cdb;
  const lba = ((c[1] & 0x1f) << 16) | c.readUInt16BE(2);
  const blocks = c[4] === 0 ? 256 : c[4]; // READ(6): 0 means 256 blocks
  return doRead(lu, task, lba, blocks, 4);
}

export function read10(lu: LogicalUnit, task: ScsiTask): ScsiResult | Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doRead(lu, task, c.readUInt32BE(2), c.readUInt16BE(7), 7);
}

export function read12(lu: LogicalUnit, task: ScsiTask): ScsiResult | Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doRead(lu, task, c.readUInt32BE(2), c.readUInt32BE(6), 6);
}

export function read16(lu: LogicalUnit, task: ScsiTask): ScsiResult | Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doRead(lu, task, lba64(c, 2), c.readUInt32BE(10), 10);
}

/**
 * Read `blocks` blocks at `lba` into one buffer of the transfer size. DPO and FUA need
 * nothing: we keep no cache of our own, and the page cache is coherent with the medium.
 */
function doRead(lu: LogicalUnit, task: ScsiTask, lba: number, blocks: number, lengthByte: number): ScsiResult | Promise<ScsiResult> {
  checkRange(lu, lba, blocks);
  checkTransferLength(lu, blocks, lengthByte);
  if (blocks === 0) return { status: ScsiStatus.Good, data: EMPTY };
  const bs = lu.blockSize;
  const len = blocks * bs;
  if (task.sendsViews === true && task.expectedLength >= len && lu.backstore.readView !== undefined) {
    const view = mappedRead(lu, lba, blocks, len);
    if (view !== null) return view;
  }
  // From the pool: the transport gives it back once the Data-In has been sent.
  const buf = dataBuffers.take(len);
  // When the initiator expects less than the CDB asks for, only that much is sent: read
  // just the blocks that cover it (the rest of the buffer is never transferred).
  let readLen = len;
  if (task.expectedLength < len) {
    readLen = Math.ceil(task.expectedLength / bs) * bs;
    buf.fill(0, readLen);
  }
  const result: ScsiResult = { status: ScsiStatus.Good, data: buf };
  if (readLen === 0) return result;
  const into = readLen === len ? buf : buf.subarray(0, readLen);
  // A shared hold: never waits for other reads or plain writes, only for an atomic one.
  const held = lu.writeLock.acquire(lba, readLen / bs, false);
  if (typeof held !== 'function')
    return held.then((release) => settle(lu, startIo(lu, 'read', lba, release, into, lba * bs), release, 'read', lba, result));
  const io = startIo(lu, 'read', lba, held, into, lba * bs);
  if (io === DONE_INLINE) {
    // Served inline (memory filesystem, page cache): answer in this turn, no promise hops.
    held();
    return result;
  }
  return settle(lu, io, held, 'read', lba, result);
}

/**
 * A large read on a memory filesystem: the data is a view of the volume's pages, sent
 * without a copy into a buffer first; null when the store wants a plain read. The shared
 * range hold is kept until the transport releases the view, so an atomic write (COMPARE
 * AND WRITE, ORWRITE) cannot change the blocks under a READ still being sent.
 */
function mappedRead(lu: LogicalUnit, lba: number, blocks: number, len: number): ScsiResult | null {
  const held = lu.writeLock.acquire(lba, blocks, false);
  if (typeof held !== 'function') {
    // An atomic write holds part of the range: wait for it the ordinary way.
    held.then(
      (release) => release(),
      () => undefined,
    );
    return null;
  }
  let view;
  try {
    view = lu.backstore.readView!(lba * lu.blockSize, len);
  } catch {
    view = null; // the hole check failed: read() reports the error properly
  }
  if (view === null) {
    held();
    return null;
  }
  const release = view.release;
  return {
    status: ScsiStatus.Good,
    data: view.data,
    release: () => {
      release();
      held();
    },
  };
}

/** Start a backstore request under a range hold; a synchronous throw releases the hold. */
function startIo(
  lu: LogicalUnit,
  op: 'read' | 'write',
  lba: number,
  release: Release,
  buf: Buffer,
  at: number,
  task?: ScsiTask,
): Promise<void> {
  try {
    if (op === 'read') return lu.backstore.read(buf, at);
    if (task) lu.writeAge?.check(task);
    return lu.backstore.write(buf, at);
  } catch (err) {
    release();
    throw lu.ioError(err, op, lba);
  }
}

/** Wait for a backstore request, release its range hold, and map its error to sense data. */
async function settle<T>(lu: LogicalUnit, io: Promise<void>, release: Release, op: 'read' | 'write', lba: number, value: T): Promise<T> {
  try {
    await io;
  } catch (err) {
    throw lu.ioError(err, op, lba);
  } finally {
    release();
  }
  return value;
}

// ================================================================== WRITE

export function write6(lu: LogicalUnit, task: ScsiTask): ScsiResult | Promise<ScsiResult> {
  const c = task.cdb;
  const lba = ((c[1] & 0x1f) << 16) | c.readUInt16BE(2);
  const blocks = c[4] === 0 ? 256 : c[4]; // WRITE(6): 0 means 256 blocks
  return doWrite(lu, task, lba, blocks, false, 4);
}

export function write10(lu: LogicalUnit, task: ScsiTask): ScsiResult | Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doWrite(lu, task, c.readUInt32BE(2), c.readUInt16BE(7), (c[1] & 0x08) !== 0, 7);
}

export function write12(lu: LogicalUnit, task: ScsiTask): ScsiResult | Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doWrite(lu, task, c.readUInt32BE(2), c.readUInt32BE(6), (c[1] & 0x08) !== 0, 6);
}

/** WRITE(16): LBA in bytes 2..9, TRANSFER LENGTH in bytes 10..13, FUA in byte 1 bit 3. */
export function write16(lu: LogicalUnit, task: ScsiTask): ScsiResult | Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doWrite(lu, task, lba64(c, 2), c.readUInt32BE(10), (c[1] & 0x08) !== 0, 10);
}

/** The part of the Data-Out that holds whole blocks, at most `blocks` of them. */
function wholeBlocks(lu: LogicalUnit, task: ScsiTask, blocks: number): Buffer {
  const data = task.dataOut;
  if (data === null || blocks === 0) return EMPTY;
  const bs = lu.blockSize;
  let n = Math.min(data.length, blocks * bs);
  n -= n % bs;
  return n === data.length ? data : data.subarray(0, n);
}

/**
 * Write the Data-Out at `lba` straight from the task's buffer. With FUA, or with the
 * write cache disabled (WCE = 0), the data is made durable (fdatasync) before status.
 */
function doWrite(
  lu: LogicalUnit,
  task: ScsiTask,
  lba: number,
  blocks: number,
  fua: boolean,
  lengthByte: number,
): ScsiResult | Promise<ScsiResult> {
  checkRange(lu, lba, blocks);
  checkTransferLength(lu, blocks, lengthByte);
  const result: ScsiResult = { status: ScsiStatus.Good, dataOutLength: blocks * lu.blockSize };
  const data = wholeBlocks(lu, task, blocks);
  if (data.length === 0) return result;
  const pending = writeBlocks(lu, task, lba, data, fua);
  return pending === undefined ? result : pending.then(() => result);
}

/**
 * Write whole blocks under a shared range hold (so COMPARE AND WRITE stays atomic).
 * Returns undefined when the write completed inline and needs no flush.
 */
function writeBlocks(lu: LogicalUnit, task: ScsiTask, lba: number, data: Buffer, fua: boolean): Promise<void> | undefined {
  const count = data.length / lu.blockSize;
  const at = lba * lu.blockSize;
  const sync = fua || !lu.writeCacheEnabled;
  const held = lu.writeLock.acquire(lba, count, false);
  if (typeof held !== 'function') {
    return held
      .then((release) => settle(lu, startIo(lu, 'write', lba, release, data, at, task), release, 'write', lba, undefined))
      .then(() => (sync ? flush(lu) : undefined));
  }
  const io = startIo(lu, 'write', lba, held, data, at, task);
  if (io === DONE_INLINE) {
    held();
    return sync ? flush(lu) : undefined;
  }
  const written = settle(lu, io, held, 'write', lba, undefined);
  return sync ? written.then(() => flush(lu)) : written;
}

async function flush(lu: LogicalUnit): Promise<void> {
  try {
    await lu.backstore.flush();
  } catch (err) {
    throw lu.ioError(err, 'flush');
  }
}

// ================================================================== VERIFY

export function verify10(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doVerify(lu, task, c.readUInt32BE(2), c.readUInt16BE(7), bytchk(c), 7);
}

export function verify12(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doVerify(lu, task, c.readUInt32BE(2), c.readUInt32BE(6), bytchk(c), 6);
}

export function verify16(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doVerify(lu, task, lba64(c, 2), c.readUInt32BE(10), bytchk(c), 10);
}

/** BYTCHK (byte 1 bits 2..1): 00b no compare, 01b compare all, 11b one block for all. */
function bytchk(c: Buffer): number {
  const v = (c[1] >> 1) & 0x03;
  if (v === 2) throw invalidFieldInCdb(1, 2);
  return v;
}

function miscompare(offset: number): never {
  throw checkCondition(SenseKey.Miscompare, ASC.MISCOMPARE_DURING_VERIFY, { info: offset });
}

/** Index of the first byte where a and b (same length) differ, or -1. */
function firstDifference(a: Buffer, b: Buffer): number {
  if (a.equals(b)) return -1;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/**
 * VERIFY: BYTCHK 0 reads the range back from the medium (a medium error is reported as
 * such); BYTCHK 1 compares it with the Data-Out; BYTCHK 3 compares every block with the
 * single block sent. A difference is MISCOMPARE with the byte offset in INFORMATION.
 */
async function doVerify(
  lu: LogicalUnit,
  task: ScsiTask,
  lba: number,
  blocks: number,
  check: number,
  lengthByte: number,
): Promise<ScsiResult> {
  checkRange(lu, lba, blocks);
  checkTransferLength(lu, blocks, lengthByte);
  const bs = lu.blockSize;
  const dataOutLength = check === 0 ? undefined : check === 1 ? blocks * bs : blocks > 0 ? bs : 0;
  const result: ScsiResult = dataOutLength === undefined ? { status: ScsiStatus.Good } : { status: ScsiStatus.Good, dataOutLength };
  if (blocks === 0) return result;

  let compareBlocks = blocks; // how many blocks we can check
  let pattern: Buffer | null = null;
  let data: Buffer | null = null;
  if (check === 1) {
    data = wholeBlocks(lu, task, blocks);
    compareBlocks = data.length / bs;
  } else if (check === 3) {
    const d = task.dataOut;
    if (d === null || d.length < bs) compareBlocks = 0;
    else pattern = d.subarray(0, bs);
  }
  if (check !== 0 && compareBlocks === 0) return result;

  const chunkBlocks = Math.max(1, Math.floor(CHUNK_BYTES / bs));
  const chunk = Buffer.allocUnsafe(Math.min(compareBlocks, chunkBlocks) * bs);
  for (let done = 0; done < compareBlocks;) {
    const n = Math.min(compareBlocks - done, chunkBlocks);
    const buf = n * bs === chunk.length ? chunk : chunk.subarray(0, n * bs);
    try {
      await lu.backstore.read(buf, (lba + done) * bs);
    } catch (err) {
      throw lu.ioError(err, 'read', lba + done);
    }
    if (data !== null) {
      const at = firstDifference(buf, data.subarray(done * bs, (done + n) * bs));
      if (at >= 0) miscompare(done * bs + at);
    } else if (pattern !== null) {
      for (let i = 0; i < n; i++) {
        const at = firstDifference(buf.subarray(i * bs, (i + 1) * bs), pattern);
        if (at >= 0) miscompare((done + i) * bs + at);
      }
    }
    done += n;
  }
  return result;
}

// ================================================================== WRITE AND VERIFY

export function writeAndVerify10(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doWriteAndVerify(lu, task, c.readUInt32BE(2), c.readUInt16BE(7), 7);
}

export function writeAndVerify12(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doWriteAndVerify(lu, task, c.readUInt32BE(2), c.readUInt32BE(6), 6);
}

export function writeAndVerify16(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  return doWriteAndVerify(lu, task, lba64(c, 2), c.readUInt32BE(10), 10);
}

/**
 * WRITE AND VERIFY: write, make it durable, read it back from the medium and compare
 * with what was sent (BYTCHK 0 and 1 both end up comparing: the data is at hand).
 */
async function doWriteAndVerify(lu: LogicalUnit, task: ScsiTask, lba: number, blocks: number, lengthByte: number): Promise<ScsiResult> {
  const c = task.cdb;
  if (((c[1] >> 1) & 0x03) > 1) throw invalidFieldInCdb(1, 2); // BYTCHK 10b/11b
  checkRange(lu, lba, blocks);
  checkTransferLength(lu, blocks, lengthByte);
  const result: ScsiResult = { status: ScsiStatus.Good, dataOutLength: blocks * lu.blockSize };
  const data = wholeBlocks(lu, task, blocks);
  if (data.length === 0) return result;
  await writeBlocks(lu, task, lba, data, true);
  const back = Buffer.allocUnsafe(data.length);
  try {
    await lu.backstore.read(back, lba * lu.blockSize);
  } catch (err) {
    throw lu.ioError(err, 'read', lba);
  }
  const at = firstDifference(back, data);
  if (at >= 0) miscompare(at);
  return result;
}

// ================================================================== WRITE SAME

/**
 * WRITE SAME(10): the one block of Data-Out written to NUMBER OF LOGICAL BLOCKS blocks.
 * With UNMAP (LBPWS10) the blocks are deallocated instead (SBC-4 table "ANCHOR bit, UNMAP
 * bit and ANC_SUP bit relationships": UNMAP = 1, ANCHOR = 0 is an unmap operation,
 * whatever the block holds); they then read as zeros (LBPRZ). Only whole unmap granules
 * (provisioning.ts unmapGranularity) are deallocated; the blocks of a granule covered in
 * part are zeroed and stay mapped, and GET LBA STATUS says so.
 */
export function writeSame10(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  if (c[1] & 0x10) throw invalidFieldInCdb(1, 4); // ANCHOR: ANC_SUP = 0
  const unmap = (c[1] & 0x08) !== 0;
  if (unmap && !provisioningOf(lu).lbpws10) throw invalidFieldInCdb(1, 3);
  if (c[1] & 0x06) throw invalidFieldInCdb(1, 2); // PBDATA / LBDATA (obsolete)
  return doWriteSame(lu, task, c.readUInt32BE(2), c.readUInt16BE(7), false, unmap, 7);
}

/** WRITE SAME(16), with NDOB (no Data-Out: zeros) and UNMAP (LBPWS). */
export function writeSame16(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  if (c[1] & 0x10) throw invalidFieldInCdb(1, 4); // ANCHOR: ANC_SUP = 0
  const unmap = (c[1] & 0x08) !== 0;
  if (unmap && !provisioningOf(lu).lbpws) throw invalidFieldInCdb(1, 3);
  if (c[1] & 0x06) throw invalidFieldInCdb(1, 2); // obsolete bits
  return doWriteSame(lu, task, lba64(c, 2), c.readUInt32BE(10), (c[1] & 0x01) !== 0, unmap, 10);
}

async function doWriteSame(
  lu: LogicalUnit,
  task: ScsiTask,
  lba: number,
  blocks: number,
  ndob: boolean,
  unmap: boolean,
  lengthByte: number,
): Promise<ScsiResult> {
  checkRange(lu, lba, blocks);
  // WSNZ = 0: NUMBER OF LOGICAL BLOCKS 0 means "from LBA to the end of the medium".
  if (blocks === 0) blocks = lu.blockCount - lba;
  if (blocks > lu.maxWriteSameBlocks) throw invalidFieldInCdb(lengthByte);
  const bs = lu.blockSize;
  let block: Buffer | null = null;
  if (!ndob) {
    // Exactly one logical block of Data-Out.
    if (task.expectedLength !== bs || task.dataOut === null || task.dataOut.length < bs) {
      throw invalidFieldInCdb(lengthByte);
    }
    block = task.dataOut.subarray(0, bs);
  }
  const result: ScsiResult = { status: ScsiStatus.Good, dataOutLength: ndob ? 0 : bs };
  if (blocks === 0) return result; // LBA == capacity with "to the end": nothing to write

  // UNMAP: deallocate (the Data-Out block was still transferred and checked above).
  if (unmap) {
    await unmapBlocks(lu, task, lba, blocks);
    if (!lu.writeCacheEnabled) await flush(lu);
    return result;
  }

  if (lu.backstore.writeSame) {
    // One call to the store (RBD: writesame in the OSDs, not megabytes over the network).
    const held = lu.writeLock.acquire(lba, blocks, false);
    const release = typeof held === 'function' ? held : await held;
    try {
      lu.writeAge?.check(task);
      await lu.backstore.writeSame(block ?? Buffer.alloc(bs), lba * bs, blocks * bs);
    } catch (err) {
      throw lu.ioError(err, 'write', lba);
    } finally {
      release();
    }
    if (!lu.writeCacheEnabled) await flush(lu);
    return result;
  }

  const chunkBlocks = Math.min(blocks, Math.max(1, Math.floor(CHUNK_BYTES / bs)));
  const chunk = block === null || isZero(block) ? Buffer.alloc(chunkBlocks * bs) : Buffer.allocUnsafe(chunkBlocks * bs).fill(block);
  const held = lu.writeLock.acquire(lba, blocks, false);
  const release = typeof held === 'function' ? held : await held;
  try {
    for (let done = 0; done < blocks;) {
      const n = Math.min(blocks - done, chunkBlocks);
      try {
        lu.writeAge?.check(task);
        await lu.backstore.write(n === chunkBlocks ? chunk : chunk.subarray(0, n * bs), (lba + done) * bs);
      } catch (err) {
        throw lu.ioError(err, 'write', lba + done);
      }
      done += n;
    }
  } finally {
    release();
  }
  if (!lu.writeCacheEnabled) await flush(lu);
  return result;
}

function isZero(b: Buffer): boolean {
  for (let i = 0; i < b.length; i++) if (b[i] !== 0) return false;
  return true;
}

// ================================================================== UNMAP

/** Deallocate blocks under a shared range hold (like a write). */
async function unmapBlocks(lu: LogicalUnit, task: ScsiTask, lba: number, blocks: number): Promise<void> {
  const held = lu.writeLock.acquire(lba, blocks, false);
  const release = typeof held === 'function' ? held : await held;
  try {
    lu.writeAge?.check(task);
    await lu.backstore.unmap(lba * lu.blockSize, blocks * lu.blockSize);
  } catch (err) {
    throw lu.ioError(err, 'write', lba);
  } finally {
    release();
  }
}

/**
 * UNMAP: deallocate the blocks named by the parameter list's block descriptors. The list
 * is checked whole before anything is deallocated: descriptor count and total block count
 * within the VPD 0xB0 limits (else INVALID FIELD IN PARAMETER LIST), every range within
 * the medium (else LBA OUT OF RANGE). ANCHOR is refused (ANC_SUP = 0).
 */
export async function unmap(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  if (!provisioningOf(lu).lbpu) throw invalidOpcode();
  if (c[1] & 0x01) throw invalidFieldInCdb(1, 0); // ANCHOR
  const len = c.readUInt16BE(7);
  const result: ScsiResult = { status: ScsiStatus.Good, dataOutLength: len };
  if (len === 0) return result; // no parameter list: nothing to do
  if (len < 8) throw parameterListLengthError();
  const data = task.dataOut;
  if (data === null || data.length < len) throw parameterListLengthError();
  const p = data.subarray(0, len);
  // UNMAP DATA LENGTH (bytes 0..1) counts what follows it; BLOCK DESCRIPTOR DATA LENGTH
  // (2..3) the descriptors. A trailing partial descriptor is ignored, as SBC-3 says, and
  // so is anything the parameter list does not actually hold.
  const descBytes = Math.min(p.readUInt16BE(2), len - 8);
  const count = Math.floor(descBytes / 16);
  const limits = unmapLimits(lu);
  if (count > limits.maxDescriptors) throw invalidFieldInParameterList(2);

  const ranges: Array<[number, number]> = [];
  let total = 0;
  for (let i = 0; i < count; i++) {
    const at = 8 + 16 * i;
    const lba = lba64(p, at);
    const blocks = p.readUInt32BE(at + 8);
    checkRange(lu, lba, blocks);
    total += blocks;
    if (total > limits.maxLbaCount) throw invalidFieldInParameterList(at + 8);
    if (blocks > 0) ranges.push([lba, blocks]);
  }
  for (const [lba, blocks] of ranges) await unmapBlocks(lu, task, lba, blocks);
  if (ranges.length > 0 && !lu.writeCacheEnabled) await flush(lu);
  return result;
}

// ================================================================== GET LBA STATUS

/** LBA status descriptors we return at most in one GET LBA STATUS. */
const MAX_LBA_STATUS_DESCRIPTORS = 1024;

interface LbaExtent {
  lba: number;
  blocks: number;
  deallocated: boolean;
}

/**
 * The mapped / deallocated extents from `lba` on, as the store reports them (a file:
 * SEEK_DATA / SEEK_HOLE), in whole blocks: a block that is only partly allocated counts
 * as mapped. At most `max` extents; each at most 2^32 - 1 blocks long.
 */
export async function lbaExtents(lu: LogicalUnit, lba: number, max: number): Promise<LbaExtent[]> {
  const bs = lu.blockSize;
  const end = lu.blockCount;
  const store = lu.backstore;
  const out: LbaExtent[] = [];
  let cur = lba;
  for (let steps = 0; cur < end && steps < 4 * max + 64; steps++) {
    let next = end;
    let deallocated = false;
    if (store.mapStatus !== undefined) {
      let st;
      try {
        st = await store.mapStatus(cur * bs, (end - cur) * bs);
      } catch (err) {
        throw lu.ioError(err, 'read', cur);
      }
      const stop = cur * bs + Math.max(1, st.length);
      if (st.mapped) {
        next = Math.min(end, Math.ceil(stop / bs));
      } else if (Math.floor(stop / bs) > cur) {
        next = Math.min(end, Math.floor(stop / bs));
        deallocated = true;
      } else {
        next = cur + 1; // a hole smaller than a block: the block is (partly) mapped
      }
    }
    const last = out[out.length - 1];
    if (last && last.deallocated === deallocated && last.blocks + (next - cur) <= 0xffffffff) {
      last.blocks += next - cur;
    } else {
      if (out.length === max) break;
      out.push({ lba: cur, blocks: Math.min(next - cur, 0xffffffff), deallocated });
      next = cur + out[out.length - 1].blocks;
    }
    cur = next;
  }
  return out;
}

/**
 * GET LBA STATUS (SERVICE ACTION IN(16) / 0x12): mapped and deallocated extents from the
 * STARTING LOGICAL BLOCK ADDRESS on, as many as the allocation length holds.
 */
export async function getLbaStatus(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  const lba = lba64(c, 2);
  const alloc = c.readUInt32BE(10);
  if (lba >= lu.blockCount) throw lbaOutOfRange();
  const max = Math.max(1, Math.min(MAX_LBA_STATUS_DESCRIPTORS, Math.floor((alloc - 8) / 16)));
  const extents = await lbaExtents(lu, lba, max);
  const b = Buffer.alloc(8 + 16 * extents.length);
  b.writeUInt32BE(b.length - 4, 0); // PARAMETER DATA LENGTH
  extents.forEach((e, i) => {
    const at = 8 + 16 * i;
    b.writeBigUInt64BE(BigInt(e.lba), at);
    b.writeUInt32BE(e.blocks, at + 8);
    b[at + 12] = e.deallocated ? 0x01 : 0x00; // PROVISIONING STATUS: deallocated / mapped
  });
  return { status: ScsiStatus.Good, data: alloc < b.length ? b.subarray(0, alloc) : b };
}

// ================================================================== WRITE ATOMIC

/** MAXIMUM ATOMIC TRANSFER LENGTH in blocks (VPD 0xB0), within MAXIMUM TRANSFER LENGTH. */
export function maxAtomicTransferBlocks(lu: LogicalUnit): number {
  return Math.min(lu.maxTransferBlocks, Math.floor(LIMITS.maxAtomicTransferBytes / lu.blockSize), 0xffff);
}

/**
 * WRITE ATOMIC(16): the blocks are written as one operation: no other command, from any
 * session, sees or writes them half-done (exclusive hold on the range). No alignment or
 * granularity constraint; ATOMIC BOUNDARY must be 0 (MAXIMUM ATOMIC BOUNDARY SIZE 0). A
 * Data-Out shorter than the transfer length writes nothing.
 */
export async function writeAtomic16(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  const lba = lba64(c, 2);
  const boundary = c.readUInt16BE(10);
  const blocks = c.readUInt16BE(12);
  const fua = (c[1] & 0x08) !== 0;
  checkRange(lu, lba, blocks);
  if (boundary !== 0) throw invalidFieldInCdb(10);
  if (blocks > maxAtomicTransferBlocks(lu)) throw invalidFieldInCdb(12);
  const bs = lu.blockSize;
  const result: ScsiResult = { status: ScsiStatus.Good, dataOutLength: blocks * bs };
  if (blocks === 0) return result;
  const data = wholeBlocks(lu, task, blocks);
  if (data.length !== blocks * bs) throw invalidFieldInCdb(12);
  const held = lu.writeLock.acquire(lba, blocks, true);
  const release = typeof held === 'function' ? held : await held;
  try {
    lu.writeAge?.check(task);
    await lu.backstore.write(data, lba * bs);
  } catch (err) {
    throw lu.ioError(err, 'write', lba);
  } finally {
    release();
  }
  if (fua || !lu.writeCacheEnabled) await flush(lu);
  return result;
}

// ================================================================== ORWRITE

/** ORWRITE(16): OR the Data-Out into the blocks, atomically against other writes. */
export async function orWrite16(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c); // ORPROTECT
  const lba = lba64(c, 2);
  const blocks = c.readUInt32BE(10);
  const fua = (c[1] & 0x08) !== 0;
  checkRange(lu, lba, blocks);
  checkTransferLength(lu, blocks, 10);
  const bs = lu.blockSize;
  const result: ScsiResult = { status: ScsiStatus.Good, dataOutLength: blocks * bs };
  const data = wholeBlocks(lu, task, blocks);
  if (data.length === 0) return result;
  const count = data.length / bs;
  const held = lu.writeLock.acquire(lba, count, true);
  const release = typeof held === 'function' ? held : await held;
  try {
    const cur = Buffer.allocUnsafe(data.length);
    try {
      await lu.backstore.read(cur, lba * bs);
    } catch (err) {
      throw lu.ioError(err, 'read', lba);
    }
    for (let i = 0; i < cur.length; i++) cur[i] |= data[i];
    try {
      lu.writeAge?.check(task);
      await lu.backstore.write(cur, lba * bs);
    } catch (err) {
      throw lu.ioError(err, 'write', lba);
    }
  } finally {
    release();
  }
  if (fua || !lu.writeCacheEnabled) await flush(lu);
  return result;
}

// ================================================================== COMPARE AND WRITE

/**
 * COMPARE AND WRITE: compare NUMBER OF LOGICAL BLOCKS blocks with the first half of the
 * Data-Out and, if equal, write the second half — as one uninterrupted operation against
 * every other write to those blocks on this LU (from any session). A difference is
 * MISCOMPARE with the offset of the first differing byte; nothing is written then.
 */
export async function compareAndWrite(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  checkNoProtection(c);
  const lba = lba64(c, 2);
  const blocks = c[13];
  const fua = (c[1] & 0x08) !== 0;
  if (blocks > LIMITS.maxCompareAndWriteBlocks) throw invalidFieldInCdb(13);
  checkRange(lu, lba, blocks);
  const bs = lu.blockSize;
  const len = blocks * bs;
  // The Data-Out must be exactly the verify data plus the write data.
  if (task.expectedLength !== 2 * len) throw invalidFieldInCdb(13);
  const result: ScsiResult = { status: ScsiStatus.Good, dataOutLength: 2 * len };
  if (blocks === 0) return result;
  const data = task.dataOut;
  if (data === null || data.length < 2 * len) throw invalidFieldInCdb(13);

  const held = lu.writeLock.acquire(lba, blocks, true);
  const release = typeof held === 'function' ? held : await held;
  try {
    const r = await storeCompareAndWrite(lu, task, data.subarray(0, len), data.subarray(len, 2 * len), lba);
    if (r) miscompare(r.mismatchOffset);
    if (r === undefined) {
      const cur = Buffer.allocUnsafe(len);
      try {
        await lu.backstore.read(cur, lba * bs);
      } catch (err) {
        throw lu.ioError(err, 'read', lba);
      }
      const at = firstDifference(cur, data.subarray(0, len));
      if (at >= 0) miscompare(at);
      try {
        lu.writeAge?.check(task);
        await lu.backstore.write(data.subarray(len, 2 * len), lba * bs);
      } catch (err) {
        throw lu.ioError(err, 'write', lba);
      }
    }
  } finally {
    release();
  }
  if (fua || !lu.writeCacheEnabled) await flush(lu);
  return result;
}

/**
 * COMPARE AND WRITE by the store, atomic in the store itself (RBD: in the OSD, so against
 * other gateways too): null when written, the mismatch when not, undefined when the store
 * has no such operation or cannot do this range (EOPNOTSUPP), and the core compares instead.
 */
async function storeCompareAndWrite(
  lu: LogicalUnit,
  task: ScsiTask,
  cmp: Buffer,
  data: Buffer,
  lba: number,
): Promise<{ mismatchOffset: number } | null | undefined> {
  if (!lu.backstore.compareAndWrite) return undefined;
  try {
    lu.writeAge?.check(task);
    return await lu.backstore.compareAndWrite(cmp, data, lba * lu.blockSize);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EOPNOTSUPP') return undefined;
    throw lu.ioError(err, 'write', lba);
  }
}

// ================================================================== SYNCHRONIZE CACHE

export function synchronizeCache10(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  return doSynchronizeCache(lu, c.readUInt32BE(2), c.readUInt16BE(7), (c[1] & 0x02) !== 0);
}

export function synchronizeCache16(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  return doSynchronizeCache(lu, lba64(c, 2), c.readUInt32BE(10), (c[1] & 0x02) !== 0);
}

/**
 * SYNCHRONIZE CACHE: fdatasync before status (the whole file: a range costs the same).
 * NUMBER OF LOGICAL BLOCKS 0 means "to the end of the medium". With IMMED the status is
 * returned once the CDB is validated, as SBC-3 requires, and the flush completes behind it.
 */
async function doSynchronizeCache(lu: LogicalUnit, lba: number, blocks: number, immed: boolean): Promise<ScsiResult> {
  checkRange(lu, lba, blocks);
  if (immed) {
    lu.backstore.flush().catch((err: unknown) => {
      lu.logger?.error({ err, lu: lu.name }, 'SYNCHRONIZE CACHE (IMMED) flush failed');
    });
    return good();
  }
  await flush(lu);
  return good();
}

// ================================================================== PRE-FETCH

export function preFetch10(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  checkRange(lu, c.readUInt32BE(2), c.readUInt16BE(7));
  return preFetchResult();
}

export function preFetch16(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  checkRange(lu, lba64(c, 2), c.readUInt32BE(10));
  return preFetchResult();
}

/**
 * We keep no cache to load the blocks into (the page cache is the OS's), so PRE-FETCH
 * answers GOOD, which SBC-3 specifies for "not all blocks were put in the cache"; it
 * would be CONDITION MET only if they had been.
 */
function preFetchResult(): ScsiResult {
  return good();
}

// ================================================================== READ DEFECT DATA

/**
 * READ DEFECT DATA(10): a file has no defect lists; both lists are returned, empty, in
 * the format asked for (PLISTV/GLISTV echo REQ_PLIST/REQ_GLIST).
 */
export function readDefectData10(_lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  const b = Buffer.alloc(4);
  b[1] = c[2] & 0x1f; // PLISTV, GLISTV, DEFECT LIST FORMAT
  // 2..3: DEFECT LIST LENGTH 0
  const alloc = c.readUInt16BE(7);
  return { status: ScsiStatus.Good, data: alloc < b.length ? b.subarray(0, alloc) : b };
}

/** READ DEFECT DATA(12): the same, with the 8-byte header (generation code 0). */
export function readDefectData12(_lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  const b = Buffer.alloc(8);
  b[1] = c[1] & 0x1f;
  // 2..3: GENERATION CODE 0; 4..7: DEFECT LIST LENGTH 0
  const alloc = c.readUInt32BE(6);
  return { status: ScsiStatus.Good, data: alloc < b.length ? b.subarray(0, alloc) : b };
}

// ================================================================== START STOP / PREVENT ALLOW

/**
 * START STOP UNIT: a disk that cannot be stopped or ejected accepts every combination.
 * A stop (START = 0, POWER CONDITION 0) without NO_FLUSH writes the cache back first.
 */
export async function startStopUnit(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const b4 = task.cdb[4];
  const powerCondition = b4 >> 4;
  const noFlush = (b4 & 0x04) !== 0;
  const start = (b4 & 0x01) !== 0;
  if (powerCondition === 0 && !start && !noFlush) await flush(lu);
  return good();
}

/** PREVENT ALLOW MEDIUM REMOVAL: nothing to lock on a non-removable medium; accepted. */
export function preventAllowMediumRemoval(_lu: LogicalUnit, task: ScsiTask): ScsiResult {
  if ((task.cdb[4] & 0x03) > 1) throw invalidFieldInCdb(4, 1); // 10b/11b: obsolete
  return good();
}
