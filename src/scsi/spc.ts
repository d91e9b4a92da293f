// SPC-4 primary commands for our direct-access logical units: TEST UNIT READY, REQUEST
// SENSE, INQUIRY (standard data and VPD pages), MODE SENSE/SELECT (6/10), RESERVE/RELEASE
// (6/10), PERSISTENT RESERVE IN/OUT and REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS.
// REPORT LUNS is answered in dispatch.ts (it needs the LUN map), REPORT SUPPORTED
// OPERATION CODES in commands.ts (it is generated from the command table).

import type { LogicalUnit } from './logical-unit';
import { LIMITS, PRODUCT_ID, PRODUCT_REVISION, VENDOR_ID } from './limits';
import { provisioningOf, unmapLimits } from './provisioning';
import { maxAtomicTransferBlocks } from './sbc';
import { cryptoEraseSupported } from './sanitize';
import { applyPage, encodePage, isSupportedPage, PAGE_ALL, PageControl, pageSize, SUPPORTED_PAGES } from './mode-pages';
import {
  ASC,
  buildSense,
  checkCondition,
  invalidFieldInCdb,
  invalidFieldInParameterList,
  parameterListLengthError,
  SenseKey,
} from './sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from './task';

/** Cut data to the allocation length (the full length stays in the data's own length fields). */
export function truncate(data: Buffer, allocationLength: number): Buffer {
  return data.length > allocationLength ? data.subarray(0, allocationLength) : data;
}

function good(data?: Buffer): ScsiResult {
  return data === undefined ? { status: ScsiStatus.Good } : { status: ScsiStatus.Good, data };
}

// ------------------------------------------------------------------ TEST UNIT READY

/** TEST UNIT READY: our logical units are always ready (no removable medium). */
export function testUnitReady(): ScsiResult {
  return good();
}

// ------------------------------------------------------------------ REQUEST SENSE

/**
 * REQUEST SENSE: returns (and clears) the oldest pending unit attention; else, while a
 * SANITIZE runs, NOT READY / SANITIZE IN PROGRESS with its progress; else NO SENSE.
 * DESC selects descriptor or fixed format for this answer.
 */
export function requestSense(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  const desc = (c[1] & 0x01) !== 0;
  const ua = lu.takeUnitAttention(task.nexus);
  const pollable = ua ? null : lu.sanitize.pollableSense();
  const data = ua
    ? buildSense({ key: SenseKey.UnitAttention, asc: ua.asc, ascq: ua.ascq }, desc)
    : buildSense(pollable ?? { key: SenseKey.NoSense, asc: 0, ascq: 0 }, desc);
  return good(truncate(data, c[4]));
}

// ------------------------------------------------------------------ INQUIRY

/** Version descriptors claimed in standard INQUIRY data. */
const VERSION_DESCRIPTORS = [
  0x00a0, // SAM-5 (no version claimed)
  0x0960, // iSCSI (no version claimed)
  0x0460, // SPC-4 (no version claimed)
  0x04c0, // SBC-3 (no version claimed)
];

const STANDARD_INQUIRY_LENGTH = 96;

/** TPGS 11b: implicit (config, alua.ts) and explicit (SET TARGET PORT GROUPS) ALUA. */
const INQ5_TPGS_BOTH = 0x30;
/** 3PC: EXTENDED COPY is offered (extended-copy.ts); VMware's clone offload looks for it. */
const INQ5_3PC = 0x08;

/**
 * Standard INQUIRY data with the given first byte (qualifier << 5 | device type). A LUN
 * that is not there (qualifier 011b) claims no ALUA or copy support: no unit answers.
 */
