// SANITIZE (SBC-4 §5.30): OVERWRITE, BLOCK ERASE and EXIT FAILURE MODE.
//
//   OVERWRITE    writes the initialization pattern over every logical block, OVERWRITE
//                COUNT times (inverting it between passes with INVERT), in 1 MiB chunks,
//                each pass made durable (fdatasync) before the next.
//   BLOCK ERASE  deallocates every block (punches holes: honest on a thin volume, where
//                unmapped blocks read as zeros, LBPRZ = 1), then flushes.
//   CRYPTO ERASE only on an encrypted volume (backstore/encrypted.ts): the store's key is
//                replaced by a new random one (nothing written before can be decrypted),
//                then every block is deallocated as for BLOCK ERASE, so the volume reads
//                zeros. On an unencrypted volume there is no key whose destruction would
//                erase it: the command gets INVALID FIELD IN CDB, REPORT SUPPORTED
//                OPERATION CODES leaves it out and VPD 0xB1 says WACEREQ = 0.
//
// The operation runs in the background of the logical unit, not of the command: it takes
// an exclusive hold on the whole LBA range (waiting for the commands already running),
// and until it ends every command but INQUIRY, REPORT LUNS and REQUEST SENSE gets NOT
// READY, LOGICAL UNIT NOT READY, SANITIZE IN PROGRESS with the progress indication. It
// survives ABORT TASK, resets and the loss of the I_T nexus that started it, as SBC-4
// requires; only closing the LU (daemon shutdown, volume removal) stops it. With IMMED
// the command returns GOOD once the CDB and parameters are checked; without it, when the
// operation ends (or, if the command is aborted meanwhile, at once: the operation goes on).
//
// An OVERWRITE is paced (SanitizeState.bytesPerSecond, default 128 MiB/s) so that one
// volume's sanitize cannot take all the disk bandwidth from the other volumes sharing it;
// the chunks are awaited one by one, so the event loop keeps serving every other LU.
//
// A sanitize that fails (an I/O error) leaves the LU in sanitize failure mode: commands
// other than INQUIRY, REPORT LUNS, REQUEST SENSE and SANITIZE get MEDIUM ERROR, SANITIZE
// COMMAND FAILED, until a SANITIZE completes or (when the failed one had AUSE = 1) EXIT
// FAILURE MODE is sent.

import type { CommandSpec } from './commands';
import type { LogicalUnit } from './logical-unit';
import { ASC, invalidFieldInCdb, invalidFieldInParameterList, parameterListLengthError, SenseKey, type SenseSpec } from './sense';
import { ScsiStatus, type ScsiResult, type ScsiTask } from './task';

/** Default pace of an OVERWRITE, in bytes per second (0 = as fast as the store goes). */
export const DEFAULT_SANITIZE_BYTES_PER_SECOND = 128 * 1024 * 1024;
const CHUNK_BYTES = 1024 * 1024;
/** BLOCK ERASE deallocates this much per call, so its progress advances. */
const ERASE_STEP_BYTES = 256 * 1024 * 1024;
/** How often a waiting (IMMED = 0) SANITIZE looks whether it was aborted. */
const ABORT_POLL_MS = 100;

interface Operation {
  readonly kind: 'overwrite' | 'block erase' | 'crypto erase';
  readonly total: number;
  done: number;
  cancelled: boolean;
  /** Settles (never rejects) when the operation has ended; the error, if it failed. */
  readonly ended: Promise<unknown>;
}

/** Per-LU sanitize state: the operation in progress and the failure mode. */
export class SanitizeState {
  /** Pace of OVERWRITE passes; 0 disables pacing (tests). */
  bytesPerSecond = DEFAULT_SANITIZE_BYTES_PER_SECOND;
  private op: Operation | null = null;
  private failure: { ause: boolean } | null = null;

  get inProgress(): boolean {
    return this.op !== null;
  }

  /** In sanitize failure mode (the last sanitize failed). */
  get failed(): boolean {
    return this.failure !== null;
  }

  /** PROGRESS INDICATION: the fraction done, in 65536ths. */
  get progress(): number {
    const op = this.op;
    if (op === null || op.total === 0) return 0;
    return Math.min(0xffff, Math.floor((op.done / op.total) * 0x10000));
  }

  /** The sense data a command gets while sanitizing, or null if the command may run. */
  admission(spec: CommandSpec): SenseSpec | null {
    if (spec.allowedDuringSanitize) return null;
    if (this.op !== null) {
      const { asc, ascq } = ASC.LOGICAL_UNIT_NOT_READY_SANITIZE_IN_PROGRESS;
      return { key: SenseKey.NotReady, asc, ascq, progress: this.progress };
    }
    if (this.failure !== null && spec.opcode !== 0x48) {
      const { asc, ascq } = ASC.SANITIZE_COMMAND_FAILED;
      return { key: SenseKey.MediumError, asc, ascq };
    }
    return null;
  }

