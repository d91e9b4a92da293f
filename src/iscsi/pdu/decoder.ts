// One framed PDU's bytes -> a typed PDU (RFC 7143 §11), and the error a PDU that cannot
// be accepted raises. Pure: no I/O. The streaming framing is parser.ts's.

import {
  Ahs,
  AsyncMessage,
  DataIn,
  DataOut,
  LoginRequest,
  LoginResponse,
  LogoutRequest,
  LogoutResponse,
  NopIn,
  NopOut,
  Op,
  Pdu,
  R2T,
  Reject,
  ScsiCommand,
  ScsiResponse,
  Snack,
  TaskMgmtRequest,
  TaskMgmtResponse,
  TextRequest,
  TextResponse,
} from './messages';
import { AHS_BIDI_READ_LENGTH, AHS_EXTENDED_CDB, BHS_LENGTH, padLength } from './serializer';

export type PduErrorKind = 'header-digest' | 'data-digest' | 'data-too-long' | 'unknown-opcode' | 'malformed';

/**
 * A PDU that could not be accepted.
 * - fatal (header-digest, data-too-long, malformed framing/AHS): the stream can no
 *   longer be trusted; the parser stops and the caller closes the connection.
 * - not fatal (data-digest, unknown-opcode, malformed content inside a well-framed
 *   PDU): the PDU's bytes were skipped; the caller may send a Reject carrying `bhs`
 *   (reason 0x02 for a data digest error, 0x04 / 0x05 for an unknown opcode).
 */
export class PduError extends Error {
  readonly kind: PduErrorKind;
  /** The raw 48-byte BHS of the offending PDU, when it was read. */
  readonly bhs?: Buffer;
  readonly fatal: boolean;

  constructor(kind: PduErrorKind, message: string, bhs?: Buffer, fatal?: boolean) {
    super(message);
    this.name = 'PduError';
    this.kind = kind;
    if (bhs !== undefined) this.bhs = bhs;
    this.fatal = fatal ?? (kind === 'header-digest' || kind === 'data-too-long' || kind === 'malformed');
  }
}

// ---------------------------------------------------------------------------
// Decoding

/**
 * Decode one complete PDU held in `buf` (BHS, AHS, data segment; no digests;
 * padding optional after the data). Throws PduError.
 */
export function decodePdu(buf: Buffer): Pdu {
  if (buf.length < BHS_LENGTH) throw new PduError('malformed', `PDU shorter than ${BHS_LENGTH} bytes`);
  const ahsEnd = BHS_LENGTH + (buf[4] << 2);
  const dataLength = (buf[5] << 16) | (buf[6] << 8) | buf[7];
  const bhs = buf.subarray(0, BHS_LENGTH);
  if (buf.length < ahsEnd + dataLength) {
    throw new PduError('malformed', `PDU truncated: ${buf.length} < ${ahsEnd + dataLength} bytes`, bhs);
  }
  return decodePduParts(bhs, buf.subarray(BHS_LENGTH, ahsEnd), buf.subarray(ahsEnd, ahsEnd + dataLength));
}

/**
 * Decode a PDU from its parts: the 48-byte BHS, the AHS bytes (TotalAHSLength*4)
 * and the unpadded data segment. The result references these buffers.
 */
export function decodePduParts(bhs: Buffer, ahs: Buffer, data: Buffer): Pdu {
  const op = bhs[0] & 0x3f;
  switch (op) {
    case Op.NopOut:
      return decodeNopOut(bhs, data);
    case Op.ScsiCommand:
      return decodeScsiCommand(bhs, ahs, data);
    case Op.TaskMgmtRequest:
      return decodeTaskMgmtRequest(bhs, data);
    case Op.LoginRequest:
      return decodeLoginRequest(bhs, data);
    case Op.TextRequest:
      return decodeTextRequest(bhs, data);
    case Op.DataOut:
      return decodeDataOut(bhs, data);
    case Op.LogoutRequest:
      return decodeLogoutRequest(bhs, data);
    case Op.Snack:
      return decodeSnack(bhs, data);
    case Op.NopIn:
      return decodeNopIn(bhs, data);
    case Op.ScsiResponse:
      return decodeScsiResponse(bhs, data);
    case Op.TaskMgmtResponse:
      return decodeTaskMgmtResponse(bhs, data);
    case Op.LoginResponse:
      return decodeLoginResponse(bhs, data);
    case Op.TextResponse:
      return decodeTextResponse(bhs, data);
    case Op.DataIn:
      return decodeDataIn(bhs, data);
    case Op.LogoutResponse:
      return decodeLogoutResponse(bhs, data);
    case Op.R2T:
      return decodeR2T(bhs, data);
    case Op.AsyncMessage:
      return decodeAsyncMessage(bhs, data);
    case Op.Reject:
      return decodeReject(bhs, data);
    default:
      throw new PduError('unknown-opcode', `unknown opcode 0x${op.toString(16).padStart(2, '0')}`, bhs);
  }
}

