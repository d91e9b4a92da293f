// Sample PDUs of every type, shared by the pdu-*.test.ts files.
import { Op, Pdu, PduError, PduParser, TaskAttr } from '../../src/iscsi/pdu';

/**
 * RFC 7143 Appendix B.4's "iSCSI SCSI Read (10) command PDU": its 48-byte header in hex.
 * Its CRC32C is 0xd9963a56, which travels as the bytes 563a96d9.
 */
export const RFC_B4_READ10_HEADER_HEX =
  '01c00000' +
  '00000000' +
  '00000000' +
  '00000000' +
  '14000000' +
  '00000400' +
  '00000014' +
  '00000018' +
  '28000000' +
  '00000000' +
  '02000000' +
  '00000000';

/** Deterministic filler bytes. */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** A small deterministic PRNG (xorshift32) returning [0, 1). */
export function rng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 0x100000000;
  };
}

const EMPTY = Buffer.alloc(0);

/** One PDU of each opcode, with values that exercise high bits and odd data lengths. */
export function samplePdus(): Pdu[] {
  return [
    {
      op: Op.NopOut,
      immediate: true,
      lun: 0x0001000000000000n,
      itt: 0xdeadbeef,
      ttt: 0xffffffff,
      cmdSN: 0x80000001,
      expStatSN: 7,
      data: bytes(5, 2),
    },
    {
      op: Op.ScsiCommand,
      immediate: false,
      final: true,
      read: false,
      write: true,
      attr: TaskAttr.Simple,
      lun: 0x0002000000000000n,
      itt: 0x11223344,
      expectedDataLength: 4096,
      cmdSN: 42,
      expStatSN: 0xfffffffe,
      cdb: Buffer.from('2a000000100000000800000000000000', 'hex'),
      ahs: [],
      data: bytes(1021, 3),
    },
    {
      op: Op.TaskMgmtRequest,
      immediate: true,
      func: 1,
      lun: 0xffffffffffffffffn,
      itt: 9,
      refTaskTag: 0x11223344,
      cmdSN: 43,
      expStatSN: 8,
      refCmdSN: 42,
      expDataSN: 3,
      data: EMPTY,
    },
    {
      op: Op.LoginRequest,
      transit: true,
      cont: false,
      csg: 1,
      nsg: 3,
      versionMax: 0,
      versionMin: 0,
      isid: Buffer.from('00023d000001', 'hex'),
      tsih: 0,
      itt: 0,
      cid: 0xabcd,
      cmdSN: 1,
      expStatSN: 0,
      data: Buffer.from('HeaderDigest=CRC32C,None\0MaxRecvDataSegmentLength=262144\0'),
    },
    {
      op: Op.TextRequest,
      immediate: true,
      final: true,
      cont: false,
      lun: 0n,
      itt: 0x10,
      ttt: 0xffffffff,
      cmdSN: 2,
      expStatSN: 1,
      data: Buffer.from('SendTargets=All\0'),
    },
    {
      op: Op.DataOut,
      final: true,
      lun: 0x0001000000000000n,
      itt: 0x11223344,
      ttt: 0x55667788,
      expStatSN: 9,
      dataSN: 2,
      bufferOffset: 0x20000,
      data: bytes(8192, 4),
    },
    {
      op: Op.LogoutRequest,
      immediate: true,
      reason: 0,
      itt: 0x99,
      cid: 1,
      cmdSN: 50,
      expStatSN: 49,
      data: EMPTY,
    },
    {
      op: Op.Snack,
      type: 1,
      lun: 0n,
      itt: 0xaabbccdd,
      ttt: 0xffffffff,
      expStatSN: 12,
      begRun: 5,
      runLength: 0,
      data: EMPTY,
    },
    {
      op: Op.NopIn,
      lun: 0n,
      itt: 0xffffffff,
      ttt: 0x1234,
      statSN: 100,
      expCmdSN: 101,
      maxCmdSN: 164,
      data: bytes(3, 5),
    },
    {
      op: Op.ScsiResponse,
      bidiOverflow: false,
      bidiUnderflow: true,
      overflow: false,
      underflow: true,
      response: 0,
      status: 0x02,
      itt: 0x11223344,
      snackTag: 0,
      statSN: 0xffffffff,
      expCmdSN: 0,
      maxCmdSN: 63,
      expDataSN: 2,
      bidiResidualCount: 7,
      residualCount: 512,
      data: EMPTY,
      sense: Buffer.from('700005000000000a00000000240000000000', 'hex'),
    },
    {
      op: Op.TaskMgmtResponse,
      response: 5,
      itt: 9,
      statSN: 101,
      expCmdSN: 44,
      maxCmdSN: 107,
      data: EMPTY,
    },
    {
      op: Op.LoginResponse,
      transit: true,
      cont: false,
      csg: 1,
      nsg: 3,
      versionMax: 0,
      versionActive: 0,
      isid: Buffer.from('00023d000001', 'hex'),
      tsih: 0x0102,
      itt: 0,
      statSN: 0x7fffffff,
      expCmdSN: 2,
      maxCmdSN: 33,
      statusClass: 0x02,
      statusDetail: 0x01,
      data: Buffer.from('HeaderDigest=None\0'),
    },
    {
      op: Op.TextResponse,
      final: false,
      cont: true,
      lun: 0n,
      itt: 0x10,
      ttt: 0x77,
      statSN: 5,
      expCmdSN: 3,
      maxCmdSN: 34,
      data: Buffer.from('TargetName=iqn.2026-11.io.example:lab\0TargetAddress=10.0.0.1:3260,1\0'),
    },
    {
      op: Op.DataIn,
      final: true,
      ack: false,
      overflow: false,
      underflow: true,
      hasStatus: true,
      status: 0,
      lun: 0x0001000000000000n,
      itt: 0x11223344,
      ttt: 0xffffffff,
      statSN: 77,
      expCmdSN: 45,
      maxCmdSN: 108,
      dataSN: 3,
      bufferOffset: 0x3000,
      residualCount: 1,
      data: bytes(4095, 6),
    },
    {
      op: Op.LogoutResponse,
      response: 0,
      itt: 0x99,
      statSN: 200,
      expCmdSN: 51,
      maxCmdSN: 114,
      time2Wait: 2,
      time2Retain: 20,
      data: EMPTY,
    },
    {
      op: Op.R2T,
      lun: 0x0001000000000000n,
      itt: 0x11223344,
      ttt: 0x55667788,
      statSN: 78,
      expCmdSN: 46,
      maxCmdSN: 109,
      r2tSN: 1,
      bufferOffset: 0x10000,
      desiredLength: 0x40000,
      data: EMPTY,
    },
    {
      op: Op.AsyncMessage,
      lun: 0n,
      statSN: 300,
      expCmdSN: 52,
      maxCmdSN: 115,
      asyncEvent: 1,
      asyncVCode: 0,
      parameter1: 0xfffe,
      parameter2: 2,
      parameter3: 30,
      data: EMPTY,
    },
    {
      op: Op.Reject,
      reason: 0x09,
      statSN: 301,
      expCmdSN: 53,
      maxCmdSN: 116,
      dataSN: 0,
      data: bytes(48, 7),
    },
  ];
}

