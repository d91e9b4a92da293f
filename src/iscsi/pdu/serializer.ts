// Typed PDU -> bytes (RFC 7143 §11). Pure: no I/O.
//
// encodePdu() returns the pieces of one PDU ready for a single writev / corked
// write: [header, data?, trailer?]. The data segment is passed through by
// reference, never copied into the header buffer.

import { Ahs, Op, Pdu, RESERVED_TAG, ScsiCommand } from './messages';
import { crc32c, DIGEST_LENGTH } from './digest';

export interface DigestOptions {
  headerDigest: boolean;
  dataDigest: boolean;
}

export const BHS_LENGTH = 48;
/** Largest value the 24-bit DataSegmentLength field can carry. */
export const MAX_DATA_SEGMENT_LENGTH = 0xffffff;

/** AHS types (RFC 7143 §11.2.2.3). */
export const AHS_EXTENDED_CDB = 1;
export const AHS_BIDI_READ_LENGTH = 2;

const ZERO_PAD = Buffer.alloc(4);

/** Number of padding bytes that bring `n` to a multiple of 4. */
export function padLength(n: number): number {
  return (4 - (n & 3)) & 3;
}

/** The data segment as it goes on the wire (unpadded). */
export function dataSegmentOf(pdu: Pdu): Buffer {
  if (pdu.op === Op.ScsiResponse) {
    const sense = pdu.sense;
    if (sense !== undefined && sense.length > 0) {
      const d = Buffer.allocUnsafe(2 + sense.length);
      d.writeUInt16BE(sense.length, 0);
      sense.copy(d, 2);
      return d;
    }
  }
  return pdu.data;
}

/** Wire size of one AHS (3-byte header + body, padded to 4). */
function ahsSize(bodyLength: number): number {
  const n = 3 + bodyLength;
  return n + padLength(n);
}

/** Total AHS bytes a ScsiCommand needs (multiple of 4). */
function commandAhsLength(pdu: ScsiCommand): number {
  let n = 0;
  if (pdu.cdb.length > 16) n += ahsSize(pdu.cdb.length - 15);
  if (pdu.bidiReadLength !== undefined) n += ahsSize(5);
  for (const a of pdu.ahs) n += ahsSize(ahsBodyLength(a));
  return n;
}

function ahsBodyLength(a: Ahs): number {
  if ('raw' in a) return a.raw.length;
  if ('cdb' in a) return a.cdb.length + 1;
  return 5;
}

function writeAhsHeader(buf: Buffer, pos: number, bodyLength: number, type: number): void {
  if (bodyLength > 0xffff) throw new RangeError(`AHS too long: ${bodyLength}`);
  buf.writeUInt16BE(bodyLength, pos);
  buf[pos + 2] = type;
}

/** Write the AHS of a ScsiCommand at `pos` (buffer already zeroed). */
function writeCommandAhs(pdu: ScsiCommand, buf: Buffer, pos: number): void {
  const cdb = pdu.cdb;
  if (cdb.length > 16) {
    const body = cdb.length - 15; // reserved byte + extra CDB bytes
    writeAhsHeader(buf, pos, body, AHS_EXTENDED_CDB);
    cdb.copy(buf, pos + 4, 16);
    pos += ahsSize(body);
  }
  if (pdu.bidiReadLength !== undefined) {
    writeAhsHeader(buf, pos, 5, AHS_BIDI_READ_LENGTH);
    buf.writeUInt32BE(pdu.bidiReadLength >>> 0, pos + 4);
    pos += 8;
  }
  for (const a of pdu.ahs) {
    const body = ahsBodyLength(a);
    if ('raw' in a) {
      writeAhsHeader(buf, pos, body, a.type);
      a.raw.copy(buf, pos + 3);
    } else if ('cdb' in a) {
      writeAhsHeader(buf, pos, body, AHS_EXTENDED_CDB);
      a.cdb.copy(buf, pos + 4);
    } else {
      writeAhsHeader(buf, pos, body, AHS_BIDI_READ_LENGTH);
      buf.writeUInt32BE(a.bidiReadLength >>> 0, pos + 4);
    }
    pos += ahsSize(body);
  }
}

