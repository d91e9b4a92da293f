// Persistent reservations (SPC-4 §5.12) of one logical unit: PERSISTENT RESERVE IN (READ
// KEYS, READ RESERVATION, REPORT CAPABILITIES, READ FULL STATUS) and PERSISTENT RESERVE OUT
// (REGISTER, REGISTER AND IGNORE EXISTING KEY, RESERVE, RELEASE, CLEAR, PREEMPT, PREEMPT AND
// ABORT, REGISTER AND MOVE), all six reservation types, the unit attentions they owe to other
// I_T nexuses, and APTPL state kept next to the volume.
//
// Which commands a reservation blocks is not decided here but by the command table
// (commands.ts: `allowedUnderPersistentReservation`); conflicts() applies it.
//
// A registration belongs to an I_T nexus (initiator port = iSCSI name + ISID, target port =
// target name + relative port id), or with ALL_TG_PT to the initiator port on every target
// port. Registrations survive I_T nexus loss and resets; they survive a restart only while
// the last APTPL bit received was one and the LU has a statePath.
//
// Not supported, and said so in REPORT CAPABILITIES: SPEC_I_PT (SIP_C = 0; a parameter list
// with SPEC_I_PT set gets INVALID FIELD IN PARAMETER LIST) and REPLACE LOST RESERVATION
// (RLR_C = 0; service action 08h is INVALID FIELD IN CDB through the command table).

import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { ASC, checkCondition, invalidFieldInCdb, invalidFieldInParameterList, parameterListLengthError, SenseKey, type Asc } from './sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from './task';

// ------------------------------------------------------------------ constants

/** PERSISTENT RESERVE IN service actions. */
export const PrIn = {
  READ_KEYS: 0x00,
  READ_RESERVATION: 0x01,
  REPORT_CAPABILITIES: 0x02,
  READ_FULL_STATUS: 0x03,
} as const;

/** PERSISTENT RESERVE OUT service actions. */
export const PrOut = {
  REGISTER: 0x00,
  RESERVE: 0x01,
  RELEASE: 0x02,
  CLEAR: 0x03,
  PREEMPT: 0x04,
  PREEMPT_AND_ABORT: 0x05,
  REGISTER_AND_IGNORE_EXISTING_KEY: 0x06,
  REGISTER_AND_MOVE: 0x07,
} as const;

/** Persistent reservation types (SPC-4 §6.15.3.4). */
export const PrType = {
  WRITE_EXCLUSIVE: 0x1,
  EXCLUSIVE_ACCESS: 0x3,
  WRITE_EXCLUSIVE_REGISTRANTS_ONLY: 0x5,
  EXCLUSIVE_ACCESS_REGISTRANTS_ONLY: 0x6,
  WRITE_EXCLUSIVE_ALL_REGISTRANTS: 0x7,
  EXCLUSIVE_ACCESS_ALL_REGISTRANTS: 0x8,
} as const;
export type PrType = (typeof PrType)[keyof typeof PrType];

const VALID_TYPES: ReadonlySet<number> = new Set(Object.values(PrType));
const SCOPE_LU = 0x0;

const isAllRegistrants = (t: PrType): boolean =>
  t === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS || t === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;
const isRegistrantsOnly = (t: PrType): boolean =>
  t === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY || t === PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY;
/** Types whose write-exclusive flavour lets non-holders read (WE, WE-RO, WE-AR). */
const isWriteExclusiveFamily = (t: PrType): boolean =>
  t === PrType.WRITE_EXCLUSIVE || t === PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY || t === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS;

/**
 * How a command fares under a persistent reservation, from an I_T nexus that does not hold
 * it (SPC-4 table 66, SBC-3 table 13): `writeExclusive` — allowed to a non-holder under
 * WRITE EXCLUSIVE and to an unregistered nexus under WE-REGISTRANTS ONLY / WE-ALL
 * REGISTRANTS; `exclusiveAccess` — likewise under the EXCLUSIVE ACCESS types. The holder,
 * and every registered nexus under a registrants-only or all-registrants type, may send
 * anything. A command not allowed gets RESERVATION CONFLICT.
 */
export interface PrAccess {
  readonly writeExclusive: boolean;
  readonly exclusiveAccess: boolean;
}

/** A table entry's rule: fixed, or depending on CDB fields (START STOP UNIT, PREVENT ALLOW). */
export type PrAccessRule = PrAccess | ((cdb: Buffer) => PrAccess);