export function standardInquiryData(peripheral: number): Buffer {
  const b = Buffer.alloc(STANDARD_INQUIRY_LENGTH);
  b[0] = peripheral;
  b[1] = 0x00; // RMB = 0: not removable
  b[2] = 0x06; // VERSION: SPC-4
  b[3] = 0x12; // HISUP | RESPONSE DATA FORMAT 2
  b[4] = STANDARD_INQUIRY_LENGTH - 5; // ADDITIONAL LENGTH
  b[5] = peripheral === 0x7f ? 0x00 : INQ5_TPGS_BOTH | INQ5_3PC; // no SCCS, ACC or PROTECT
  b[6] = 0x00;
  b[7] = 0x02; // CMDQUE
  b.write(VENDOR_ID.padEnd(8, ' '), 8, 8, 'ascii');
  b.write(PRODUCT_ID.padEnd(16, ' '), 16, 16, 'ascii');
  b.write(PRODUCT_REVISION.padEnd(4, ' '), 32, 4, 'ascii');
  VERSION_DESCRIPTORS.forEach((v, i) => b.writeUInt16BE(v, 58 + 2 * i));
  return b;
}

const VPD_SUPPORTED = 0x00;
const VPD_UNIT_SERIAL = 0x80;
const VPD_DEVICE_ID = 0x83;
const VPD_BLOCK_LIMITS = 0xb0;
const VPD_BLOCK_CHARACTERISTICS = 0xb1;
const VPD_LOGICAL_BLOCK_PROVISIONING = 0xb2;
const SUPPORTED_VPD = [
  VPD_SUPPORTED,
  VPD_UNIT_SERIAL,
  VPD_DEVICE_ID,
  VPD_BLOCK_LIMITS,
  VPD_BLOCK_CHARACTERISTICS,
  VPD_LOGICAL_BLOCK_PROVISIONING,
];

/** INQUIRY: standard data, or a VPD page with EVPD. The allocation length is honoured. */
export function inquiry(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  if (c[1] & 0x02) throw invalidFieldInCdb(1, 1); // CmdDt (obsolete)
  const evpd = (c[1] & 0x01) !== 0;
  const page = c[2];
  const alloc = c.readUInt16BE(3);
  let data: Buffer;
  if (!evpd) {
    if (page !== 0) throw invalidFieldInCdb(2);
    data = standardInquiryData(0x00);
  } else {
    data = vpdPage(lu, page, task.nexus);
  }
  return good(truncate(data, alloc));
}

function vpdPage(lu: LogicalUnit, page: number, nexus: ItNexus): Buffer {
  switch (page) {
    case VPD_SUPPORTED: {
      const b = Buffer.alloc(4 + SUPPORTED_VPD.length);
      b[1] = VPD_SUPPORTED;
      b[3] = SUPPORTED_VPD.length;
      SUPPORTED_VPD.forEach((p, i) => (b[4 + i] = p));
      return b;
    }
    case VPD_UNIT_SERIAL: {
      const serial = Buffer.from(lu.serial, 'ascii');
      const b = Buffer.alloc(4 + serial.length);
      b[1] = VPD_UNIT_SERIAL;
      b[3] = serial.length;
      serial.copy(b, 4);
      return b;
    }
    case VPD_DEVICE_ID:
      return deviceIdentificationPage(lu, nexus);
    case VPD_BLOCK_LIMITS:
      return blockLimitsPage(lu);
    case VPD_BLOCK_CHARACTERISTICS: {
      const b = Buffer.alloc(64);
      b[1] = VPD_BLOCK_CHARACTERISTICS;
      b.writeUInt16BE(0x3c, 2);
      b.writeUInt16BE(0x0001, 4); // MEDIUM ROTATION RATE: non-rotating medium
      // WABEREQ 01b: after SANITIZE BLOCK ERASE, reads succeed (deallocated blocks read as
      // zeros); WACEREQ 01b likewise after CRYPTOGRAPHIC ERASE on an encrypted volume, 00b
      // (not supported) elsewhere; NOMINAL FORM FACTOR 0 (not reported).
      b[7] = 0x40 | (cryptoEraseSupported(lu) ? 0x10 : 0);
      return b;
    }
    case VPD_LOGICAL_BLOCK_PROVISIONING: {
      const prov = provisioningOf(lu);
      const b = Buffer.alloc(8);
      b[1] = VPD_LOGICAL_BLOCK_PROVISIONING;
      b.writeUInt16BE(4, 2);
      b[4] = 0; // THRESHOLD EXPONENT: no thresholds
      b[5] =
        (prov.lbpu ? 0x80 : 0) |
        (prov.lbpws ? 0x40 : 0) |
        (prov.lbpws10 ? 0x20 : 0) |
        (prov.lbprz ? 0x04 : 0) |
        (prov.anchorSupported ? 0x02 : 0); // DP = 0: no provisioning group descriptor
      b[6] = prov.type; // PROVISIONING TYPE (2 = thin)
      return b;
    }
    default:
      throw invalidFieldInCdb(2);
  }
}

