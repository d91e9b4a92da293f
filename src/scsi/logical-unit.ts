// One logical unit: a volume seen as an SBC-3 direct-access block device.
//
// The LU is shared by every session and target that maps its volume, so everything that
// SPC/SBC makes per logical unit lives here: identifiers, mode pages, the SPC-2
// reservation and the persistent reservations, per-I_T-nexus unit attentions, the task
// set's ordering rules and the LBA range lock that makes COMPARE AND WRITE atomic against
// every other write.
//
// execute() takes a ScsiTask and always resolves (never rejects) with a ScsiResult.

import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import type { Backstore } from '../backstore/backstore';
import { lookupCommand, BAD_SERVICE_ACTION, type CommandSpec } from './commands';
import { DEFAULT_MODE_VALUES, type ModeValues } from './mode-pages';
import { LIMITS } from './limits';
import { naa6 } from '../config/identity';
import { RangeLock } from './range-lock';
import { SanitizeState } from './sanitize';
import { CopyManagerState } from './extended-copy';
import { PersistentReservations } from './persistent-reservations';
import { LocalAluaStates, LuAlua, singleGroup, type AluaStateStore, type AluaTopology } from './alua';
import {
  ASC,
  buildSense,
  CheckCondition,
  checkCondition,
  invalidFieldInCdb,
  invalidOpcode,
  SenseKey,
  type Asc,
  type SenseSpec,
} from './sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from './task';
import { WriteAgeLimit } from './write-age';

export interface LogicalUnitOptions {
  /** The volume name; the serial number and NAA designator derive from it unless given below. */
  name: string;
  /** VPD 0x80 unit serial number (scsi/identity.ts); default: derived from the name. */
  serial?: string;
  /** NAA designator for VPD 0x83, 16 or 8 bytes (scsi/identity.ts); default: derived from the name. */
  naa?: Buffer;
  backstore: Backstore;
  blockSize: 512 | 4096;
  /**
   * Physical block size in bytes (READ CAPACITY(16) LOGICAL BLOCKS PER PHYSICAL BLOCK
   * EXPONENT, VPD 0xB0 unmap granularity): 4096 on a 512-byte volume says "512e", which is
   * what a file on a 4 KiB filesystem is. Default: the logical block size (exponent 0).
   */
  physicalBlockSize?: 512 | 4096;
  readonly: boolean;
  logger?: Logger;
  /**
   * Report I_T NEXUS LOSS OCCURRED (29/07) to a nexus that logs in again after
   * nexusLost(). Default false: a returning nexus is treated like any new one and gets
   * POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29/00), because libiscsi's login
   * (used by qemu and iscsi-test-cu) retries its first TEST UNIT READY only on 29/00 and
   * fails the login on any other unit attention.
   */
  nexusLossUnitAttention?: boolean;
  /**
   * Where persistent reservations are kept while an initiator asks for APTPL (persist
   * through power loss): written atomically on every change, read back here at
   * construction. The server passes `<backing file>.pr.json` for file volumes. Without it
   * (memory volumes) nothing persists: REPORT CAPABILITIES says PTPL_C = 0 and a REGISTER
   * with APTPL = 1 gets INVALID FIELD IN PARAMETER LIST.
   */
  statePath?: string;
  /**
   * ALUA (alua.ts): every gateway's target port groups and where this LU's states live.
   * Default: one group (1) with port 1, active/optimized, states in memory.
   */
  alua?: { topology: AluaTopology; store?: AluaStateStore };
  /** Refuse writes older than this (ms) when handed to the store (write-age.ts); absent or 0: no bound. */
  writeAgeLimitMs?: number;
  /** The monotonic clock (ms) the write age is read from; tests pass a fake one. */
  clock?: () => number;
}

/** A READ(16), for judging an EXTENDED COPY source as a read from the requesting nexus. */
const READ16_CDB = Buffer.from([0x88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0]);

/** iSCSI task attributes as carried in the SCSI Command PDU (RFC 7143 §11.3.1). */
const ATTR_ORDERED = 2;
const ATTR_HEAD_OF_QUEUE = 3;