/** The command table fields conflicts() looks at. */
export interface PrCommand {
  readonly writesMedium: boolean;
  readonly allowedUnderPersistentReservation?: PrAccessRule;
}

export const PR_ALLOWED: PrAccess = Object.freeze({ writeExclusive: true, exclusiveAccess: true });
export const PR_READ_SHARED: PrAccess = Object.freeze({ writeExclusive: true, exclusiveAccess: false });
export const PR_CONFLICT: PrAccess = Object.freeze({ writeExclusive: false, exclusiveAccess: false });

/** Unit attention codes this module raises (SPC-4 Annex D). */
const UA_RESERVATIONS_PREEMPTED: Asc = ASC.RESERVATIONS_PREEMPTED;
const UA_RESERVATIONS_RELEASED: Asc = ASC.RESERVATIONS_RELEASED;
const UA_REGISTRATIONS_PREEMPTED: Asc = ASC.REGISTRATIONS_PREEMPTED;

/** PERSISTENT RESERVE OUT basic parameter list length (SPEC_I_PT = 0, not REGISTER AND MOVE). */
const BASIC_PARAMETER_LIST_LENGTH = 24;

/** SCSI protocol identifier for iSCSI in TransportIDs. */
const PROTOCOL_ISCSI = 0x5;

// ------------------------------------------------------------------ state

/** One registration: a reservation key for an I_T nexus (or for an initiator port, ALL_TG_PT). */
export interface Registration {
  key: bigint;
  readonly initiatorName: string;
  /** ISID as 12 lower-case hex digits. */
  readonly isid: string;
  readonly targetName: string;
  readonly relativePortId: number;
  /** Registered through every target port (ALL_TG_PT = 1). */
  readonly allTgPt: boolean;
}

interface Reservation {
  type: PrType;
  /** The holder's registration; null for the all-registrants types (every registrant holds it). */
  holder: Registration | null;
}

/** What the logical unit lends the state machine. */
export interface PrHost {
  readonly name: string;
  readonly logger: Logger | undefined;
  /** The I_T nexuses that currently have state on the LU (recipients of unit attentions). */
  knownNexuses(): Iterable<ItNexus>;
  queueUnitAttention(nexus: ItNexus, code: Asc): void;
  /** The I_T nexus id holding an SPC-2 RESERVE, or null. */
  reservationHolder(): string | null;
  /** PREEMPT AND ABORT: abort the tasks of these I_T nexuses (the transport's job). */
  preemptAbort(nexusIds: string[]): void;
}

/** What the state file holds (JSON; keys as hex strings). */
interface StateFile {
  version: 1;
  generation: number;
  aptpl: boolean;
  registrations: {
    key: string;
    initiatorName: string;
    isid: string;
    targetName: string;
    relativePortId: number;
    allTgPt: boolean;
  }[];
  reservation: { type: number; holder: number | null } | null;
}

const sameName = (a: string, b: string): boolean => a.toLowerCase() === b.toLowerCase();

/** Is `n` one of the I_T nexuses of registration `r`? */
function covers(r: Registration, n: ItNexus): boolean {
  return (
    sameName(r.initiatorName, n.initiatorName) &&
    sameName(r.isid, n.isid) &&
    (r.allTgPt || (sameName(r.targetName, n.targetName) && r.relativePortId === n.relativePortId))
  );
}

/** Same initiator port, whatever the target port. */
function sameInitiatorPort(r: Registration, n: ItNexus): boolean {
  return sameName(r.initiatorName, n.initiatorName) && sameName(r.isid, n.isid);
}

const RESERVATION_CONFLICT: ScsiResult = Object.freeze({ status: ScsiStatus.ReservationConflict });

/** Thrown inside a service action to answer RESERVATION CONFLICT. */
class Conflict extends Error {
  override name = 'Conflict';
}

/** Effects of a service action, applied once the new state is durable. */
interface Effects {
  ua: { to: (n: ItNexus) => boolean; code: Asc }[];
  abort: Registration[];
}

export type Spc2Interplay = 'proceed' | 'good' | 'conflict';

export class PersistentReservations {
  private registrations: Registration[] = [];
  private reservation: Reservation | null = null;
  private generation = 0;
  private aptpl = false;
  /** The state file exists (written, or found at start). */
  private fileExists = false;
  /** Serializes state file writes so the last state wins. */
  private saving: Promise<void> = Promise.resolve();
  private tmpCounter = 0;

