// A byte stream -> typed PDUs (RFC 7143 §11). Pure: no I/O. decoder.ts decodes each
// framed PDU.
//
// PduParser frames a byte stream into PDUs without re-concatenating every chunk:
// it keeps the pending chunks in a list, reads the 48-byte BHS once it is there,
// computes the PDU's full length (AHS, digests, padding) and, once all of it has
// arrived, takes it with a single copy (or a zero-copy slice when it lies in one
// chunk). The decoded PDU's `data` (and other Buffer fields) are views into that
// frame; the caller must not mutate chunks after pushing them.

import type { Pdu } from './messages';
import { decodePduParts, PduError } from './decoder';

export { PduError, type PduErrorKind } from './decoder';
import { crc32c, DIGEST_LENGTH } from './digest';
import { BHS_LENGTH, padLength } from './serializer';

export interface PduHandlers {
  pdu(p: Pdu, bhs: Buffer): void;
  error(e: PduError): void;
  /**
   * Optional: where a data segment should go as it arrives (exactly `dataLength` bytes,
   * e.g. the slice of a command's buffer a Data-Out fills), or null to let the parser
   * frame it as usual. Called once per PDU, as soon as its header is in and checked; the
   * PDU's `data` is then that buffer, whose bytes were copied there once from the
   * socket's chunks, or read there directly (directTarget).
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
  /** The current PDU's data segment goes here as it arrives (see dataSink), with its header. */
  private sink: Buffer | null = null;
  private sinkHead: Buffer | null = null;
  private sinkFilled = 0;
  /** dataSink was asked about the current PDU already. */
  private sinkAsked = false;
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
        this.ahsLength = bhs[4] << 2;
        this.dataLength = (bhs[5] << 16) | (bhs[6] << 8) | bhs[7];
        this.headerChecked = false;
        this.sinkAsked = false;
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

      // A data segment with a place of its own (a Data-Out's slice of its command's buffer)
      // goes there as it arrives, or is read there directly (directTarget), instead of
      // waiting in chunks for the whole PDU.
      if (dataLength > 0 && !this.sinkAsked && this.handlers.dataSink !== undefined) {
        if (this.buffered < dataStart) return;
        this.sinkAsked = true;
        const sink = this.handlers.dataSink(this.bhs, dataLength);
        if (sink !== null && sink.length === dataLength) {
          this.sinkHead = this.take(dataStart);
          this.sink = sink;
          this.sinkFilled = 0;
        }
      }
      if (this.sink !== null) {
        if (!this.fillSink()) return;
        const pad = paddedData - dataLength;
        if (this.buffered < pad + (dd ? DIGEST_LENGTH : 0)) return;
        if (!this.emitSunk(headerEnd, pad, dd)) return;
        continue;
      }
      if (this.buffered < total) return;

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

      if (!this.emit(bhs, frame.subarray(BHS_LENGTH, headerEnd), frame.subarray(dataStart, dataStart + dataLength))) return;
    }
  }

  /** Decode a framed PDU and hand it (or its error) on. Returns false when parsing must stop. */
  private emit(bhs: Buffer, ahs: Buffer, data: Buffer): boolean {
    let pdu: Pdu;
    try {
      pdu = decodePduParts(bhs, ahs, data);
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

  /**
   * Where the next bytes from the socket may be read directly: the rest of the data segment
   * being sunk, when nothing received before it is still buffered. Bytes pushed as a view of
   * exactly that place are taken without a copy.
   */
  directTarget(): Buffer | null {
    const sink = this.sink;
    if (sink === null || this.buffered !== 0 || this.stopped || this.sinkFilled >= sink.length) return null;
    return sink.subarray(this.sinkFilled);
  }

  /** Move buffered bytes into the sink (those read there directly without a copy); true once it is full. */
  private fillSink(): boolean {
    const sink = this.sink!;
    const m = Math.min(this.buffered, sink.length - this.sinkFilled);
    if (m > 0) this.takeInto(sink, this.sinkFilled, m);
    this.sinkFilled += m;
    return this.sinkFilled === sink.length;
  }

  /**
   * Emit the PDU whose data segment filled the sink; its padding and digest are taken as
   * usual. Returns false when parsing must stop.
   */
  private emitSunk(headerEnd: number, pad: number, dd: boolean): boolean {
    const head = this.sinkHead!;
    const sink = this.sink!;
    this.sink = null;
    this.sinkHead = null;
    this.bhs = null;
    const bhs = head.subarray(0, BHS_LENGTH);
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
    return this.emit(bhs, head.subarray(BHS_LENGTH, headerEnd), sink);
  }

  /**
   * Consume the next `n` buffered bytes into `dest` at `at`: copied, except bytes that were
   * read into that very place (directTarget) and are there already.
   */
  private takeInto(dest: Buffer, at: number, n: number): void {
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[this.head];
      const m = Math.min(c.length - this.offset, n - filled);
      if (c.buffer !== dest.buffer || c.byteOffset + this.offset !== dest.byteOffset + at + filled) {
        c.copy(dest, at + filled, this.offset, this.offset + m);
      }
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
    this.sink = null;
    this.sinkHead = null;
    this.handlers.error(e);
  }

  /** The next `n` buffered bytes without consuming them (a view when contiguous). */
  private peek(n: number): Buffer {
    const first = this.chunks[this.head];
    if (first.length - this.offset >= n) return first.subarray(this.offset, this.offset + n);
    const out = Buffer.allocUnsafe(n);
    let filled = 0;
    let off = this.offset;
    for (let i = this.head; filled < n; i++) {
      const c = this.chunks[i];
      const m = Math.min(c.length - off, n - filled);
      c.copy(out, filled, off, off + m);
      filled += m;
      off = 0;
    }
    return out;
  }

  /** Consume the next `n` buffered bytes: a view when in one chunk, else one copy. */
  private take(n: number): Buffer {
    const first = this.chunks[this.head];
    if (first.length - this.offset < n) {
      const out = Buffer.allocUnsafe(n);
      this.takeInto(out, 0, n);
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
