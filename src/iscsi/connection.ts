// One TCP connection: framing, the login phase, then the full-feature phase
// (RFC 7143 §4-§11): CmdSN ordering, SCSI commands with their Data-Out/R2T and
// Data-In, NOP, Text, Task Management and Logout.

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { startScsi } from '../scsi/dispatch';
import { fixedSense, SenseKey, senseKeyOf } from '../scsi/sense';
import { ScsiStatus, type ScsiResult } from '../scsi/task';
import { dataBuffers } from '../scsi/buffer-pool';
import { readBudget, writeBudget, type BudgetWaiter } from './data-budget';
import { encodePdu, encodePduInto } from './pdu/serializer';
import { MAX_MISSES, MAX_ROUNDS, noteReceive, pollRoom, pollTaken, receivingAlone, recvNow, SKIP_CHUNKS } from './busy-poll';
import { PduParser, PduError } from './pdu/parser';
import { encodeTextKeys, parseTextKeys } from './pdu/text';
import {
  DataIn,
  DataOut,
  InitiatorPdu,
  LoginRequest,
  LogoutRequest,
  NopOut,
  Op,
  Pdu,
  RESERVED_TAG,
  RejectReason,
  ScsiCommand,
  TargetPdu,
  TaskMgmtRequest,
  TextRequest,
} from './pdu/messages';
import { LoginHost, LoginOutcome, LoginPhase } from './login';
import { negotiateKeys } from './negotiation';
import type { Command, Session } from './session';
import { decodeLun } from './lun';
import { TextSplitter } from './text-exchange';
import { LIMIT_DEFAULTS, type LimitsConfig } from '../config/model';

/** What a connection needs from the server beyond login checks. */
export interface ConnectionHost extends LoginHost {
  readonly logger: Logger;
  allocateTsih(): number;
  /** Create the session for a completed login (reinstating any old one with the same ISID). */
  openSession(outcome: LoginOutcome, conn: Connection): Session;
  closeSession(session: Session): void;
  /** SendTargets answer for this initiator: 'All', a target name, or '' (this session's target). */
  sendTargets(initiatorName: string, value: string, session: Session, localAddress: string): Array<[string, string]>;
  /** Task management functions that reach beyond this session. Returns the TMF response code. */
  taskManagement(session: Session, func: number, lun: number): Promise<number>;
  /** Count a failed login from this address; returns how long to hold the answer back (ms). */
  loginFailed(address: string): number;
  loginSucceeded(address: string): void;
  /** A command's status is known (metrics; issue 5). Called once per answered command. */
  commandDone?(session: Session, cmd: Command, status: number, dataInBytes: number): void;
  /** Handling this connection's input threw; it closes itself (count it). */
  connectionFault?(conn: Connection, err: unknown): void;
  /** Connection timers. */
  readonly timeouts: { loginMs: number; nopIntervalMs: number; nopTimeoutMs: number };
  /** Resource bounds (config `limits:`); defaults when absent. */
  readonly bounds?: LimitsConfig;
}

/** Largest Expected Data Transfer Length we buffer for one command. */
export const MAX_COMMAND_BYTES = 32 * 1024 * 1024;
/** Stop reading from a peer that does not read its responses past this much queued output. */
const WRITE_HIGH_WATER = 16 * 1024 * 1024;
/** Text Request data a peer may continue (C bit) before it is rejected. */
const MAX_TEXT_BYTES = 64 * 1024;
/** Long Text Responses kept for the initiator to fetch; older ones are dropped. */
const MAX_TEXT_SPLITTERS = 4;

export const enum TmfResponse {
  Complete = 0,
  TaskDoesNotExist = 1,
  LunDoesNotExist = 2,
  TaskStillAllegiant = 3,
  ReassignmentNotSupported = 4,
  NotSupported = 5,
  AuthorizationFailed = 6,
  Rejected = 255,
}

export class Connection {
  log: Logger;
  readonly remote: string;
  private readonly parser: PduParser;
  private login?: LoginPhase;
  session?: Session;
  private statSN = 0;
  private digests = { headerDigest: false, dataDigest: false };
  private nextTtt = 1;
  private closed = false;
  private loggingOut = false;
  /** Non-immediate PDUs that arrived ahead of a CmdSN gap. */
  private readonly pending = new Map<number, { pdu: InitiatorPdu; bhs: Buffer }>();
  /** Long Text Responses being delivered, by Target Transfer Tag. */
  private readonly textOut = new Map<number, TextSplitter>();
  private textIn: Buffer[] = [];
  private textInBytes = 0;
  private loginTimer?: NodeJS.Timeout;
  private nopTimer?: NodeJS.Timeout;
  private pingTtt = 0;
  private pingSentAt = 0;
  private lastHeard = Date.now();
  /** Bytes each admitted SCSI command holds against this connection's budget. */
  private readonly held = new Map<Command, number>();
  private heldBytes = 0;
  private immediateRunning = 0;
  private readonly bounds: LimitsConfig;
  /** Settles when the socket has closed. */
  readonly closedP: Promise<void>;
  private logoutRequested = false;
  private badPdus = 0;

