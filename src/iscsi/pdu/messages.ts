// Typed iSCSI PDUs (RFC 7143 §11). Pure data: no I/O here.
//
// Every PDU carries the fields of its Basic Header Segment by name, plus `data`
// (the data segment, unpadded, without digest). Numbers are unsigned 32-bit
// values unless noted. The LUN field travels as the raw 8-byte value (`lun`,
// a bigint) because its encoding is SAM's; `src/scsi/lun.ts` decodes it.

export const enum Op {
  NopOut = 0x00,
  ScsiCommand = 0x01,
  TaskMgmtRequest = 0x02,
  LoginRequest = 0x03,
  TextRequest = 0x04,
  DataOut = 0x05,
  LogoutRequest = 0x06,
  Snack = 0x10,
  NopIn = 0x20,
  ScsiResponse = 0x21,
  TaskMgmtResponse = 0x22,
  LoginResponse = 0x23,
  TextResponse = 0x24,
  DataIn = 0x25,
  LogoutResponse = 0x26,
  R2T = 0x31,
  AsyncMessage = 0x32,
  Reject = 0x3f,
}

/** The reserved "no tag" value (RFC 7143 §11.1.3 and elsewhere). */
export const RESERVED_TAG = 0xffffffff;

export const enum TaskAttr {
  Untagged = 0,
  Simple = 1,
  Ordered = 2,
  HeadOfQueue = 3,
  ACA = 4,
}

/** Additional header segments (RFC 7143 §11.2.2). */
export type Ahs =
  | { type: 1; cdb: Buffer } // Extended CDB: the CDB bytes beyond the first 16
  | { type: 2; bidiReadLength: number } // Expected Bidirectional Read Data Length
  | { type: number; raw: Buffer }; // anything else, kept as its body (after the type byte)

interface Base {
  /** Data segment, unpadded; an empty buffer when DataSegmentLength is 0. */
  data: Buffer;
}

export interface NopOut extends Base {
  op: Op.NopOut;
  immediate: boolean;
  lun: bigint;
  itt: number;
  ttt: number;
  cmdSN: number;
  expStatSN: number;
}

export interface ScsiCommand extends Base {
  op: Op.ScsiCommand;
  immediate: boolean;
  final: boolean;
  read: boolean;
  write: boolean;
  attr: TaskAttr;
  lun: bigint;
  itt: number;
  expectedDataLength: number;
  cmdSN: number;
  expStatSN: number;
  /** The whole CDB: the 16 BHS bytes, followed by any extended-CDB AHS bytes. */
  cdb: Buffer;
  /** From the type-2 AHS, when present. */
  bidiReadLength?: number;
  /** AHS other than types 1 and 2, kept for a Reject. */
  ahs: Ahs[];
}

export interface TaskMgmtRequest extends Base {
  op: Op.TaskMgmtRequest;
  immediate: boolean;
  /** 1 ABORT TASK, 2 ABORT TASK SET, 3 CLEAR ACA, 4 CLEAR TASK SET, 5 LUN RESET,
   *  6 TARGET WARM RESET, 7 TARGET COLD RESET, 8 TASK REASSIGN */
  func: number;
  lun: bigint;
  itt: number;
  refTaskTag: number;
  cmdSN: number;
  expStatSN: number;
  refCmdSN: number;
  expDataSN: number;
}

export interface LoginRequest extends Base {
  op: Op.LoginRequest;
  transit: boolean;
  cont: boolean;
  csg: number;
  nsg: number;
  versionMax: number;
  versionMin: number;
  /** 6 bytes. */
  isid: Buffer;
  tsih: number;
  itt: number;
  cid: number;
  cmdSN: number;
  expStatSN: number;
}

export interface TextRequest extends Base {
  op: Op.TextRequest;
  immediate: boolean;
  final: boolean;
  cont: boolean;
  lun: bigint;
  itt: number;
  ttt: number;
  cmdSN: number;
  expStatSN: number;
}

export interface DataOut extends Base {
  op: Op.DataOut;
  final: boolean;
  lun: bigint;
  itt: number;
  ttt: number;
  expStatSN: number;
  dataSN: number;
  bufferOffset: number;
}

