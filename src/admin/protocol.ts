// The control socket's messages: one JSON object per line each way, one request per connection.
import type { ConfigIssue } from '../config/load';
import type { ApplyReport } from '../iscsi/server';
import type { SessionCounters } from '../iscsi/session';
import type { StatsSnapshot } from './metrics';

export type ControlRequest =
  /** Validate, apply and (only then) write this config text. `baseSha256`: the file the edit started from. */
  | { op: 'apply'; text: string; baseSha256?: string }
  /** Re-read the config file and apply it (what SIGHUP does). */
  | { op: 'reload' }
  | { op: 'status' }
  /** The command counters `top` shows (the metrics' own). */
  | { op: 'stats' }
  /** Set the daemon's log level (absent: only report it). */
  | { op: 'log-level'; level?: string };

/** A session as `status` reports it; the I/O counters are the session's own (SessionCounters). */
export interface SessionStatus extends SessionCounters {
  tsih: number;
  type: 'Normal' | 'Discovery';
  initiator: string;
  address: string;
  target: string | null;
  luns: { lun: number; volume: string }[];
  params: Record<string, string | number | boolean>;
  startedAt: string;
  uptimeSeconds: number;
}

export interface StatusReply {
  ok: true;
  pid: number;
  config: string;
  uptimeSeconds: number;
  portals: string[];
  /** Open volumes, with the identity hosts see (serial, wwn "naa.<hex>"). */
  volumes: { name: string; bytes: number; path: string; serial: string; wwn: string }[];
  sessions: SessionStatus[];
}

export interface ApplyReply {
  ok: true;
  /** False when the proposed config equals the running one. */
  changed: boolean;
  report: ApplyReport;
  /** Milliseconds from receiving the request to the file being written. */
  ms: number;
  /** Warnings the change brought (not those the running config already had). */
  warnings: ConfigIssue[];
  /** Parts of the change that take effect only when the daemon restarts (e.g. "limits"). */
  restartNeeded: string[];
}

export interface ErrorReply {
  ok: false;
  message: string;
  errors?: ConfigIssue[];
}

export interface LogLevelReply {
  ok: true;
  level: string;
  previous: string;
}

export interface StatsReply extends StatsSnapshot {
  ok: true;
  pid: number;
  uptimeSeconds: number;
  /** When the counters were read: milliseconds on a monotonic clock. */
  at: number;
}

export type ControlReply = StatusReply | ApplyReply | LogLevelReply | StatsReply | ErrorReply;