  constructor(
    readonly socket: Socket,
    private readonly host: ConnectionHost,
    readonly id: number,
  ) {
    this.remote = `${socket.remoteAddress}:${socket.remotePort}`;
    this.log = host.logger.child({ conn: id, peer: this.remote });
    this.bounds = host.bounds ?? LIMIT_DEFAULTS;
    this.pollNs = this.bounds.busyPollUs * 1000;
    this.login = new LoginPhase(host, () => host.allocateTsih());
    this.parser = new PduParser({
      pdu: (pdu, bhs) => this.onPdu(pdu, bhs),
      error: (err) => this.onParseError(err),
      dataSink: (bhs, len) => this.dataOutSink(bhs, len),
    });
    this.parser.maxDataSegmentLength = 8192;
    socket.setNoDelay(true);
    socket.setKeepAlive(true, 30000);
    socket.on('data', (chunk: Buffer) => {
      try {
        this.receive(chunk);
      } catch (err) {
        this.fault(err);
      }
    });
    socket.on('error', (err) => this.log.warn({ err: err.message }, 'socket error'));
    this.closedP = new Promise((r) => socket.once('close', () => r()));
    socket.on('close', () => this.onClose());
    socket.on('drain', () => socket.resume());
    this.loginTimer = setTimeout(() => {
      this.log.warn('login not completed in time; closing');
      this.destroy();
    }, host.timeouts.loginMs);
    this.loginTimer.unref();
    this.log.info('connection accepted');
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

  // ---------------------------------------------------------------- busy polling

  /** limits.busyPoll in nanoseconds (0: off). */
  private readonly pollNs: number;
  private polling = false;
  /** Poll windows the initiator missed in a row. */
  private pollMisses = 0;
  /** Received chunks to let pass before polling again (after MAX_MISSES misses, or a queue). */
  private pollSkip = 0;
  /** SCSI commands in the chunk being parsed. */
  private chunkCommands = 0;

  /** Read the initiator's next command(s) straight from the socket for a while (busy-poll.ts). */
  private poll(): void {
    if (this.pollSkip > 0) return;
    const now = performance.now();
    const session = this.session;
    const s = this.socket;
    if (session === undefined || this.closed || s.destroyed || !receivingAlone(this, now)) return;
    if (session.tasks.size > 0 || s.writableLength > 0 || s.isPaused()) return;
    const fd = (s as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
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
          session.counters.polledReads++;
          this.receive(pollTaken(n));
          if (this.closed || s.destroyed || session.tasks.size > 0 || s.writableLength > 0 || s.isPaused()) return;
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
    if (this.socket.destroyed || (this.closed && !evenIfClosing)) return false;
    // Everything sent in one turn of the event loop leaves together, once the turn's
    // callbacks and promise continuations have run (setImmediate), or at the end of the
    // received chunk being parsed: 32 responses cost one syscall, not 32.
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

  /** Output buffer small PDUs are encoded into; [outStart, outPos) is not written yet. */
  private out: Buffer = EMPTY;
  private outStart = 0;
  private outPos = 0;
  /** Output buffers whose bytes have all been written, for reuse. */
  private readonly spareOut: Buffer[] = [];
  /** The socket was corked for large PDUs in the current batch. */
  private corked = false;

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

  /** End the socket once everything queued is written. */
  private endSocket(): void {
    this.writeOut();
    this.socket.end();
  }

  private batching = false;
  /** Parsing a received chunk: the 'data' handler flushes the batch when done. */
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
    const batch = this.releasing.shift();
    if (batch) giveBack(batch);
  };

  private takeStatSN(): number {
    const sn = this.statSN;
    this.statSN = (this.statSN + 1) >>> 0;
    return sn;
  }

  private get expCmdSN(): number {
    return this.session ? this.session.expCmdSN : 0;
  }

  private get maxCmdSN(): number {
    return this.session ? this.session.maxCmdSN : 0;
  }

  reject(bhs: Buffer, reason: number): void {
    this.send({
      op: Op.Reject,
      reason,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      dataSN: 0,
      data: Buffer.from(bhs.subarray(0, 48)),
    });
  }

  /**
   * Shutdown: ask the initiator to log out within `seconds` (Async Message, AsyncEvent 1,
   * RFC 7143 §11.9.1). A connection still in login, or a Discovery session, just closes.
   * Resolves when the connection is gone.
   */
  requestLogout(seconds: number): Promise<void> {
    const session = this.session;
    if (!session || session.type === 'Discovery' || this.closed) {
      this.destroy();
      return this.closedP;
    }
    if (!this.logoutRequested && !this.loggingOut) {
      this.logoutRequested = true;
      this.log.info({ seconds }, 'asking the initiator to log out (target shutting down)');
      this.sendAsync(1, 0, 0, Math.min(0xffff, Math.max(0, Math.ceil(seconds))));
    }
    return this.closedP;
  }

  /** The initiator did not log out in time: say the connection is dropped (AsyncEvent 2), then close. */
  dropAfterLogoutRequest(): void {
    if (this.session && !this.closed && this.logoutRequested) {
      this.sendAsync(2, this.session.cid, this.session.params.defaultTime2Wait, this.session.params.defaultTime2Retain);
    }
    this.endSocket();
    setTimeout(() => this.destroy(), 200).unref();
  }

  private sendAsync(event: number, p1: number, p2: number, p3: number): void {
    this.send({
      op: Op.AsyncMessage,
      lun: 0n,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      asyncEvent: event,
      asyncVCode: 0,
      parameter1: p1,
      parameter2: p2,
      parameter3: p3,
      data: EMPTY,
    });
  }

  /** Reject a PDU, then close once the Reject is written (bounded by a second). */
  private rejectAndClose(bhs: Buffer, reason: number): void {
    this.reject(bhs, reason);
    this.closed = true;
    this.endSocket();
    setTimeout(() => this.destroy(), 1000).unref();
  }

  /** Close the connection now (no logout). */
  destroy(): void {
    if (!this.socket.destroyed) this.socket.destroy();
  }

  /**
   * The fault boundary: handling this peer's input threw (a bug, or a state nobody foresaw).
   * Only this connection closes, with the error and its stack logged and counted; every
   * other session carries on. Wraps the entry points: received bytes, and the async and
   * deferred handlers that run outside them.
   */
  private readonly fault = (err: unknown): void => {
    this.host.connectionFault?.(this, err);
    this.log.error({ err }, `internal error handling this peer: ${(err as Error)?.message ?? String(err)}; closing its connection only`);
    this.closed = true;
    this.destroy();
  };

  /** Run a deferred handler inside the fault boundary. */
  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.fault(err);
    }
  }

  // ---------------------------------------------------------------- input

  private onParseError(err: PduError): void {
    // A peer repeating bad PDUs on one connection must not flood the log.
    if (++this.badPdus <= 10) this.log.warn({ kind: err.kind, fatal: err.fatal }, `bad PDU: ${err.message}`);
    else if (this.badPdus === 11) this.log.warn('more bad PDUs from this peer; not logging each one');
    if (err.kind === 'data-too-long' && this.session && err.bhs) {
      // More data than our MaxRecvDataSegmentLength: a protocol error (RFC 7143 §11.17.1,
      // as LIO answers it). Its data is never buffered, so the stream cannot be resynced:
      // say why, then close.
      this.rejectAndClose(err.bhs, RejectReason.ProtocolError);
      return;
    }
    if (err.fatal || !this.session) {
      this.destroy();
      return;
    }
    if (err.bhs) {
      this.reject(err.bhs, err.kind === 'data-digest' ? RejectReason.DataDigestError : RejectReason.CommandNotSupported);
    }
  }