/** What decoding the encoding of `p` yields (ScsiResponse sense travels in `data`). */
export function expectedDecode(p: Pdu): Pdu {
  if (p.op === Op.ScsiResponse && p.sense !== undefined) {
    const { sense, ...rest } = p;
    if (sense.length === 0) return { ...rest };
    const data = Buffer.alloc(2 + sense.length);
    data.writeUInt16BE(sense.length, 0);
    sense.copy(data, 2);
    return { ...rest, data, sense };
  }
  return p;
}

export interface Collected {
  pdus: Pdu[];
  bhs: Buffer[];
  errors: PduError[];
  parser: PduParser;
}

/** A parser that records what it emits. */
export function collector(opts: { headerDigest?: boolean; dataDigest?: boolean; max?: number } = {}): Collected {
  const c: Collected = {
    pdus: [],
    bhs: [],
    errors: [],
    parser: undefined as unknown as PduParser,
  };
  c.parser = new PduParser({
    pdu(p, bhs) {
      c.pdus.push(p);
      c.bhs.push(Buffer.from(bhs));
    },
    error(e) {
      c.errors.push(e);
    },
  });
  c.parser.headerDigest = opts.headerDigest ?? false;
  c.parser.dataDigest = opts.dataDigest ?? false;
  if (opts.max !== undefined) c.parser.maxDataSegmentLength = opts.max;
  return c;
}
