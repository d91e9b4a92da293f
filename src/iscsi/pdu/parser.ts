// Bytes -> typed PDUs (RFC 7143 §11). Pure: no I/O.
//
// PduParser frames a byte stream into PDUs without re-concatenating every chunk:
// it keeps the pending chunks in a list, reads the 48-byte BHS once it is there,
// computes the PDU's full length (AHS, digests, padding) and, once all of it has
// arrived, takes it with a single copy (or a zero-copy slice when it lies in one
// chunk). The decoded PDU's `data` (and other Buffer fields) are views into that
// frame; the caller must not mutate chunks after pushing them.

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
  TaskAttr,
  TaskMgmtRequest,
  TaskMgmtResponse,
  TextRequest,
  TextResponse,
} from './messages';
import { crc32c, DIGEST_LENGTH } from './digest';
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

export interface PduHandlers {
  pdu(p: Pdu, bhs: Buffer): void;
  error(e: PduError): void;
  /**
   * Optional: where a data segment that arrived split across chunks should be assembled
   * (exactly `dataLength` bytes, e.g. the slice of a command's buffer a Data-Out fills),
   * or null to let the parser assemble it in a frame of its own. Called only once the
   * whole PDU is buffered and its header checked; the PDU's `data` is then that buffer,
   * so its bytes are copied once, straight from the socket's chunks.
   */
  dataSink?(bhs: Buffer, dataLength: number): Buffer | null;
}

const DEFAULT_MAX_DATA_SEGMENT_LENGTH = 16 * 1024 * 1024;

export class PduParser {
  /** Expect a header digest after the BHS+AHS of the next PDU. */
  headerDigest = false;
  /** Expect a data digest after the (padded) data segment of the next PDU. */
  dataDigest = false;
  /** A PDU announcing a longer data segment is a fatal 'data-too-long' error. */
  maxDataSegmentLength = DEFAULT_MAX_DATA_SEGMENT_LENGTH;

  private readonly handlers: PduHandlers;
  private chunks: Buffer[] = [];
  /** Index in `chunks` of the first unconsumed chunk, and offset into it. */
  private head = 0;
  private offset = 0;
  /** Unconsumed bytes across all chunks. */
  private buffered = 0;
  /** BHS of the PDU being assembled, or null when waiting for one. */
  private bhs: Buffer | null = null;
  private ahsLength = 0;
  private dataLength = 0;
  /** The current PDU's header (and its digest, if any) has been checked. */
  private headerChecked = false;
  /** Whether the current PDU carries a header digest (fixed once checked). */
  private frameHeaderDigest = false;
  private draining = false;
  private stopped = false;

  constructor(handlers: PduHandlers) {
    this.handlers = handlers;
  }

  /** True once a fatal error has been reported; further input is ignored. */
  get closed(): boolean {
    return this.stopped;
  }

  /** Bytes received but not yet emitted as a PDU. */
  get pendingBytes(): number {
    return this.buffered;
  }