  private onPdu(pdu: Pdu, bhs: Buffer): void {
    if (this.closed) return;
    if (bhs[4] !== 0 && pdu.op !== Op.ScsiCommand) {
      // Only a SCSI Command carries AHS (RFC 7143 §11.2.1.2): anything else is garbage framing.
      this.log.warn({ op: pdu.op, totalAhsLength: bhs[4] }, 'AHS on a PDU that carries none; closing');
      this.destroy();
      return;
    }
    if (this.login) {
      if (pdu.op !== Op.LoginRequest) {
        // Anything but a Login Request before login completes is a protocol error:
        // RFC 7143 §6.3 has the target drop the connection.
        this.log.warn({ op: pdu.op }, 'non-login PDU during login; closing');
        this.destroy();
        return;
      }
      this.onLogin(pdu);
      return;
    }
    const session = this.session!;
    switch (pdu.op) {
      case Op.DataOut:
        this.onDataOut(pdu, bhs);
        return;
      case Op.Snack:
        // ERL 0: no SNACK support (RFC 7143 §11.16).
        this.reject(bhs, RejectReason.ProtocolError);
        return;
      case Op.LoginRequest:
        this.reject(bhs, RejectReason.ProtocolError);
        return;
      case Op.NopOut:
      case Op.ScsiCommand:
      case Op.TaskMgmtRequest:
      case Op.TextRequest:
      case Op.LogoutRequest:
        break;
      default:
        this.reject(bhs, RejectReason.ProtocolError);
        return;
    }
    if (pdu.immediate) {
      this.dispatch(pdu, bhs);
      return;
    }
    // A NOP-Out answering our ping carries no CmdSN of its own to order by.
    if (pdu.op === Op.NopOut && pdu.itt === RESERVED_TAG) {
      this.dispatch(pdu, bhs);
      return;
    }
    switch (session.classify(pdu.cmdSN)) {
      case 'now':
        session.expCmdSN = (session.expCmdSN + 1) >>> 0;
        this.dispatch(pdu, bhs);
        this.drainPending();
        return;
      case 'later':
        this.pending.set(pdu.cmdSN, { pdu, bhs: Buffer.from(bhs) });
        return;
      case 'outside':
        // RFC 7143 §3.2.2.1: silently ignore commands outside the window.
        this.log.debug({ cmdSN: pdu.cmdSN, exp: session.expCmdSN, max: session.maxCmdSN }, 'CmdSN outside window');
        return;
    }
  }

  private drainPending(): void {
    const session = this.session!;
    while (this.pending.size > 0) {
      const next = this.pending.get(session.expCmdSN);
      if (!next) return;
      this.pending.delete(session.expCmdSN);
      session.expCmdSN = (session.expCmdSN + 1) >>> 0;
      this.dispatch(next.pdu, next.bhs);
    }
  }

  private dispatch(pdu: InitiatorPdu, bhs: Buffer): void {
    switch (pdu.op) {
      case Op.ScsiCommand:
        this.onCommand(pdu, bhs);
        return;
      case Op.NopOut:
        this.onNopOut(pdu);
        return;
      case Op.TaskMgmtRequest:
        this.onTaskMgmt(pdu).catch(this.fault);
        return;
      case Op.TextRequest:
        this.onText(pdu, bhs);
        return;
      case Op.LogoutRequest:
        this.onLogout(pdu, bhs).catch(this.fault);
        return;
      default:
        this.reject(bhs, RejectReason.ProtocolError);
    }
  }

  // ---------------------------------------------------------------- login

  private onLogin(req: LoginRequest): void {
    const step = this.login!.handle(req);
    if (step.failed) {
      const f = step.failed;
      this.login = undefined;
      this.closed = true;
      // Repeated failures from one address are answered ever more slowly.
      const delayMs = this.host.loginFailed(this.socket.remoteAddress ?? '');
      this.log.warn(
        { status: f.status.toString(16).padStart(4, '0'), initiator: f.initiatorName, target: f.targetName, delayMs },
        `login failed: ${f.reason}`,
      );
      const answer = () => {
        for (const res of step.responses) this.send(res, true);
        this.endSocket();
      };
      if (delayMs > 0) setTimeout(answer, delayMs).unref();
      else answer();
      return;
    }
    for (const res of step.responses) this.send(res);
    if (!step.outcome) return;
    const o = step.outcome;
    this.login = undefined;
    clearTimeout(this.loginTimer);
    this.statSN = (o.statSN + 1) >>> 0;
    this.digests = { headerDigest: o.params.headerDigest, dataDigest: o.params.dataDigest };
    this.parser.headerDigest = o.params.headerDigest;
    this.parser.dataDigest = o.params.dataDigest;
    this.parser.maxDataSegmentLength = o.params.maxRecvDataSegmentLength;
    this.host.loginSucceeded(this.socket.remoteAddress ?? '');
    this.session = this.host.openSession(o, this);
    const p = o.params;
    this.log = this.log.child({ tsih: this.session.tsih });
    this.log.info(
      {
        initiator: o.initiatorName,
        target: o.targetName,
        type: o.sessionType,
        isid: o.isid.toString('hex'),
        params: {
          HeaderDigest: p.headerDigest ? 'CRC32C' : 'None',
          DataDigest: p.dataDigest ? 'CRC32C' : 'None',
          InitialR2T: p.initialR2T,
          ImmediateData: p.immediateData,
          MaxRecvDataSegmentLength: p.maxRecvDataSegmentLength,
          InitiatorMaxRecvDataSegmentLength: p.maxSendDataSegmentLength,
          MaxBurstLength: p.maxBurstLength,
          FirstBurstLength: p.firstBurstLength,
          MaxOutstandingR2T: p.maxOutstandingR2T,
          ErrorRecoveryLevel: p.errorRecoveryLevel,
        },
      },
      'login complete',
    );
    this.startPings();
  }

  // ---------------------------------------------------------------- NOP