/** One designation descriptor (SPC-4 §7.8.6.1). */
function designator(opts: {
  protocolId?: number;
  codeSet: number;
  piv: boolean;
  association: number;
  type: number;
  value: Buffer;
}): Buffer {
  const b = Buffer.alloc(4 + opts.value.length);
  b[0] = ((opts.protocolId ?? 0) << 4) | opts.codeSet;
  b[1] = (opts.piv ? 0x80 : 0) | (opts.association << 4) | opts.type;
  b[3] = opts.value.length;
  opts.value.copy(b, 4);
  return b;
}

/** A null-terminated UTF-8 SCSI name string padded to a multiple of 4 bytes. */
function scsiNameString(s: string): Buffer {
  const raw = Buffer.from(s, 'utf8');
  const len = (raw.length + 4) & ~3; // room for at least one NUL
  const b = Buffer.alloc(len);
  raw.copy(b);
  return b;
}

const PROTOCOL_ISCSI = 5;
const CODE_BINARY = 1;
const CODE_ASCII = 2;
const CODE_UTF8 = 3;
const ASSOC_LU = 0;
const ASSOC_TARGET_PORT = 1;
const ASSOC_TARGET_DEVICE = 2;

function deviceIdentificationPage(lu: LogicalUnit, nexus: ItNexus): Buffer {
  // The target port: its relative target port id (type 4h) and its target port group
  // (type 5h), numbered as alua.ts says; RTPG lists the same numbers.
  const rtpi = nexus.relativePortId & 0xffff;
  const port = Buffer.alloc(4);
  port.writeUInt16BE(rtpi, 2);
  const group = lu.alua.topology.groupOfPort(rtpi);
  const tpg = Buffer.alloc(4);
  if (group !== undefined) tpg.writeUInt16BE(group, 2);
  const descriptors = [
    // The logical unit: NAA IEEE Registered Extended, and a T10 vendor id designator.
    designator({ codeSet: CODE_BINARY, piv: false, association: ASSOC_LU, type: 0x3, value: lu.naa }),
    designator({
      codeSet: CODE_ASCII,
      piv: false,
      association: ASSOC_LU,
      type: 0x1,
      value: Buffer.from(VENDOR_ID.padEnd(8, ' ') + lu.serial, 'ascii'),
    }),
    // The target port this command came through.
    designator({ protocolId: PROTOCOL_ISCSI, codeSet: CODE_BINARY, piv: true, association: ASSOC_TARGET_PORT, type: 0x4, value: port }),
    ...(group === undefined
      ? []
      : [
          designator({
            protocolId: PROTOCOL_ISCSI,
            codeSet: CODE_BINARY,
            piv: true,
            association: ASSOC_TARGET_PORT,
            type: 0x5,
            value: tpg,
          }),
        ]),
    // iSCSI names its SCSI target port "<target>,t,0x<TPGT>"; our TPGT is the relative port id.
    designator({
      protocolId: PROTOCOL_ISCSI,
      codeSet: CODE_UTF8,
      piv: true,
      association: ASSOC_TARGET_PORT,
      type: 0x8,
      value: scsiNameString(`${nexus.targetName},t,0x${rtpi.toString(16).padStart(4, '0')}`),
    }),
    // The target device.
    designator({
      protocolId: PROTOCOL_ISCSI,
      codeSet: CODE_UTF8,
      piv: true,
      association: ASSOC_TARGET_DEVICE,
      type: 0x8,
      value: scsiNameString(nexus.targetName),
    }),
  ];
  const body = Buffer.concat(descriptors);
  const b = Buffer.alloc(4 + body.length);
  b[1] = VPD_DEVICE_ID;
  b.writeUInt16BE(body.length, 2);
  body.copy(b, 4);
  return b;
}

