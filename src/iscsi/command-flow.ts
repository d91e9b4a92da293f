// The life of each SCSI command of one session, from its PDU to its response:
//
//   receiving  admitted (connection buffer budget, immediate-command cap), its data
//              arriving: immediate data, unsolicited Data-Out, R2Ts and their Data-Out,
//              or waiting for room in the shared write / read budget
//   executing  in the SCSI core (startScsi)
//   done       answered (Data-In with status, or SCSI Response) or aborted, and retired:
//              retire() is the one place a command gives back its window slot, its
//              connection budget, its data budgets and its buffer
//
// It talks to the wire only through a FlowSink, so unit tests drive it without sockets
// (test/unit/command-flow.test.ts). CmdSN ordering happens before (connection.ts): a PDU
// reaches onCommand() in order.

import type { Logger } from 'pino';
import type { LimitsConfig } from '../config/model';
import { dataBuffers } from '../scsi/buffer-pool';
import { classifyCdb, DataPhase } from '../scsi/commands';
import { startScsi } from '../scsi/dispatch';
import { decodeLun } from '../scsi/lun';
import { ASC, fixedSense, SenseKey, senseKeyOf, type Asc } from '../scsi/sense';
import { ScsiStatus, type ScsiResult } from '../scsi/task';
import { readBudget, writeBudget, type BudgetWaiter } from './data-budget';
import { Op, RESERVED_TAG, RejectReason, type DataOut, type ScsiCommand, type TargetPdu } from './pdu/messages';
import type { Sent } from './pdu-channel';
import { sendResult } from './data-in';
import type { Command, Session } from './session';
import { loopClock } from './loop-clock';

/** Largest Expected Data Transfer Length we buffer for one command. */
export const MAX_COMMAND_BYTES = 32 * 1024 * 1024;

/** What the flow needs from the connection. */
export interface FlowSink {
  readonly log: Logger;
  /** Queue a PDU; true when its bytes were copied (its data buffer may be reused at once). */
  send(pdu: TargetPdu): boolean;
  /** Let go of sent read data (and its read-budget bytes) once written, or now if `copied`. */
  afterWrite(sent: Sent, readBytes: number, copied: boolean): void;
  cork(): void;
  uncork(): void;
  reject(bhs: Buffer, reason: RejectReason): void;
  /** The next StatSN, advanced. */
  takeStatSN(): number;
  /** The current StatSN, not advanced (R2T). */
  peekStatSN(): number;
  allocTtt(): number;
  /** The connection has gone: commands granted budget later give it straight back. */
  readonly gone: boolean;
  /** A SCSI command arrived; `queued` when another one is still running (busy polling). */
  noteCommand?(queued: boolean): void;
  /** Deferred work (a budget grant, a completion) threw: the connection's fault boundary. */
  fault(err: unknown): void;
  /** A command's status is known (metrics). Called once per answered command. */
  commandDone?(cmd: Command, status: number, dataInBytes: number, sense?: Buffer): void;
}

/** R2Ts of a command that has sent none (most never do): shared, never written to. */
const NO_R2TS: Command['r2ts'] = new Map();
const EMPTY = Buffer.alloc(0);

export class CommandFlow {
  /** Data-Out PDUs accepted: the initiator moving (stall detection). */
  progress = 0;
  /** Bytes each admitted SCSI command holds against this connection's budget. */
  private readonly held = new Map<Command, number>();
  private heldBytes = 0;
  private immediateRunning = 0;
  /** WRITEs charged to the write budget, and those waiting for room in it. */
  private readonly charged = new Map<Command, number>();
  private readonly deferred = new Map<Command, BudgetWaiter>();
  /** READs charged to the read budget (until their Data-In is out), and those waiting for room. */
  private readonly readCharged = new Map<Command, number>();
  private readonly readDeferred = new Map<Command, BudgetWaiter>();

  constructor(
    readonly session: Session,
    private readonly sink: FlowSink,
    private readonly bounds: Pick<LimitsConfig, 'maxImmediateCommands' | 'connectionBufferBytes'>,
  ) {}