  constructor(
    private readonly host: PrHost,
    /** `<volume>.pr.json`; without it APTPL = 1 is refused (PTPL_C = 0). */
    readonly statePath?: string,
  ) {
    if (statePath !== undefined) this.load(statePath);
  }

  // ---------------------------------------------------------------- queries

  /** PRgeneration (SPC-4 §6.15.2): bumped by every REGISTER, CLEAR, PREEMPT and MOVE. */
  get prGeneration(): number {
    return this.generation;
  }

  get registrationCount(): number {
    return this.registrations.length;
  }

  /** The current reservation's type, or null. */
  get reservationType(): PrType | null {
    return this.reservation?.type ?? null;
  }

  /** The last valid APTPL bit received (PTPL_A). */
  get persistThroughPowerLoss(): boolean {
    return this.aptpl;
  }

  private find(n: ItNexus): Registration | undefined {
    return this.registrations.find((r) => covers(r, n));
  }

  private isHolder(reg: Registration | undefined): boolean {
    const res = this.reservation;
    return res !== null && reg !== undefined && (res.holder === null || res.holder === reg);
  }

  /** Is `nexus` registered (with any key)? */
  isRegistered(nexus: ItNexus): boolean {
    return this.find(nexus) !== undefined;
  }

  /**
   * RESERVATION CONFLICT for a command from `nexus` under the current persistent
   * reservation? The rule comes from the command's table entry
   * (allowedUnderPersistentReservation); an entry without one is treated as a medium
   * write (conflicts under every type) if it writesMedium, else as a read (allowed through
   * the write-exclusive types, conflicts under the exclusive-access types).
   */
  conflicts(nexus: ItNexus, spec: PrCommand, cdb: Buffer): boolean {
    const res = this.reservation;
    if (res === null) return false;
    const reg = this.find(nexus);
    if (this.isHolder(reg)) return false;
    // Registrants-only and all-registrants types let every registered nexus through.
    if (reg !== undefined && (isRegistrantsOnly(res.type) || isAllRegistrants(res.type))) return false;
    const rule = spec.allowedUnderPersistentReservation ?? (spec.writesMedium ? PR_CONFLICT : PR_READ_SHARED);
    const access = typeof rule === 'function' ? rule(cdb) : rule;
    return isWriteExclusiveFamily(res.type) ? !access.writeExclusive : !access.exclusiveAccess;
  }

  /**
   * RESERVE(6/10) and RELEASE(6/10) with persistent reservations about (SPC-4 §5.12.3 with
   * CRH = 1, and SPC-2 §5.5.1): while any registration exists they complete with GOOD and
   * change nothing for the reservation holder (and for any registrant under a
   * registrants-only or all-registrants reservation), and conflict for everyone else.
   * Without registrations they proceed as SPC-2 says.
   */
  spc2Interplay(nexus: ItNexus): Spc2Interplay {
    if (this.registrations.length === 0) return 'proceed';
    const res = this.reservation;
    const reg = this.find(nexus);
    if (res !== null && reg !== undefined) {
      if (this.isHolder(reg) || isRegistrantsOnly(res.type)) return 'good';
    }
    return 'conflict';
  }

  // ---------------------------------------------------------------- PERSISTENT RESERVE IN

  /** PERSISTENT RESERVE IN (5Eh). */
  reserveIn(task: ScsiTask): ScsiResult {
    // An SPC-2 reservation makes every PERSISTENT RESERVE IN conflict, whoever sends it.
    if (this.host.reservationHolder() !== null) return RESERVATION_CONFLICT;
    const c = task.cdb;
    const sa = c[1] & 0x1f;
    const alloc = c.readUInt16BE(7);
    let data: Buffer;
    switch (sa) {
      case PrIn.READ_KEYS:
        data = this.readKeys();
        break;
      case PrIn.READ_RESERVATION:
        data = this.readReservation();
        break;
      case PrIn.REPORT_CAPABILITIES:
        data = this.reportCapabilities();
        break;
      case PrIn.READ_FULL_STATUS:
        data = this.readFullStatus();
        break;
      default:
        throw invalidFieldInCdb(1, 4);
    }
    return { status: ScsiStatus.Good, data: data.length > alloc ? data.subarray(0, alloc) : data };
  }

  private header(additionalLength: number): Buffer {
    const b = Buffer.alloc(8);
    b.writeUInt32BE(this.generation >>> 0, 0);
    b.writeUInt32BE(additionalLength, 4);
    return b;
  }