function blockLimitsPage(lu: LogicalUnit): Buffer {
  const bs = lu.blockSize;
  const b = Buffer.alloc(64);
  b[1] = VPD_BLOCK_LIMITS;
  b.writeUInt16BE(0x3c, 2);
  b[4] = 0x00; // WSNZ = 0: WRITE SAME with NUMBER OF LOGICAL BLOCKS 0 writes to the end
  b[5] = LIMITS.maxCompareAndWriteBlocks;
  b.writeUInt16BE(Math.max(1, 4096 / bs), 6); // OPTIMAL TRANSFER LENGTH GRANULARITY
  b.writeUInt32BE(lu.maxTransferBlocks, 8); // MAXIMUM TRANSFER LENGTH
  b.writeUInt32BE(Math.floor(LIMITS.optimalTransferBytes / bs), 12); // OPTIMAL TRANSFER LENGTH
  b.writeUInt32BE(0, 16); // MAXIMUM PREFETCH LENGTH: not limited (nothing is transferred)
  const unmap = unmapLimits(lu);
  b.writeUInt32BE(unmap.maxLbaCount, 20); // MAXIMUM UNMAP LBA COUNT
  b.writeUInt32BE(unmap.maxDescriptors, 24); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
  b.writeUInt32BE(unmap.granularity, 28); // OPTIMAL UNMAP GRANULARITY
  if (unmap.maxLbaCount > 0) b.writeUInt32BE((0x80000000 | unmap.granularityAlignment) >>> 0, 32); // UGAVALID
  b.writeBigUInt64BE(BigInt(lu.maxWriteSameBlocks), 36); // MAXIMUM WRITE SAME LENGTH
  b.writeUInt32BE(maxAtomicTransferBlocks(lu), 44); // MAXIMUM ATOMIC TRANSFER LENGTH
  b.writeUInt32BE(0, 48); // ATOMIC ALIGNMENT: none required
  b.writeUInt32BE(0, 52); // ATOMIC TRANSFER LENGTH GRANULARITY: none
  b.writeUInt32BE(0, 56); // MAXIMUM ATOMIC TRANSFER LENGTH WITH ATOMIC BOUNDARY: no boundaries
  b.writeUInt32BE(0, 60); // MAXIMUM ATOMIC BOUNDARY SIZE
  return b;
}

// ------------------------------------------------------------------ MODE SENSE / SELECT

export function modeSense6(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  return modeSense(lu, task, false);
}

export function modeSense10(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  return modeSense(lu, task, true);
}