  // ---------------------------------------------------------------- receiving

  onCommand(pdu: ScsiCommand, bhs: Buffer): void {
    const session = this.session;
    if (session.tasks.has(pdu.itt)) {
      this.sink.reject(bhs, RejectReason.TaskInProgress);
      return;
    }
    const p = session.params;
    const immLen = pdu.data.length;
    if (immLen > 0 && (!pdu.write || !p.immediateData || immLen > p.firstBurstLength || immLen > pdu.expectedDataLength)) {
      this.sink.reject(bhs, RejectReason.ProtocolError);
      return;
    }
    const refusal = this.admit(pdu);
    if (refusal === 'reject') {
      this.sink.reject(bhs, RejectReason.ImmediateCommandReject);
      return;
    }
    session.counters.commands++;
    const edtl = pdu.expectedDataLength;
    const lun = decodeLun(pdu.lun);
    // The one clock read per command: its age for metrics and (dated back over a stall of
    // this process, loop-clock.ts) for the write age limit.
    const now = performance.now();
    const cmd: Command = {
      itt: pdu.itt,
      cmdSN: pdu.cmdSN,
      immediate: pdu.immediate,
      inWindow: false,
      lun,
      lunRaw: pdu.lun,
      expectedLength: edtl,
      read: pdu.read,
      write: pdu.write,
      task: {
        cdb: pdu.cdb,
        lun,
        nexus: session.nexus,
        luns: session.luns,
        expectedLength: edtl,
        dataOut: null,
        attr: pdu.attr,
        receivedAt: loopClock.arrivalTime(now),
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
      startedAt: now,
    };
    if (refusal === 'busy') {
      // Over this connection's data budget: TASK SET FULL, and the initiator retries later.
      // Unsolicited Data-Out that follows finds no waiting task and is discarded.
      this.respond(cmd, { status: ScsiStatus.TaskSetFull });
      return;
    }
    this.hold(cmd);
    if (!pdu.immediate) {
      cmd.inWindow = true;
      session.inFlight++;
    }
    session.tasks.set(cmd.itt, cmd);
    this.sink.noteCommand?.(session.tasks.size > 1);

    if (!pdu.write || edtl === 0) {
      if (pdu.write) cmd.task = { ...cmd.task, dataOut: EMPTY };
      else if (edtl > 0 && classifyCdb(pdu.cdb) === DataPhase.MediumRead && !this.chargeRead(cmd)) return;
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
    } else if (classifyCdb(pdu.cdb) === DataPhase.MediumWrite) {
      // Medium WRITEs lend their buffer from the pool (given back in retire()), within the
      // process-wide write budget; other commands' parameter data may be kept by their
      // handlers, so it is their own.
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
          this.deferred.set(
            cmd,
            writeBudget.wait(edtl, () => this.guarded(() => this.admitWrite(cmd, imm))),
          );
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
    if (cmd.received === edtl) {
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

  /** The write budget granted room to a deferred WRITE: take its buffer and ask for its data. */
  private admitWrite(cmd: Command, imm: Buffer): void {
    this.deferred.delete(cmd);
    if (this.sink.gone || cmd.aborted || cmd.state !== 'receiving') {
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

  /** Charge a medium READ to the read budget; false when it must wait (it then runs once granted). */
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
        if (this.sink.gone || cmd.aborted || cmd.state !== 'receiving') {
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

  private sendR2Ts(cmd: Command): void {
    const p = this.session.params;
    if (cmd.r2ts === NO_R2TS) cmd.r2ts = new Map();
    while (cmd.r2ts.size < p.maxOutstandingR2T && cmd.nextR2TOffset < cmd.expectedLength) {
      const offset = cmd.nextR2TOffset;
      const length = Math.min(p.maxBurstLength, cmd.expectedLength - offset);
      const ttt = this.sink.allocTtt();
      cmd.r2ts.set(ttt, { offset, length, received: 0, nextDataSN: 0 });
      cmd.nextR2TOffset += length;
      this.sink.send({
        op: Op.R2T,
        lun: cmd.lunRaw,
        itt: cmd.itt,
        ttt,
        statSN: this.sink.peekStatSN(),
        expCmdSN: this.session.expCmdSN,
        maxCmdSN: this.session.maxCmdSN,
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
   * effects); otherwise null, and onDataOut() sorts it out as usual. Bytes placed here
   * count as received only once onDataOut() has accepted the whole PDU (a bad data digest
   * leaves them uncounted, to be overwritten).
   */
  dataOutSink(bhs: Buffer, len: number): Buffer | null {
    const cmd = this.session.tasks.get(bhs.readUInt32BE(16));
    if (cmd === undefined || cmd.state !== 'receiving' || cmd.buffer === null) return null;
    const off = bhs.readUInt32BE(40);
    const final = (bhs[1] & 0x80) !== 0;
    if (dataOutProblem(cmd, bhs.readUInt32BE(20), bhs.readUInt32BE(36), off, len, final) !== undefined) return null;
    return cmd.buffer.subarray(off, off + len);
  }

  onDataOut(pdu: DataOut, bhs: Buffer): void {
    const cmd = this.session.tasks.get(pdu.itt);
    if (!cmd || cmd.state !== 'receiving' || !cmd.buffer) {
      // Data for an aborted or finished task: discard (RFC 7143 §4.2.3.x).
      this.sink.log.debug({ itt: pdu.itt }, 'Data-Out for no waiting task; discarded');
      return;
    }
    const len = pdu.data.length;
    const off = pdu.bufferOffset;
    const problem = dataOutProblem(cmd, pdu.ttt, pdu.dataSN, off, len, pdu.final);
    if (problem === 'unknown-ttt') {
      this.sink.reject(bhs, RejectReason.InvalidPduField);
      return;
    }
    if (problem !== undefined) {
      this.protocolFailure(cmd, bhs, `Data-Out refused: ${problem} (offset ${off}, length ${len}, expected offset ${cmd.received})`);
      return;
    }
    this.progress++;
    // Already in place when the parser assembled it there (dataOutSink).
    const d = pdu.data;
    if (d.buffer !== cmd.buffer.buffer || d.byteOffset !== cmd.buffer.byteOffset + off) d.copy(cmd.buffer, off);
    cmd.received += len;
    if (pdu.ttt === RESERVED_TAG) {
      cmd.unsolicitedDataSN++;
    } else {
      const r2t = cmd.r2ts.get(pdu.ttt)!;
      r2t.nextDataSN++;
      r2t.received += len;
      if (r2t.received === r2t.length) cmd.r2ts.delete(pdu.ttt);
    }
    if (cmd.received === cmd.expectedLength) {
      this.dataComplete(cmd);
    } else if (pdu.ttt !== RESERVED_TAG) {
      this.sendR2Ts(cmd);
    }
  }

  /**
   * A Data-Out PDU broke the sequence rules: reject it and end its command with CHECK
   * CONDITION (ABORTED COMMAND, DATA PHASE ERROR), so the initiator learns at once instead
   * of timing out; nothing of it is written, and later Data-Out for the task is discarded.
   */
  private protocolFailure(cmd: Command, bhs: Buffer, why: string): void {
    this.sink.log.warn({ itt: cmd.itt }, why);
    this.sink.reject(bhs, RejectReason.ProtocolError);
    this.session.counters.errors++;
    this.retire(cmd);
    this.respond(cmd, transportFailure(SenseKey.AbortedCommand, ASC.DATA_PHASE_ERROR));
  }

  private dataComplete(cmd: Command): void {
    if (cmd.received !== cmd.expectedLength || cmd.buffer === null || cmd.buffer.length !== cmd.expectedLength) {
      // Second wall: a buffer is handed to the SCSI core only when every byte of it came
      // from this command (pooled buffers hold other commands' data until overwritten).
      this.finish(cmd, this.internalFailure(cmd, new Error(`Data-Out incomplete: ${cmd.received} of ${cmd.expectedLength} bytes`)));
      return;
    }
    // (Not yet seen by the SCSI core: set in place rather than copying the task.)
    (cmd.task as { dataOut: Buffer | null }).dataOut = cmd.buffer;
    this.session.counters.writtenBytes += cmd.expectedLength;
    this.execute(cmd);
  }

  // ---------------------------------------------------------------- executing

  private execute(cmd: Command, tooLarge = false): void {
    cmd.state = 'executing';
    let r: ScsiResult | Promise<ScsiResult>;
    try {
      r = tooLarge ? transportFailure(SenseKey.IllegalRequest, ASC.INVALID_FIELD_IN_CDB) : startScsi(cmd.task);
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
    ).catch((err: unknown) => this.sink.fault(err));
  }

  /** Run deferred work (a budget grant) inside the connection's fault boundary. */
  private guarded(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.sink.fault(err);
    }
  }

  private internalFailure(cmd: Command, err: unknown): ScsiResult {
    this.sink.log.error({ err, cdb: cmd.task.cdb.toString('hex') }, 'SCSI command failed unexpectedly');
    return transportFailure(SenseKey.HardwareError, ASC.INTERNAL_TARGET_FAILURE);
  }

  private finish(cmd: Command, result: ScsiResult, done?: () => void): void {
    const aborted = cmd.aborted;
    this.retire(cmd);
    if (done !== undefined) done();
    if (aborted) {
      // Aborted: no response; its data and read budget go back untouched.
      const bytes = this.takeReadCharge(cmd);
      if (bytes > 0) readBudget.give(bytes);
      if (result.data !== undefined) this.sink.afterWrite(result.release ?? result.data, 0, true);
      return;
    }
    if (result.status !== ScsiStatus.Good) {
      const counters = this.session.counters;
      if (result.sense !== undefined && senseKeyOf(result.sense) === SenseKey.UnitAttention) counters.unitAttentions++;
      else counters.errors++;
    }
    this.sink.commandDone?.(
      cmd,
      result.status,
      cmd.read && result.data ? Math.min(result.data.length, cmd.expectedLength) : 0,
      result.sense,
    );
    this.respond(cmd, result);
  }

  // ---------------------------------------------------------------- done

  /**
   * The one place a command leaves: it gives back its window slot, its connection budget,
   * its data budgets (or stops waiting for them) and its data buffer, and leaves the task
   * set. A READ's read budget stays charged until its Data-In is out (respond()).
   */
  private retire(cmd: Command): void {
    const receiving = cmd.state === 'receiving';
    cmd.state = 'done';
    this.freeWindowSlot(cmd);
    const bytes = this.held.get(cmd);
    if (bytes !== undefined) {
      this.held.delete(cmd);
      this.heldBytes -= bytes;
      if (cmd.immediate) this.immediateRunning--;
    }
    this.uncharge(cmd);
    if (cmd.buffer !== null) {
      // A buffer still receiving may be where the parser is assembling a Data-Out payload
      // in place (dataOutSink), even now (an abort from another session): it is dropped,
      // never handed to another command.
      if (!receiving) dataBuffers.release(cmd.buffer);
      cmd.buffer = null;
    }
    if (this.session.tasks.get(cmd.itt) === cmd) this.session.tasks.delete(cmd.itt);
  }

  /** A non-immediate command stops counting against the CmdSN window (once). */
  private freeWindowSlot(cmd: Command): void {
    if (!cmd.inWindow) return;
    cmd.inWindow = false;
    this.session.inFlight--;
  }

  /** Give back what a command holds of the write budget, or stop its wait for either budget. */
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

  /** Answer a command: Data-In and/or SCSI Response (data-in.ts). */
  private respond(cmd: Command, result: ScsiResult): void {
    // A READ's share of the read budget comes back once its Data-In is out (or now, if none).
    sendResult(this.session, cmd, result, this.takeReadCharge(cmd), this.sink);
  }

  // ---------------------------------------------------------------- aborts and the end

  /** Mark a command aborted: it gets no response; resolves once it has stopped running. */
  abort(cmd: Command): Promise<void> {
    if (cmd.aborted) return cmd.finished ?? Promise.resolve();
    cmd.aborted = true;
    cmd.task.aborted = true;
    // Its slot in the window opens now, whether or not it still runs.
    this.freeWindowSlot(cmd);
    if (cmd.state === 'receiving') {
      this.retire(cmd);
      return Promise.resolve();
    }
    return cmd.finished ?? Promise.resolve();
  }

  /** The connection is gone: waiting commands give back their budgets, running ones are marked aborted. */
  connectionLost(): void {
    for (const cmd of [...this.session.tasks.values()]) {
      cmd.aborted = true;
      cmd.task.aborted = true;
      if (cmd.state === 'receiving') this.retire(cmd);
    }
  }

  /** Do we wait on the initiator: for Data-Out, or to read READ data still charged to its command? */
  owesUs(queuedBytes: number): boolean {
    // (A WRITE waiting for room in the write budget has no buffer yet: nothing is owed.)
    for (const cmd of this.session.tasks.values()) if (cmd.state === 'receiving' && cmd.buffer !== null) return true;
    return this.readCharged.size > 0 && queuedBytes > 0;
  }

  /** Running commands (for logout and shutdown to wait on). */
  running(): Promise<void>[] {
    const out: Promise<void>[] = [];
    for (const cmd of this.session.tasks.values()) if (cmd.finished) out.push(cmd.finished);
    return out;
  }

  /** Data and commands this connection holds now (for tests and metrics). */
  get usage(): { bytes: number; commands: number; immediate: number } {
    return { bytes: this.heldBytes, commands: this.held.size, immediate: this.immediateRunning };
  }
}

/**
 * What is wrong with a Data-Out PDU for `cmd` (undefined: nothing). DataPDUInOrder=Yes and
 * DataSequenceInOrder=Yes (all we negotiate) make the rules exact: each PDU starts where
 * the data received so far ends; it stays inside the unsolicited burst (TTT ffffffffh) or
 * inside the R2T whose TTT it carries; DataSN counts up from 0 in each sequence; and the F
 * bit is set on the PDU that ends the sequence, and only there (RFC 7143 §11.7.1, §13.19,
 * §13.20). So a command's data is complete exactly when every byte arrived once.
 */
export function dataOutProblem(cmd: Command, ttt: number, dataSN: number, off: number, len: number, final: boolean): string | undefined {
  let end: number;
  let sn: number;
  if (ttt === RESERVED_TAG) {
    end = cmd.unsolicitedEnd;
    sn = cmd.unsolicitedDataSN;
  } else {
    const r2t = cmd.r2ts.get(ttt);
    if (r2t === undefined) return 'unknown-ttt';
    if (off < r2t.offset) return 'offset before its R2T';
    end = r2t.offset + r2t.length;
    sn = r2t.nextDataSN;
  }
  if (off !== cmd.received) return off < cmd.received ? 'offset overlaps data already received' : 'offset leaves a gap';
  if (off + len > end) return ttt === RESERVED_TAG ? 'data beyond the unsolicited burst' : 'data beyond its R2T';
  if (dataSN !== sn) return 'DataSN out of sequence';
  if (final !== (off + len === end)) return final ? 'F bit before the end of the sequence' : 'no F bit at the end of the sequence';
  return undefined;
}

/**
 * A command about to wait (for room in a data budget) stops pointing into the socket
 * chunk it arrived in: its CDB is a view of that chunk (up to 64 KiB), and hundreds of
 * waiting commands would otherwise keep hundreds of chunks alive.
 */
function detach(cmd: Command): void {
  cmd.task = { ...cmd.task, cdb: Buffer.from(cmd.task.cdb) };
}

/** CHECK CONDITION decided by the transport, before or instead of the SCSI core. */
function transportFailure(key: SenseKey, code: Asc): ScsiResult {
  return { status: ScsiStatus.CheckCondition, sense: fixedSense({ key, asc: code.asc, ascq: code.ascq }) };
}