  private startPings(): void {
    const { nopIntervalMs, nopTimeoutMs } = this.host.timeouts;
    if (nopIntervalMs <= 0) return;
    this.nopTimer = setInterval(() => {
      const now = Date.now();
      if (this.pingTtt !== 0 && now - this.pingSentAt > nopTimeoutMs && now - this.lastHeard > nopTimeoutMs) {
        // Synchronous initiators (libiscsi's tools) read their socket only while they
        // wait for a command, so an idle one that does not answer is not dead: only a
        // peer we are waiting on (Data-Out owed) is dropped. TCP keepalive catches the
        // idle dead ones.
        if (this.bounds.dropIdlePeers || this.waitingOnInitiator()) {
          this.log.warn('initiator did not answer NOP-In ping; closing');
          this.destroy();
          return;
        }
        this.pingTtt = 0;
      }
      if (this.pingTtt === 0 && now - this.lastHeard >= nopIntervalMs) {
        this.pingTtt = this.allocTtt();
        this.pingSentAt = now;
        this.send({
          op: Op.NopIn,
          lun: 0n,
          itt: RESERVED_TAG,
          ttt: this.pingTtt,
          statSN: this.statSN, // not advanced (RFC 7143 §11.19)
          expCmdSN: this.expCmdSN,
          maxCmdSN: this.maxCmdSN,
          data: EMPTY,
        });
      }
    }, Math.min(nopIntervalMs, nopTimeoutMs, 1000));
    this.nopTimer.unref();
  }

  /** Does a command of ours wait for Data-Out from the initiator? */
  private waitingOnInitiator(): boolean {
    // (A WRITE waiting for room in the write budget has no buffer yet: nothing is owed.)
    for (const cmd of this.session?.tasks.values() ?? []) if (cmd.state === 'receiving' && cmd.buffer !== null) return true;
    // Nor is one that leaves READ data unread: it holds room in the read budget.
    return this.readCharged.size > 0 && this.socket.writableLength > 0;
  }

  private onNopOut(pdu: NopOut): void {
    if (pdu.itt === RESERVED_TAG) {
      if (pdu.ttt !== RESERVED_TAG && pdu.ttt === this.pingTtt) this.pingTtt = 0;
      return;
    }
    this.send({
      op: Op.NopIn,
      lun: pdu.lun,
      itt: pdu.itt,
      ttt: RESERVED_TAG,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      data: pdu.data,
    });
  }

  private allocTtt(): number {
    const t = this.nextTtt;
    this.nextTtt = this.nextTtt >= 0x7fffffff ? 1 : this.nextTtt + 1;
    return t;
  }

  // ---------------------------------------------------------------- SCSI commands

  private onCommand(pdu: ScsiCommand, bhs: Buffer): void {
    const session = this.session!;
    if (session.type === 'Discovery') {
      this.reject(bhs, RejectReason.ProtocolError);
      return;
    }
    if (session.tasks.has(pdu.itt)) {
      this.reject(bhs, RejectReason.TaskInProgress);
      return;
    }
    const p = session.params;
    const immLen = pdu.data.length;
    if (immLen > 0 && (!pdu.write || !p.immediateData || immLen > p.firstBurstLength || immLen > pdu.expectedDataLength)) {
      this.reject(bhs, RejectReason.ProtocolError);
      return;
    }
    const refusal = this.admit(pdu);
    if (refusal === 'reject') {
      this.reject(bhs, RejectReason.ImmediateCommandReject);
      return;
    }
    session.counters.commands++;
    const edtl = pdu.expectedDataLength;
    const lun = decodeLun(pdu.lun);
    const cmd: Command = {
      itt: pdu.itt,
      cmdSN: pdu.cmdSN,
      immediate: pdu.immediate,
      lun,
      lunRaw: pdu.lun,
      expectedLength: edtl,
      read: pdu.read,
      write: pdu.write,
      task: {
        cdb: pdu.cdb,
        lun,
        nexus: session.nexus,
        expectedLength: edtl,
        dataOut: null,
        attr: pdu.attr,
        aborted: false,
        sendsViews: true,
      },
      buffer: null,
      received: immLen,
      unsolicitedEnd: 0,
      nextR2TOffset: 0,
      r2tSN: 0,
      r2ts: NO_R2TS, // its own map once it sends an R2T
      unsolicitedDataSN: 0,
      state: 'receiving',
      aborted: false,
      startedAt: process.hrtime.bigint(),
    };
    if (refusal === 'busy') {
      // Over this connection's data budget: TASK SET FULL, and the initiator retries later.
      // Unsolicited Data-Out that follows finds no waiting task and is discarded.
      this.respond(cmd, { status: ScsiStatus.TaskSetFull });
      return;
    }
    this.hold(cmd);
    if (!pdu.immediate) session.inFlight++;
    session.tasks.set(cmd.itt, cmd);
    this.chunkCommands++;
    if (session.tasks.size > 1) this.chunkCommands++; // another one is still running: a queue

    if (!pdu.write || edtl === 0) {
      if (pdu.write) cmd.task = { ...cmd.task, dataOut: Buffer.alloc(0) };
      else if (edtl > 0 && PLAIN_READS.has(pdu.cdb[0]!) && !this.chargeRead(cmd)) return;
      this.execute(cmd);
      return;
    }
    if (edtl > MAX_COMMAND_BYTES) {
      // Too large to buffer: answer without taking the data (the initiator asked
      // more than VPD Block Limits allow).
      this.execute(cmd, true);
      return;
    }
    cmd.unsolicitedEnd = p.initialR2T || pdu.final ? immLen : Math.min(p.firstBurstLength, edtl);
    cmd.nextR2TOffset = cmd.unsolicitedEnd;
    if (immLen === edtl) {
      cmd.buffer = pdu.data; // all data came immediate: no copy
    } else if (PLAIN_WRITES.has(pdu.cdb[0]!)) {
      // Plain WRITEs lend their buffer from the pool (given back in execute()), within
      // the process-wide write budget; other commands' parameter data may be kept by
      // their handlers, so it is their own.
      if (!writeBudget.tryTake(edtl)) {
        if (cmd.unsolicitedEnd === immLen) {
          // Nothing more comes before our R2T: wait for room, then ask for the data. The
          // immediate data waits in a pooled copy (see detach()).
          let imm = pdu.data;
          if (immLen > 0) {
            imm = dataBuffers.take(immLen);
            pdu.data.copy(imm, 0);
          }
          detach(cmd);
          this.deferred.set(cmd, writeBudget.wait(edtl, () => this.guarded(() => this.admitWrite(cmd, imm))));
          return;
        }
        writeBudget.force(edtl); // unsolicited Data-Out is on its way: it must have a place
      }
      this.charged.set(cmd, edtl);
      cmd.buffer = dataBuffers.take(edtl);
      if (immLen > 0) pdu.data.copy(cmd.buffer, 0);
    } else {
      cmd.buffer = Buffer.allocUnsafe(edtl);
      if (immLen > 0) pdu.data.copy(cmd.buffer, 0);
    }
    if (cmd.received >= edtl) {
      this.dataComplete(cmd);
      return;
    }
    this.sendR2Ts(cmd);
  }