function modeSense(lu: LogicalUnit, task: ScsiTask, ten: boolean): ScsiResult {
  const c = task.cdb;
  const dbd = (c[1] & 0x08) !== 0;
  const llbaa = ten && (c[1] & 0x10) !== 0;
  const pc = (c[2] >> 6) as PageControl;
  const page = c[2] & 0x3f;
  const subpage = c[3];
  const alloc = ten ? c.readUInt16BE(7) : c[4];

  if (pc === PageControl.Saved) {
    throw checkCondition(SenseKey.IllegalRequest, ASC.SAVING_PARAMETERS_NOT_SUPPORTED, {
      field: { cd: true, byte: 2, bit: 7 },
    });
  }
  let codes: readonly number[];
  if (page === PAGE_ALL) codes = SUPPORTED_PAGES;
  else if (isSupportedPage(page)) codes = [page];
  else throw invalidFieldInCdb(2, 5);
  // We have no subpages: 0x00 is the page itself, 0xFF "all subpages" is the same thing.
  if (subpage !== 0x00 && subpage !== 0xff) throw invalidFieldInCdb(3);

  const values = lu.modeValues;
  const pages = codes.map((code) => encodePage(code, pc, values));

  let blockDescriptor: Buffer = Buffer.alloc(0);
  if (!dbd) {
    const changeable = pc === PageControl.Changeable; // nothing in it can be changed
    const blocks = changeable ? 0 : lu.blockCount;
    const blen = changeable ? 0 : lu.blockSize;
    if (llbaa) {
      blockDescriptor = Buffer.alloc(16);
      blockDescriptor.writeBigUInt64BE(BigInt(blocks), 0);
      blockDescriptor.writeUInt32BE(blen, 12);
    } else {
      blockDescriptor = Buffer.alloc(8);
      blockDescriptor.writeUInt32BE(Math.min(blocks, 0xffffffff), 0);
      blockDescriptor.writeUInt32BE(blen & 0xffffff, 4); // density code 0, block length
    }
  }
  const deviceSpecific = pc === PageControl.Changeable ? 0 : (lu.writeProtected ? 0x80 : 0) | 0x10; // WP, DPOFUA

  const headerLen = ten ? 8 : 4;
  const header = Buffer.alloc(headerLen);
  const total = headerLen + blockDescriptor.length + pages.reduce((n, p) => n + p.length, 0);
  if (ten) {
    header.writeUInt16BE(total - 2, 0); // MODE DATA LENGTH
    header[2] = 0; // MEDIUM TYPE
    header[3] = deviceSpecific;
    header[4] = llbaa && !dbd ? 0x01 : 0x00; // LONGLBA
    header.writeUInt16BE(blockDescriptor.length, 6);
  } else {
    header[0] = total - 1;
    header[1] = 0;
    header[2] = deviceSpecific;
    header[3] = blockDescriptor.length;
  }
  return good(truncate(Buffer.concat([header, blockDescriptor, ...pages], total), alloc));
}

export function modeSelect6(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  return modeSelect(lu, task, false);
}

export function modeSelect10(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  return modeSelect(lu, task, true);
}

/**
 * MODE SELECT: PF must be 1, SP (save) is refused (no saved pages). Every page sent is
 * checked against the current values: a change to a bit that is not changeable (see the
 * changeable-values masks MODE SENSE reports) is INVALID FIELD IN PARAMETER LIST, and
 * nothing is applied unless the whole list is valid.
 */
function modeSelect(lu: LogicalUnit, task: ScsiTask, ten: boolean): ScsiResult {
  const c = task.cdb;
  const len = ten ? c.readUInt16BE(7) : c[4];
  if ((c[1] & 0x10) === 0) throw invalidFieldInCdb(1, 4); // PF
  if ((c[1] & 0x01) !== 0) throw invalidFieldInCdb(1, 0); // SP
  if (len === 0) return { status: ScsiStatus.Good, dataOutLength: 0 };
  const data = task.dataOut;
  if (data === null || data.length < len) throw parameterListLengthError();
  const p = data.subarray(0, len);

  const headerLen = ten ? 8 : 4;
  if (len < headerLen) throw parameterListLengthError();
  const mediumTypeAt = ten ? 2 : 1;
  if (p[mediumTypeAt] !== 0) throw invalidFieldInParameterList(mediumTypeAt);
  const longLba = ten && (p[4] & 0x01) !== 0;
  const bdLen = ten ? p.readUInt16BE(6) : p[3];
  if (headerLen + bdLen > len) throw parameterListLengthError();
  if (bdLen !== 0) {
    const one = longLba ? 16 : 8;
    if (bdLen !== one) throw invalidFieldInParameterList(ten ? 6 : 3);
    const at = headerLen;
    const blen = longLba ? p.readUInt32BE(at + 12) : p.readUIntBE(at + 5, 3);
    // The number of blocks cannot be changed (no FORMAT); the block length cannot either.
    if (blen !== 0 && blen !== lu.blockSize) throw invalidFieldInParameterList(at + (longLba ? 12 : 5));
  }

  let values = lu.modeValues;
  let off = headerLen + bdLen;
  while (off < len) {
    if (off + 2 > len) throw parameterListLengthError();
    const code = p[off] & 0x3f;
    if (p[off] & 0x40) throw invalidFieldInParameterList(off, 6); // SPF: we have no subpages
    if (!isSupportedPage(code)) throw invalidFieldInParameterList(off, 5);
    const size = pageSize(code);
    if (p[off + 1] !== size - 2) throw invalidFieldInParameterList(off + 1);
    if (off + size > len) throw parameterListLengthError();
    const r = applyPage(code, p.subarray(off, off + size), values);
    if ('badByte' in r) throw invalidFieldInParameterList(off + r.badByte, r.bit);
    values = r.values;
    off += size;
  }
  lu.setModeValues(values, task.nexus);
  return { status: ScsiStatus.Good, dataOutLength: len };
}