  /** The sense data REQUEST SENSE reports while nothing else is pending, or null. */
  pollableSense(): SenseSpec | null {
    if (this.op !== null) {
      const { asc, ascq } = ASC.LOGICAL_UNIT_NOT_READY_SANITIZE_IN_PROGRESS;
      return { key: SenseKey.NotReady, asc, ascq, progress: this.progress };
    }
    return null;
  }

  /**
   * Start an operation in the background: it waits for an exclusive hold on every block,
   * then runs `work` (which advances op.done and checks op.cancelled).
   */
  start(lu: LogicalUnit, kind: Operation['kind'], total: number, ause: boolean, work: (op: Operation) => Promise<void>): Operation {
    if (this.op !== null) throw new Error('a sanitize operation is already in progress');
    let settle!: (v: unknown) => void;
    const op: Operation = { kind, total, done: 0, cancelled: false, ended: new Promise((r) => (settle = r)) };
    this.op = op;
    const run = async (): Promise<void> => {
      const held = lu.writeLock.acquire(0, Math.max(1, lu.blockCount), true);
      const release = typeof held === 'function' ? held : await held;
      try {
        await work(op);
      } finally {
        release();
      }
    };
    lu.logger?.info({ lu: lu.name, kind, bytes: total }, 'sanitize started');
    run().then(
      () => {
        this.op = null;
        if (!op.cancelled) {
          this.failure = null;
          lu.logger?.info({ lu: lu.name, kind }, 'sanitize completed');
        }
        settle(undefined);
      },
      (err: unknown) => {
        this.op = null;
        this.failure = { ause };
        lu.logger?.error({ err, lu: lu.name, kind }, 'sanitize failed: the logical unit is in sanitize failure mode');
        settle(err ?? new Error('sanitize failed'));
      },
    );
    return op;
  }

  /** EXIT FAILURE MODE: leave failure mode if the failed sanitize allowed it (AUSE = 1). */
  exitFailureMode(): boolean {
    if (this.failure === null) return true;
    if (!this.failure.ause) return false;
    this.failure = null;
    return true;
  }

  /** Stop the running operation (LU closing) and wait for it to end. */
  async cancel(): Promise<void> {
    const op = this.op;
    if (op === null) return;
    op.cancelled = true;
    await op.ended;
  }
}

// ------------------------------------------------------------------ the CDB

interface SanitizeCdb {
  immed: boolean;
  ause: boolean;
  paramLength: number;
}

/** Byte 1: IMMED (7), reserved (6), AUSE (5), SERVICE ACTION; bytes 2..6 reserved. */
function parseCdb(task: ScsiTask): SanitizeCdb {
  const c = task.cdb;
  if (c[1] & 0x40) throw invalidFieldInCdb(1, 6);
  for (let i = 2; i <= 6; i++) if (c[i] !== 0) throw invalidFieldInCdb(i);
  return { immed: (c[1] & 0x80) !== 0, ause: (c[1] & 0x20) !== 0, paramLength: c.readUInt16BE(7) };
}

function good(dataOutLength?: number): ScsiResult {
  return dataOutLength === undefined ? { status: ScsiStatus.Good } : { status: ScsiStatus.Good, dataOutLength };
}

/**
 * Wait for the operation (IMMED = 0). An aborted command stops waiting at once (the
 * operation goes on); a failed operation answers with the error's sense data.
 */
async function finish(lu: LogicalUnit, task: ScsiTask, op: Operation, result: ScsiResult): Promise<ScsiResult> {
  let timer: NodeJS.Timeout | undefined;
  const aborted = new Promise<'aborted'>((resolve) => {
    const poll = (): void => {
      if (task.aborted) resolve('aborted');
      else timer = setTimeout(poll, ABORT_POLL_MS);
    };
    timer = setTimeout(poll, ABORT_POLL_MS);
  });
  try {
    const outcome = await Promise.race([op.ended, aborted]);
    if (outcome === 'aborted') return { status: ScsiStatus.TaskAborted };
    if (outcome !== undefined) throw lu.ioError(outcome, 'write');
    return result;
  } finally {
    clearTimeout(timer);
  }
}

// ------------------------------------------------------------------ OVERWRITE

/**
 * SANITIZE OVERWRITE. Parameter list: INVERT | TEST | OVERWRITE COUNT, reserved,
 * INITIALIZATION PATTERN LENGTH (2 bytes), the pattern (1 .. block length bytes).
 */