  /**
   * Bounds on a new SCSI command: 'reject' when too many immediate commands run (they
   * bypass the CmdSN window; Reject reason 0x06 lets the initiator resend), 'busy' when its
   * data would push this connection past its buffer budget (one command is always admitted).
   */
  private admit(pdu: ScsiCommand): 'ok' | 'reject' | 'busy' {
    if (pdu.immediate && this.immediateRunning >= this.bounds.maxImmediateCommands) return 'reject';
    const bytes = pdu.expectedDataLength;
    if (this.heldBytes > 0 && this.heldBytes + bytes > this.bounds.connectionBufferBytes) return 'busy';
    return 'ok';
  }

  private hold(cmd: Command): void {
    this.held.set(cmd, cmd.expectedLength);
    this.heldBytes += cmd.expectedLength;
    if (cmd.immediate) this.immediateRunning++;
  }

  private release(cmd: Command): void {
    const bytes = this.held.get(cmd);
    if (bytes === undefined) return;
    this.held.delete(cmd);
    this.heldBytes -= bytes;
    if (cmd.immediate) this.immediateRunning--;
  }

  /** Data and commands this connection holds now (for tests and metrics). */
  get usage(): { bytes: number; commands: number; immediate: number; pendingPdus: number; parserBytes: number } {
    return {
      bytes: this.heldBytes,
      commands: this.held.size,
      immediate: this.immediateRunning,
      pendingPdus: this.pending.size,
      parserBytes: this.parser.pendingBytes,
    };
  }

  /** WRITEs charged to the write budget, and those waiting for room in it. */
  private readonly charged = new Map<Command, number>();
  private readonly deferred = new Map<Command, BudgetWaiter>();

  /** The write budget granted room to a deferred WRITE: take its buffer and ask for its data. */
  private admitWrite(cmd: Command, imm: Buffer): void {
    this.deferred.delete(cmd);
    if (this.closed || cmd.aborted || cmd.state !== 'receiving') {
      writeBudget.give(cmd.expectedLength);
      dataBuffers.release(imm);
      return;
    }
    this.charged.set(cmd, cmd.expectedLength);
    cmd.buffer = dataBuffers.take(cmd.expectedLength);
    if (imm.length > 0) imm.copy(cmd.buffer, 0);
    dataBuffers.release(imm);
    this.sendR2Ts(cmd);
  }

  /** READs charged to the read budget (until their Data-In is out), and those waiting for room. */
  private readonly readCharged = new Map<Command, number>();
  private readonly readDeferred = new Map<Command, BudgetWaiter>();

  /** Charge a plain READ to the read budget; false when it must wait (it then runs once granted). */
  private chargeRead(cmd: Command): boolean {
    const bytes = cmd.expectedLength;
    if (readBudget.tryTake(bytes)) {
      this.readCharged.set(cmd, bytes);
      return true;
    }
    detach(cmd);
    this.readDeferred.set(
      cmd,
      readBudget.wait(bytes, () => {
        this.readDeferred.delete(cmd);
        if (this.closed || cmd.aborted || cmd.state !== 'receiving') {
          readBudget.give(bytes);
          return;
        }
        this.readCharged.set(cmd, bytes);
        this.guarded(() => this.execute(cmd));
      }),
    );
    return false;
  }

  /** The read-budget bytes a command holds, now no longer charged to it (0 if none). */
  private takeReadCharge(cmd: Command): number {
    const bytes = this.readCharged.get(cmd);
    if (bytes === undefined) return 0;
    this.readCharged.delete(cmd);
    return bytes;
  }

  /** Give back what a command holds of the write budget (or stop waiting for it). */
  private uncharge(cmd: Command): void {
    const r = this.readDeferred.get(cmd);
    if (r !== undefined) {
      this.readDeferred.delete(cmd);
      readBudget.cancel(r);
    }
    const bytes = this.charged.get(cmd);
    if (bytes !== undefined) {
      this.charged.delete(cmd);
      writeBudget.give(bytes);
    }
    const w = this.deferred.get(cmd);
    if (w !== undefined) {
      this.deferred.delete(cmd);
      writeBudget.cancel(w);
    }
  }

  private sendR2Ts(cmd: Command): void {
    const p = this.session!.params;
    if (cmd.r2ts === NO_R2TS) cmd.r2ts = new Map();
    while (cmd.r2ts.size < p.maxOutstandingR2T && cmd.nextR2TOffset < cmd.expectedLength) {
      const offset = cmd.nextR2TOffset;
      const length = Math.min(p.maxBurstLength, cmd.expectedLength - offset);
      const ttt = this.allocTtt();
      cmd.r2ts.set(ttt, { offset, length, received: 0, nextDataSN: 0 });
      cmd.nextR2TOffset += length;
      this.send({
        op: Op.R2T,
        lun: cmd.lunRaw,
        itt: cmd.itt,
        ttt,
        statSN: this.statSN,
        expCmdSN: this.expCmdSN,
        maxCmdSN: this.maxCmdSN,
        r2tSN: cmd.r2tSN++,
        bufferOffset: offset,
        desiredLength: length,
        data: EMPTY,
      });
    }
  }

  /**
   * Where a Data-Out's payload that arrived in several socket chunks goes: straight into
   * its command's buffer, when onDataOut() will accept it there (same checks, no side
   * effects); otherwise null, and onDataOut() sorts it out as usual.
   */
  private dataOutSink(bhs: Buffer, len: number): Buffer | null {
    if ((bhs[0]! & 0x3f) !== Op.DataOut || this.session === undefined) return null;
    const cmd = this.session.tasks.get(bhs.readUInt32BE(16));
    if (cmd === undefined || cmd.state !== 'receiving' || cmd.buffer === null) return null;
    const ttt = bhs.readUInt32BE(20);
    const dataSN = bhs.readUInt32BE(36);
    const off = bhs.readUInt32BE(40);
    if (ttt === RESERVED_TAG) {
      if (off + len > cmd.unsolicitedEnd || dataSN !== cmd.unsolicitedDataSN) return null;
    } else {
      const r2t = cmd.r2ts.get(ttt);
      if (r2t === undefined || off < r2t.offset || off + len > r2t.offset + r2t.length || dataSN !== r2t.nextDataSN) {
        return null;
      }
    }
    return cmd.buffer.subarray(off, off + len);
  }