// ------------------------------------------------------------------ RESERVE / RELEASE

/** RESERVE(6): SPC-2 reservation of the whole LU for this I_T nexus. */
export function reserve6(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  if (task.cdb[1] & 0x1f) throw invalidFieldInCdb(1); // third-party / extent reservations
  return reserve(lu, task);
}

export function reserve10(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  if (task.cdb[1] & 0x13) throw invalidFieldInCdb(1); // 3RDPTY, LONGID, extent
  return reserve(lu, task);
}

// With persistent reservation registrations about, RESERVE and RELEASE follow SPC-4
// §5.12.3 (CRH = 1): GOOD and no change for the persistent reservation holder, RESERVATION
// CONFLICT for everyone else (PersistentReservations.spc2Interplay).

function reserve(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const pr = lu.pr.spc2Interplay(task.nexus);
  if (pr === 'conflict') return { status: ScsiStatus.ReservationConflict };
  if (pr === 'good') return good();
  if (!lu.reserve(task.nexus)) return { status: ScsiStatus.ReservationConflict };
  return good();
}

function release(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const pr = lu.pr.spc2Interplay(task.nexus);
  if (pr === 'conflict') return { status: ScsiStatus.ReservationConflict };
  if (pr === 'proceed') lu.release(task.nexus);
  return good();
}

/** RELEASE(6): releases this nexus's reservation; a no-op for anyone else. */
export function release6(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  if (task.cdb[1] & 0x1f) throw invalidFieldInCdb(1);
  return release(lu, task);
}

export function release10(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  if (task.cdb[1] & 0x13) throw invalidFieldInCdb(1);
  return release(lu, task);
}

// ------------------------------------------------------------------ PERSISTENT RESERVE IN / OUT

/**
 * PERSISTENT RESERVE IN (READ KEYS, READ RESERVATION, REPORT CAPABILITIES, READ FULL
 * STATUS): answered from the LU's persistent reservation state (persistent-reservations.ts).
 */
export function persistentReserveIn(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  return lu.pr.reserveIn(task);
}

/**
 * PERSISTENT RESERVE OUT (REGISTER, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND ABORT,
 * REGISTER AND IGNORE EXISTING KEY, REGISTER AND MOVE): the state machine in
 * persistent-reservations.ts; resolves once an APTPL state change is on disk.
 */
export function persistentReserveOut(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  return lu.pr.reserveOut(task);
}

// ------------------------------------------------------------------ REPORT SUPPORTED TMF

/**
 * REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS: what the iSCSI layer implements — ABORT
 * TASK, ABORT TASK SET, CLEAR TASK SET, LOGICAL UNIT RESET and TARGET RESET.
 */
export function reportSupportedTaskManagementFunctions(_lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  const repd = (c[2] & 0x80) !== 0;
  const alloc = c.readUInt32BE(6);
  const b = Buffer.alloc(repd ? 16 : 4);
  b[0] = 0x80 | 0x40 | 0x10 | 0x08 | 0x02; // ATS, ATSS, CTSS, LURS, TRS
  b[1] = 0x00; // no QUERY functions, no I_T NEXUS RESET
  if (repd) b[3] = 0x0c;
  return good(truncate(b, alloc));
}

/** REPORT LUNS never reaches a logical unit: executeScsi answers it from the LUN map. */
export function reportLunsPlaceholder(): ScsiResult {
  throw new Error('REPORT LUNS is answered by executeScsi');
}
