// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (SPC-4 §6.4, §6.18): copy offload
// between the volumes of this target. The copy manager is the logical unit that receives
// the command; the CSCD (copy source / copy destination) descriptors name logical units
// by the NAA designator of their VPD 0x83 page, and only these are supported:
//
//   CSCD descriptor E4h (identification descriptor) with an NAA designator, association
//     "logical unit", peripheral device type 00h; LU ID TYPE and NUL are obsolete in SPC-4
//     and ignored; the DISK BLOCK LENGTH must be the logical unit's block size.
//   Segment descriptor 02h (block device to block device), DC honoured, CAT ignored (every
//     segment is whole blocks, so there is never a residue).
//
// A CSCD resolves only to a logical unit in the requesting I_T nexus's own LUN map
// (ScsiTask.luns): the receiving unit, or another unit this session can address. Any other
// designator, whatever volume it names, is COPY TARGET DEVICE NOT REACHABLE: designators
// are derived data, not secrets, so they are never an authority on their own.
//
// The whole parameter list is checked before a block moves: lengths (PARAMETER LIST
// LENGTH ERROR), descriptor counts (TOO MANY TARGET/SEGMENT DESCRIPTORS), descriptor type
// codes (UNSUPPORTED TARGET/SEGMENT DESCRIPTOR TYPE CODE), CSCD indexes and designators
// (COPY ABORTED, COPY TARGET DEVICE NOT REACHABLE), LBA ranges (COPY ABORTED), a write
// protected destination (DATA PROTECT). Then each segment is copied in chunks through the
// backstores, reads and writes under shared holds of each LU's range lock, exactly as
// READ and WRITE take them (so COMPARE AND WRITE stays atomic against a copy). An I/O error
// during the copy ends it with COPY ABORTED and the additional sense code of the error.
//
// Copy results are held per I_T nexus and list identifier when LIST ID USAGE is 00b, for
// RECEIVE COPY RESULTS: COPY STATUS (00h), RECEIVE DATA (01h: no supported segment holds
// data, so always empty), OPERATING PARAMETERS (03h) and FAILED SEGMENT DETAILS (04h).

import type { LogicalUnit } from './logical-unit';
import {
  ASC,
  buildSense,
  CheckCondition,
  checkCondition,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  parameterListLengthError,
  SenseKey,
  type Asc,
  type SenseSpec,
} from './sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from './task';

/** The limits OPERATING PARAMETERS reports, and EXTENDED COPY enforces. */
export const XCOPY_LIMITS = {
  /** MAXIMUM CSCD DESCRIPTOR COUNT. */
  maxCscdDescriptors: 16,
  /** MAXIMUM SEGMENT DESCRIPTOR COUNT. */
  maxSegmentDescriptors: 64,
  /** MAXIMUM DESCRIPTOR LIST LENGTH (CSCD + segment descriptor lists), in bytes. */
  maxDescriptorListLength: 16 * 32 + 64 * 28,
  /** MAXIMUM SEGMENT LENGTH, in bytes: 65535 blocks of 4096 bytes, the most a 02h segment can name. */
  maxSegmentBytes: 0xffff * 4096,
  /** TOTAL / MAXIMUM CONCURRENT COPIES, per logical unit (copy manager). */
  maxConcurrentCopies: 16,
  /** Results held per I_T nexus; the oldest finished ones are dropped beyond this. */
  maxHeldResults: 64,
} as const;

/** Bytes read or written at a time while copying a segment. */
const CHUNK_BYTES = 1024 * 1024;
const HEADER_BYTES = 16;
const CSCD_IDENTIFICATION = 0xe4;
const SEGMENT_BLOCK_TO_BLOCK = 0x02;
const B2B_DESCRIPTOR_LENGTH = 0x18; // bytes after the first four

/** What a copy left for RECEIVE COPY RESULTS (list id usage 00b). */
interface HeldResult {
  state: 'running' | 'done' | 'failed';
  segmentsProcessed: number;
  bytesTransferred: number;
  sense?: SenseSpec;
}

/** The copy manager's per-logical-unit state: running copies and held results. */
export class CopyManagerState {
  running = 0;
  /** nexus id -> list identifier -> result (insertion order = age). */
  private readonly held = new Map<string, Map<number, HeldResult>>();

  get(nexus: ItNexus, listId: number): HeldResult | undefined {
    return this.held.get(nexus.id)?.get(listId);
  }

