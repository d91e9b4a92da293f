// Sense data (SPC-4 §4.5): sense keys, additional sense codes by name, and builders for
// fixed (0x70) and descriptor (0x72) format. Which format a logical unit returns is chosen
// by the D_SENSE bit of its control mode page.

export const enum SenseKey {
  NoSense = 0x0,
  RecoveredError = 0x1,
  NotReady = 0x2,
  MediumError = 0x3,
  HardwareError = 0x4,
  IllegalRequest = 0x5,
  UnitAttention = 0x6,
  DataProtect = 0x7,
  BlankCheck = 0x8,
  CopyAborted = 0xa,
  AbortedCommand = 0xb,
  VolumeOverflow = 0xd,
  Miscompare = 0xe,
}

/** An additional sense code and qualifier. */
export interface Asc {
  readonly asc: number;
  readonly ascq: number;
}

const a = (asc: number, ascq: number): Asc => Object.freeze({ asc, ascq });

/** Additional sense codes we use, by their SPC-4 names (Annex D). */
export const ASC = {
  NO_ADDITIONAL_SENSE: a(0x00, 0x00),
  OPERATION_IN_PROGRESS: a(0x00, 0x16),
  ASYMMETRIC_ACCESS_STATE_TRANSITION: a(0x04, 0x0a),
  TARGET_PORT_IN_STANDBY_STATE: a(0x04, 0x0b),
  TARGET_PORT_IN_UNAVAILABLE_STATE: a(0x04, 0x0c),
  LOGICAL_UNIT_NOT_READY_SANITIZE_IN_PROGRESS: a(0x04, 0x1b),
  COPY_TARGET_DEVICE_NOT_REACHABLE: a(0x0d, 0x02),
  WRITE_ERROR: a(0x0c, 0x00),
  UNRECOVERED_READ_ERROR: a(0x11, 0x00),
  PARAMETER_LIST_LENGTH_ERROR: a(0x1a, 0x00),
  INVALID_COMMAND_OPERATION_CODE: a(0x20, 0x00),
  LBA_OUT_OF_RANGE: a(0x21, 0x00),
  MISCOMPARE_DURING_VERIFY: a(0x1d, 0x00),
  INVALID_FIELD_IN_CDB: a(0x24, 0x00),
  LOGICAL_UNIT_NOT_SUPPORTED: a(0x25, 0x00),
  INVALID_FIELD_IN_PARAMETER_LIST: a(0x26, 0x00),
  INVALID_RELEASE_OF_PERSISTENT_RESERVATION: a(0x26, 0x04),
  TOO_MANY_TARGET_DESCRIPTORS: a(0x26, 0x06),
  UNSUPPORTED_TARGET_DESCRIPTOR_TYPE_CODE: a(0x26, 0x07),
  TOO_MANY_SEGMENT_DESCRIPTORS: a(0x26, 0x08),
  UNSUPPORTED_SEGMENT_DESCRIPTOR_TYPE_CODE: a(0x26, 0x09),
  WRITE_PROTECTED: a(0x27, 0x00),
  SOFTWARE_WRITE_PROTECTED: a(0x27, 0x02),
  SPACE_ALLOCATION_FAILED_WRITE_PROTECT: a(0x27, 0x07),
  POWER_ON_RESET_OR_BUS_DEVICE_RESET_OCCURRED: a(0x29, 0x00),
  POWER_ON_OCCURRED: a(0x29, 0x01),
  SCSI_BUS_RESET_OCCURRED: a(0x29, 0x02),
  BUS_DEVICE_RESET_FUNCTION_OCCURRED: a(0x29, 0x03),
  I_T_NEXUS_LOSS_OCCURRED: a(0x29, 0x07),
  MODE_PARAMETERS_CHANGED: a(0x2a, 0x01),
  RESERVATIONS_PREEMPTED: a(0x2a, 0x03),
  RESERVATIONS_RELEASED: a(0x2a, 0x04),
  REGISTRATIONS_PREEMPTED: a(0x2a, 0x05),
  ASYMMETRIC_ACCESS_STATE_CHANGED: a(0x2a, 0x06),
  CAPACITY_DATA_HAS_CHANGED: a(0x2a, 0x09),
  SAVING_PARAMETERS_NOT_SUPPORTED: a(0x39, 0x00),
  MEDIUM_NOT_PRESENT: a(0x3a, 0x00),
  REPORTED_LUNS_DATA_HAS_CHANGED: a(0x3f, 0x0e),
  SANITIZE_COMMAND_FAILED: a(0x31, 0x03),
  INTERNAL_TARGET_FAILURE: a(0x44, 0x00),
  DATA_PHASE_ERROR: a(0x4b, 0x00),
  INSUFFICIENT_RESOURCES: a(0x55, 0x03),
} as const;

/**
 * Sense-key specific "field pointer" information (SPC-4 §4.5.2.4.2): which byte (and
 * optionally which bit) of the CDB (cd = true) or of the parameter list (cd = false)
 * was wrong.
 */
export interface FieldPointer {
  cd: boolean;
  byte: number;
  /** Bit 0..7 within that byte; omitted when the whole byte is meant. */
  bit?: number;
}

export interface SenseSpec {
  key: SenseKey;
  asc: number;
  ascq: number;
  /** INFORMATION field (e.g. the byte offset of a MISCOMPARE); omitted = not valid. */
  info?: number | bigint;
  field?: FieldPointer;
  /**
   * Sense-key specific PROGRESS INDICATION (SPC-4 §4.5.2.4.4), 0..65535 = fraction done
   * of 65536 (a NOT READY for an operation in progress, e.g. SANITIZE). Not with `field`.
   */
  progress?: number;
}

