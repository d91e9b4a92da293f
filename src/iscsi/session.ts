// An iSCSI session: the I_T nexus, its negotiated parameters, its CmdSN window
// and its task set. One connection per session (MaxConnections=1).

import type { LogicalUnit } from '../scsi/logical-unit';
import type { ItNexus, ScsiTask } from '../scsi/task';
import type { SessionParams } from './negotiation';
import { snAdd, snLt } from './serial';

/** A SCSI command as the transport tracks it, from its PDU to its response. */
export interface Command {
  itt: number;
  cmdSN: number;
  immediate: boolean;
  /** A non-immediate command not yet answered or aborted: it takes a slot of the CmdSN window. */
  inWindow: boolean;
  lun: number;
  lunRaw: bigint;
  expectedLength: number;
  read: boolean;
  write: boolean;
  task: ScsiTask;
  /** Data-Out assembly (write commands). */
  buffer: Buffer | null;
  /**
   * Bytes of `buffer` received, which is also the offset the next Data-Out must carry: we
   * negotiate DataPDUInOrder=Yes and DataSequenceInOrder=Yes, so data arrives in order,
   * without gaps or overlap, and [0, received) is exactly what the initiator sent.
   */
  received: number;
  /** End of the unsolicited burst (immediate data + unsolicited Data-Out). */
  unsolicitedEnd: number;
  /** Next byte offset to ask for with an R2T. */
  nextR2TOffset: number;
  r2tSN: number;
  /** Outstanding R2Ts by Target Transfer Tag. */
  r2ts: Map<number, { offset: number; length: number; received: number; nextDataSN: number }>;
  unsolicitedDataSN: number;
  state: 'receiving' | 'executing' | 'done';
  aborted: boolean;
  /** Settles when the command has finished executing (for TMF waits). */
  finished?: Promise<void>;
  /** performance.now() when its PDU arrived (a number: no BigInt allocated per command). */
  startedAt: number;
}

export interface SessionCounters {
  commands: number;
  readBytes: number;
  writtenBytes: number;
  /** Commands that ended other than GOOD, except unit attentions. */
  errors: number;
  /** Unit attentions reported (power on, capacity or LUN changes...): news, not failures. */
  unitAttentions: number;
  /** Socket reads done by busy polling (busy-poll.ts) rather than by the event loop. */
  polledReads: number;
  /** Data-Out bytes the socket read straight into their command's buffer (socket-reads.ts). */
  directBytes: number;
}

export class Session {
  expCmdSN: number;
  /** Non-immediate commands received but not yet answered: they shrink the window. */
  inFlight = 0;
  readonly tasks = new Map<number, Command>();
  readonly createdAt = Date.now();
  readonly counters: SessionCounters = {
    commands: 0,
    readBytes: 0,
    writtenBytes: 0,
    errors: 0,
    unitAttentions: 0,
    polledReads: 0,
    directBytes: 0,
  };
  closed = false;

  constructor(
    readonly tsih: number,
    readonly isid: Buffer,
    readonly cid: number,
    readonly initiatorName: string,
    readonly type: 'Normal' | 'Discovery',
    readonly targetName: string | undefined,
    readonly params: SessionParams,
    readonly nexus: ItNexus,
    /** LUN number -> logical unit, as this initiator's ACL maps them. */
    public luns: Map<number, LogicalUnit>,
    cmdSN: number,
    private readonly queueDepth: number,
  ) {
    this.expCmdSN = cmdSN;
  }

  /**
   * Is this the session of that initiator (names compare case-insensitively), ISID and
   * target? A login naming all three reinstates it (RFC 7143 §6.3.5).
   */
  isFor(initiatorName: string, isid: Buffer, targetName: string | undefined): boolean {
    return this.initiatorName.toLowerCase() === initiatorName.toLowerCase() && this.isid.equals(isid) && this.targetName === targetName;
  }

  /** The one info line of a session's end: who, how long, what it did. */
  endLine(loggedOut: boolean): { fields: Record<string, unknown>; message: string } {
    const c = this.counters;
    const who = this.type === 'Discovery' ? `${this.initiatorName} (discovery)` : `${this.initiatorName} from ${this.targetName}`;
    return {
      fields: {
        initiator: this.initiatorName,
        target: this.targetName,
        seconds: Math.round((Date.now() - this.createdAt) / 1000),
        commands: c.commands,
        readBytes: c.readBytes,
        writtenBytes: c.writtenBytes,
        errors: c.errors,
      },
      message: loggedOut ? `logout: ${who}` : `session ended: ${who}, connection closed without a logout`,
    };
  }

  get maxCmdSN(): number {
    return snAdd(this.expCmdSN, this.queueDepth - 1 - this.inFlight);
  }

  /**
   * Where a non-immediate CmdSN stands against the window: 'now' (the next one
   * expected), 'later' (inside the window, after a gap) or 'outside'.
   */
  classify(cmdSN: number): 'now' | 'later' | 'outside' {
    const max = this.maxCmdSN;
    // A closed window (MaxCmdSN = ExpCmdSN - 1) admits nothing.
    if (snLt(max, this.expCmdSN) || snLt(max, cmdSN)) return 'outside';
    if (cmdSN === this.expCmdSN) return 'now';
    return snLt(this.expCmdSN, cmdSN) ? 'later' : 'outside';
  }
}
