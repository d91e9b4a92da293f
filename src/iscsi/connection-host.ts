// The contract between a connection and the server that owns it: login checks (LoginHost),
// sessions, discovery, task management, counting, timers and bounds.

import type { Logger } from 'pino';
import type { LimitsConfig } from '../config/model';
import type { TmfResponse } from '../scsi/task-management';
import type { Connection } from './connection';
import type { LoginHost, LoginOutcome } from './login';
import type { Command, Session } from './session';

/** What a connection needs from the server beyond login checks. */
export interface ConnectionHost extends LoginHost {
  readonly logger: Logger;
  allocateTsih(): number;
  /** Create the session for a completed login (reinstating any old one with the same ISID). */
  openSession(outcome: LoginOutcome, conn: Connection): Session;
  closeSession(session: Session): void;
  /** SendTargets answer for this initiator: 'All', a target name, or '' (this session's target). */
  sendTargets(initiatorName: string, value: string, session: Session, localAddress: string): Array<[string, string]>;
  /** A task management function of this session (src/scsi/task-management.ts). */
  taskManagement(session: Session, func: number, lun: number, refTaskTag: number): Promise<TmfResponse>;
  /** Count a failed login from this address; returns how long to hold the answer back (ms). */
  loginFailed(address: string): number;
  loginSucceeded(address: string): void;
  /** A command's status is known (metrics; issue 5). Called once per answered command. */
  commandDone?(session: Session, cmd: Command, status: number, dataInBytes: number, sense?: Buffer): void;
  /** Handling this connection's input threw; it closes itself (count it). */
  connectionFault?(conn: Connection, err: unknown): void;
  /** Connection timers. */
  readonly timeouts: { loginMs: number; nopIntervalMs: number; nopTimeoutMs: number };
  /** Resource bounds (config `limits:`); defaults when absent. */
  readonly bounds?: LimitsConfig;
}