  private onDataOut(pdu: DataOut, bhs: Buffer): void {
    const session = this.session!;
    const cmd = session.tasks.get(pdu.itt);
    if (!cmd || cmd.state !== 'receiving' || !cmd.buffer) {
      // Data for an aborted or finished task: discard (RFC 7143 §4.2.3.x).
      this.log.debug({ itt: pdu.itt }, 'Data-Out for no waiting task; discarded');
      return;
    }
    const len = pdu.data.length;
    const off = pdu.bufferOffset;
    if (pdu.ttt === RESERVED_TAG) {
      if (off + len > cmd.unsolicitedEnd || pdu.dataSN !== cmd.unsolicitedDataSN) {
        this.protocolFailure(cmd, bhs, 'unsolicited Data-Out outside the first burst or out of sequence');
        return;
      }
      cmd.unsolicitedDataSN++;
    } else {
      const r2t = cmd.r2ts.get(pdu.ttt);
      if (!r2t) {
        this.reject(bhs, RejectReason.InvalidPduField);
        return;
      }
      if (off < r2t.offset || off + len > r2t.offset + r2t.length || pdu.dataSN !== r2t.nextDataSN) {
        this.protocolFailure(cmd, bhs, 'Data-Out outside its R2T or DataSN out of sequence');
        return;
      }
      r2t.nextDataSN++;
      r2t.received += len;
      if (r2t.received >= r2t.length) cmd.r2ts.delete(pdu.ttt);
    }
    // Already in place when the parser assembled it there (dataOutSink).
    const d = pdu.data;
    if (d.buffer !== cmd.buffer.buffer || d.byteOffset !== cmd.buffer.byteOffset + off) d.copy(cmd.buffer, off);
    cmd.received += len;
    if (cmd.received >= cmd.expectedLength) {
      this.dataComplete(cmd);
    } else if (pdu.ttt !== RESERVED_TAG) {
      this.sendR2Ts(cmd);
    }
  }

  /**
   * A Data-Out PDU broke the sequence rules (offset or DataSN): reject it and end
   * its command with CHECK CONDITION, so the initiator learns at once instead of
   * timing out; later Data-Out for the task is discarded.
   */
  private protocolFailure(cmd: Command, bhs: Buffer, why: string): void {
    this.log.warn({ itt: cmd.itt }, why);
    this.reject(bhs, RejectReason.ProtocolError);
    const session = this.session!;
    cmd.state = 'done';
    cmd.r2ts.clear();
    this.release(cmd);
    this.uncharge(cmd);
    session.tasks.delete(cmd.itt);
    if (!cmd.immediate) session.inFlight--;
    session.counters.errors++;
    this.respond(cmd, transportFailure(SenseKey.AbortedCommand, 0x4b, 0x00)); // DATA PHASE ERROR
  }

  private dataComplete(cmd: Command): void {
    // (Not yet seen by the SCSI core: set in place rather than copying the task.)
    (cmd.task as { dataOut: Buffer | null }).dataOut = cmd.buffer;
    this.session!.counters.writtenBytes += cmd.expectedLength;
    this.execute(cmd);
  }

  private execute(cmd: Command, tooLarge = false): void {
    cmd.state = 'executing';
    let r: ScsiResult | Promise<ScsiResult>;
    try {
      r = tooLarge
        ? transportFailure(SenseKey.IllegalRequest, 0x24, 0x00) // INVALID FIELD IN CDB
        : startScsi(cmd.task, this.session!.luns);
    } catch (err) {
      r = this.internalFailure(cmd, err);
    }
    if (!(r instanceof Promise)) {
      // Completed at once (inline I/O): answered in this turn; nobody can have waited on it.
      this.finish(cmd, r);
      return;
    }
    let done!: () => void;
    cmd.finished = new Promise((res) => (done = res));
    r.then(
      (result) => this.finish(cmd, result, done),
      (err: unknown) => this.finish(cmd, this.internalFailure(cmd, err), done),
    ).catch(this.fault);
  }

  private internalFailure(cmd: Command, err: unknown): ScsiResult {
    this.log.error({ err, cdb: cmd.task.cdb.toString('hex') }, 'SCSI command failed unexpectedly');
    return transportFailure(SenseKey.HardwareError, 0x44, 0x00); // INTERNAL TARGET FAILURE
  }

  private finish(cmd: Command, result: ScsiResult, done?: () => void): void {
    cmd.state = 'done';
    this.release(cmd);
    if (done !== undefined) done();
    if (cmd.buffer !== null) dataBuffers.release(cmd.buffer);
    this.uncharge(cmd);
    const session = this.session!;
    if (session.tasks.get(cmd.itt) === cmd) session.tasks.delete(cmd.itt);
    if (cmd.aborted) {
      readBudget.give(this.takeReadCharge(cmd));
      if (result.data !== undefined) letGo1(result.release ?? result.data); // never sent
      return;
    }
    if (!cmd.immediate) session.inFlight--;
    if (result.status !== ScsiStatus.Good) {
      if (result.sense !== undefined && senseKeyOf(result.sense) === SenseKey.UnitAttention) session.counters.unitAttentions++;
      else session.counters.errors++;
    }
    this.host.commandDone?.(session, cmd, result.status, cmd.read && result.data ? Math.min(result.data.length, cmd.expectedLength) : 0);
    this.respond(cmd, result);
  }