export interface LogoutRequest extends Base {
  op: Op.LogoutRequest;
  immediate: boolean;
  /** 0 close session, 1 close connection, 2 remove connection for recovery */
  reason: number;
  itt: number;
  cid: number;
  cmdSN: number;
  expStatSN: number;
}

export interface Snack extends Base {
  op: Op.Snack;
  type: number;
  lun: bigint;
  itt: number;
  ttt: number;
  expStatSN: number;
  begRun: number;
  runLength: number;
}

export interface NopIn extends Base {
  op: Op.NopIn;
  lun: bigint;
  itt: number;
  ttt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
}

export interface ScsiResponse extends Base {
  op: Op.ScsiResponse;
  /** Bidirectional read residual overflow (o) / underflow (u). */
  bidiOverflow: boolean;
  bidiUnderflow: boolean;
  /** Residual overflow (O) / underflow (U). */
  overflow: boolean;
  underflow: boolean;
  response: number;
  status: number;
  itt: number;
  snackTag: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  expDataSN: number;
  bidiResidualCount: number;
  residualCount: number;
  /** Sense data (without the 2-byte SenseLength prefix that `data` carries on the wire).
   *  On encode, when `sense` is set and non-empty, `data` is ignored and built from it. */
  sense?: Buffer;
}

export interface TaskMgmtResponse extends Base {
  op: Op.TaskMgmtResponse;
  response: number;
  itt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
}

export interface LoginResponse extends Base {
  op: Op.LoginResponse;
  transit: boolean;
  cont: boolean;
  csg: number;
  nsg: number;
  versionMax: number;
  versionActive: number;
  isid: Buffer;
  tsih: number;
  itt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  statusClass: number;
  statusDetail: number;
}

export interface TextResponse extends Base {
  op: Op.TextResponse;
  final: boolean;
  cont: boolean;
  lun: bigint;
  itt: number;
  ttt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
}

export interface DataIn extends Base {
  op: Op.DataIn;
  final: boolean;
  ack: boolean;
  overflow: boolean;
  underflow: boolean;
  /** S bit: this PDU carries the command's status. */
  hasStatus: boolean;
  status: number;
  lun: bigint;
  itt: number;
  ttt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  dataSN: number;
  bufferOffset: number;
  residualCount: number;
}

export interface LogoutResponse extends Base {
  op: Op.LogoutResponse;
  response: number;
  itt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  time2Wait: number;
  time2Retain: number;
}

export interface R2T extends Base {
  op: Op.R2T;
  lun: bigint;
  itt: number;
  ttt: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  r2tSN: number;
  bufferOffset: number;
  desiredLength: number;
}

export interface AsyncMessage extends Base {
  op: Op.AsyncMessage;
  lun: bigint;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  asyncEvent: number;
  asyncVCode: number;
  parameter1: number;
  parameter2: number;
  parameter3: number;
}

export interface Reject extends Base {
  op: Op.Reject;
  reason: number;
  statSN: number;
  expCmdSN: number;
  maxCmdSN: number;
  dataSN: number;
}

export type InitiatorPdu = NopOut | ScsiCommand | TaskMgmtRequest | LoginRequest | TextRequest | DataOut | LogoutRequest | Snack;

export type TargetPdu =
  NopIn | ScsiResponse | TaskMgmtResponse | LoginResponse | TextResponse | DataIn | LogoutResponse | R2T | AsyncMessage | Reject;

export type Pdu = InitiatorPdu | TargetPdu;

/** Reject reasons (RFC 7143 §11.17.1). */
export const enum RejectReason {
  DataDigestError = 0x02,
  SnackReject = 0x03,
  ProtocolError = 0x04,
  CommandNotSupported = 0x05,
  ImmediateCommandReject = 0x06,
  TaskInProgress = 0x07,
  InvalidDataAck = 0x08,
  InvalidPduField = 0x09,
  LongOpReject = 0x0a,
  WaitingForLogout = 0x0c,
}