  private readKeys(): Buffer {
    const b = Buffer.alloc(8 + 8 * this.registrations.length);
    this.header(8 * this.registrations.length).copy(b);
    this.registrations.forEach((r, i) => b.writeBigUInt64BE(r.key, 8 + 8 * i));
    return b;
  }

  private readReservation(): Buffer {
    const res = this.reservation;
    if (res === null) return this.header(0);
    const b = Buffer.alloc(24);
    this.header(16).copy(b);
    // The all-registrants types report a RESERVATION KEY of zero.
    b.writeBigUInt64BE(res.holder === null ? 0n : res.holder.key, 8);
    b[21] = (SCOPE_LU << 4) | res.type;
    return b;
  }

  private reportCapabilities(): Buffer {
    const b = Buffer.alloc(8);
    b.writeUInt16BE(8, 0); // LENGTH
    b[2] =
      0x10 | // CRH: RESERVE/RELEASE behave as SPC-4 §5.12.3 says
      0x04 | // ATP_C: ALL_TG_PT supported (SIP_C = 0: no SPEC_I_PT; RLR_C = 0)
      (this.statePath !== undefined ? 0x01 : 0); // PTPL_C
    b[3] =
      0x80 | // TMV: the type mask is valid
      (0x3 << 4) | // ALLOW COMMANDS 011b: TEST UNIT READY through WE and EA; MODE SENSE,
      // READ DEFECT DATA, REPORT SUPPORTED OPERATION CODES, ... through WE
      (this.aptpl ? 0x01 : 0); // PTPL_A
    b[4] = 0x80 | 0x40 | 0x20 | 0x08 | 0x02; // WR_EX_AR, EX_AC_RO, WR_EX_RO, EX_AC, WR_EX
    b[5] = 0x01; // EX_AC_AR
    return b;
  }

  private readFullStatus(): Buffer {
    const res = this.reservation;
    const descriptors = this.registrations.map((r) => {
      const tid = iscsiTransportId(r.initiatorName, r.isid);
      const d = Buffer.alloc(24 + tid.length);
      d.writeBigUInt64BE(r.key, 0);
      const holder = this.isHolder(r);
      d[12] = (r.allTgPt ? 0x02 : 0) | (holder ? 0x01 : 0); // ALL_TG_PT, R_HOLDER
      if (holder && res !== null) d[13] = (SCOPE_LU << 4) | res.type;
      d.writeUInt16BE(r.allTgPt ? 0 : r.relativePortId & 0xffff, 18);
      d.writeUInt32BE(tid.length, 20);
      tid.copy(d, 24);
      return d;
    });
    const body = Buffer.concat(descriptors);
    return Buffer.concat([this.header(body.length), body]);
  }

  // ---------------------------------------------------------------- PERSISTENT RESERVE OUT

  /** PERSISTENT RESERVE OUT (5Fh). Resolves once a changed APTPL state is on disk. */
  async reserveOut(task: ScsiTask): Promise<ScsiResult> {
    const c = task.cdb;
    const sa = c[1] & 0x1f;
    const scope = c[2] >> 4;
    const type = c[2] & 0x0f;
    const len = c.readUInt32BE(5);
    // An SPC-2 reservation makes every PERSISTENT RESERVE OUT conflict, whoever sends it.
    if (this.host.reservationHolder() !== null) return { ...RESERVATION_CONFLICT, dataOutLength: len };

    const data = task.dataOut;
    if (data === null || data.length < len) throw parameterListLengthError();
    const p = data.subarray(0, len);
    // SPEC_I_PT (byte 20 bit 3; in REGISTER AND MOVE byte 20 is part of a length) is not supported.
    if (sa !== PrOut.REGISTER_AND_MOVE && len >= 21 && (p[20] & 0x08) !== 0) throw invalidFieldInParameterList(20, 3);
    if (sa === PrOut.REGISTER_AND_MOVE) {
      if (len < 24) throw parameterListLengthError();
    } else if (len !== BASIC_PARAMETER_LIST_LENGTH) {
      throw parameterListLengthError();
    }
    const key = p.readBigUInt64BE(0);
    const sark = p.readBigUInt64BE(8);

    const generationBefore = this.generation;
    const before = this.stateFingerprint();
    let effects: Effects;
    try {
      switch (sa) {
        case PrOut.REGISTER:
        case PrOut.REGISTER_AND_IGNORE_EXISTING_KEY:
          effects = this.register(task.nexus, sa === PrOut.REGISTER_AND_IGNORE_EXISTING_KEY, key, sark, p);
          break;
        case PrOut.RESERVE:
          effects = this.reserve(task.nexus, key, scope, type);
          break;
        case PrOut.RELEASE:
          effects = this.release(task.nexus, key, scope, type);
          break;
        case PrOut.CLEAR:
          effects = this.clear(task.nexus, key);
          break;
        case PrOut.PREEMPT:
        case PrOut.PREEMPT_AND_ABORT:
          effects = this.preempt(task.nexus, key, sark, scope, type, sa === PrOut.PREEMPT_AND_ABORT);
          break;
        case PrOut.REGISTER_AND_MOVE:
          effects = this.registerAndMove(task.nexus, key, sark, p);
          break;
        default:
          throw invalidFieldInCdb(1, 4);
      }
    } catch (err) {
      if (err instanceof Conflict) return { ...RESERVATION_CONFLICT, dataOutLength: len };
      throw err;
    }

    if (this.stateFingerprint() !== before) {
      this.host.logger?.info(
        {
          lu: this.host.name,
          serviceAction: sa,
          generation: this.generation,
          registrations: this.registrations.length,
          reservation: this.reservation?.type ?? null,
        },
        'persistent reservation changed',
      );
      await this.save(generationBefore);
    }
    this.apply(effects, task.nexus);
    return { status: ScsiStatus.Good, dataOutLength: len };
  }