  private respond(cmd: Command, result: ScsiResult): void {
    const session = this.session!;
    // A READ's share of the read budget comes back once its Data-In is out (or now, if none).
    const readBytes = this.takeReadCharge(cmd);
    const edtl = cmd.expectedLength;
    const data = result.data;
    let residual = 0;
    let overflow = false;
    let underflow = false;
    let dataSN = 0;

    if (data && data.length > 0 && cmd.read) {
      const len = Math.min(data.length, edtl);
      if (data.length > edtl) {
        overflow = true;
        residual = data.length - edtl;
      } else if (data.length < edtl) {
        underflow = true;
        residual = edtl - data.length;
      }
      const statusInData =
        len > 0 && !result.sense && (result.status === ScsiStatus.Good || result.status === ScsiStatus.ConditionMet);
      const seg = session.params.maxSendDataSegmentLength;
      const burst = session.params.maxBurstLength;
      session.counters.readBytes += len;
      if (len > 0) this.socket.cork();
      let copied = true;
      for (let off = 0; off < len; ) {
        const n = Math.min(seg, len - off, burst - (off % burst));
        const last = off + n >= len;
        const pdu: DataIn = {
          op: Op.DataIn,
          final: last || (off + n) % burst === 0,
          ack: false,
          overflow: last && statusInData && overflow,
          underflow: last && statusInData && underflow,
          hasStatus: last && statusInData,
          status: last && statusInData ? result.status : 0,
          lun: cmd.lunRaw,
          itt: cmd.itt,
          ttt: RESERVED_TAG,
          statSN: last && statusInData ? this.takeStatSN() : 0,
          expCmdSN: this.expCmdSN,
          maxCmdSN: this.maxCmdSN,
          dataSN: dataSN++,
          bufferOffset: off,
          residualCount: last && statusInData ? residual : 0,
          data: data.subarray(off, off + n),
        };
        if (!this.send(pdu)) copied = false;
        off += n;
      }
      if (len > 0) this.socket.uncork();
      const sent = result.release ?? data;
      if (copied) {
        // Copied whole into the output buffer: the data (and its read budget) is free at once.
        letGo1(sent);
        if (readBytes > 0) readBudget.give(readBytes);
      } else if (this.batching) {
        this.toRelease.push(sent);
        this.toGive += readBytes;
      } else {
        letGo1(sent); // nothing was written: the socket is gone
        if (readBytes > 0) readBudget.give(readBytes);
      }
      if (statusInData) return;
    } else {
      if (data) letGo1(result.release ?? data); // data the initiator did not ask to read
      if (readBytes > 0) readBudget.give(readBytes);
      // What the command moved versus what the initiator expected.
      const moved = data && data.length > 0 ? data.length : (result.dataOutLength ?? 0);
      if (moved > edtl) {
        overflow = true;
        residual = moved - edtl;
      } else if (moved < edtl) {
        underflow = true;
        residual = edtl - moved;
      }
    }
    this.send({
      op: Op.ScsiResponse,
      bidiOverflow: false,
      bidiUnderflow: false,
      overflow,
      underflow,
      response: 0,
      status: result.status,
      itt: cmd.itt,
      snackTag: 0,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      expDataSN: dataSN,
      bidiResidualCount: 0,
      residualCount: residual,
      sense: result.sense,
      data: EMPTY,
    });
  }

  /** Mark a command aborted: it gets no response; resolves once it has stopped running. */
  abort(cmd: Command): Promise<void> {
    const session = this.session!;
    if (cmd.aborted) return cmd.finished ?? Promise.resolve();
    cmd.aborted = true;
    cmd.task.aborted = true;
    if (!cmd.immediate) session.inFlight--;
    if (cmd.state === 'receiving') {
      this.release(cmd);
      session.tasks.delete(cmd.itt);
      this.uncharge(cmd);
      cmd.state = 'done';
      return Promise.resolve();
    }
    return cmd.finished ?? Promise.resolve();
  }