export { LIMITS, COMPANY_ID, VENDOR_ID, PRODUCT_ID, PRODUCT_REVISION } from './limits';

interface NexusState {
  readonly id: string;
  readonly nexus: ItNexus;
  /** Pending unit attentions, oldest first. */
  ua: Asc[];
}

export type ResetKind = 'lun' | 'warm' | 'cold';

export class LogicalUnit {
  readonly name: string;
  readonly backstore: Backstore;
  readonly blockSize: number;
  /** Physical block size in bytes: a power-of-two multiple of blockSize. */
  readonly physicalBlockSize: number;
  readonly logger: Logger | undefined;
  /** VPD 0x80 unit serial number (ASCII). */
  readonly serial: string;
  /** 16-byte NAA IEEE Registered Extended designator (VPD 0x83). */
  readonly naa: Buffer;
  /** Serializes COMPARE AND WRITE / ORWRITE against overlapping writes. */
  readonly writeLock = new RangeLock();
  /** SANITIZE in progress / sanitize failure mode (sanitize.ts). */
  readonly sanitize = new SanitizeState();
  /** Persistent reservations: PERSISTENT RESERVE IN/OUT state (persistent-reservations.ts). */
  readonly pr: PersistentReservations;
  /** EXTENDED COPY: running copies and results held for RECEIVE COPY RESULTS (extended-copy.ts). */
  readonly copyManager = new CopyManagerState();
  /** Asymmetric access: target port groups and their states for this LU (alua.ts). */
  readonly alua: LuAlua;

  /**
   * PREEMPT AND ABORT preempted these I_T nexuses (ids as in ItNexus.id): the transport
   * must abort every task they have in this LU's task set, as CLEAR TASK SET would
   * (SAM-5 §5.6; SPC-4 §5.12.11.4.5). The iSCSI layer sets this; unset, the preempted
   * nexuses lose their registrations and reservation but their queued tasks still run
   * (and then meet the new reservation's conflict rules).
   */
  onPreemptAbort?: (nexusIds: readonly string[], lu: LogicalUnit) => void;

  private readonly volumeReadonly: boolean;
  private readonly nexusLossUa: boolean;
  /** Checked by every write just before it is handed to the store (RBD volumes); null: no bound. */
  readonly writeAge: WriteAgeLimit | null;
  private mode: ModeValues = { ...DEFAULT_MODE_VALUES };
  private readonly nexuses = new Map<string, NexusState>();
  private readonly lostNexuses = new Set<string>();
  /** I_T nexus id holding an SPC-2 RESERVE, or null. */
  private reservedBy: string | null = null;

  // Task set ordering.
  private inflight = 0;
  private drainWaiters: (() => void)[] = [];
  private gate: Promise<void> | null = null;
  private closed = false;

  constructor(opts: LogicalUnitOptions) {
    if (opts.blockSize !== 512 && opts.blockSize !== 4096) {
      throw new Error(`LU ${opts.name}: block size must be 512 or 4096`);
    }
    this.name = opts.name;
    this.backstore = opts.backstore;
    this.blockSize = opts.blockSize;
    const phys = opts.physicalBlockSize ?? opts.blockSize;
    if ((phys !== 512 && phys !== 4096) || phys < opts.blockSize) {
      throw new Error(`LU ${opts.name}: physical block size must be 512 or 4096 and at least the block size`);
    }
    this.physicalBlockSize = phys;
    this.volumeReadonly = opts.readonly;
    this.logger = opts.logger;
    this.nexusLossUa = opts.nexusLossUnitAttention ?? false;
    this.writeAge = opts.writeAgeLimitMs ? new WriteAgeLimit(opts.writeAgeLimitMs, opts.clock) : null;
    const ids = opts.serial !== undefined && opts.naa !== undefined ? undefined : deriveIdentifiers(opts.name);
    this.serial = opts.serial ?? ids!.serial;
    this.naa = opts.naa ?? ids!.naa;
    this.pr = new PersistentReservations(
      {
        name: this.name,
        logger: this.logger,
        knownNexuses: () => [...this.nexuses.values()].map((s) => s.nexus),
        queueUnitAttention: (n, code) => {
          const s = this.nexuses.get(n.id);
          if (s !== undefined) queueUa(s, code);
        },
        reservationHolder: () => this.reservedBy,
        preemptAbort: (ids) => this.onPreemptAbort?.(ids, this),
      },
      opts.statePath,
    );
    this.alua = new LuAlua(opts.alua?.topology ?? singleGroup(), opts.alua?.store ?? new LocalAluaStates(), (except) =>
      this.queueUnitAttentionAll(ASC.ASYMMETRIC_ACCESS_STATE_CHANGED, except),
    );
  }