  private bump(): void {
    this.generation = (this.generation + 1) >>> 0;
  }

  /** The registration of `nexus` with RESERVATION KEY `key`, else RESERVATION CONFLICT. */
  private requireRegistration(nexus: ItNexus, key: bigint): Registration {
    const reg = this.find(nexus);
    if (reg === undefined || reg.key !== key) throw new Conflict();
    return reg;
  }

  private checkScopeAndType(scope: number, type: number): PrType {
    if (scope !== SCOPE_LU) throw invalidFieldInCdb(2, 7);
    if (!VALID_TYPES.has(type)) throw invalidFieldInCdb(2, 3);
    return type as PrType;
  }

  /** Drop registrations; a non-AR reservation goes with its holder, an AR one with the last registrant. */
  private remove(gone: readonly Registration[]): void {
    if (gone.length === 0) return;
    const set = new Set(gone);
    this.registrations = this.registrations.filter((r) => !set.has(r));
    const res = this.reservation;
    if (res === null) return;
    if (res.holder !== null ? set.has(res.holder) : this.registrations.length === 0) this.reservation = null;
  }

  /** Recipients: nexuses covered by one of `regs`, except the one that sent the command. */
  private coveredBy(regs: readonly Registration[], except: ItNexus): (n: ItNexus) => boolean {
    const list = [...regs];
    return (n) => n.id !== except.id && list.some((r) => covers(r, n));
  }

  private register(nexus: ItNexus, ignoreExisting: boolean, key: bigint, sark: bigint, p: Buffer): Effects {
    const allTgPt = (p[20] & 0x04) !== 0;
    const aptpl = (p[20] & 0x01) !== 0;
    const effects: Effects = { ua: [], abort: [] };
    const reg = this.find(nexus);

    if (reg === undefined) {
      if (!ignoreExisting && key !== 0n) throw new Conflict();
      if (sark === 0n) return effects; // unregistering an unregistered nexus: nothing to do
      if (aptpl && this.statePath === undefined) throw invalidFieldInParameterList(20, 0);
      // ALL_TG_PT from an initiator port already registered through another target port
      // would give it two keys.
      if (allTgPt && this.registrations.some((r) => sameInitiatorPort(r, nexus))) throw new Conflict();
      this.registrations.push({
        key: sark,
        initiatorName: nexus.initiatorName,
        isid: nexus.isid.toLowerCase(),
        targetName: nexus.targetName,
        relativePortId: nexus.relativePortId,
        allTgPt,
      });
      this.aptpl = aptpl;
      this.bump();
      return effects;
    }

    if (!ignoreExisting && reg.key !== key) throw new Conflict();
    if (sark !== 0n) {
      if (aptpl && this.statePath === undefined) throw invalidFieldInParameterList(20, 0);
      reg.key = sark;
      this.aptpl = aptpl;
      this.bump();
      return effects;
    }

    // Unregister. A holder's reservation goes with it (SPC-4 §5.12.11.2.2); after a
    // registrants-only reservation the other registrants hear RESERVATIONS RELEASED.
    const res = this.reservation;
    const releasesRo = res !== null && res.holder === reg && isRegistrantsOnly(res.type);
    this.remove([reg]);
    if (releasesRo) {
      effects.ua.push({ to: this.coveredBy(this.registrations, nexus), code: UA_RESERVATIONS_RELEASED });
    }
    this.bump();
    return effects;
  }