function u32(buf: Buffer, off: number, v: number): void {
  buf.writeUInt32BE(v >>> 0, off);
}

function u16(buf: Buffer, off: number, v: number): void {
  buf.writeUInt16BE(v & 0xffff, off);
}

function writeIsid(buf: Buffer, isid: Buffer): void {
  if (isid.length !== 6) throw new RangeError(`ISID must be 6 bytes, got ${isid.length}`);
  isid.copy(buf, 8);
}

/**
 * Write the 48-byte BHS of `pdu` into `buf` (at offset 0; `buf` must be zeroed).
 * `dataLength` is the DataSegmentLength and `ahsLength` the AHS size in bytes
 * (multiple of 4). Exported for callers that build headers into their own buffers.
 */
export function encodeBhsInto(pdu: Pdu, buf: Buffer, dataLength: number, ahsLength = 0): void {
  if (dataLength > MAX_DATA_SEGMENT_LENGTH) throw new RangeError(`data segment too long: ${dataLength}`);
  if (ahsLength > 255 * 4 || (ahsLength & 3) !== 0) throw new RangeError(`bad AHS length: ${ahsLength}`);
  buf[4] = ahsLength >>> 2;
  buf[5] = dataLength >>> 16;
  buf[6] = dataLength >>> 8;
  buf[7] = dataLength;

  switch (pdu.op) {
    case Op.NopOut:
      buf[0] = Op.NopOut | (pdu.immediate ? 0x40 : 0);
      buf[1] = 0x80;
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.ttt);
      u32(buf, 24, pdu.cmdSN);
      u32(buf, 28, pdu.expStatSN);
      break;
    case Op.ScsiCommand: {
      buf[0] = Op.ScsiCommand | (pdu.immediate ? 0x40 : 0);
      buf[1] = (pdu.final ? 0x80 : 0) | (pdu.read ? 0x40 : 0) | (pdu.write ? 0x20 : 0) | (pdu.attr & 0x07);
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.expectedDataLength);
      u32(buf, 24, pdu.cmdSN);
      u32(buf, 28, pdu.expStatSN);
      const cdb = pdu.cdb;
      cdb.copy(buf, 32, 0, cdb.length < 16 ? cdb.length : 16);
      break;
    }
    case Op.TaskMgmtRequest:
      buf[0] = Op.TaskMgmtRequest | (pdu.immediate ? 0x40 : 0);
      buf[1] = 0x80 | (pdu.func & 0x7f);
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.refTaskTag);
      u32(buf, 24, pdu.cmdSN);
      u32(buf, 28, pdu.expStatSN);
      u32(buf, 32, pdu.refCmdSN);
      u32(buf, 36, pdu.expDataSN);
      break;
    case Op.LoginRequest:
      buf[0] = Op.LoginRequest | 0x40;
      buf[1] = (pdu.transit ? 0x80 : 0) | (pdu.cont ? 0x40 : 0) | ((pdu.csg & 3) << 2) | (pdu.nsg & 3);
      buf[2] = pdu.versionMax;
      buf[3] = pdu.versionMin;
      writeIsid(buf, pdu.isid);
      u16(buf, 14, pdu.tsih);
      u32(buf, 16, pdu.itt);
      u16(buf, 20, pdu.cid);
      u32(buf, 24, pdu.cmdSN);
      u32(buf, 28, pdu.expStatSN);
      break;
    case Op.TextRequest:
      buf[0] = Op.TextRequest | (pdu.immediate ? 0x40 : 0);
      buf[1] = (pdu.final ? 0x80 : 0) | (pdu.cont ? 0x40 : 0);
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.ttt);
      u32(buf, 24, pdu.cmdSN);
      u32(buf, 28, pdu.expStatSN);
      break;
    case Op.DataOut:
      buf[0] = Op.DataOut;
      buf[1] = pdu.final ? 0x80 : 0;
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.ttt);
      u32(buf, 28, pdu.expStatSN);
      u32(buf, 36, pdu.dataSN);
      u32(buf, 40, pdu.bufferOffset);
      break;
    case Op.LogoutRequest:
      buf[0] = Op.LogoutRequest | (pdu.immediate ? 0x40 : 0);
      buf[1] = 0x80 | (pdu.reason & 0x7f);
      u32(buf, 16, pdu.itt);
      u16(buf, 20, pdu.cid);
      u32(buf, 24, pdu.cmdSN);
      u32(buf, 28, pdu.expStatSN);
      break;
    case Op.Snack:
      buf[0] = Op.Snack;
      buf[1] = 0x80 | (pdu.type & 0x0f);
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.ttt);
      u32(buf, 28, pdu.expStatSN);
      u32(buf, 40, pdu.begRun);
      u32(buf, 44, pdu.runLength);
      break;
    case Op.NopIn:
      buf[0] = Op.NopIn;
      buf[1] = 0x80;
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.ttt);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      break;
    case Op.ScsiResponse:
      buf[0] = Op.ScsiResponse;
      buf[1] =
        0x80 | (pdu.bidiOverflow ? 0x10 : 0) | (pdu.bidiUnderflow ? 0x08 : 0) | (pdu.overflow ? 0x04 : 0) | (pdu.underflow ? 0x02 : 0);
      buf[2] = pdu.response;
      buf[3] = pdu.status;
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.snackTag);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      u32(buf, 36, pdu.expDataSN);
      u32(buf, 40, pdu.bidiResidualCount);
      u32(buf, 44, pdu.residualCount);
      break;
    case Op.TaskMgmtResponse:
      buf[0] = Op.TaskMgmtResponse;
      buf[1] = 0x80;
      buf[2] = pdu.response;
      u32(buf, 16, pdu.itt);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      break;
    case Op.LoginResponse:
      buf[0] = Op.LoginResponse;
      buf[1] = (pdu.transit ? 0x80 : 0) | (pdu.cont ? 0x40 : 0) | ((pdu.csg & 3) << 2) | (pdu.nsg & 3);
      buf[2] = pdu.versionMax;
      buf[3] = pdu.versionActive;
      writeIsid(buf, pdu.isid);
      u16(buf, 14, pdu.tsih);
      u32(buf, 16, pdu.itt);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      buf[36] = pdu.statusClass;
      buf[37] = pdu.statusDetail;
      break;
    case Op.TextResponse:
      buf[0] = Op.TextResponse;
      buf[1] = (pdu.final ? 0x80 : 0) | (pdu.cont ? 0x40 : 0);
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.ttt);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      break;
    case Op.DataIn:
      buf[0] = Op.DataIn;
      buf[1] =
        (pdu.final ? 0x80 : 0) | (pdu.ack ? 0x40 : 0) | (pdu.overflow ? 0x04 : 0) | (pdu.underflow ? 0x02 : 0) | (pdu.hasStatus ? 0x01 : 0);
      buf[3] = pdu.status;
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.ttt);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      u32(buf, 36, pdu.dataSN);
      u32(buf, 40, pdu.bufferOffset);
      u32(buf, 44, pdu.residualCount);
      break;
    case Op.LogoutResponse:
      buf[0] = Op.LogoutResponse;
      buf[1] = 0x80;
      buf[2] = pdu.response;
      u32(buf, 16, pdu.itt);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      u16(buf, 40, pdu.time2Wait);
      u16(buf, 42, pdu.time2Retain);
      break;
    case Op.R2T:
      buf[0] = Op.R2T;
      buf[1] = 0x80;
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, pdu.itt);
      u32(buf, 20, pdu.ttt);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      u32(buf, 36, pdu.r2tSN);
      u32(buf, 40, pdu.bufferOffset);
      u32(buf, 44, pdu.desiredLength);
      break;
    case Op.AsyncMessage:
      buf[0] = Op.AsyncMessage;
      buf[1] = 0x80;
      buf.writeBigUInt64BE(pdu.lun, 8);
      u32(buf, 16, RESERVED_TAG);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      buf[36] = pdu.asyncEvent;
      buf[37] = pdu.asyncVCode;
      u16(buf, 38, pdu.parameter1);
      u16(buf, 40, pdu.parameter2);
      u16(buf, 42, pdu.parameter3);
      break;
    case Op.Reject:
      buf[0] = Op.Reject;
      buf[1] = 0x80;
      buf[2] = pdu.reason;
      u32(buf, 16, RESERVED_TAG);
      u32(buf, 24, pdu.statSN);
      u32(buf, 28, pdu.expCmdSN);
      u32(buf, 32, pdu.maxCmdSN);
      u32(buf, 36, pdu.dataSN);
      break;
    default: {
      const never: never = pdu;
      throw new TypeError(`cannot encode PDU with opcode ${(never as { op: number }).op}`);
    }
  }
}