export async function sanitizeOverwrite(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const { immed, ause, paramLength } = parseCdb(task);
  const bs = lu.blockSize;
  if (paramLength < 5 || paramLength > bs + 4) throw invalidFieldInCdb(7);
  const data = task.dataOut;
  if (data === null || data.length < paramLength) throw parameterListLengthError();
  const p = data.subarray(0, paramLength);
  const invert = (p[0] & 0x80) !== 0;
  if (p[0] & 0x60) throw invalidFieldInParameterList(0, 6); // TEST: only 00b (normal)
  const passes = p[0] & 0x1f;
  if (passes === 0) throw invalidFieldInParameterList(0, 4);
  if (p[1] !== 0) throw invalidFieldInParameterList(1);
  const patternLength = p.readUInt16BE(2);
  if (patternLength === 0 || patternLength > bs || patternLength + 4 !== paramLength) {
    throw invalidFieldInParameterList(2);
  }

  // One chunk of whole blocks, each block filled with the pattern (repeated, restarting
  // at every block), and its inverse for INVERT.
  const pattern = Buffer.from(p.subarray(4, 4 + patternLength));
  const block = Buffer.alloc(bs).fill(pattern);
  const chunkBlocks = Math.max(1, Math.floor(CHUNK_BYTES / bs));
  const chunk = Buffer.alloc(chunkBlocks * bs).fill(block);
  const inverse = invert ? Buffer.from(chunk.map((x) => ~x & 0xff)) : chunk;

  const size = lu.blockCount * bs;
  const state = lu.sanitize;
  const op = state.start(lu, 'overwrite', size * passes, ause, async (op) => {
    const started = Date.now();
    for (let pass = 0; pass < passes; pass++) {
      const buf = pass % 2 === 1 ? inverse : chunk;
      for (let off = 0; off < size;) {
        if (op.cancelled) return;
        const n = Math.min(size - off, buf.length);
        await lu.backstore.write(n === buf.length ? buf : buf.subarray(0, n), off);
        off += n;
        op.done += n;
        const rate = state.bytesPerSecond;
        if (rate > 0) {
          const ahead = (op.done / rate) * 1000 - (Date.now() - started);
          if (ahead > 1) await sleep(ahead);
        }
      }
      await lu.backstore.flush();
    }
  });
  if (immed) return good(paramLength);
  return finish(lu, task, op, good(paramLength));
}

// ------------------------------------------------------------------ BLOCK ERASE

/** SANITIZE BLOCK ERASE: deallocate every block (no parameter list). */
export async function sanitizeBlockErase(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const { immed, ause, paramLength } = parseCdb(task);
  if (paramLength !== 0) throw invalidFieldInCdb(7);
  const size = lu.blockCount * lu.blockSize;
  const op = lu.sanitize.start(lu, 'block erase', size, ause, (op) => deallocateAll(lu, op, size));
  if (immed) return good();
  return finish(lu, task, op, good());
}

/** Unmap every block in steps (so progress advances), then flush. */
async function deallocateAll(lu: LogicalUnit, op: Operation, size: number): Promise<void> {
  for (let off = 0; off < size;) {
    if (op.cancelled) return;
    const n = Math.min(size - off, ERASE_STEP_BYTES);
    await lu.backstore.unmap(off, n);
    off += n;
    op.done += n;
  }
  await lu.backstore.flush();
}

// ------------------------------------------------------------------ CRYPTOGRAPHIC ERASE

/** CRYPTOGRAPHIC ERASE is offered where the store encrypts (it has a key to destroy). */
export function cryptoEraseSupported(lu: LogicalUnit): boolean {
  return typeof lu.backstore.cryptoErase === 'function';
}

/** SANITIZE CRYPTOGRAPHIC ERASE: a new key, then deallocate every block (no parameter list). */
export async function sanitizeCryptoErase(lu: LogicalUnit, task: ScsiTask): Promise<ScsiResult> {
  const { immed, ause, paramLength } = parseCdb(task);
  if (paramLength !== 0) throw invalidFieldInCdb(7);
  const store = lu.backstore;
  if (typeof store.cryptoErase !== 'function') throw invalidFieldInCdb(1, 4);
  const size = lu.blockCount * lu.blockSize;
  const op = lu.sanitize.start(lu, 'crypto erase', size, ause, async (op) => {
    // The old key goes first: from here on nothing written before can be read back.
    await store.cryptoErase!();
    await deallocateAll(lu, op, size);
  });
  if (immed) return good();
  return finish(lu, task, op, good());
}

// ------------------------------------------------------------------ EXIT FAILURE MODE

/** SANITIZE EXIT FAILURE MODE (no parameter list). */
export function sanitizeExitFailureMode(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const { paramLength } = parseCdb(task);
  if (paramLength !== 0) throw invalidFieldInCdb(7);
  // Leaving failure mode is refused when the failed SANITIZE did not allow it (AUSE = 0):
  // only a SANITIZE that completes ends that failure mode.
  if (!lu.sanitize.exitFailureMode()) throw invalidFieldInCdb(1, 4);
  return good();
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