  private reserve(nexus: ItNexus, key: bigint, scope: number, rawType: number): Effects {
    const type = this.checkScopeAndType(scope, rawType);
    const reg = this.requireRegistration(nexus, key);
    const res = this.reservation;
    if (res !== null) {
      // Only a holder may reserve again, and only with the same scope and type (a no-op).
      if (!this.isHolder(reg) || res.type !== type) throw new Conflict();
      return { ua: [], abort: [] };
    }
    this.reservation = { type, holder: isAllRegistrants(type) ? null : reg };
    return { ua: [], abort: [] };
  }

  private release(nexus: ItNexus, key: bigint, scope: number, type: number): Effects {
    const reg = this.requireRegistration(nexus, key);
    const res = this.reservation;
    // No reservation, or one this nexus does not hold: GOOD, nothing happens.
    if (res === null || !this.isHolder(reg)) return { ua: [], abort: [] };
    if (scope !== SCOPE_LU || type !== res.type) {
      throw checkCondition(SenseKey.IllegalRequest, ASC.INVALID_RELEASE_OF_PERSISTENT_RESERVATION);
    }
    this.reservation = null;
    const effects: Effects = { ua: [], abort: [] };
    if (isRegistrantsOnly(res.type) || isAllRegistrants(res.type)) {
      effects.ua.push({ to: this.coveredBy(this.registrations, nexus), code: UA_RESERVATIONS_RELEASED });
    }
    return effects;
  }

  private clear(nexus: ItNexus, key: bigint): Effects {
    this.requireRegistration(nexus, key);
    const everyone = this.registrations;
    this.registrations = [];
    this.reservation = null;
    this.bump();
    return { ua: [{ to: this.coveredBy(everyone, nexus), code: UA_RESERVATIONS_PREEMPTED }], abort: [] };
  }

  private preempt(nexus: ItNexus, key: bigint, sark: bigint, scope: number, rawType: number, abort: boolean): Effects {
    const reg = this.requireRegistration(nexus, key);
    const res = this.reservation;
    const effects: Effects = { ua: [], abort: [] };

    const preemptHolder = (gone: Registration[], type: PrType): Effects => {
      const typeChanged = res !== null && res.type !== type;
      this.remove(gone);
      this.reservation = { type, holder: isAllRegistrants(type) ? null : reg };
      effects.ua.push({ to: this.coveredBy(gone, nexus), code: UA_REGISTRATIONS_PREEMPTED });
      if (typeChanged) {
        const others = this.registrations.filter((r) => r !== reg);
        effects.ua.push({ to: this.coveredBy(others, nexus), code: UA_RESERVATIONS_RELEASED });
      }
      if (abort) effects.abort = gone;
      this.bump();
      return effects;
    };

    if (res !== null && res.holder === null && sark === 0n) {
      // All-registrants reservation, SARK 0: everyone else goes, the preemptor holds the new one.
      const type = this.checkScopeAndType(scope, rawType);
      return preemptHolder(
        this.registrations.filter((r) => r !== reg),
        type,
      );
    }
    if (res !== null && res.holder !== null) {
      if (sark === 0n) throw invalidFieldInParameterList(8);
      if (sark === res.holder.key) {
        const type = this.checkScopeAndType(scope, rawType);
        return preemptHolder(
          this.registrations.filter((r) => r.key === sark && r !== reg),
          type,
        );
      }
    }

    // SARK names no holder (or there is no reservation): remove the registrations with that
    // key, ignore SCOPE and TYPE (SPC-4 §5.12.11.4.3).
    const gone = this.registrations.filter((r) => r.key === sark);
    if (gone.length === 0) throw new Conflict();
    this.remove(gone);
    effects.ua.push({ to: this.coveredBy(gone, nexus), code: UA_REGISTRATIONS_PREEMPTED });
    if (abort) effects.abort = gone.filter((r) => r !== reg);
    this.bump();
    return effects;
  }