/**
 * Encode one PDU as buffers for a single writev:
 *  [0] header: BHS + AHS + header digest (if enabled);
 *  [1] the data segment itself (same memory as `pdu.data`), when non-empty;
 *  [2] padding to 4 bytes + data digest (if enabled), when non-empty.
 */
export function encodePdu(pdu: Pdu, opts: DigestOptions): Buffer[] {
  const data = dataSegmentOf(pdu);
  const dataLength = data.length;
  const ahsLength = pdu.op === Op.ScsiCommand ? commandAhsLength(pdu) : 0;
  const headerLength = BHS_LENGTH + ahsLength;
  const header = Buffer.allocUnsafe(headerLength + (opts.headerDigest ? DIGEST_LENGTH : 0));
  header.fill(0, 0, headerLength);
  encodeBhsInto(pdu, header, dataLength, ahsLength);
  if (ahsLength > 0) writeCommandAhs(pdu as ScsiCommand, header, BHS_LENGTH);
  if (opts.headerDigest) {
    header.writeUInt32LE(crc32c(header.subarray(0, headerLength)), headerLength);
  }
  if (dataLength === 0) return [header];

  const pad = padLength(dataLength);
  const trailerLength = pad + (opts.dataDigest ? DIGEST_LENGTH : 0);
  if (trailerLength === 0) return [header, data];
  const trailer = Buffer.allocUnsafe(trailerLength);
  if (pad > 0) trailer.fill(0, 0, pad);
  if (opts.dataDigest) {
    let crc = crc32c(data);
    if (pad > 0) crc = crc32c(ZERO_PAD.subarray(0, pad), crc);
    trailer.writeUInt32LE(crc, pad);
  }
  return [header, data, trailer];
}

