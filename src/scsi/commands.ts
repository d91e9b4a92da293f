// The one table that drives the SCSI core. Each entry names the operation code (and
// service action), the command's name, CDB length, data direction, handler, and how it
// behaves while a unit attention is pending, on a write-protected LU and while another
// I_T nexus holds an SPC-2 reservation or a persistent reservation (the per-opcode PR
// rules of SPC-4 table 66 / SBC-3 table 13), plus the CDB usage data that REPORT SUPPORTED
// OPERATION CODES returns. An opcode not in this table gets ILLEGAL REQUEST, INVALID
// COMMAND OPERATION CODE; a service action not in it gets INVALID FIELD IN CDB.

import type { LogicalUnit } from './logical-unit';
import { PR_ALLOWED, PR_CONFLICT, type PrAccess, type PrAccessRule } from './persistent-reservations';
import * as alua from './alua';
import type { AluaAllowance } from './alua';
import * as xcopy from './extended-copy';
import * as sanitize from './sanitize';
import * as sbc from './sbc';
import * as spc from './spc';
import { invalidFieldInCdb } from './sense';
import { DataDirection, ScsiStatus, type ScsiResult, type ScsiTask } from './task';

export type Handler = (lu: LogicalUnit, task: ScsiTask) => Promise<ScsiResult> | ScsiResult;

export interface CommandSpec {
  readonly opcode: number;
  /** Service action (CDB byte 1, bits 4..0) for opcodes that multiplex several commands. */
  readonly sa?: number;
  readonly name: string;
  readonly cdbLength: number;
  readonly direction: DataDirection;
  readonly handler: Handler;
  /** Runs even while a unit attention is pending (INQUIRY, REPORT LUNS, REQUEST SENSE). */
  readonly allowedWithUnitAttention: boolean;
  /** Modifies the medium: refused with DATA PROTECT on a read-only or SWP logical unit. */
  readonly writesMedium: boolean;
  /** Allowed to other I_T nexuses while one holds an SPC-2 RESERVE (else RESERVATION CONFLICT). */
  readonly allowedUnderReservation: boolean;
  /**
   * How the command fares under a persistent reservation held by another I_T nexus (SPC-4
   * table 66, SBC-3 table 13): allowed through the write-exclusive and/or exclusive-access
   * types, possibly depending on CDB fields. Omitted: a command that writesMedium conflicts
   * under every type, any other is allowed through the write-exclusive types only (it
   * reads). Holders, and registrants under the registrants-only and all-registrants types,
   * are never refused (persistent-reservations.ts, conflicts()).
   */
  readonly allowedUnderPersistentReservation?: PrAccessRule;
  /**
   * Whether this logical unit offers the command at all (e.g. CRYPTOGRAPHIC ERASE only on
   * an encrypted volume). Omitted: always. A unit that does not is answered as for an
   * unknown service action, and REPORT SUPPORTED OPERATION CODES leaves the command out.
   */
  readonly supported?: (lu: LogicalUnit) => boolean;
  /** Runs while a SANITIZE is in progress (INQUIRY, REPORT LUNS, REQUEST SENSE; SBC-4 §4.11). */
  readonly allowedDuringSanitize?: boolean;
  /**
   * Runs through a target port in standby, unavailable or transitioning state up to this
   * one (SPC-4 §5.15.2.4): 'standby' for what standby allows, 'unavailable' also there,
   * 'transitioning' everywhere. Omitted: NOT READY in all three.
   */
  readonly aluaAllowed?: AluaAllowance;
  /** CDB usage data (SPC-4 §6.35.3): byte 0 is the opcode, then the bits we evaluate. */
  readonly usage: readonly number[];
  /** Recommended command timeout in seconds (REPORT SUPPORTED OPERATION CODES, RCTD). */
  readonly timeout: number;
  /**
   * Its data is medium data (READ, WRITE): exactly the transfer length, read or written
   * and let go when the command ends, never kept by the handler. The transport may then
   * lend it a pooled buffer and charge it to the shared data budgets (classifyCdb).
   */
  readonly mediumData?: boolean;
}