  private registerAndMove(nexus: ItNexus, key: bigint, sark: bigint, p: Buffer): Effects {
    const reg = this.requireRegistration(nexus, key);
    const res = this.reservation;
    if (res === null || !this.isHolder(reg) || res.holder === null) throw new Conflict();
    const unreg = (p[17] & 0x02) !== 0;
    const aptpl = (p[17] & 0x01) !== 0;
    const relativePortId = p.readUInt16BE(18);
    const tidLength = p.readUInt32BE(20);
    if (24 + tidLength > p.length) throw parameterListLengthError();
    if (sark === 0n) throw invalidFieldInParameterList(8);
    if (aptpl && this.statePath === undefined) throw invalidFieldInParameterList(17, 0);
    const dest = parseIscsiTransportId(p.subarray(24, 24 + tidLength), 24);
    // Our target ports: one per target (the TPGT). The destination is on this target.
    if (relativePortId !== nexus.relativePortId) throw invalidFieldInParameterList(18);
    const destNexus: ItNexus = {
      id: '',
      initiatorName: dest.initiatorName,
      isid: dest.isid,
      targetName: nexus.targetName,
      relativePortId,
    };
    if (covers(reg, destNexus)) throw invalidFieldInParameterList(24);

    let destReg = this.find(destNexus);
    if (destReg === undefined) {
      destReg = {
        key: sark,
        initiatorName: dest.initiatorName,
        isid: dest.isid,
        targetName: nexus.targetName,
        relativePortId,
        allTgPt: false,
      };
      this.registrations.push(destReg);
    }
    this.reservation = { type: res.type, holder: destReg };
    if (unreg) this.remove([reg]);
    this.aptpl = aptpl;
    this.bump();
    return { ua: [], abort: [] };
  }

  /** Queue the unit attentions and ask the transport to abort preempted nexuses' tasks. */
  private apply(effects: Effects, from: ItNexus): void {
    if (effects.ua.length > 0) {
      const nexuses = [...this.host.knownNexuses()];
      for (const { to, code } of effects.ua) {
        for (const n of nexuses) if (to(n)) this.host.queueUnitAttention(n, code);
      }
    }
    if (effects.abort.length > 0) {
      const ids = [...this.host.knownNexuses()].filter((n) => n.id !== from.id && effects.abort.some((r) => covers(r, n))).map((n) => n.id);
      if (ids.length > 0) this.host.preemptAbort(ids);
    }
  }

  // ---------------------------------------------------------------- APTPL state file

  private stateFingerprint(): string {
    return JSON.stringify(this.toStateFile());
  }

  private toStateFile(): StateFile {
    const regs = this.registrations;
    const res = this.reservation;
    return {
      version: 1,
      generation: this.generation,
      aptpl: this.aptpl,
      registrations: regs.map((r) => ({
        key: `0x${r.key.toString(16).padStart(16, '0')}`,
        initiatorName: r.initiatorName,
        isid: r.isid,
        targetName: r.targetName,
        relativePortId: r.relativePortId,
        allTgPt: r.allTgPt,
      })),
      reservation: res === null ? null : { type: res.type, holder: res.holder === null ? null : regs.indexOf(res.holder) },
    };
  }