  // ---------------------------------------------------------------- state accessors

  /** Read-only volume (config or store): writes get DATA PROTECT / WRITE PROTECTED. */
  get readonly(): boolean {
    return this.volumeReadonly || this.backstore.readonly;
  }

  /** Writes refused for any reason (read-only volume or SWP set in the control page). */
  get writeProtected(): boolean {
    return this.readonly || this.mode.swp;
  }

  /** Number of logical blocks, read from the store each time (capacity may change). */
  get blockCount(): number {
    return Math.floor(this.backstore.size / this.blockSize);
  }

  /** Current mode page values (a copy). */
  get modeValues(): ModeValues {
    return { ...this.mode };
  }

  get descriptorSense(): boolean {
    return this.mode.dSense;
  }

  get writeCacheEnabled(): boolean {
    return this.mode.wce;
  }

  get maxTransferBlocks(): number {
    return Math.floor(LIMITS.maxTransferBytes / this.blockSize);
  }

  /**
   * MAXIMUM WRITE SAME LENGTH, in blocks: at most 65535, the most WRITE SAME(10) can
   * carry, so that WRITE SAME(10) and (16) share one limit.
   */
  get maxWriteSameBlocks(): number {
    return Math.min(0xffff, Math.floor(LIMITS.maxWriteSameBytes / this.blockSize));
  }

  /** MODE SELECT applied new values; tell every other I_T nexus (SPC-4 §7.5.2). */
  setModeValues(values: ModeValues, from: ItNexus): void {
    const changed = values.wce !== this.mode.wce || values.dSense !== this.mode.dSense || values.swp !== this.mode.swp;
    this.mode = { ...values };
    if (!changed) return;
    for (const s of this.nexuses.values()) {
      if (s.id !== from.id) queueUa(s, ASC.MODE_PARAMETERS_CHANGED);
    }
  }

  // ---------------------------------------------------------------- SPC-2 reservations

  get reservationHolder(): string | null {
    return this.reservedBy;
  }

  /** RESERVE(6/10): false when another I_T nexus holds the reservation. */
  reserve(nexus: ItNexus): boolean {
    if (this.reservedBy !== null && this.reservedBy !== nexus.id) return false;
    this.reservedBy = nexus.id;
    return true;
  }

  /** RELEASE(6/10): releases only this nexus's own reservation (otherwise a no-op). */
  release(nexus: ItNexus): void {
    if (this.reservedBy === nexus.id) this.reservedBy = null;
  }

  // ---------------------------------------------------------------- unit attentions

  private nexusState(n: ItNexus): NexusState {
    let s = this.nexuses.get(n.id);
    if (s === undefined) {
      const returning = this.lostNexuses.delete(n.id);
      const ua = returning && this.nexusLossUa ? ASC.I_T_NEXUS_LOSS_OCCURRED : ASC.POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED;
      s = { id: n.id, nexus: n, ua: [ua] };
      this.nexuses.set(n.id, s);
    }
    return s;
  }

  /** Take (and clear) the oldest pending unit attention of a nexus, if any (REQUEST SENSE). */
  takeUnitAttention(n: ItNexus): Asc | undefined {
    return this.nexusState(n).ua.shift();
  }