  hold(nexus: ItNexus, listId: number, r: HeldResult): void {
    let m = this.held.get(nexus.id);
    if (m === undefined) this.held.set(nexus.id, (m = new Map<number, HeldResult>()));
    m.delete(listId);
    m.set(listId, r);
    for (const [id, old] of m) {
      if (m.size <= XCOPY_LIMITS.maxHeldResults) break;
      if (old.state !== 'running') m.delete(id);
    }
  }

  discard(nexus: ItNexus, listId: number): void {
    this.held.get(nexus.id)?.delete(listId);
  }

  /** The I_T nexus is gone: its held results go with it. */
  nexusLost(nexus: ItNexus): void {
    this.held.delete(nexus.id);
  }
}

interface Cscd {
  /** Byte offset of the descriptor in the parameter list. */
  at: number;
  type: number;
}

interface Segment {
  at: number;
  src: LogicalUnit;
  dst: LogicalUnit;
  srcLba: number;
  dstLba: number;
  bytes: number;
}

function copyAborted(code: Asc, info?: number): CheckCondition {
  return checkCondition(SenseKey.CopyAborted, code, info === undefined ? undefined : { info });
}

/** Length of a CSCD descriptor by its type code (SPC-4 table 111): 64 for IPv6 and IP copy service. */
function cscdLength(type: number): number {
  return type === 0xea || type === 0xeb ? 64 : 32;
}

// ------------------------------------------------------------------ EXTENDED COPY

/**
 * EXTENDED COPY (LID1), 83h/00h. A PARAMETER LIST LENGTH of zero is not an error: nothing
 * is copied (SPC-4 §6.4.1).
 */