/** How the transport carries a command's data (from the table's direction and mediumData). */
export const enum DataPhase {
  /** Any other command: the transport gives it a buffer of its own, which the handler may keep. */
  Other = 0,
  /** A medium read (READ 6/10/12/16): its Data-In counts against the read budget. */
  MediumRead = 1,
  /** A medium write (WRITE 6/10/12/16): its Data-Out may go in a pooled buffer, within the write budget. */
  MediumWrite = 2,
}

/** Returned by lookupCommand for a known opcode with an unknown service action. */
export const BAD_SERVICE_ACTION = Symbol('bad service action');

type Entry = Omit<CommandSpec, 'allowedWithUnitAttention' | 'writesMedium' | 'allowedUnderReservation' | 'timeout'> &
  Partial<Pick<CommandSpec, 'allowedWithUnitAttention' | 'writesMedium' | 'allowedUnderReservation' | 'timeout'>>;

const C = 0x04; // control byte: NACA is evaluated (and refused)
const LBA4 = [0xff, 0xff, 0xff, 0xff];
const LBA8 = [...LBA4, ...LBA4];
const { None, Read, Write } = { None: DataDirection.None, Read: DataDirection.Read, Write: DataDirection.Write };
// Persistent reservation rules that depend on the CDB (SBC-3 table 13): START STOP UNIT
// with START = 1 and POWER CONDITION 0h, and PREVENT ALLOW MEDIUM REMOVAL with PREVENT
// 00b, are allowed through every type; anything else they do conflicts.
const PR_START_ONLY = (cdb: Buffer): PrAccess => ((cdb[4] & 0xf1) === 0x01 ? PR_ALLOWED : PR_CONFLICT);
const PR_UNLESS_PREVENT = (cdb: Buffer): PrAccess => ((cdb[4] & 0x03) === 0 ? PR_ALLOWED : PR_CONFLICT);