  /** Queue a unit attention for every I_T nexus known to this LU (e.g. capacity change). */
  queueUnitAttentionAll(code: Asc, except?: ItNexus): void {
    for (const s of this.nexuses.values()) {
      if (except === undefined || s.id !== except.id) queueUa(s, code);
    }
  }

  /** Queue a unit attention for one I_T nexus (if it has used this LU). */
  queueUnitAttention(nexus: ItNexus, code: Asc): void {
    const s = this.nexuses.get(nexus.id);
    if (s !== undefined) queueUa(s, code);
  }

  /** The store was resized (issue 5): CAPACITY DATA HAS CHANGED to everyone. */
  capacityChanged(): void {
    this.queueUnitAttentionAll(ASC.CAPACITY_DATA_HAS_CHANGED);
  }

  /**
   * A reset reached this LU. Releases the SPC-2 reservation, returns mode pages to their
   * defaults and queues a unit attention for every I_T nexus (including `from`):
   *   lun  -> BUS DEVICE RESET FUNCTION OCCURRED (29/03), as SAM-5 names LOGICAL UNIT RESET
   *   warm -> POWER ON, RESET, OR BUS DEVICE RESET OCCURRED (29/00), the generic reset code
   *   cold -> POWER ON OCCURRED (29/01); a cold reset also drops every session (transport)
   * Aborting the tasks themselves is the transport's job (it sets task.aborted).
   */
  reset(kind: ResetKind, from?: ItNexus): void {
    void from;
    this.reservedBy = null;
    this.mode = { ...DEFAULT_MODE_VALUES };
    const code =
      kind === 'lun'
        ? ASC.BUS_DEVICE_RESET_FUNCTION_OCCURRED
        : kind === 'warm'
          ? ASC.POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED
          : ASC.POWER_ON_OCCURRED;
    for (const s of this.nexuses.values()) queueUa(s, code);
    this.logger?.info({ lu: this.name, kind }, 'logical unit reset');
  }

  /**
   * The I_T nexus is gone (session closed, logged out or dropped). Its unit attentions
   * and SPC-2 reservation go with it; its persistent reservation registrations (and a
   * persistent reservation it holds) stay, as SPC-4 §5.12 wants.
   */
  nexusLost(nexus: ItNexus): void {
    if (this.reservedBy === nexus.id) this.reservedBy = null;
    if (this.nexuses.delete(nexus.id) && this.nexusLossUa) this.lostNexuses.add(nexus.id);
    this.copyManager.nexusLost(nexus);
  }

  // ---------------------------------------------------------------- EXTENDED COPY hooks

  /**
   * An EXTENDED COPY another unit received reads from here (`source`) or writes here
   * (`destination`): null if that I_T nexus would get through this unit's SANITIZE and
   * reservation checks with a READ (source) or with the copy command itself (destination),
   * else the error to end the copy with (a reservation conflict is COPY ABORTED, COPY
   * TARGET DEVICE NOT REACHABLE). Write protection is checked by the caller.
   */
  copyAdmission(task: ScsiTask, role: 'source' | 'destination'): CheckCondition | null {
    const cdb = role === 'source' ? READ16_CDB : task.cdb;
    const spec = lookupCommand(cdb);
    if (spec === undefined || spec === BAD_SERVICE_ACTION) return null;
    const sanitizing = this.sanitize.admission(spec);
    if (sanitizing !== null) return new CheckCondition(sanitizing);
    const reserved = this.reservedBy !== null && this.reservedBy !== task.nexus.id;
    if (reserved || this.pr.conflicts(task.nexus, spec, cdb)) {
      return checkCondition(SenseKey.CopyAborted, ASC.COPY_TARGET_DEVICE_NOT_REACHABLE);
    }
    return null;
  }

  // ---------------------------------------------------------------- execution

  /**
   * Run one command. SIMPLE (and untagged) tasks run concurrently; an ORDERED task waits
   * for every task that entered the task set before it, and tasks after it wait for it;
   * HEAD OF QUEUE runs at once. The order of execute() calls is the task set order.
   */
  execute(task: ScsiTask): Promise<ScsiResult> {
    const r = this.start(task);
    return r instanceof Promise ? r : Promise.resolve(r);
  }

