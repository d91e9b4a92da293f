// One TCP connection as a channel of PDUs: the socket, the streaming parser, busy polling,
// the output buffers and corked writes, and letting go of sent data once it is written.
// It knows nothing of sessions or commands: what arrives goes to ChannelEvents, what
// leaves comes through send().
//
// Output: everything sent in one turn of the event loop leaves together, once the turn's
// callbacks and promise continuations have run (setImmediate), or at the end of the
// received chunk being parsed: 32 responses cost one syscall, not 32. Small PDUs are
// encoded whole into an output buffer; large data goes out by reference, header and data
// in one corked writev, and its buffer (or view of a volume's pages) is let go only once
// the socket has written it.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { logFlags } from '../log';
import { dataBuffers } from '../scsi/buffer-pool';
import { MAX_MISSES, MAX_ROUNDS, noteReceive, pollRoom, pollTaken, receivingAlone, recvNow, SKIP_CHUNKS } from './busy-poll';
import { readBudget } from './data-budget';
import type { Pdu, TargetPdu } from './pdu/messages';
import { PduError, PduParser } from './pdu/parser';
import { encodePdu, encodePduInto } from './pdu/serializer';
import { adoptAccepted } from './socket-reads';
import { describePdu } from './trace';

/** What the channel reports to its owner. */
export interface ChannelEvents {
  pdu(pdu: Pdu, bhs: Buffer): void;
  parseError(err: PduError): void;
  /** Where a Data-Out payload that spans socket chunks may be assembled in place (null: as usual). */
  dataSink(bhs: Buffer, len: number): Buffer | null;
  /** Nothing of the connection outstanding (logged in, no command running): busy polling may go on. */
  idle(): boolean;
  /** A socket read done by busy polling. */
  polled(): void;
  /** `bytes` of a Data-Out segment were read straight into their place. */
  direct(bytes: number): void;
  /** The socket has closed (after the channel let go of everything it held). */
  closed(): void;
  /** Handling received bytes threw: the owner's fault boundary. */
  fault(err: unknown): void;
}

/** Read data handed to the socket: a pooled buffer, or the release of a view of a volume. */
export type Sent = Buffer | (() => void);

/** Stop reading from a peer that does not read its responses past this much queued output. */
const WRITE_HIGH_WATER = 16 * 1024 * 1024;
/** PDUs with at most this much data are copied into the output buffer (see send()). */
const SMALL_PDU_DATA = 16 * 1024;
/** Size of one output buffer (room for many small PDUs). */
const OUT_BUFFER_BYTES = 64 * 1024;
const FIRST_OUT_BUFFER_BYTES = 4 * 1024;
const EMPTY = Buffer.alloc(0);

export class PduChannel {
  readonly remote: string;
  /** Settles when the socket has closed. */
  readonly closedP: Promise<void>;
  /** Set when the connection is ending: send() sends only what is sent evenIfClosing. */
  closing = false;
  /** Batches of read data written: the peer is reading (stall detection). */
  written = 0;
  /** When the peer was last heard from (Date.now()). */
  lastHeard = Date.now();
  private readonly parser: PduParser;
  private digests = { headerDigest: false, dataDigest: false };

  readonly socket: Socket;