/** Thrown by handlers; the logical unit turns it into CHECK CONDITION with sense data. */
export class CheckCondition extends Error {
  override name = 'CheckCondition';
  constructor(readonly sense: SenseSpec) {
    super(`CHECK CONDITION key 0x${sense.key.toString(16)} asc/ascq ${hex2(sense.asc)}/${hex2(sense.ascq)}`);
  }
}

export function checkCondition(
  key: SenseKey,
  code: Asc,
  extra?: { info?: number | bigint; field?: FieldPointer; progress?: number },
): CheckCondition {
  return new CheckCondition({ key, asc: code.asc, ascq: code.ascq, ...extra });
}

/** ILLEGAL REQUEST, INVALID FIELD IN CDB, pointing at `byte` (and `bit`) of the CDB. */
export function invalidFieldInCdb(byte: number, bit?: number): CheckCondition {
  return checkCondition(SenseKey.IllegalRequest, ASC.INVALID_FIELD_IN_CDB, { field: { cd: true, byte, bit } });
}

/** ILLEGAL REQUEST, INVALID FIELD IN PARAMETER LIST, pointing into the Data-Out. */
export function invalidFieldInParameterList(byte: number, bit?: number): CheckCondition {
  return checkCondition(SenseKey.IllegalRequest, ASC.INVALID_FIELD_IN_PARAMETER_LIST, {
    field: { cd: false, byte, bit },
  });
}

export function lbaOutOfRange(): CheckCondition {
  return checkCondition(SenseKey.IllegalRequest, ASC.LBA_OUT_OF_RANGE);
}

export function invalidOpcode(): CheckCondition {
  return checkCondition(SenseKey.IllegalRequest, ASC.INVALID_COMMAND_OPERATION_CODE, {
    field: { cd: true, byte: 0 },
  });
}

export function parameterListLengthError(): CheckCondition {
  return checkCondition(SenseKey.IllegalRequest, ASC.PARAMETER_LIST_LENGTH_ERROR);
}

/** Fixed-format sense data is 18 bytes (additional sense length 10). */
export const FIXED_SENSE_LENGTH = 18;

/** Fixed format, current error (response code 0x70). */
export function fixedSense(s: SenseSpec): Buffer {
  const b = Buffer.alloc(FIXED_SENSE_LENGTH);
  b[0] = 0x70;
  b[2] = s.key & 0x0f;
  if (s.info !== undefined) {
    const info = BigInt(s.info);
    if (info <= 0xffffffffn) {
      b[0] |= 0x80; // VALID: the INFORMATION field holds the value
      b.writeUInt32BE(Number(info), 3);
    }
    // A value that does not fit 4 bytes cannot be given in fixed format: VALID stays 0.
  }
  b[7] = FIXED_SENSE_LENGTH - 8;
  b[12] = s.asc;
  b[13] = s.ascq;
  if (s.field) writeFieldPointer(b, 15, s.field);
  else if (s.progress !== undefined) writeProgress(b, 15, s.progress);
  return b;
}

/** Descriptor format, current error (response code 0x72). */
export function descriptorSense(s: SenseSpec): Buffer {
  let len = 8;
  if (s.info !== undefined) len += 12;
  if (s.field || s.progress !== undefined) len += 8;
  const b = Buffer.alloc(len);
  b[0] = 0x72;
  b[1] = s.key & 0x0f;
  b[2] = s.asc;
  b[3] = s.ascq;
  b[7] = len - 8;
  let p = 8;
  if (s.info !== undefined) {
    // Information sense data descriptor (type 0x00).
    b[p] = 0x00;
    b[p + 1] = 0x0a;
    b[p + 2] = 0x80; // VALID
    b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(s.info)), p + 4);
    p += 12;
  }
  if (s.field) {
    // Sense key specific sense data descriptor (type 0x02).
    b[p] = 0x02;
    b[p + 1] = 0x06;
    writeFieldPointer(b, p + 4, s.field);
    p += 8;
  } else if (s.progress !== undefined) {
    // Sense key specific sense data descriptor carrying the progress indication.
    b[p] = 0x02;
    b[p + 1] = 0x06;
    writeProgress(b, p + 4, s.progress);
    p += 8;
  }
  return b;
}

export function buildSense(s: SenseSpec, descriptor: boolean): Buffer {
  return descriptor ? descriptorSense(s) : fixedSense(s);
}

/** SKSV | C/D | BPV | bit pointer, then the 16-bit field pointer. */
function writeFieldPointer(b: Buffer, at: number, f: FieldPointer): void {
  let v = 0x80; // SKSV
  if (f.cd) v |= 0x40;
  if (f.bit !== undefined) v |= 0x08 | (f.bit & 0x07);
  b[at] = v;
  b.writeUInt16BE(f.byte & 0xffff, at + 1);
}

/** SKSV, then the 16-bit PROGRESS INDICATION. */
function writeProgress(b: Buffer, at: number, progress: number): void {
  b[at] = 0x80; // SKSV
  b.writeUInt16BE(Math.max(0, Math.min(0xffff, Math.floor(progress))), at + 1);
}

/** The sense key of sense data in either format (no allocation: for counters on the command path). */
export function senseKeyOf(b: Buffer): number {
  const code = b[0] & 0x7f;
  return (code === 0x72 || code === 0x73 ? b[1] : b[2]) & 0x0f;
}

/** The sense key / ASC / ASCQ of sense data in either format (for tests and logs). */
export function parseSense(b: Buffer): { key: number; asc: number; ascq: number; descriptor: boolean } {
  const code = b[0] & 0x7f;
  if (code === 0x72 || code === 0x73) return { key: b[1] & 0x0f, asc: b[2], ascq: b[3], descriptor: true };
  return { key: b[2] & 0x0f, asc: b[12], ascq: b[13], descriptor: false };
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