function immediate(bhs: Buffer): boolean {
  return (bhs[0] & 0x40) !== 0;
}

function decodeNopOut(b: Buffer, data: Buffer): NopOut {
  return {
    op: Op.NopOut,
    immediate: immediate(b),
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    cmdSN: b.readUInt32BE(24),
    expStatSN: b.readUInt32BE(28),
    data,
  };
}

function decodeScsiCommand(b: Buffer, ahsBuf: Buffer, data: Buffer): ScsiCommand {
  const f = b[1];
  let cdb = b.subarray(32, 48);
  let bidiReadLength: number | undefined;
  const ahs: Ahs[] = [];
  let extSeen = false;
  let pos = 0;
  const end = ahsBuf.length;
  while (pos < end) {
    if (end - pos < 4) throw new PduError('malformed', 'truncated AHS header', b);
    const len = ahsBuf.readUInt16BE(pos);
    const type = ahsBuf[pos + 2];
    const bodyEnd = pos + 3 + len;
    if (bodyEnd > end) throw new PduError('malformed', `AHS length ${len} runs past TotalAHSLength`, b);
    if (type === AHS_EXTENDED_CDB) {
      if (len < 1 || extSeen) throw new PduError('malformed', 'bad extended CDB AHS', b);
      extSeen = true;
      cdb = Buffer.concat([cdb, ahsBuf.subarray(pos + 4, bodyEnd)], 16 + len - 1);
    } else if (type === AHS_BIDI_READ_LENGTH) {
      if (len !== 5 || bidiReadLength !== undefined) {
        throw new PduError('malformed', 'bad bidirectional read length AHS', b);
      }
      bidiReadLength = ahsBuf.readUInt32BE(pos + 4);
    } else {
      ahs.push({ type, raw: ahsBuf.subarray(pos + 3, bodyEnd) });
    }
    pos = bodyEnd + padLength(3 + len);
  }
  const p: ScsiCommand = {
    op: Op.ScsiCommand,
    immediate: immediate(b),
    final: (f & 0x80) !== 0,
    read: (f & 0x40) !== 0,
    write: (f & 0x20) !== 0,
    attr: f & 0x07,
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    expectedDataLength: b.readUInt32BE(20),
    cmdSN: b.readUInt32BE(24),
    expStatSN: b.readUInt32BE(28),
    cdb,
    ahs,
    data,
  };
  if (bidiReadLength !== undefined) p.bidiReadLength = bidiReadLength;
  return p;
}

function decodeTaskMgmtRequest(b: Buffer, data: Buffer): TaskMgmtRequest {
  return {
    op: Op.TaskMgmtRequest,
    immediate: immediate(b),
    func: b[1] & 0x7f,
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    refTaskTag: b.readUInt32BE(20),
    cmdSN: b.readUInt32BE(24),
    expStatSN: b.readUInt32BE(28),
    refCmdSN: b.readUInt32BE(32),
    expDataSN: b.readUInt32BE(36),
    data,
  };
}

function decodeLoginRequest(b: Buffer, data: Buffer): LoginRequest {
  const f = b[1];
  return {
    op: Op.LoginRequest,
    transit: (f & 0x80) !== 0,
    cont: (f & 0x40) !== 0,
    csg: (f >> 2) & 3,
    nsg: f & 3,
    versionMax: b[2],
    versionMin: b[3],
    isid: b.subarray(8, 14),
    tsih: b.readUInt16BE(14),
    itt: b.readUInt32BE(16),
    cid: b.readUInt16BE(20),
    cmdSN: b.readUInt32BE(24),
    expStatSN: b.readUInt32BE(28),
    data,
  };
}

function decodeTextRequest(b: Buffer, data: Buffer): TextRequest {
  const f = b[1];
  return {
    op: Op.TextRequest,
    immediate: immediate(b),
    final: (f & 0x80) !== 0,
    cont: (f & 0x40) !== 0,
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    cmdSN: b.readUInt32BE(24),
    expStatSN: b.readUInt32BE(28),
    data,
  };
}

function decodeDataOut(b: Buffer, data: Buffer): DataOut {
  return {
    op: Op.DataOut,
    final: (b[1] & 0x80) !== 0,
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    expStatSN: b.readUInt32BE(28),
    dataSN: b.readUInt32BE(36),
    bufferOffset: b.readUInt32BE(40),
    data,
  };
}