  /** `raw`: a socket accepted with pauseOnConnect (nothing read yet); the channel reads it its own way. */
  constructor(
    raw: Socket,
    private readonly events: ChannelEvents,
    busyPollUs: number,
    private readonly log: () => Logger,
  ) {
    this.remote = `${raw.remoteAddress}:${raw.remotePort}`;
    this.pollNs = busyPollUs * 1000;
    this.parser = new PduParser({
      pdu: (pdu, bhs) => {
        if (logFlags.trace) this.log().trace(describePdu(pdu), 'PDU in');
        events.pdu(pdu, bhs);
      },
      error: (err) => events.parseError(err),
      dataSink: (bhs, len) => events.dataSink(bhs, len),
    });
    this.parser.maxDataSegmentLength = 8192;
    const socket = adoptAccepted(raw, {
      direct: () => this.parser.directTarget(),
      read: (chunk, direct) => {
        try {
          if (direct) events.direct(chunk.length);
          this.receive(chunk);
        } catch (err) {
          events.fault(err);
        }
      },
    });
    this.socket = socket;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30000);
    socket.on('error', (err) => this.log().warn({ err: err.message }, 'socket error'));
    this.closedP = new Promise((r) => socket.once('close', () => r()));
    socket.on('close', () => this.onClose());
    socket.on('drain', () => socket.resume());
  }

  /** Digests and our MaxRecvDataSegmentLength, once login has negotiated them. */
  configure(opts: { headerDigest: boolean; dataDigest: boolean; maxRecvDataSegmentLength: number }): void {
    this.digests = { headerDigest: opts.headerDigest, dataDigest: opts.dataDigest };
    this.parser.headerDigest = opts.headerDigest;
    this.parser.dataDigest = opts.dataDigest;
    this.parser.maxDataSegmentLength = opts.maxRecvDataSegmentLength;
  }

  /** Bytes in the parser waiting for the rest of their PDU. */
  get parserBytes(): number {
    return this.parser.pendingBytes;
  }

  /** Output queued in the socket, not yet written. */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  /** Read data waiting for its write to finish (holding buffers and read budget). */
  get holdsUnwrittenData(): boolean {
    return this.releasing.length > 0;
  }

  /** Bytes received from the initiator (never modified afterwards: PDUs keep views of them). */
  receive(chunk: Buffer): void {
    this.lastHeard = Date.now();
    if (this.batching) {
      this.parser.push(chunk);
      return;
    }
    // Answers made while parsing this chunk (inline commands) leave together when it
    // is parsed, not a loop phase later; later completions batch via setImmediate.
    this.inChunk = true;
    this.chunkCommands = 0;
    try {
      this.parser.push(chunk);
    } finally {
      this.inChunk = false;
    }
    if (this.batching) this.flushBatch();
    if (this.pollNs > 0) {
      noteReceive(this, performance.now());
      // Several commands at once: the initiator keeps a queue, and the event loop's reads
      // batch its commands better than polling would (see busy-poll.ts).
      if (this.chunkCommands > 1) this.pollSkip = SKIP_CHUNKS;
      else if (this.pollSkip > 0) this.pollSkip--;
      if (!this.polling) this.poll();
    }
  }

  /** A SCSI command arrived in the chunk being parsed; `queued`: another one is still running. */
  noteCommand(queued: boolean): void {
    this.chunkCommands += queued ? 2 : 1;
  }

  // ---------------------------------------------------------------- busy polling

  /** limits.busyPoll in nanoseconds (0: off). */
  private readonly pollNs: number;
  private polling = false;
  /** Poll windows the initiator missed in a row. */
  private pollMisses = 0;
  /** Received chunks to let pass before polling again (after MAX_MISSES misses, or a queue). */
  private pollSkip = 0;
  /** SCSI commands in the chunk being parsed (a queued initiator counts double). */
  private chunkCommands = 0;

  /** Nothing to wait for on our side: no command running, nothing queued, not paused. */
  private quiet(): boolean {
    const s = this.socket;
    return this.events.idle() && s.writableLength === 0 && !s.isPaused() && !s.destroyed;
  }

  /** Read the initiator's next command(s) straight from the socket for a while (busy-poll.ts). */
  private poll(): void {
    if (this.pollSkip > 0) return;
    const now = performance.now();
    if (this.closing || !receivingAlone(this, now) || !this.quiet()) return;
    const fd = (this.socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    const recv = recvNow();
    if (typeof fd !== 'number' || fd < 0 || recv === null) return;
    this.polling = true;
    try {
      let rounds = 0;
      let deadline = now + this.pollNs / 1e6;
      while (rounds < MAX_ROUNDS) {
        const room = pollRoom();
        const n = recv(fd, room, room.length);
        if (n > 0) {
          rounds++;
          this.pollMisses = 0;
          this.events.polled();
          this.receive(pollTaken(n));
          if (this.closing || !this.quiet()) return;
          deadline = performance.now() + this.pollNs / 1e6;
        } else if (n === 0 || performance.now() > deadline) {
          // EOF (libuv sees it too) or nothing within the window.
          if (n !== 0 && ++this.pollMisses >= MAX_MISSES) {
            this.pollMisses = 0;
            this.pollSkip = SKIP_CHUNKS;
          }
          return;
        }
      }
    } finally {
      this.polling = false;
    }
  }

  // ---------------------------------------------------------------- output

  /**
   * Queue a PDU for sending. Returns true when its bytes were copied (its data buffer may
   * be reused at once), false when it goes out by reference or not at all.
   */
  send(pdu: TargetPdu, evenIfClosing = false): boolean {
    if (this.socket.destroyed || (this.closing && !evenIfClosing)) return false;
    if (logFlags.trace) this.log().trace(describePdu(pdu), 'PDU out');
    if (!this.batching) {
      this.batching = true;
      if (!this.inChunk) setImmediate(this.flushBatch);
    }
    // Small PDUs are encoded whole into the output buffer, and a batch of them leaves
    // in one write: cheaper than a writev entry per header and data segment.
    let end = encodePduInto(pdu, this.digests, this.out, this.outPos);
    if (end < 0 && pdu.data.length <= SMALL_PDU_DATA) {
      this.nextOut();
      end = encodePduInto(pdu, this.digests, this.out, this.outPos);
    }
    if (end >= 0) {
      this.outPos = end;
      return true;
    }
    // Large data goes out by reference: header and data in one corked writev.
    const s = this.socket;
    this.writeOut();
    if (!this.corked) {
      this.corked = true;
      s.cork();
    }
    const parts = encodePdu(pdu, this.digests);
    for (let i = 0; i < parts.length; i++) s.write(parts[i]);
    if (s.writableLength > WRITE_HIGH_WATER) s.pause();
    return false;
  }

  /** Hold writes back while a run of PDUs is queued (Data-In of one READ). */
  cork(): void {
    this.socket.cork();
  }

  uncork(): void {
    this.socket.uncork();
  }

  /**
   * Data that went into PDUs just sent, with the read-budget bytes it stands for: let go
   * now if every PDU was copied (or nothing could be written), else once the batch is.
   */
  afterWrite(sent: Sent, readBytes: number, copied: boolean): void {
    if (copied || !this.batching) {
      letGo(sent);
      if (readBytes > 0) readBudget.give(readBytes);
    } else {
      this.toRelease.push(sent);
      this.toGive += readBytes;
    }
  }

  /** End the socket once everything queued is written. */
  endSocket(): void {
    this.writeOut();
    this.socket.end();
  }

  /** Close the connection now. */
  destroy(): void {
    if (!this.socket.destroyed) this.socket.destroy();
  }

  /** Output buffer small PDUs are encoded into; [outStart, outPos) is not written yet. */
  private out: Buffer = EMPTY;
  private outStart = 0;
  private outPos = 0;
  /** Output buffers whose bytes have all been written, for reuse. */
  private readonly spareOut: Buffer[] = [];
  /** The socket was corked for large PDUs in the current batch. */
  private corked = false;
  private batching = false;
  /** Parsing a received chunk: receive() flushes the batch when done. */
  private inChunk = false;
  /**
   * Read data sent in the current batch, let go once the batch is written: pooled buffers
   * go back to the pool; views of a volume's pages (ScsiResult.release) are released.
   */
  private toRelease: Sent[] = [];
  /** Read-budget bytes of the READs answered in the current batch, given back likewise. */
  private toGive = 0;
  /** Earlier batches' data and read-budget bytes, oldest first, waiting for their write. */
  private releasing: Batch[] = [];

  /** Hand the encoded, unwritten bytes to the socket. */
  private writeOut(): void {
    if (this.outPos === this.outStart) return;
    const s = this.socket;
    if (!s.destroyed && !s.writableEnded) s.write(this.out.subarray(this.outStart, this.outPos));
    this.outStart = this.outPos;
  }

  /** Write out the current output buffer and switch to a fresh one. */
  private nextOut(): void {
    const full = this.out;
    const s = this.socket;
    if (full.length > 0 && this.outPos > this.outStart && !s.destroyed && !s.writableEnded) {
      // The batch continues in the next buffer: its pieces still leave in one writev.
      if (!this.corked) {
        this.corked = true;
        s.cork();
      }
      // Writes complete in order: once this last one has, the whole buffer may be reused.
      s.write(full.subarray(this.outStart, this.outPos), () => {
        if (this.spareOut.length === 0 && full.length === OUT_BUFFER_BYTES) this.spareOut.push(full);
      });
    }
    // A connection starts with a small buffer: many never send more than a login answer or
    // a Reject (thousands of those at once under a flood cost little); busy ones move to full size.
    this.out = this.spareOut.pop() ?? Buffer.allocUnsafeSlow(full.length === 0 ? FIRST_OUT_BUFFER_BYTES : OUT_BUFFER_BYTES);
    this.outStart = 0;
    this.outPos = 0;
  }

  private readonly flushBatch = (): void => {
    this.batching = false;
    const s = this.socket;
    this.writeOut();
    if (this.toRelease.length > 0 || this.toGive > 0) {
      const batch: Batch = { sent: this.toRelease, bytes: this.toGive };
      this.toRelease = [];
      this.toGive = 0;
      if (!s.destroyed && !s.writableEnded) {
        // Write callbacks run in order: this empty write's callback means the batch is out.
        this.releasing.push(batch);
        s.write(EMPTY, this.batchWritten);
      } else {
        giveBack(batch);
      }
    }
    if (this.corked) {
      this.corked = false;
      s.uncork();
    }
    if (s.writableLength > WRITE_HIGH_WATER) s.pause();
  };

  private readonly batchWritten = (): void => {
    this.written++;
    const batch = this.releasing.shift();
    if (batch) giveBack(batch);
  };

  private onClose(): void {
    // Data still queued will never be written: its buffers, views and read budget are let
    // go now; write callbacks that come later find nothing left.
    for (const batch of this.releasing) giveBack(batch);
    this.releasing = [];
    giveBack({ sent: this.toRelease, bytes: this.toGive });
    this.toRelease = [];
    this.toGive = 0;
    this.events.closed();
  }
}

/** A batch of answers handed to the socket: their read data, and their READs' read-budget bytes. */
interface Batch {
  sent: Sent[];
  bytes: number;
}

export function letGo(sent: Sent): void {
  if (typeof sent === 'function') sent();
  else dataBuffers.release(sent);
}

/** A written batch's data let go (buffers to the pool, views released), its READs' bytes back to the read budget. */
function giveBack(batch: Batch): void {
  for (let i = 0; i < batch.sent.length; i++) letGo(batch.sent[i]);
  if (batch.bytes > 0) readBudget.give(batch.bytes);
}