export async function extendedCopy(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const c = task.cdb;
  const len = c.readUInt32BE(10);
  const result: ScsiResult = { status: ScsiStatus.Good, dataOutLength: len };
  if (len === 0) return result;
  if (len < HEADER_BYTES) throw parameterListLengthError();
  const data = task.dataOut;
  if (data === null || data.length < len) throw parameterListLengthError();
  const p = data.subarray(0, len);

  // Parameter list header.
  const listId = p[0];
  const usage = (p[1] >> 3) & 0x03;
  const cscdBytes = p.readUInt16BE(2);
  const segBytes = p.readUInt32BE(8);
  const inlineBytes = p.readUInt32BE(12);
  if (cscdBytes + segBytes > XCOPY_LIMITS.maxDescriptorListLength) throw parameterListLengthError();
  if (HEADER_BYTES + cscdBytes + segBytes + inlineBytes > len) throw parameterListLengthError();
  if (usage === 0x01) throw invalidFieldInParameterList(1, 3); // reserved
  if (usage === 0x03 && listId !== 0) throw invalidFieldInParameterList(0);
  if (inlineBytes !== 0) throw invalidFieldInParameterList(12); // MAXIMUM INLINE DATA LENGTH is 0

  // Walk both descriptor lists (counts first, then type codes).
  const cscds: Cscd[] = [];
  for (let at = HEADER_BYTES; at < HEADER_BYTES + cscdBytes;) {
    const size = cscdLength(p[at]);
    if (at + size > HEADER_BYTES + cscdBytes) throw parameterListLengthError();
    cscds.push({ at, type: p[at] });
    at += size;
  }
  const segStart = HEADER_BYTES + cscdBytes;
  const segAts: number[] = [];
  for (let at = segStart; at < segStart + segBytes;) {
    if (at + 4 > segStart + segBytes) throw parameterListLengthError();
    const size = 4 + p.readUInt16BE(at + 2);
    if (at + size > segStart + segBytes) throw parameterListLengthError();
    segAts.push(at);
    at += size;
  }
  if (cscds.length > XCOPY_LIMITS.maxCscdDescriptors) {
    throw checkCondition(SenseKey.IllegalRequest, ASC.TOO_MANY_TARGET_DESCRIPTORS, { field: { cd: false, byte: 2 } });
  }
  if (segAts.length > XCOPY_LIMITS.maxSegmentDescriptors) {
    throw checkCondition(SenseKey.IllegalRequest, ASC.TOO_MANY_SEGMENT_DESCRIPTORS, { field: { cd: false, byte: 8 } });
  }
  for (const d of cscds) {
    if (d.type !== CSCD_IDENTIFICATION) {
      throw checkCondition(SenseKey.IllegalRequest, ASC.UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE, {
        field: { cd: false, byte: d.at },
      });
    }
  }
  for (const at of segAts) {
    if (p[at] !== SEGMENT_BLOCK_TO_BLOCK) {
      throw checkCondition(SenseKey.IllegalRequest, ASC.UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE, {
        field: { cd: false, byte: at },
      });
    }
    if (p.readUInt16BE(at + 2) !== B2B_DESCRIPTOR_LENGTH) throw invalidFieldInParameterList(at + 2);
  }

  // Resolve every segment before copying anything.
  const resolved = new Map<number, LogicalUnit>();
  const resolve = (index: number): LogicalUnit => {
    const hit = resolved.get(index);
    if (hit !== undefined) return hit;
    const d = cscds[index];
    if (d === undefined) throw copyAborted(ASC.COPY_TARGET_DEVICE_NOT_REACHABLE);
    const target = resolveCscd(p, d.at, task.luns);
    resolved.set(index, target);
    return target;
  };
  const segments: Segment[] = [];
  for (const at of segAts) {
    const src = resolve(p.readUInt16BE(at + 4));
    const dst = resolve(p.readUInt16BE(at + 6));
    const dc = (p[at + 1] & 0x02) !== 0;
    const blocks = p.readUInt16BE(at + 10);
    const bytes = blocks * (dc ? dst.blockSize : src.blockSize);
    if (bytes > XCOPY_LIMITS.maxSegmentBytes) throw invalidFieldInParameterList(at + 10);
    if (bytes % src.blockSize !== 0 || bytes % dst.blockSize !== 0) throw invalidFieldInParameterList(at + 10);
    const srcLba = p.readBigUInt64BE(at + 12);
    const dstLba = p.readBigUInt64BE(at + 20);
    if (
      srcLba + BigInt(bytes / src.blockSize) > BigInt(src.blockCount) ||
      dstLba + BigInt(bytes / dst.blockSize) > BigInt(dst.blockCount)
    ) {
      throw copyAborted(ASC.NO_ADDITIONAL_SENSE); // beyond the end of a copy target
    }
    segments.push({ at, src, dst, srcLba: Number(srcLba), dstLba: Number(dstLba), bytes });
  }
  // The receiving unit passed the command table's checks for EXTENDED COPY (a write);
  // any other unit is checked as that nexus's READ (source) or write (destination) would be.
  for (const s of segments) {
    if (s.src !== lu) checkSource(s.src, task);
    if (s.dst !== lu) checkDestination(s.dst, task);
  }

  // Copy.
  const manager = lu.copyManager;
  const prior = usage === 0x00 ? manager.get(task.nexus, listId) : undefined;
  if (prior?.state === 'running') throw checkCondition(SenseKey.IllegalRequest, ASC.OPERATION_IN_PROGRESS);
  if (manager.running >= XCOPY_LIMITS.maxConcurrentCopies) {
    throw checkCondition(SenseKey.IllegalRequest, ASC.INSUFFICIENT_RESOURCES);
  }
  const held: HeldResult = { state: 'running', segmentsProcessed: 0, bytesTransferred: 0 };
  if (usage === 0x00) manager.hold(task.nexus, listId, held);
  manager.running++;
  try {
    for (const s of segments) {
      if (task.aborted) return { status: ScsiStatus.TaskAborted };
      await copySegment(s, held);
      held.segmentsProcessed++;
    }
    for (const d of new Set(segments.map((s) => s.dst))) {
      if (!d.writeCacheEnabled) await flushStore(d);
    }
    held.state = 'done';
    return result;
  } catch (err) {
    held.state = 'failed';
    const cc = err instanceof CheckCondition ? err : copyAborted(ASC.INTERNAL_TARGET_FAILURE);
    held.sense = cc.sense;
    throw cc;
  } finally {
    manager.running--;
  }
}

/**
 * A CSCD identification descriptor (E4h) to the logical unit its NAA designator names,
 * looked up in the requester's LUN map only.
 */
function resolveCscd(p: Buffer, at: number, luns: ReadonlyMap<number, LogicalUnit>): LogicalUnit {
  const peripheralType = p[at + 1] & 0x1f;
  const codeSet = p[at + 4] & 0x0f;
  const association = (p[at + 5] >> 4) & 0x03;
  const designatorType = p[at + 5] & 0x0f;
  const length = p[at + 7];
  if (peripheralType !== 0x00 || codeSet !== 0x01 || association !== 0 || designatorType !== 0x03 || length > 20) {
    throw copyAborted(ASC.COPY_TARGET_DEVICE_NOT_REACHABLE);
  }
  const target = reachableUnit(luns, p.subarray(at + 8, at + 8 + length));
  if (target === undefined) throw copyAborted(ASC.COPY_TARGET_DEVICE_NOT_REACHABLE);
  // Block device type specific parameters: PAD/CAT byte 28, DISK BLOCK LENGTH 29..31.
  const diskBlockLength = p.readUIntBE(at + 29, 3);
  if (diskBlockLength !== target.blockSize) throw invalidFieldInParameterList(at + 29);
  return target;
}