  /**
   * execute(), but a command that completes at once (an inline read or write, most
   * non-I/O commands) answers synchronously: the transport's hot path at QD1.
   */
  start(task: ScsiTask): ScsiResult | Promise<ScsiResult> {
    const attr = task.attr;
    if (attr === ATTR_HEAD_OF_QUEUE) return this.run(task);
    if (attr === ATTR_ORDERED) return this.enqueueOrdered(task);
    if (this.gate === null) return this.runCounted(task);
    return this.gate.then(() => this.runCounted(task));
  }

  private enqueueOrdered(task: ScsiTask): Promise<ScsiResult> {
    const prev = this.gate ?? Promise.resolve();
    const result = prev.then(() => this.drained()).then(() => this.runCounted(task));
    const gate = result.then(noop, noop);
    this.gate = gate;
    gate.then(() => {
      if (this.gate === gate) this.gate = null;
    }, noop);
    return result;
  }

  /** Resolves when no counted (SIMPLE/ORDERED) task is running. */
  private drained(): Promise<void> {
    if (this.inflight === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private runCounted(task: ScsiTask): ScsiResult | Promise<ScsiResult> {
    this.inflight++;
    const r = this.run(task); // never throws: run() turns every error into a result
    if (!(r instanceof Promise)) {
      this.countedDone();
      return r;
    }
    return r.then((res) => {
      this.countedDone();
      return res;
    });
  }

  private countedDone(): void {
    if (--this.inflight === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  private run(task: ScsiTask): ScsiResult | Promise<ScsiResult> {
    let spec: CommandSpec | undefined;
    try {
      const cdb = task.cdb;
      let found = lookupCommand(cdb);
      if (found !== undefined && found !== BAD_SERVICE_ACTION && found.supported && !found.supported(this)) {
        found = BAD_SERVICE_ACTION;
      }
      const nexus = this.nexusState(task.nexus);

      // A pending unit attention is reported first, except to INQUIRY, REPORT LUNS and
      // REQUEST SENSE (SPC-4 §5.14 / SAM-5).
      const exempt = found !== undefined && found !== BAD_SERVICE_ACTION && found.allowedWithUnitAttention;
      if (nexus.ua.length > 0 && !exempt) {
        const ua = nexus.ua.shift()!;
        return this.senseResult({ key: SenseKey.UnitAttention, asc: ua.asc, ascq: ua.ascq });
      }
      if (found === undefined) throw invalidOpcode();
      if (found === BAD_SERVICE_ACTION) throw invalidFieldInCdb(1, 4);
      spec = found;

      // NACA set without NormACA support (SPC-4 §4.3.4.5).
      if ((cdb[spec.cdbLength - 1] & 0x04) !== 0) throw invalidFieldInCdb(spec.cdbLength - 1, 2);

      // While a SANITIZE runs (or after one failed), only a few commands get through.
      const sanitizing = this.sanitize.admission(spec);
      if (sanitizing !== null) return this.senseResult(sanitizing);

      // Standby, unavailable or transitioning through this port: only a few commands run.
      const inaccessible = this.alua.admission(spec, task.nexus);
      if (inaccessible !== null) return this.senseResult(inaccessible);

      if (this.reservedBy !== null && this.reservedBy !== nexus.id && !spec.allowedUnderReservation) {
        return { status: ScsiStatus.ReservationConflict };
      }
      if (this.pr.conflicts(task.nexus, spec, cdb)) return { status: ScsiStatus.ReservationConflict };
      if (spec.writesMedium) {
        if (this.readonly) throw checkCondition(SenseKey.DataProtect, ASC.WRITE_PROTECTED);
        if (this.mode.swp) throw checkCondition(SenseKey.DataProtect, ASC.SOFTWARE_WRITE_PROTECTED);
      }
      if (task.aborted) return { status: ScsiStatus.TaskAborted };
      const r = spec.handler(this, task);
      if (!(r instanceof Promise)) return r;
      const s = spec;
      return r.catch((err: unknown) => this.errorResult(err, task, s));
    } catch (err) {
      return this.errorResult(err, task, spec);
    }
  }

  /** CHECK CONDITION with sense data in this LU's current format. */
  senseResult(s: SenseSpec, extra?: Partial<ScsiResult>): ScsiResult {
    return { status: ScsiStatus.CheckCondition, sense: buildSense(s, this.mode.dSense), ...extra };
  }

  private errorResult(err: unknown, task: ScsiTask, spec: CommandSpec | undefined): ScsiResult {
    if (err instanceof CheckCondition) return this.senseResult(err.sense);
    this.logger?.error({ err, lu: this.name, opcode: task.cdb[0], command: spec?.name }, 'internal error while executing a SCSI command');
    return this.senseResult({
      key: SenseKey.HardwareError,
      asc: ASC.INTERNAL_TARGET_FAILURE.asc,
      ascq: ASC.INTERNAL_TARGET_FAILURE.ascq,
    });
  }

  /**
   * Map a backstore error to sense data (never fake success, never crash):
   *   EIO on read -> MEDIUM ERROR / UNRECOVERED READ ERROR (11/00)
   *   EIO on write or flush -> MEDIUM ERROR / WRITE ERROR (0C/00)
   *   ENOSPC, EDQUOT -> DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT (27/07)
   *   EROFS -> DATA PROTECT / WRITE PROTECTED (27/00)
   *   anything else -> HARDWARE ERROR / INTERNAL TARGET FAILURE (44/00)
   */
  ioError(err: unknown, op: 'read' | 'write' | 'flush', lba?: number): CheckCondition {
    if (err instanceof CheckCondition) return err;
    const code = (err as NodeJS.ErrnoException | undefined)?.code;
    this.logger?.error({ err, lu: this.name, path: this.backstore.path, op, lba }, `volume ${op} failed`);
    switch (code) {
      case 'EIO':
        return checkCondition(SenseKey.MediumError, op === 'read' ? ASC.UNRECOVERED_READ_ERROR : ASC.WRITE_ERROR, {
          info: lba,
        });
      case 'ENOSPC':
      case 'EDQUOT':
        return checkCondition(SenseKey.DataProtect, ASC.SPACE_ALLOCATION_FAILED_WRITE_PROTECT);
      case 'EROFS':
        return checkCondition(SenseKey.DataProtect, ASC.WRITE_PROTECTED);
      default:
        return checkCondition(SenseKey.HardwareError, ASC.INTERNAL_TARGET_FAILURE);
    }
  }

  /** Wait for running tasks, make writes durable and close the store. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.sanitize.cancel();
    await this.drained();
    if (this.gate) await this.gate;
    await this.pr.flush();
    try {
      if (!this.readonly) await this.backstore.flush();
    } finally {
      await this.backstore.close();
    }
  }
}

function queueUa(s: NexusState, code: Asc): void {
  if (code.asc === 0x29) {
    // A newer reset/power-on condition supersedes the older ones (and everything queued
    // before it describes state the reset has wiped).
    s.ua.length = 0;
  } else if (s.ua.some((u) => u.asc === code.asc && u.ascq === code.ascq)) {
    return;
  }
  if (s.ua.length < 16) s.ua.push(code);
}

function noop(): void {}

/**
 * Identifiers from the volume name alone: a 16-hex-digit serial number and an NAA IEEE
 * Registered Extended designator (NAA 6: company id + 100 bits of the name's SHA-256).
 * What volumes from before identity files were exported with, and what their hosts know
 * them by; new volumes get random ones (scsi/identity.ts).
 */
export function deriveIdentifiers(name: string): { serial: string; naa: Buffer } {
  const h = createHash('sha256').update(`iscsi-target volume\0${name}`).digest();
  const serial = h.subarray(0, 8).toString('hex').toUpperCase();
  return { serial, naa: naa6(h[8], h.subarray(9, 21)) };
}