function decodeLogoutRequest(b: Buffer, data: Buffer): LogoutRequest {
  return {
    op: Op.LogoutRequest,
    immediate: immediate(b),
    reason: b[1] & 0x7f,
    itt: b.readUInt32BE(16),
    cid: b.readUInt16BE(20),
    cmdSN: b.readUInt32BE(24),
    expStatSN: b.readUInt32BE(28),
    data,
  };
}

function decodeSnack(b: Buffer, data: Buffer): Snack {
  return {
    op: Op.Snack,
    type: b[1] & 0x0f,
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    expStatSN: b.readUInt32BE(28),
    begRun: b.readUInt32BE(40),
    runLength: b.readUInt32BE(44),
    data,
  };
}

function decodeNopIn(b: Buffer, data: Buffer): NopIn {
  return {
    op: Op.NopIn,
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    data,
  };
}

function decodeScsiResponse(b: Buffer, data: Buffer): ScsiResponse {
  const f = b[1];
  const p: ScsiResponse = {
    op: Op.ScsiResponse,
    bidiOverflow: (f & 0x10) !== 0,
    bidiUnderflow: (f & 0x08) !== 0,
    overflow: (f & 0x04) !== 0,
    underflow: (f & 0x02) !== 0,
    response: b[2],
    status: b[3],
    itt: b.readUInt32BE(16),
    snackTag: b.readUInt32BE(20),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    expDataSN: b.readUInt32BE(36),
    bidiResidualCount: b.readUInt32BE(40),
    residualCount: b.readUInt32BE(44),
    data,
  };
  if (data.length >= 2) {
    const senseLength = data.readUInt16BE(0);
    if (senseLength > 0) {
      if (2 + senseLength > data.length) {
        // Framing is intact, only the content is bad: not fatal.
        throw new PduError('malformed', `SenseLength ${senseLength} exceeds data segment`, b, false);
      }
      p.sense = data.subarray(2, 2 + senseLength);
    }
  }
  return p;
}

function decodeTaskMgmtResponse(b: Buffer, data: Buffer): TaskMgmtResponse {
  return {
    op: Op.TaskMgmtResponse,
    response: b[2],
    itt: b.readUInt32BE(16),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    data,
  };
}

function decodeLoginResponse(b: Buffer, data: Buffer): LoginResponse {
  const f = b[1];
  return {
    op: Op.LoginResponse,
    transit: (f & 0x80) !== 0,
    cont: (f & 0x40) !== 0,
    csg: (f >> 2) & 3,
    nsg: f & 3,
    versionMax: b[2],
    versionActive: b[3],
    isid: b.subarray(8, 14),
    tsih: b.readUInt16BE(14),
    itt: b.readUInt32BE(16),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    statusClass: b[36],
    statusDetail: b[37],
    data,
  };
}

function decodeTextResponse(b: Buffer, data: Buffer): TextResponse {
  const f = b[1];
  return {
    op: Op.TextResponse,
    final: (f & 0x80) !== 0,
    cont: (f & 0x40) !== 0,
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    data,
  };
}

function decodeDataIn(b: Buffer, data: Buffer): DataIn {
  const f = b[1];
  return {
    op: Op.DataIn,
    final: (f & 0x80) !== 0,
    ack: (f & 0x40) !== 0,
    overflow: (f & 0x04) !== 0,
    underflow: (f & 0x02) !== 0,
    hasStatus: (f & 0x01) !== 0,
    status: b[3],
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    dataSN: b.readUInt32BE(36),
    bufferOffset: b.readUInt32BE(40),
    residualCount: b.readUInt32BE(44),
    data,
  };
}

function decodeLogoutResponse(b: Buffer, data: Buffer): LogoutResponse {
  return {
    op: Op.LogoutResponse,
    response: b[2],
    itt: b.readUInt32BE(16),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    time2Wait: b.readUInt16BE(40),
    time2Retain: b.readUInt16BE(42),
    data,
  };
}

function decodeR2T(b: Buffer, data: Buffer): R2T {
  return {
    op: Op.R2T,
    lun: b.readBigUInt64BE(8),
    itt: b.readUInt32BE(16),
    ttt: b.readUInt32BE(20),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    r2tSN: b.readUInt32BE(36),
    bufferOffset: b.readUInt32BE(40),
    desiredLength: b.readUInt32BE(44),
    data,
  };
}

function decodeAsyncMessage(b: Buffer, data: Buffer): AsyncMessage {
  return {
    op: Op.AsyncMessage,
    lun: b.readBigUInt64BE(8),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    asyncEvent: b[36],
    asyncVCode: b[37],
    parameter1: b.readUInt16BE(38),
    parameter2: b.readUInt16BE(40),
    parameter3: b.readUInt16BE(42),
    data,
  };
}

function decodeReject(b: Buffer, data: Buffer): Reject {
  return {
    op: Op.Reject,
    reason: b[2],
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    dataSN: b.readUInt32BE(36),
    data,
  };
}