/** The unit of `luns` whose NAA designator is `designator`, if any. */
function reachableUnit(luns: ReadonlyMap<number, LogicalUnit>, designator: Buffer): LogicalUnit | undefined {
  for (const lu of luns.values()) if (lu.naa.equals(designator)) return lu;
  return undefined;
}

/**
 * Checks for a destination other than the receiving logical unit (the command table's
 * checks covered that one): write protection, reservations held by another I_T nexus and
 * a SANITIZE in progress, as a WRITE from this I_T nexus would meet them.
 */
function checkDestination(dst: LogicalUnit, task: ScsiTask): void {
  if (dst.readonly) throw checkCondition(SenseKey.DataProtect, ASC.WRITE_PROTECTED);
  if (dst.writeProtected) throw checkCondition(SenseKey.DataProtect, ASC.SOFTWARE_WRITE_PROTECTED);
  const conflict = dst.copyAdmission(task, 'destination');
  if (conflict !== null) throw conflict;
}

/**
 * Checks for a source other than the receiving logical unit: reservations held by another
 * I_T nexus (an exclusive-access persistent reservation, an SPC-2 RESERVE) and a SANITIZE in
 * progress, as a READ from this I_T nexus would meet them.
 */
function checkSource(src: LogicalUnit, task: ScsiTask): void {
  const conflict = src.copyAdmission(task, 'source');
  if (conflict !== null) throw conflict;
}

async function copySegment(s: Segment, held: HeldResult): Promise<void> {
  const { src, dst } = s;
  const srcOff = s.srcLba * src.blockSize;
  const dstOff = s.dstLba * dst.blockSize;
  // The same volume with the destination just past an overlapping source: copy backwards.
  const backwards = src === dst && dstOff > srcOff && dstOff < srcOff + s.bytes;
  const unit = Math.max(src.blockSize, dst.blockSize);
  const chunk = Math.max(unit, Math.floor(CHUNK_BYTES / unit) * unit);
  const buf = Buffer.allocUnsafe(Math.min(chunk, s.bytes));
  let done = 0;
  while (done < s.bytes) {
    const n = Math.min(chunk, s.bytes - done);
    const rel = backwards ? s.bytes - done - n : done;
    const piece = buf.subarray(0, n);
    await locked(src, srcOff + rel, n, async () => {
      try {
        await src.backstore.read(piece, srcOff + rel);
      } catch (err) {
        throw asCopyAborted(src.ioError(err, 'read', (srcOff + rel) / src.blockSize));
      }
    });
    await locked(dst, dstOff + rel, n, async () => {
      try {
        await dst.backstore.write(piece, dstOff + rel);
      } catch (err) {
        throw asCopyAborted(dst.ioError(err, 'write', (dstOff + rel) / dst.blockSize));
      }
    });
    done += n;
    held.bytesTransferred += n;
  }
}

/** Run `fn` under a shared hold of the blocks covering [offset, offset + bytes). */
async function locked(lu: LogicalUnit, offset: number, bytes: number, fn: () => Promise<void>): Promise<void> {
  const held = lu.writeLock.acquire(offset / lu.blockSize, bytes / lu.blockSize, false);
  const release = typeof held === 'function' ? held : await held;
  try {
    await fn();
  } finally {
    release();
  }
}

async function flushStore(lu: LogicalUnit): Promise<void> {
  try {
    await lu.backstore.flush();
  } catch (err) {
    throw asCopyAborted(lu.ioError(err, 'flush'));
  }
}

/** An error from a copy target: COPY ABORTED with the additional sense code it had. */
function asCopyAborted(cc: CheckCondition): CheckCondition {
  return new CheckCondition({ ...cc.sense, key: SenseKey.CopyAborted });
}

// ------------------------------------------------------------------ RECEIVE COPY RESULTS

const SA_COPY_STATUS = 0x00;
const SA_RECEIVE_DATA = 0x01;
const SA_OPERATING_PARAMETERS = 0x03;
const SA_FAILED_SEGMENT_DETAILS = 0x04;