  /** Read the state file at construction; a missing file is an empty state, a bad one is logged and ignored. */
  private load(file: string): void {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        this.host.logger?.error({ err, lu: this.host.name, path: file }, 'cannot read persistent reservation state');
      }
      return;
    }
    this.fileExists = true;
    try {
      const s = JSON.parse(text) as StateFile;
      if (s.version !== 1 || !Array.isArray(s.registrations)) throw new Error('unknown state file format');
      const regs: Registration[] = s.registrations.map((r) => {
        if (
          typeof r.key !== 'string' ||
          typeof r.initiatorName !== 'string' ||
          typeof r.isid !== 'string' ||
          typeof r.targetName !== 'string' ||
          typeof r.relativePortId !== 'number'
        ) {
          throw new Error('bad registration');
        }
        return {
          key: BigInt(r.key),
          initiatorName: r.initiatorName,
          isid: r.isid.toLowerCase(),
          targetName: r.targetName,
          relativePortId: r.relativePortId,
          allTgPt: r.allTgPt === true,
        };
      });
      let reservation: Reservation | null = null;
      if (s.reservation !== null && s.reservation !== undefined) {
        const type = s.reservation.type;
        if (!VALID_TYPES.has(type)) throw new Error('bad reservation type');
        const h = s.reservation.holder;
        const holder = h === null ? null : regs[h];
        if (holder === undefined || (holder === null) !== isAllRegistrants(type as PrType)) {
          throw new Error('bad reservation holder');
        }
        if (holder !== null || regs.length > 0) reservation = { type: type as PrType, holder };
      }
      if (s.aptpl !== true) return; // APTPL was cleared: nothing persists through power loss
      this.registrations = regs;
      this.reservation = reservation;
      this.generation = Number(s.generation) >>> 0 || 0;
      this.aptpl = true;
      this.host.logger?.info(
        { lu: this.host.name, path: file, registrations: regs.length, reservation: reservation?.type ?? null },
        'persistent reservations restored (APTPL)',
      );
    } catch (err) {
      this.host.logger?.error({ err, lu: this.host.name, path: file }, 'ignoring bad persistent reservation state');
    }
  }

  /**
   * Make the current state durable: written atomically while APTPL is set (temp file,
   * fsync, rename, fsync of the directory), removed when it is not. Writes are chained so
   * that concurrent commands land in order. A failure is logged and reported as HARDWARE
   * ERROR (the in-memory state keeps the change).
   */
  private save(generationBefore: number): Promise<void> {
    const file = this.statePath;
    if (file === undefined) return Promise.resolve();
    if (!this.aptpl && !this.fileExists) return Promise.resolve();
    const snapshot = this.aptpl ? JSON.stringify(this.toStateFile(), null, 2) + '\n' : null;
    this.fileExists = snapshot !== null;
    const tmp = `${file}.tmp-${process.pid}-${++this.tmpCounter}`;
    const run = async (): Promise<void> => {
      const dir = path.dirname(file);
      if (snapshot !== null) {
        const fh = await fs.promises.open(tmp, 'w', 0o600);
        try {
          await fh.writeFile(snapshot, 'utf8');
          await fh.sync();
        } finally {
          await fh.close();
        }
        await fs.promises.rename(tmp, file);
      } else {
        await fs.promises.rm(file, { force: true });
      }
      const dh = await fs.promises.open(dir, 'r');
      try {
        await dh.sync();
      } finally {
        await dh.close();
      }
    };
    const result = this.saving.then(run);
    this.saving = result.catch(() => undefined);
    return result.catch(async (err: unknown) => {
      await fs.promises.rm(tmp, { force: true }).catch(() => undefined);
      this.host.logger?.error(
        { err, lu: this.host.name, path: file, generation: this.generation, generationBefore },
        'cannot save persistent reservation state',
      );
      throw checkCondition(SenseKey.HardwareError, ASC.INTERNAL_TARGET_FAILURE);
    });
  }

  /** Wait for pending state file writes (close()). */
  async flush(): Promise<void> {
    await this.saving;
  }
}

// ------------------------------------------------------------------ TransportIDs

/**
 * An iSCSI TransportID, format 01b (SPC-4 §7.6.4.6): "<iSCSI name>,i,0x<ISID>", NUL
 * terminated and padded to a multiple of four bytes (at least 20).
 */
export function iscsiTransportId(initiatorName: string, isid: string): Buffer {
  const name = Buffer.from(`${initiatorName},i,0x${isid.toLowerCase()}`, 'utf8');
  const len = Math.max(20, (name.length + 4) & ~3);
  const b = Buffer.alloc(4 + len);
  b[0] = 0x40 | PROTOCOL_ISCSI; // FORMAT CODE 01b, PROTOCOL IDENTIFIER 5h
  b.writeUInt16BE(len, 2);
  name.copy(b, 4);
  return b;
}

/** Parse an iSCSI TransportID naming an initiator port (format 01b); `at` = its offset in the parameter list. */
export function parseIscsiTransportId(tid: Buffer, at: number): { initiatorName: string; isid: string } {
  if (tid.length < 4) throw parameterListLengthError();
  if ((tid[0] & 0x0f) !== PROTOCOL_ISCSI) throw invalidFieldInParameterList(at, 0);
  if (tid[0] >> 6 !== 0x1) throw invalidFieldInParameterList(at, 6); // need the ISID (format 01b)
  const len = tid.readUInt16BE(2);
  if (4 + len > tid.length) throw parameterListLengthError();
  const raw = tid.subarray(4, 4 + len);
  const nul = raw.indexOf(0);
  const s = raw.subarray(0, nul < 0 ? raw.length : nul).toString('utf8');
  const m = /^(.+),i,0x([0-9a-f]{12})$/i.exec(s);
  if (m === null) throw invalidFieldInParameterList(at + 4);
  return { initiatorName: m[1], isid: m[2].toLowerCase() };
}
