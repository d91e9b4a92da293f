// What the SCSI core sees of a command, and what it answers. No iSCSI here:
// the transport (src/iscsi) builds a ScsiTask from a SCSI Command PDU plus its
// Data-Out, and turns a ScsiResult into Data-In / SCSI Response PDUs.

import type { LogicalUnit } from './logical-unit';

/** An I_T nexus: one initiator port (name + ISID) talking to one target port. */
export interface ItNexus {
  /** Stable key for per-nexus state (unit attentions, reservations). */
  readonly id: string;
  readonly initiatorName: string;
  /** ISID as 12 hex digits. */
  readonly isid: string;
  readonly targetName: string;
  /**
   * Relative target port identifier of the port the nexus goes through (nonzero; see
   * alua.ts for the numbering). The transport sets it; ALUA and VPD 83h read it.
   */
  readonly relativePortId: number;
}

export const enum ScsiStatus {
  Good = 0x00,
  CheckCondition = 0x02,
  ConditionMet = 0x04,
  Busy = 0x08,
  ReservationConflict = 0x18,
  TaskSetFull = 0x28,
  AcaActive = 0x30,
  TaskAborted = 0x40,
}

export const enum DataDirection {
  None = 0,
  Read = 1,
  Write = 2,
  Bidi = 3,
}

export interface ScsiTask {
  /** The full CDB (16 bytes from the BHS plus any extended CDB). */
  readonly cdb: Buffer;
  /** Decoded LUN number (flat or peripheral addressing). */
  readonly lun: number;
  readonly nexus: ItNexus;
  /**
   * The LUN map of the I_T nexus: every logical unit this initiator may address through
   * this session, and nothing else. The command's own LU is looked up in it, and anything
   * a command reaches beyond that LU (EXTENDED COPY's source and destination) must be in
   * it too: a designator is an address, never an authority.
   */
  readonly luns: ReadonlyMap<number, LogicalUnit>;
  /** Expected Data Transfer Length the initiator announced. */
  readonly expectedLength: number;
  /**
   * For commands with Data-Out: the data the initiator sent, exactly
   * `expectedLength` bytes. Null when the command carries no Data-Out.
   */
  readonly dataOut: Buffer | null;
  /**
   * performance.now() when the transport parsed the command PDU (not when the SCSI core
   * started it): writes older than the LU's write age limit are refused (write-age.ts).
   */
  readonly receivedAt?: number;
  /** Task attribute (SIMPLE, ORDERED, HEAD OF QUEUE, ACA). */
  readonly attr: number;
  /** Set by the transport when the task is aborted by a TMF; handlers may check it. */
  aborted: boolean;
  /**
   * The caller calls ScsiResult.release once the data is sent (the iSCSI transport does),
   * so a large READ may answer with a view of the volume's own pages instead of a copy.
   */
  readonly sendsViews?: boolean;
}

export interface ScsiResult {
  status: ScsiStatus;
  /** Sense data, already formatted (fixed or descriptor, per the LU's D_SENSE). */
  sense?: Buffer;
  /**
   * Data-In: what the command produces, at the length the CDB asks for (allocation
   * length or transfer length). The transport sends min(data.length, expectedLength)
   * and reports the difference as residual overflow/underflow.
   */
  data?: Buffer;
  /**
   * Set when `data` is a view of the volume's own pages (a large READ on a memory
   * filesystem): the transport calls it once those bytes have been handed to the socket,
   * or will never be. Writes to the blocks wait until then. Otherwise `data` may be a
   * pooled buffer, which the transport gives back to the pool itself.
   */
  release?: () => void;
  /**
   * For commands whose CDB names a Data-Out length (WRITE, VERIFY with BYTCHK, MODE
   * SELECT, ...): that length in bytes, so the transport can report a residual when
   * it differs from the initiator's expectedLength.
   */
  dataOutLength?: number;
}