/** RECEIVE COPY RESULTS (84h), service actions 00h, 01h, 03h and 04h. */
export function receiveCopyResults(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  const sa = c[1] & 0x1f;
  const listId = c[2];
  const alloc = c.readUInt32BE(10);
  let data: Buffer;
  if (sa === SA_OPERATING_PARAMETERS) {
    data = operatingParameters();
  } else {
    const held = lu.copyManager.get(task.nexus, listId);
    if (held === undefined) throw invalidFieldInCdb(2);
    if (sa === SA_COPY_STATUS) {
      data = copyStatus(held);
      // A finished copy's status is discarded once it has been returned.
      if (held.state === 'done') lu.copyManager.discard(task.nexus, listId);
    } else if (sa === SA_RECEIVE_DATA) {
      data = Buffer.alloc(4); // no supported segment descriptor holds data
    } else if (sa === SA_FAILED_SEGMENT_DETAILS) {
      if (held.state === 'running') throw checkCondition(SenseKey.IllegalRequest, ASC.OPERATION_IN_PROGRESS);
      data = failedSegmentDetails(held, lu.descriptorSense);
      lu.copyManager.discard(task.nexus, listId);
    } else {
      throw invalidFieldInCdb(1, 4);
    }
  }
  return { status: ScsiStatus.Good, data: data.length > alloc ? data.subarray(0, alloc) : data };
}

/** OPERATING PARAMETERS (SPC-4 §6.18.4): the limits above, and the two descriptor types we take. */
export function operatingParameters(): Buffer {
  const implemented = [SEGMENT_BLOCK_TO_BLOCK, CSCD_IDENTIFICATION];
  const b = Buffer.alloc(44 + implemented.length);
  b.writeUInt32BE(b.length - 4, 0); // AVAILABLE DATA
  b[4] = 0x00; // SNLID = 0: a list identifier is needed to hold results
  b.writeUInt16BE(XCOPY_LIMITS.maxCscdDescriptors, 8);
  b.writeUInt16BE(XCOPY_LIMITS.maxSegmentDescriptors, 10);
  b.writeUInt32BE(XCOPY_LIMITS.maxDescriptorListLength, 12);
  b.writeUInt32BE(XCOPY_LIMITS.maxSegmentBytes, 16);
  b.writeUInt32BE(0, 20); // MAXIMUM INLINE DATA LENGTH: no inline data
  b.writeUInt32BE(0, 24); // HELD DATA LIMIT: no segment holds data
  b.writeUInt32BE(0, 28); // MAXIMUM STREAM DEVICE TRANSFER SIZE: no stream devices
  b.writeUInt16BE(XCOPY_LIMITS.maxConcurrentCopies, 34); // TOTAL CONCURRENT COPIES
  b[36] = XCOPY_LIMITS.maxConcurrentCopies; // MAXIMUM CONCURRENT COPIES
  b[37] = 9; // DATA SEGMENT GRANULARITY: 2^9 bytes
  b[38] = 9; // INLINE DATA GRANULARITY
  b[39] = 9; // HELD DATA GRANULARITY
  b[43] = implemented.length; // IMPLEMENTED DESCRIPTOR LIST LENGTH
  implemented.forEach((code, i) => (b[44 + i] = code));
  return b;
}

/** COPY STATUS (SPC-4 §6.18.2). Transfer count in bytes, or KiB when bytes do not fit. */
function copyStatus(h: HeldResult): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt32BE(8, 0);
  b[4] = h.state === 'running' ? 0x00 : h.state === 'done' ? 0x01 : 0x02; // HDD 0, COPY MANAGER STATUS
  b.writeUInt16BE(Math.min(h.segmentsProcessed, 0xffff), 5);
  if (h.bytesTransferred <= 0xffffffff) {
    b[7] = 0x00; // bytes
    b.writeUInt32BE(h.bytesTransferred, 8);
  } else {
    b[7] = 0x01; // kibibytes
    b.writeUInt32BE(Math.min(Math.floor(h.bytesTransferred / 1024), 0xffffffff), 8);
  }
  return b;
}

/**
 * FAILED SEGMENT DETAILS (SPC-4 §6.18.5): for a copy that ended with CHECK CONDITION, its
 * status and sense data; for one that completed, no details (AVAILABLE DATA 0).
 */
function failedSegmentDetails(h: HeldResult, descriptorSense: boolean): Buffer {
  if (h.state !== 'failed' || h.sense === undefined) return Buffer.alloc(4);
  const sense = buildSense(h.sense, descriptorSense);
  const b = Buffer.alloc(60 + sense.length);
  b.writeUInt32BE(b.length - 4, 0);
  b[56] = ScsiStatus.CheckCondition; // COPY COMMAND STATUS
  b.writeUInt16BE(sense.length, 58); // SENSE DATA LENGTH
  sense.copy(b, 60);
  return b;
}