// (A table reads better aligned by hand.)
// prettier-ignore
const ENTRIES: Entry[] = [
  // ---- SPC-4 (spc.ts)
  { opcode: 0x00, name: 'TEST UNIT READY', cdbLength: 6, direction: None, handler: spc.testUnitReady,
    allowedUnderPersistentReservation: PR_ALLOWED, usage: [0x00, 0, 0, 0, 0, C] },
  { opcode: 0x03, name: 'REQUEST SENSE', aluaAllowed: 'transitioning', cdbLength: 6, direction: Read, handler: spc.requestSense,
    allowedWithUnitAttention: true, allowedUnderReservation: true, allowedDuringSanitize: true,
    allowedUnderPersistentReservation: PR_ALLOWED, usage: [0x03, 0x01, 0, 0, 0xff, C] },
  { opcode: 0x12, name: 'INQUIRY', aluaAllowed: 'transitioning', cdbLength: 6, direction: Read, handler: spc.inquiry,
    allowedWithUnitAttention: true, allowedUnderReservation: true, allowedDuringSanitize: true,
    allowedUnderPersistentReservation: PR_ALLOWED, usage: [0x12, 0x01, 0xff, 0xff, 0xff, C] },
  { opcode: 0x15, name: 'MODE SELECT(6)', aluaAllowed: 'standby', cdbLength: 6, direction: Write, handler: spc.modeSelect6,
    allowedUnderPersistentReservation: PR_CONFLICT, usage: [0x15, 0x11, 0, 0, 0xff, C] },
  { opcode: 0x16, name: 'RESERVE(6)', cdbLength: 6, direction: None, handler: spc.reserve6,
    allowedUnderPersistentReservation: PR_CONFLICT, usage: [0x16, 0, 0, 0, 0, C] },
  { opcode: 0x17, name: 'RELEASE(6)', cdbLength: 6, direction: None, handler: spc.release6,
    allowedUnderReservation: true, allowedUnderPersistentReservation: PR_CONFLICT, usage: [0x17, 0, 0, 0, 0, C] },
  { opcode: 0x1a, name: 'MODE SENSE(6)', aluaAllowed: 'standby', cdbLength: 6, direction: Read, handler: spc.modeSense6,
    usage: [0x1a, 0x08, 0xff, 0xff, 0xff, C] },
  { opcode: 0x55, name: 'MODE SELECT(10)', aluaAllowed: 'standby', cdbLength: 10, direction: Write, handler: spc.modeSelect10,
    allowedUnderPersistentReservation: PR_CONFLICT, usage: [0x55, 0x11, 0, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x56, name: 'RESERVE(10)', cdbLength: 10, direction: None, handler: spc.reserve10,
    allowedUnderPersistentReservation: PR_CONFLICT, usage: [0x56, 0, 0, 0, 0, 0, 0, 0, 0, C] },
  { opcode: 0x57, name: 'RELEASE(10)', cdbLength: 10, direction: None, handler: spc.release10,
    allowedUnderReservation: true, allowedUnderPersistentReservation: PR_CONFLICT,
    usage: [0x57, 0, 0, 0, 0, 0, 0, 0, 0, C] },
  { opcode: 0x5a, name: 'MODE SENSE(10)', aluaAllowed: 'standby', cdbLength: 10, direction: Read, handler: spc.modeSense10,
    usage: [0x5a, 0x18, 0xff, 0xff, 0, 0, 0, 0xff, 0xff, C] },
  // PERSISTENT RESERVE IN/OUT: allowed through every persistent reservation (each service
  // action checks keys itself); while an SPC-2 RESERVE is held they conflict for every
  // I_T nexus, the holder included (the handlers refuse the holder).
  { opcode: 0x5e, sa: 0x00, name: 'PERSISTENT RESERVE IN (READ KEYS)', aluaAllowed: 'standby', cdbLength: 10, direction: Read,
    handler: spc.persistentReserveIn, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5e, 0x00, 0, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x5e, sa: 0x01, name: 'PERSISTENT RESERVE IN (READ RESERVATION)', aluaAllowed: 'standby', cdbLength: 10, direction: Read,
    handler: spc.persistentReserveIn, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5e, 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x5e, sa: 0x02, name: 'PERSISTENT RESERVE IN (REPORT CAPABILITIES)', aluaAllowed: 'standby', cdbLength: 10, direction: Read,
    handler: spc.persistentReserveIn, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5e, 0x02, 0, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x5e, sa: 0x03, name: 'PERSISTENT RESERVE IN (READ FULL STATUS)', aluaAllowed: 'standby', cdbLength: 10, direction: Read,
    handler: spc.persistentReserveIn, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5e, 0x03, 0, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x5f, sa: 0x00, name: 'PERSISTENT RESERVE OUT (REGISTER)', aluaAllowed: 'standby', cdbLength: 10, direction: Write,
    handler: spc.persistentReserveOut, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5f, 0x00, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, C] },
  { opcode: 0x5f, sa: 0x01, name: 'PERSISTENT RESERVE OUT (RESERVE)', aluaAllowed: 'standby', cdbLength: 10, direction: Write,
    handler: spc.persistentReserveOut, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5f, 0x01, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C] },
  { opcode: 0x5f, sa: 0x02, name: 'PERSISTENT RESERVE OUT (RELEASE)', aluaAllowed: 'standby', cdbLength: 10, direction: Write,
    handler: spc.persistentReserveOut, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5f, 0x02, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C] },
  { opcode: 0x5f, sa: 0x03, name: 'PERSISTENT RESERVE OUT (CLEAR)', aluaAllowed: 'standby', cdbLength: 10, direction: Write,
    handler: spc.persistentReserveOut, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5f, 0x03, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, C] },
  { opcode: 0x5f, sa: 0x04, name: 'PERSISTENT RESERVE OUT (PREEMPT)', aluaAllowed: 'standby', cdbLength: 10, direction: Write,
    handler: spc.persistentReserveOut, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5f, 0x04, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C] },
  { opcode: 0x5f, sa: 0x05, name: 'PERSISTENT RESERVE OUT (PREEMPT AND ABORT)', aluaAllowed: 'standby', cdbLength: 10, direction: Write,
    handler: spc.persistentReserveOut, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5f, 0x05, 0xff, 0, 0, 0xff, 0xff, 0xff, 0xff, C] },
  { opcode: 0x5f, sa: 0x06, name: 'PERSISTENT RESERVE OUT (REGISTER AND IGNORE EXISTING KEY)', aluaAllowed: 'standby', cdbLength: 10,
    direction: Write, handler: spc.persistentReserveOut, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5f, 0x06, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, C] },
  { opcode: 0x5f, sa: 0x07, name: 'PERSISTENT RESERVE OUT (REGISTER AND MOVE)', aluaAllowed: 'standby', cdbLength: 10, direction: Write,
    handler: spc.persistentReserveOut, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x5f, 0x07, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, C] },
  // EXTENDED COPY (LID1) and RECEIVE COPY RESULTS (extended-copy.ts). EXTENDED COPY counts
  // as a write for write protection and reservations (on the unit it is sent to; a
  // destination elsewhere is checked by the copy itself).
  { opcode: 0x83, sa: 0x00, name: 'EXTENDED COPY(LID1)', cdbLength: 16, direction: Write,
    handler: xcopy.extendedCopy, writesMedium: true, timeout: 600,
    usage: [0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, ...LBA4, 0, C] },
  { opcode: 0x84, sa: 0x00, name: 'RECEIVE COPY RESULTS (COPY STATUS)', cdbLength: 16, direction: Read,
    handler: xcopy.receiveCopyResults, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x84, 0x00, 0xff, 0, 0, 0, 0, 0, 0, 0, ...LBA4, 0, C] },
  { opcode: 0x84, sa: 0x01, name: 'RECEIVE COPY RESULTS (RECEIVE DATA)', cdbLength: 16, direction: Read,
    handler: xcopy.receiveCopyResults, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x84, 0x01, 0xff, 0, 0, 0, 0, 0, 0, 0, ...LBA4, 0, C] },
  { opcode: 0x84, sa: 0x03, name: 'RECEIVE COPY RESULTS (OPERATING PARAMETERS)', cdbLength: 16, direction: Read,
    handler: xcopy.receiveCopyResults, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x84, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, ...LBA4, 0, C] },
  { opcode: 0x84, sa: 0x04, name: 'RECEIVE COPY RESULTS (FAILED SEGMENT DETAILS)', cdbLength: 16, direction: Read,
    handler: xcopy.receiveCopyResults, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0x84, 0x04, 0xff, 0, 0, 0, 0, 0, 0, 0, ...LBA4, 0, C] },
  // REPORT LUNS is answered by executeScsi from the LUN map before an LU is involved.
  { opcode: 0xa0, name: 'REPORT LUNS', aluaAllowed: 'transitioning', cdbLength: 12, direction: Read, handler: spc.reportLunsPlaceholder,
    allowedWithUnitAttention: true, allowedUnderReservation: true, allowedDuringSanitize: true,
    allowedUnderPersistentReservation: PR_ALLOWED, usage: [0xa0, 0, 0xff, 0, 0, 0, ...LBA4, 0, C] },
  // ALUA (alua.ts): SPC-4 lets both through standby and unavailable ports, RTPG also
  // through transitioning ones (so a host can see when the transition ends).
  { opcode: 0xa3, sa: 0x0a, name: 'REPORT TARGET PORT GROUPS', aluaAllowed: 'transitioning', cdbLength: 12, direction: Read,
    handler: alua.reportTargetPortGroups, allowedUnderReservation: true, allowedUnderPersistentReservation: PR_ALLOWED,
    usage: [0xa3, 0xe0 | 0x0a, 0, 0, 0, 0, ...LBA4, 0, C] },
  { opcode: 0xa4, sa: 0x0a, name: 'SET TARGET PORT GROUPS', aluaAllowed: 'unavailable', cdbLength: 12, direction: Write,
    handler: alua.setTargetPortGroups, allowedUnderPersistentReservation: PR_CONFLICT,
    usage: [0xa4, 0x0a, 0, 0, 0, 0, ...LBA4, 0, C] },
  { opcode: 0xa3, sa: 0x0c, name: 'REPORT SUPPORTED OPERATION CODES', cdbLength: 12, direction: Read,
    handler: reportSupportedOperationCodes, usage: [0xa3, 0x0c, 0x87, 0xff, 0xff, 0xff, ...LBA4, 0, C] },
  { opcode: 0xa3, sa: 0x0d, name: 'REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS', cdbLength: 12, direction: Read,
    handler: spc.reportSupportedTaskManagementFunctions, usage: [0xa3, 0x0d, 0x80, 0, 0, 0, ...LBA4, 0, C] },

  // ---- SBC-3 (sbc.ts)
  { opcode: 0x08, name: 'READ(6)', cdbLength: 6, direction: Read, handler: sbc.read6, mediumData: true,
    usage: [0x08, 0x1f, 0xff, 0xff, 0xff, C] },
  { opcode: 0x0a, name: 'WRITE(6)', cdbLength: 6, direction: Write, handler: sbc.write6, writesMedium: true, mediumData: true,
    usage: [0x0a, 0x1f, 0xff, 0xff, 0xff, C] },
  { opcode: 0x1b, name: 'START STOP UNIT', cdbLength: 6, direction: None, handler: sbc.startStopUnit,
    allowedUnderPersistentReservation: PR_START_ONLY, usage: [0x1b, 0x01, 0, 0x0f, 0xf7, C] },
  { opcode: 0x1e, name: 'PREVENT ALLOW MEDIUM REMOVAL', cdbLength: 6, direction: None,
    handler: sbc.preventAllowMediumRemoval, allowedUnderPersistentReservation: PR_UNLESS_PREVENT,
    usage: [0x1e, 0, 0, 0, 0x03, C] },
  { opcode: 0x25, name: 'READ CAPACITY(10)', cdbLength: 10, direction: Read, handler: sbc.readCapacity10,
    allowedUnderPersistentReservation: PR_ALLOWED, usage: [0x25, 0, ...LBA4, 0, 0, 0x01, C] },
  { opcode: 0x28, name: 'READ(10)', cdbLength: 10, direction: Read, handler: sbc.read10, mediumData: true,
    usage: [0x28, 0xfa, ...LBA4, 0x3f, 0xff, 0xff, C] },
  { opcode: 0x2a, name: 'WRITE(10)', cdbLength: 10, direction: Write, handler: sbc.write10, writesMedium: true, mediumData: true,
    usage: [0x2a, 0xfa, ...LBA4, 0x3f, 0xff, 0xff, C] },
  { opcode: 0x2e, name: 'WRITE AND VERIFY(10)', cdbLength: 10, direction: Write, handler: sbc.writeAndVerify10,
    writesMedium: true, usage: [0x2e, 0xf2, ...LBA4, 0x3f, 0xff, 0xff, C] },
  { opcode: 0x2f, name: 'VERIFY(10)', cdbLength: 10, direction: Write, handler: sbc.verify10,
    usage: [0x2f, 0xf6, ...LBA4, 0x3f, 0xff, 0xff, C] },
  { opcode: 0x34, name: 'PRE-FETCH(10)', cdbLength: 10, direction: None, handler: sbc.preFetch10,
    usage: [0x34, 0x02, ...LBA4, 0x3f, 0xff, 0xff, C] },
  { opcode: 0x35, name: 'SYNCHRONIZE CACHE(10)', cdbLength: 10, direction: None, handler: sbc.synchronizeCache10,
    allowedUnderPersistentReservation: PR_CONFLICT, usage: [0x35, 0x06, ...LBA4, 0x3f, 0xff, 0xff, C] },
  { opcode: 0x37, name: 'READ DEFECT DATA(10)', cdbLength: 10, direction: Read, handler: sbc.readDefectData10,
    usage: [0x37, 0, 0x1f, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x41, name: 'WRITE SAME(10)', cdbLength: 10, direction: Write, handler: sbc.writeSame10,
    writesMedium: true, usage: [0x41, 0xfe, ...LBA4, 0x3f, 0xff, 0xff, C] },
  { opcode: 0x42, name: 'UNMAP', cdbLength: 10, direction: Write, handler: sbc.unmap, writesMedium: true,
    usage: [0x42, 0x01, 0, 0, 0, 0, 0x3f, 0xff, 0xff, C] },
  // SANITIZE: OVERWRITE, BLOCK ERASE, CRYPTOGRAPHIC ERASE (encrypted volumes only) and
  // EXIT FAILURE MODE.
  { opcode: 0x48, sa: 0x01, name: 'SANITIZE (OVERWRITE)', cdbLength: 10, direction: Write,
    handler: sanitize.sanitizeOverwrite, writesMedium: true, timeout: 3600,
    usage: [0x48, 0xa0 | 0x01, 0, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x48, sa: 0x02, name: 'SANITIZE (BLOCK ERASE)', cdbLength: 10, direction: None,
    handler: sanitize.sanitizeBlockErase, writesMedium: true, timeout: 600,
    usage: [0x48, 0xa0 | 0x02, 0, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x48, sa: 0x03, name: 'SANITIZE (CRYPTOGRAPHIC ERASE)', cdbLength: 10, direction: None,
    handler: sanitize.sanitizeCryptoErase, writesMedium: true, timeout: 600, supported: sanitize.cryptoEraseSupported,
    usage: [0x48, 0xa0 | 0x03, 0, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x48, sa: 0x1f, name: 'SANITIZE (EXIT FAILURE MODE)', cdbLength: 10, direction: None,
    handler: sanitize.sanitizeExitFailureMode, writesMedium: true,
    usage: [0x48, 0xa0 | 0x1f, 0, 0, 0, 0, 0, 0xff, 0xff, C] },
  { opcode: 0x88, name: 'READ(16)', cdbLength: 16, direction: Read, handler: sbc.read16, mediumData: true,
    usage: [0x88, 0xfa, ...LBA8, ...LBA4, 0x3f, C] },
  { opcode: 0x89, name: 'COMPARE AND WRITE', cdbLength: 16, direction: Write, handler: sbc.compareAndWrite,
    writesMedium: true, usage: [0x89, 0xfa, ...LBA8, 0, 0, 0, 0xff, 0x3f, C] },
  { opcode: 0x8a, name: 'WRITE(16)', cdbLength: 16, direction: Write, handler: sbc.write16, writesMedium: true, mediumData: true,
    usage: [0x8a, 0xfa, ...LBA8, ...LBA4, 0x3f, C] },
  { opcode: 0x8b, name: 'ORWRITE(16)', cdbLength: 16, direction: Write, handler: sbc.orWrite16, writesMedium: true,
    usage: [0x8b, 0xfa, ...LBA8, ...LBA4, 0x3f, C] },
  { opcode: 0x8e, name: 'WRITE AND VERIFY(16)', cdbLength: 16, direction: Write, handler: sbc.writeAndVerify16,
    writesMedium: true, usage: [0x8e, 0xf2, ...LBA8, ...LBA4, 0x3f, C] },
  { opcode: 0x8f, name: 'VERIFY(16)', cdbLength: 16, direction: Write, handler: sbc.verify16,
    usage: [0x8f, 0xf6, ...LBA8, ...LBA4, 0x3f, C] },
  { opcode: 0x90, name: 'PRE-FETCH(16)', cdbLength: 16, direction: None, handler: sbc.preFetch16,
    usage: [0x90, 0x02, ...LBA8, ...LBA4, 0x3f, C] },
  { opcode: 0x91, name: 'SYNCHRONIZE CACHE(16)', cdbLength: 16, direction: None, handler: sbc.synchronizeCache16,
    allowedUnderPersistentReservation: PR_CONFLICT, usage: [0x91, 0x06, ...LBA8, ...LBA4, 0x3f, C] },
  { opcode: 0x93, name: 'WRITE SAME(16)', cdbLength: 16, direction: Write, handler: sbc.writeSame16,
    writesMedium: true, usage: [0x93, 0xf9, ...LBA8, ...LBA4, 0x3f, C] },
  { opcode: 0x9e, sa: 0x10, name: 'READ CAPACITY(16)', cdbLength: 16, direction: Read, handler: sbc.readCapacity16,
    allowedUnderPersistentReservation: PR_ALLOWED, usage: [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, ...LBA4, 0, C] },
  { opcode: 0x9e, sa: 0x12, name: 'GET LBA STATUS', cdbLength: 16, direction: Read, handler: sbc.getLbaStatus,
    usage: [0x9e, 0x12, ...LBA8, ...LBA4, 0, C] },
  { opcode: 0x9c, name: 'WRITE ATOMIC(16)', cdbLength: 16, direction: Write, handler: sbc.writeAtomic16,
    writesMedium: true, usage: [0x9c, 0xf8, ...LBA8, 0xff, 0xff, 0xff, 0xff, 0x3f, C] },
  { opcode: 0xa8, name: 'READ(12)', cdbLength: 12, direction: Read, handler: sbc.read12, mediumData: true,
    usage: [0xa8, 0xfa, ...LBA4, ...LBA4, 0x3f, C] },
  { opcode: 0xaa, name: 'WRITE(12)', cdbLength: 12, direction: Write, handler: sbc.write12, writesMedium: true, mediumData: true,
    usage: [0xaa, 0xfa, ...LBA4, ...LBA4, 0x3f, C] },
  { opcode: 0xb7, name: 'READ DEFECT DATA(12)', cdbLength: 12, direction: Read, handler: sbc.readDefectData12,
    usage: [0xb7, 0x1f, 0, 0, 0, 0, ...LBA4, 0, C] },
  { opcode: 0xae, name: 'WRITE AND VERIFY(12)', cdbLength: 12, direction: Write, handler: sbc.writeAndVerify12,
    writesMedium: true, usage: [0xae, 0xf2, ...LBA4, ...LBA4, 0x3f, C] },
  { opcode: 0xaf, name: 'VERIFY(12)', cdbLength: 12, direction: Write, handler: sbc.verify12,
    usage: [0xaf, 0xf6, ...LBA4, ...LBA4, 0x3f, C] },
];

/** Every supported command, sorted by opcode then service action. */
export const COMMANDS: readonly CommandSpec[] = ENTRIES.map((e): CommandSpec =>
  Object.freeze({
    ...e,
    allowedWithUnitAttention: e.allowedWithUnitAttention ?? false,
    writesMedium: e.writesMedium ?? false,
    allowedUnderReservation: e.allowedUnderReservation ?? false,
    timeout: e.timeout ?? 60,
  }),
).sort((x, y) => x.opcode - y.opcode || (x.sa ?? 0) - (y.sa ?? 0));

// opcode -> command, or -> service action map for multiplexed opcodes.
type OpcodeSlot = CommandSpec | Map<number, CommandSpec> | undefined;
const BY_OPCODE = new Array<OpcodeSlot>(256);
for (const c of COMMANDS) {
  if (c.usage.length !== c.cdbLength || c.usage[0] !== c.opcode) {
    throw new Error(`command table: bad CDB usage data for ${c.name}`);
  }
  const slot = BY_OPCODE[c.opcode];
  if (c.sa === undefined) {
    if (slot !== undefined) throw new Error(`command table: opcode 0x${c.opcode.toString(16)} twice`);
    BY_OPCODE[c.opcode] = c;
  } else {
    if (slot instanceof Map) slot.set(c.sa, c);
    else if (slot === undefined) BY_OPCODE[c.opcode] = new Map([[c.sa, c]]);
    else throw new Error(`command table: opcode 0x${c.opcode.toString(16)} with and without service actions`);
  }
}

/** The table entry for a CDB: undefined for an unknown opcode, BAD_SERVICE_ACTION for an unknown SA. */
export function lookupCommand(cdb: Buffer): CommandSpec | typeof BAD_SERVICE_ACTION | undefined {
  const slot = BY_OPCODE[cdb[0]];
  if (slot === undefined || !(slot instanceof Map)) return slot;
  return slot.get(cdb[1] & 0x1f) ?? BAD_SERVICE_ACTION;
}

/** The data phase of the command a CDB names (DataPhase.Other for unknown commands). */
export function classifyCdb(cdb: Buffer): DataPhase {
  const spec = lookupCommand(cdb);
  if (spec === undefined || spec === BAD_SERVICE_ACTION || spec.mediumData !== true) return DataPhase.Other;
  return spec.direction === DataDirection.Read ? DataPhase.MediumRead : DataPhase.MediumWrite;
}

/** For REPORT SUPPORTED OPERATION CODES: the entry (or SA map) for an opcode. */
export function commandsForOpcode(opcode: number): OpcodeSlot {
  return BY_OPCODE[opcode & 0xff];
}

// ------------------------------------------------------------------ REPORT SUPPORTED OPERATION CODES

/** One command timeouts descriptor (SPC-4 §6.35.4): length 0x0A, nominal and recommended. */
function timeoutsDescriptor(spec: CommandSpec): Buffer {
  const b = Buffer.alloc(12);
  b.writeUInt16BE(0x0a, 0);
  b.writeUInt32BE(0, 4); // NOMINAL COMMAND PROCESSING TIMEOUT: not specified
  b.writeUInt32BE(spec.timeout, 8); // RECOMMENDED COMMAND TIMEOUT (seconds)
  return b;
}

/**
 * REPORT SUPPORTED OPERATION CODES (MAINTENANCE IN / 0x0C), generated from the table.
 *   reporting options 000b: all commands (with timeouts descriptors when RCTD is set)
 *   001b: one opcode (INVALID FIELD IN CDB if the opcode has service actions)
 *   010b: one opcode + service action (INVALID FIELD IN CDB if it has none)
 *   011b: one opcode, plus the service action if the opcode has them
 */
export function reportSupportedOperationCodes(lu: LogicalUnit, task: ScsiTask): ScsiResult {
  const c = task.cdb;
  const rctd = (c[2] & 0x80) !== 0;
  const options = c[2] & 0x07;
  const opcode = c[3];
  const sa = c.readUInt16BE(4);
  const alloc = c.readUInt32BE(6);
  let data: Buffer;

  if (options === 0) {
    const parts: Buffer[] = [Buffer.alloc(4)];
    for (const spec of COMMANDS) {
      if (spec.supported && !spec.supported(lu)) continue;
      const d = Buffer.alloc(8);
      d[0] = spec.opcode;
      d.writeUInt16BE(spec.sa ?? 0, 2);
      d[5] = (rctd ? 0x02 : 0) | (spec.sa !== undefined ? 0x01 : 0); // CTDP, SERVACTV
      d.writeUInt16BE(spec.cdbLength, 6);
      parts.push(d);
      if (rctd) parts.push(timeoutsDescriptor(spec));
    }
    data = Buffer.concat(parts);
    data.writeUInt32BE(data.length - 4, 0);
  } else if (options <= 3) {
    const slot = commandsForOpcode(opcode);
    let spec: CommandSpec | undefined;
    if (slot instanceof Map) {
      if (options === 1) throw invalidFieldInCdb(2, 2);
      spec = slot.get(sa);
    } else if (slot !== undefined) {
      if (options === 2) throw invalidFieldInCdb(2, 2);
      spec = slot;
    }
    if (spec?.supported && !spec.supported(lu)) spec = undefined;
    if (spec === undefined) {
      data = Buffer.alloc(4);
      data[1] = 0x01; // SUPPORT 001b: not supported
    } else {
      const parts: Buffer[] = [Buffer.alloc(4), Buffer.from(spec.usage)];
      parts[0][1] = (rctd ? 0x80 : 0) | 0x03; // CTDP, SUPPORT 011b: supported as the standard says
      parts[0].writeUInt16BE(spec.cdbLength, 2);
      if (rctd) parts.push(timeoutsDescriptor(spec));
      data = Buffer.concat(parts);
    }
  } else {
    throw invalidFieldInCdb(2, 2);
  }
  return { status: ScsiStatus.Good, data: data.length > alloc ? data.subarray(0, alloc) : data };
}