  /** Abort every task of this session on `lun` (or all LUNs when lun < 0). */
  async abortTasks(lun: number): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const cmd of [...this.session!.tasks.values()]) {
      if (lun < 0 || cmd.lun === lun) waits.push(this.abort(cmd));
    }
    await Promise.all(waits);
  }

  // ---------------------------------------------------------------- task management

  private async onTaskMgmt(pdu: TaskMgmtRequest): Promise<void> {
    const session = this.session!;
    const lun = decodeLun(pdu.lun);
    let response: number;
    const lunKnown = session.luns.has(lun);
    if (session.type === 'Discovery') {
      response = TmfResponse.NotSupported;
    } else {
      switch (pdu.func) {
        case 1: {
          // ABORT TASK
          const cmd = session.tasks.get(pdu.refTaskTag);
          if (!lunKnown) response = TmfResponse.LunDoesNotExist;
          else if (cmd && cmd.lun === lun) {
            await this.abort(cmd);
            response = TmfResponse.Complete;
          } else {
            response = TmfResponse.TaskDoesNotExist;
          }
          break;
        }
        case 2: // ABORT TASK SET
          if (!lunKnown) response = TmfResponse.LunDoesNotExist;
          else {
            await this.abortTasks(lun);
            response = TmfResponse.Complete;
          }
          break;
        case 3: // CLEAR ACA: we never establish ACA (NACA=0 only)
          response = TmfResponse.NotSupported;
          break;
        case 4: // CLEAR TASK SET
        case 5: // LOGICAL UNIT RESET
          response = lunKnown ? await this.host.taskManagement(session, pdu.func, lun) : TmfResponse.LunDoesNotExist;
          break;
        case 6: // TARGET WARM RESET
        case 7: // TARGET COLD RESET
          response = await this.host.taskManagement(session, pdu.func, lun);
          break;
        case 8: // TASK REASSIGN: needs ERL 2
          response = TmfResponse.ReassignmentNotSupported;
          break;
        default:
          response = TmfResponse.NotSupported;
      }
    }
    this.log.info({ func: pdu.func, lun, response }, 'task management');
    this.send({
      op: Op.TaskMgmtResponse,
      response,
      itt: pdu.itt,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      data: EMPTY,
    });
    if (pdu.func === 7 && response === TmfResponse.Complete) {
      // Cold reset ends every connection of the target, ours too, once the response is out.
      this.endSocket();
    }
  }

  // ---------------------------------------------------------------- text

  private onText(pdu: TextRequest, bhs: Buffer): void {
    const session = this.session!;
    if (pdu.ttt !== RESERVED_TAG) {
      const splitter = this.textOut.get(pdu.ttt);
      if (!splitter) {
        this.reject(bhs, RejectReason.InvalidPduField);
        return;
      }
      this.sendTextPiece(pdu, splitter, pdu.ttt);
      return;
    }
    this.textIn.push(pdu.data);
    this.textInBytes += pdu.data.length;
    if (this.textInBytes > MAX_TEXT_BYTES) {
      this.textIn = [];
      this.textInBytes = 0;
      this.reject(bhs, RejectReason.ProtocolError);
      return;
    }
    if (pdu.cont) {
      // More text follows: acknowledge with an empty response carrying a TTT.
      this.send({
        op: Op.TextResponse,
        final: false,
        cont: false,
        lun: pdu.lun,
        itt: pdu.itt,
        ttt: this.allocTtt(),
        statSN: this.takeStatSN(),
        expCmdSN: this.expCmdSN,
        maxCmdSN: this.maxCmdSN,
        data: EMPTY,
      });
      return;
    }
    const text = this.textIn.length === 1 ? this.textIn[0] : Buffer.concat(this.textIn);
    this.textIn = [];
    this.textInBytes = 0;
    let pairs: Array<[string, string]>;
    try {
      pairs = parseTextKeys(text);
    } catch {
      this.reject(bhs, RejectReason.ProtocolError);
      return;
    }
    const answers: Array<[string, string]> = [];
    for (const [k, v] of pairs) {
      if (k === 'SendTargets') {
        answers.push(...this.host.sendTargets(session.initiatorName, v, session, this.socket.localAddress ?? ''));
      }
    }
    answers.push(
      ...negotiateKeys(
        pairs.filter(([k]) => k !== 'SendTargets'),
        session.params,
        { sessionType: session.type, phase: 'full-feature', limits: this.host.limits },
      ),
    );
    // The initiator may have changed its MaxRecvDataSegmentLength.
    const splitter = new TextSplitter(encodeTextKeys(answers), session.params.maxSendDataSegmentLength);
    this.sendTextPiece(pdu, splitter, RESERVED_TAG);
  }

  private sendTextPiece(pdu: TextRequest, splitter: TextSplitter, ttt: number): void {
    const piece = splitter.next();
    let tag = RESERVED_TAG;
    if (ttt !== RESERVED_TAG) this.textOut.delete(ttt);
    if (!splitter.done) {
      tag = this.allocTtt();
      // An initiator that never fetches the rest must not pile these up: drop the oldest.
      if (this.textOut.size >= MAX_TEXT_SPLITTERS) this.textOut.delete(this.textOut.keys().next().value!);
      this.textOut.set(tag, splitter);
    }
    this.send({
      op: Op.TextResponse,
      final: splitter.done,
      cont: !splitter.done,
      lun: pdu.lun,
      itt: pdu.itt,
      ttt: tag,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      data: piece,
    });
  }

  // ---------------------------------------------------------------- logout

  private async onLogout(pdu: LogoutRequest, bhs: Buffer): Promise<void> {
    const session = this.session!;
    let response = 0;
    if (pdu.reason === 2) response = 2; // connection recovery is not supported (ERL < 2)
    else if (pdu.reason === 1 && pdu.cid !== session.cid) response = 1; // CID not found
    else if (pdu.reason > 2) {
      this.reject(bhs, RejectReason.InvalidPduField);
      return;
    }
    if (response === 0) {
      this.loggingOut = true;
      // Let running commands finish and answer before the session goes.
      const running = [...session.tasks.values()].map((c) => c.finished).filter((f): f is Promise<void> => !!f);
      await Promise.all(running);
      // The nexus ends before the initiator hears so: a RESERVE it held is gone by the
      // time its next session (or another initiator) sends a command.
      this.host.closeSession(session);
    }
    this.send({
      op: Op.LogoutResponse,
      response,
      itt: pdu.itt,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      time2Wait: 0,
      time2Retain: 0,
      data: EMPTY,
    });
    if (response === 0) {
      this.log.info({ reason: pdu.reason === 0 ? 'close session' : 'close connection' }, 'logout');
      this.endSocket();
    }
  }

  // ---------------------------------------------------------------- close

  private onClose(): void {
    clearTimeout(this.loginTimer);
    clearInterval(this.nopTimer);
    // Data still queued will never be written: its buffers, views and read budget are let
    // go now; write callbacks that come later find nothing left.
    for (const batch of this.releasing) giveBack(batch);
    this.releasing = [];
    giveBack({ sent: this.toRelease, bytes: this.toGive });
    this.toRelease = [];
    this.toGive = 0;
    // WRITEs that will never get their data give back their share of the write budget
    // (executing ones do so when they finish).
    for (const cmd of [...this.deferred.keys(), ...this.charged.keys(), ...this.readDeferred.keys()]) {
      if (cmd.state === 'receiving') this.uncharge(cmd);
    }
    if (this.closed && !this.session) {
      this.log.info('connection closed');
      return;
    }
    this.closed = true;
    const session = this.session;
    if (session) {
      for (const cmd of session.tasks.values()) {
        cmd.aborted = true;
        cmd.task.aborted = true;
      }
      this.host.closeSession(session);
    }
    this.log.info(this.loggingOut ? 'session logged out' : 'connection closed');
  }
}

const EMPTY = Buffer.alloc(0);
/** R2Ts of a command that has sent none (most never do): shared, never written to. */
const NO_R2TS: Command['r2ts'] = new Map();
/** PDUs with at most this much data are copied into the output buffer (see send()). */
const SMALL_PDU_DATA = 16 * 1024;
/** Size of one output buffer (room for many small PDUs). */
const OUT_BUFFER_BYTES = 64 * 1024;
const FIRST_OUT_BUFFER_BYTES = 4 * 1024;
/** WRITE(6), WRITE(10), WRITE(12), WRITE(16): their Data-Out is only written to the medium. */
const PLAIN_WRITES = new Set([0x0a, 0x2a, 0xaa, 0x8a]);
/** READ(6), READ(10), READ(12), READ(16): their data is what the read budget bounds. */
const PLAIN_READS = new Set([0x08, 0x28, 0xa8, 0x88]);

/** Read data handed to the socket: a pooled buffer, or the release of a view of a volume. */
type Sent = Buffer | (() => void);

function letGo1(sent: Sent): void {
  if (typeof sent === 'function') sent();
  else dataBuffers.release(sent);
}

/** A batch of answers handed to the socket: their read data, and their READs' read-budget bytes. */
interface Batch {
  sent: Sent[];
  bytes: number;
}

/**
 * A command about to wait (for room in a data budget) stops pointing into the socket
 * chunk it arrived in: its CDB is a view of that chunk (up to 64 KiB), and hundreds of
 * waiting commands would otherwise keep hundreds of chunks alive.
 */
function detach(cmd: Command): void {
  cmd.task = { ...cmd.task, cdb: Buffer.from(cmd.task.cdb) };
}

/** A written batch's data let go (buffers to the pool, views released), its READs' bytes back to the read budget. */
function giveBack(batch: Batch): void {
  for (let i = 0; i < batch.sent.length; i++) letGo1(batch.sent[i]!);
  if (batch.bytes > 0) readBudget.give(batch.bytes);
}

/** CHECK CONDITION decided by the transport, before or instead of the SCSI core. */
function transportFailure(key: SenseKey, asc: number, ascq: number): ScsiResult {
  return { status: ScsiStatus.CheckCondition, sense: fixedSense({ key, asc, ascq }) };
}