/**
 * Encode one PDU whole (header, data segment, padding, digests) into `out` from `pos`:
 * small PDUs go out in one piece with the others of their batch instead of as separate
 * writev entries. Returns the end position, or -1 when it does not fit (nothing written).
 */
export function encodePduInto(pdu: Pdu, opts: DigestOptions, out: Buffer, pos: number): number {
  const data = dataSegmentOf(pdu);
  const dataLength = data.length;
  const ahsLength = pdu.op === Op.ScsiCommand ? commandAhsLength(pdu) : 0;
  const headerLength = BHS_LENGTH + ahsLength;
  const dataStart = pos + headerLength + (opts.headerDigest ? DIGEST_LENGTH : 0);
  const pad = padLength(dataLength);
  const end = dataStart + (dataLength === 0 ? 0 : dataLength + pad + (opts.dataDigest ? DIGEST_LENGTH : 0));
  if (end > out.length) return -1;
  out.fill(0, pos, pos + headerLength);
  const header = out.subarray(pos, pos + headerLength);
  encodeBhsInto(pdu, header, dataLength, ahsLength);
  if (ahsLength > 0) writeCommandAhs(pdu as ScsiCommand, header, BHS_LENGTH);
  if (opts.headerDigest) out.writeUInt32LE(crc32c(header), pos + headerLength);
  if (dataLength === 0) return end;
  data.copy(out, dataStart);
  const dataEnd = dataStart + dataLength;
  if (pad > 0) out.fill(0, dataEnd, dataEnd + pad);
  if (opts.dataDigest) out.writeUInt32LE(crc32c(out.subarray(dataStart, dataEnd + pad)), dataEnd + pad);
  return end;
}

/** encodePdu() concatenated into one buffer (login phase, tests). */
export function encodePduToBuffer(pdu: Pdu, opts: DigestOptions): Buffer {
  const parts = encodePdu(pdu, opts);
  return parts.length === 1 ? parts[0] : Buffer.concat(parts);
}