  push(chunk: Buffer): void {
    if (this.stopped || chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    // A handler that pushes more data is served by the loop already running.
    if (this.draining) return;
    this.draining = true;
    try {
      this.drain();
    } finally {
      this.draining = false;
    }
  }

  private drain(): void {
    while (!this.stopped) {
      if (this.bhs === null) {
        if (this.buffered < BHS_LENGTH) return;
        const bhs = this.peek(BHS_LENGTH);
        this.bhs = bhs;
        this.ahsLength = bhs[4]! << 2;
        this.dataLength = (bhs[5]! << 16) | (bhs[6]! << 8) | bhs[7]!;
        this.headerChecked = false;
      }
      const headerEnd = BHS_LENGTH + this.ahsLength;
      if (!this.headerChecked) {
        // Check the header digest as soon as the header is in, before trusting its
        // lengths (a corrupted DataSegmentLength must not make us wait for data).
        // Settings are read here, not when the previous PDU was emitted, so a
        // change made by a handler applies to the next PDU.
        const hd = this.headerDigest;
        if (hd) {
          if (this.buffered < headerEnd + DIGEST_LENGTH) return;
          const h = this.peek(headerEnd + DIGEST_LENGTH);
          if (h.readUInt32LE(headerEnd) !== crc32c(h.subarray(0, headerEnd))) {
            this.fail(new PduError('header-digest', 'header digest mismatch', Buffer.from(this.bhs)));
            return;
          }
        }
        this.frameHeaderDigest = hd;
        this.headerChecked = true;
        if (this.dataLength > this.maxDataSegmentLength) {
          this.fail(
            new PduError(
              'data-too-long',
              `DataSegmentLength ${this.dataLength} exceeds ${this.maxDataSegmentLength}`,
              Buffer.from(this.bhs),
            ),
          );
          return;
        }
      }
      const dataLength = this.dataLength;
      const dd = this.dataDigest && dataLength > 0;
      const dataStart = headerEnd + (this.frameHeaderDigest ? DIGEST_LENGTH : 0);
      const paddedData = dataLength + padLength(dataLength);
      const total = dataStart + paddedData + (dd ? DIGEST_LENGTH : 0);
      if (this.buffered < total) return;

      if (dataLength > 0 && this.handlers.dataSink !== undefined && !this.contiguous(total)) {
        const sink = this.handlers.dataSink(this.bhs, dataLength);
        if (sink !== null && sink.length === dataLength) {
          if (!this.emitIntoSink(sink, headerEnd, dataStart, paddedData - dataLength, dd)) return;
          continue;
        }
      }

      const frame = this.take(total);
      this.bhs = null;
      const bhs = frame.subarray(0, BHS_LENGTH);

      if (dd) {
        const paddedEnd = dataStart + paddedData;
        if (frame.readUInt32LE(paddedEnd) !== crc32c(frame.subarray(dataStart, paddedEnd))) {
          this.handlers.error(new PduError('data-digest', 'data digest mismatch', bhs));
          continue;
        }
      }

      let pdu: Pdu;
      try {
        pdu = decodePduParts(bhs, frame.subarray(BHS_LENGTH, headerEnd), frame.subarray(dataStart, dataStart + dataLength));
      } catch (e) {
        if (!(e instanceof PduError)) throw e;
        if (e.fatal) {
          this.fail(e);
          return;
        }
        this.handlers.error(e);
        continue;
      }
      this.handlers.pdu(pdu, bhs);
    }
  }

  /**
   * Emit the buffered PDU with its data segment copied into `sink`; the header and the
   * padding + digest are taken as usual. Returns false when parsing must stop.
   */
  private emitIntoSink(sink: Buffer, headerEnd: number, dataStart: number, pad: number, dd: boolean): boolean {
    const head = this.take(dataStart);
    this.bhs = null;
    const bhs = head.subarray(0, BHS_LENGTH);
    this.takeInto(sink);
    const trailerLength = pad + (dd ? DIGEST_LENGTH : 0);
    if (trailerLength > 0) {
      const trailer = this.take(trailerLength);
      if (dd) {
        let crc = crc32c(sink);
        if (pad > 0) crc = crc32c(trailer.subarray(0, pad), crc);
        if (trailer.readUInt32LE(pad) !== crc) {
          this.handlers.error(new PduError('data-digest', 'data digest mismatch', bhs));
          return true;
        }
      }
    }
    let pdu: Pdu;
    try {
      pdu = decodePduParts(bhs, head.subarray(BHS_LENGTH, headerEnd), sink);
    } catch (e) {
      if (!(e instanceof PduError)) throw e;
      if (e.fatal) {
        this.fail(e);
        return false;
      }
      this.handlers.error(e);
      return true;
    }
    this.handlers.pdu(pdu, bhs);
    return true;
  }

  /** Do the next `n` buffered bytes lie in one chunk? */
  private contiguous(n: number): boolean {
    return this.chunks[this.head]!.length - this.offset >= n;
  }

  /** Consume the next `dest.length` buffered bytes by copying them into `dest`. */
  private takeInto(dest: Buffer): void {
    const n = dest.length;
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head]!;
      const m = Math.min(c.length - this.offset, n - filled);
      c.copy(dest, filled, this.offset, this.offset + m);
      filled += m;
      this.offset += m;
      if (this.offset === c.length) {
        this.head++;
        this.offset = 0;
      }
    }
    this.buffered -= n;
    this.compact();
  }

  private compact(): void {
    // Drop consumed chunks: reset when empty, compact when the dead prefix grows.
    if (this.head === this.chunks.length) {
      this.chunks = [];
      this.head = 0;
    } else if (this.head >= 64) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
  }

  private fail(e: PduError): void {
    this.stopped = true;
    this.chunks = [];
    this.head = 0;
    this.offset = 0;
    this.buffered = 0;
    this.bhs = null;
    this.handlers.error(e);
  }

  /** The next `n` buffered bytes without consuming them (a view when contiguous). */
  private peek(n: number): Buffer {
    const first = this.chunks[this.head]!;
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let off = this.offset;
    for (let i = this.head; filled < n; i++) {
      const c = this.chunks[i]!;
      const m = Math.min(c.length - off, n - filled);
      c.copy(out, filled, off, off + m);
      filled += m;
      off = 0;
    }
    return out;
  }

  /** Consume the next `n` buffered bytes: a view when in one chunk, else one copy. */
  private take(n: number): Buffer {
    const first = this.chunks[this.head]!;
    if (first.length - this.offset < n) {
      const out = Buffer.allocUnsafe(n);
      this.takeInto(out);
      return out;
    }
    const out = first.subarray(this.offset, this.offset + n);
    this.offset += n;
    if (this.offset === first.length) {
      this.head++;
      this.offset = 0;
    }
    this.buffered -= n;
    this.compact();
    return out;
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
  const ahsEnd = BHS_LENGTH + (buf[4]! << 2);
  const dataLength = (buf[5]! << 16) | (buf[6]! << 8) | buf[7]!;
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
  const op = bhs[0]! & 0x3f;
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
  return (bhs[0]! & 0x40) !== 0;
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
  const f = b[1]!;
  let cdb = b.subarray(32, 48);
  let bidiReadLength: number | undefined;
  const ahs: Ahs[] = [];
  let extSeen = false;
  let pos = 0;
  const end = ahsBuf.length;
  while (pos < end) {
    if (end - pos < 4) throw new PduError('malformed', 'truncated AHS header', b);
    const len = ahsBuf.readUInt16BE(pos);
    const type = ahsBuf[pos + 2]!;
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
    attr: (f & 0x07) as TaskAttr,
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
    func: b[1]! & 0x7f,
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
  const f = b[1]!;
  return {
    op: Op.LoginRequest,
    transit: (f & 0x80) !== 0,
    cont: (f & 0x40) !== 0,
    csg: (f >> 2) & 3,
    nsg: f & 3,
    versionMax: b[2]!,
    versionMin: b[3]!,
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
  const f = b[1]!;
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
    final: (b[1]! & 0x80) !== 0,
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
    reason: b[1]! & 0x7f,
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
    type: b[1]! & 0x0f,
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
  const f = b[1]!;
  const p: ScsiResponse = {
    op: Op.ScsiResponse,
    bidiOverflow: (f & 0x10) !== 0,
    bidiUnderflow: (f & 0x08) !== 0,
    overflow: (f & 0x04) !== 0,
    underflow: (f & 0x02) !== 0,
    response: b[2]!,
    status: b[3]!,
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
    response: b[2]!,
    itt: b.readUInt32BE(16),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    data,
  };
}

function decodeLoginResponse(b: Buffer, data: Buffer): LoginResponse {
  const f = b[1]!;
  return {
    op: Op.LoginResponse,
    transit: (f & 0x80) !== 0,
    cont: (f & 0x40) !== 0,
    csg: (f >> 2) & 3,
    nsg: f & 3,
    versionMax: b[2]!,
    versionActive: b[3]!,
    isid: b.subarray(8, 14),
    tsih: b.readUInt16BE(14),
    itt: b.readUInt32BE(16),
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    statusClass: b[36]!,
    statusDetail: b[37]!,
    data,
  };
}

function decodeTextResponse(b: Buffer, data: Buffer): TextResponse {
  const f = b[1]!;
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
  const f = b[1]!;
  return {
    op: Op.DataIn,
    final: (f & 0x80) !== 0,
    ack: (f & 0x40) !== 0,
    overflow: (f & 0x04) !== 0,
    underflow: (f & 0x02) !== 0,
    hasStatus: (f & 0x01) !== 0,
    status: b[3]!,
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
    response: b[2]!,
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
    asyncEvent: b[36]!,
    asyncVCode: b[37]!,
    parameter1: b.readUInt16BE(38),
    parameter2: b.readUInt16BE(40),
    parameter3: b.readUInt16BE(42),
    data,
  };
}

function decodeReject(b: Buffer, data: Buffer): Reject {
  return {
    op: Op.Reject,
    reason: b[2]!,
    statSN: b.readUInt32BE(24),
    expCmdSN: b.readUInt32BE(28),
    maxCmdSN: b.readUInt32BE(32),
    dataSN: b.readUInt32BE(36),
    data,
  };
}
