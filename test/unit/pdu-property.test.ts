// Property tests of the PDU codec (fast-check): every PDU type round-trips through
// serialize -> parse with and without digests, the streaming parser gives the same
// result for any chunking, and arbitrary bytes never make it throw.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Op, type Pdu } from '../../src/iscsi/pdu/messages';
import { encodePduToBuffer, type DigestOptions } from '../../src/iscsi/pdu/serializer';
import { decodePdu, PduError } from '../../src/iscsi/pdu/decoder';
import { collector, expectedDecode } from './pdu-fixtures';

const u8 = fc.integer({ min: 0, max: 0xff });
const u16 = fc.integer({ min: 0, max: 0xffff });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const lun = fc.bigInt({ min: 0n, max: (1n << 64n) - 1n });
const bool = fc.boolean();
const buf = (min: number, max: number) => fc.uint8Array({ minLength: min, maxLength: max }).map((a) => Buffer.from(a));
const data = buf(0, 300);
const stage = fc.integer({ min: 0, max: 3 });

/** One arbitrary per opcode; fields only take values their wire width can carry. */
export const pduArbitraries: Record<string, fc.Arbitrary<Pdu>> = {
  NopOut: fc.record({ op: fc.constant(Op.NopOut as const), immediate: bool, lun, itt: u32, ttt: u32, cmdSN: u32, expStatSN: u32, data }),
  ScsiCommand: fc
    .record({
      op: fc.constant(Op.ScsiCommand as const),
      immediate: bool,
      final: bool,
      read: bool,
      write: bool,
      attr: fc.integer({ min: 0, max: 7 }),
      lun,
      itt: u32,
      expectedDataLength: u32,
      cmdSN: u32,
      expStatSN: u32,
      cdb: fc.oneof(buf(16, 16), buf(17, 64)),
      ahs: fc.array(fc.record({ type: fc.integer({ min: 3, max: 255 }), raw: buf(1, 40) }), { maxLength: 3 }),
      bidi: fc.option(u32, { nil: undefined }),
      data,
    })
    .map(({ bidi, ...p }) => (bidi === undefined ? p : { ...p, bidiReadLength: bidi }) as Pdu),
  TaskMgmtRequest: fc.record({
    op: fc.constant(Op.TaskMgmtRequest as const),
    immediate: bool,
    func: fc.integer({ min: 0, max: 127 }),
    lun,
    itt: u32,
    refTaskTag: u32,
    cmdSN: u32,
    expStatSN: u32,
    refCmdSN: u32,
    expDataSN: u32,
    data,
  }),
  LoginRequest: fc.record({
    op: fc.constant(Op.LoginRequest as const),
    transit: bool,
    cont: bool,
    csg: stage,
    nsg: stage,
    versionMax: u8,
    versionMin: u8,
    isid: buf(6, 6),
    tsih: u16,
    itt: u32,
    cid: u16,
    cmdSN: u32,
    expStatSN: u32,
    data,
  }),
  TextRequest: fc.record({
    op: fc.constant(Op.TextRequest as const),
    immediate: bool,
    final: bool,
    cont: bool,
    lun,
    itt: u32,
    ttt: u32,
    cmdSN: u32,
    expStatSN: u32,
    data,
  }),
  DataOut: fc.record({
    op: fc.constant(Op.DataOut as const),
    final: bool,
    lun,
    itt: u32,
    ttt: u32,
    expStatSN: u32,
    dataSN: u32,
    bufferOffset: u32,
    data,
  }),
  LogoutRequest: fc.record({
    op: fc.constant(Op.LogoutRequest as const),
    immediate: bool,
    reason: fc.integer({ min: 0, max: 127 }),
    itt: u32,
    cid: u16,
    cmdSN: u32,
    expStatSN: u32,
    data,
  }),
  Snack: fc.record({
    op: fc.constant(Op.Snack as const),
    type: fc.integer({ min: 0, max: 15 }),
    lun,
    itt: u32,
    ttt: u32,
    expStatSN: u32,
    begRun: u32,
    runLength: u32,
    data,
  }),
  NopIn: fc.record({ op: fc.constant(Op.NopIn as const), lun, itt: u32, ttt: u32, statSN: u32, expCmdSN: u32, maxCmdSN: u32, data }),
  ScsiResponse: fc
    .record({
      op: fc.constant(Op.ScsiResponse as const),
      bidiOverflow: bool,
      bidiUnderflow: bool,
      overflow: bool,
      underflow: bool,
      response: u8,
      status: u8,
      itt: u32,
      snackTag: u32,
      statSN: u32,
      expCmdSN: u32,
      maxCmdSN: u32,
      expDataSN: u32,
      bidiResidualCount: u32,
      residualCount: u32,
      sense: fc.option(buf(1, 96), { nil: undefined }),
    })
    .map(({ sense, ...p }) => (sense === undefined ? { ...p, data: Buffer.alloc(0) } : { ...p, sense, data: Buffer.alloc(0) }) as Pdu),
  TaskMgmtResponse: fc.record({
    op: fc.constant(Op.TaskMgmtResponse as const),
    response: u8,
    itt: u32,
    statSN: u32,
    expCmdSN: u32,
    maxCmdSN: u32,
    data,
  }),
  LoginResponse: fc.record({
    op: fc.constant(Op.LoginResponse as const),
    transit: bool,
    cont: bool,
    csg: stage,
    nsg: stage,
    versionMax: u8,
    versionActive: u8,
    isid: buf(6, 6),
    tsih: u16,
    itt: u32,
    statSN: u32,
    expCmdSN: u32,
    maxCmdSN: u32,
    statusClass: u8,
    statusDetail: u8,
    data,
  }),
  TextResponse: fc.record({
    op: fc.constant(Op.TextResponse as const),
    final: bool,
    cont: bool,
    lun,
    itt: u32,
    ttt: u32,
    statSN: u32,
    expCmdSN: u32,
    maxCmdSN: u32,
    data,
  }),
  DataIn: fc.record({
    op: fc.constant(Op.DataIn as const),
    final: bool,
    ack: bool,
    overflow: bool,
    underflow: bool,
    hasStatus: bool,
    status: u8,
    lun,
    itt: u32,
    ttt: u32,
    statSN: u32,
    expCmdSN: u32,
    maxCmdSN: u32,
    dataSN: u32,
    bufferOffset: u32,
    residualCount: u32,
    data,
  }),
  LogoutResponse: fc.record({
    op: fc.constant(Op.LogoutResponse as const),
    response: u8,
    itt: u32,
    statSN: u32,
    expCmdSN: u32,
    maxCmdSN: u32,
    time2Wait: u16,
    time2Retain: u16,
    data,
  }),
  R2T: fc.record({
    op: fc.constant(Op.R2T as const),
    lun,
    itt: u32,
    ttt: u32,
    statSN: u32,
    expCmdSN: u32,
    maxCmdSN: u32,
    r2tSN: u32,
    bufferOffset: u32,
    desiredLength: u32,
    data,
  }),
  AsyncMessage: fc.record({
    op: fc.constant(Op.AsyncMessage as const),
    lun,
    statSN: u32,
    expCmdSN: u32,
    maxCmdSN: u32,
    asyncEvent: u8,
    asyncVCode: u8,
    parameter1: u16,
    parameter2: u16,
    parameter3: u16,
    data,
  }),
  Reject: fc.record({ op: fc.constant(Op.Reject as const), reason: u8, statSN: u32, expCmdSN: u32, maxCmdSN: u32, dataSN: u32, data }),
};

const anyPdu = fc.oneof(...Object.values(pduArbitraries));
const digestModes = fc.record({ headerDigest: bool, dataDigest: bool });
const RUNS = Number(process.env.FC_RUNS ?? 200);

for (const [name, arb] of Object.entries(pduArbitraries)) {
  test(`${name}: parse(serialize(pdu)) gives the PDU back, with and without digests`, () => {
    fc.assert(
      fc.property(arb, digestModes, (pdu, mode: DigestOptions) => {
        const wire = encodePduToBuffer(pdu, mode);
        const c = collector(mode);
        c.parser.push(wire);
        assert.deepEqual(c.errors, []);
        assert.equal(c.pdus.length, 1);
        assert.deepEqual(c.pdus[0], expectedDecode(pdu));
        if (!mode.headerDigest && !mode.dataDigest) assert.deepEqual(decodePdu(wire), expectedDecode(pdu));
      }),
      { numRuns: RUNS },
    );
  });
}

test('the streaming parser gives the same PDUs for any chunking of a stream', () => {
  fc.assert(
    fc.property(
      fc.array(anyPdu, { minLength: 1, maxLength: 8 }),
      digestModes,
      fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 50 }),
      (pdus, mode, cuts) => {
        const stream = Buffer.concat(pdus.map((p) => encodePduToBuffer(p, mode)));
        const whole = collector(mode);
        whole.parser.push(stream);
        const pieces = collector(mode);
        let off = 0;
        for (let i = 0; off < stream.length; i++) {
          const n = cuts[i % cuts.length];
          // Copies, so a chunk is never a view the next one overlaps.
          pieces.parser.push(Buffer.from(stream.subarray(off, off + n)));
          off += n;
        }
        assert.deepEqual(pieces.errors, whole.errors);
        assert.deepEqual(pieces.pdus, whole.pdus);
        assert.deepEqual(whole.pdus, pdus.map(expectedDecode));
        assert.equal(pieces.parser.pendingBytes, 0);
      },
    ),
    { numRuns: RUNS },
  );
});

test('arbitrary bytes never throw from the parser: only PduErrors, and a fatal one stops it', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          buf(0, 200),
          anyPdu.map((p) => encodePduToBuffer(p, { headerDigest: false, dataDigest: false })),
        ),
        { maxLength: 10 },
      ),
      digestModes,
      fc.integer({ min: 0, max: 1 << 16 }),
      (chunks, mode, max) => {
        const c = collector({ ...mode, max });
        for (const ch of chunks) c.parser.push(ch); // must not throw
        for (const e of c.errors) assert.ok(e instanceof PduError);
        const fatal = c.errors.findIndex((e) => e.fatal);
        if (fatal >= 0) {
          assert.equal(fatal, c.errors.length - 1, 'nothing is reported after a fatal error');
          assert.ok(c.parser.closed);
        }
      },
    ),
    { numRuns: RUNS * 2 },
  );
});

test('decodePdu of arbitrary bytes throws only PduError', () => {
  fc.assert(
    fc.property(buf(0, 400), (b) => {
      try {
        decodePdu(b);
      } catch (e) {
        assert.ok(e instanceof PduError, String(e));
      }
    }),
    { numRuns: RUNS * 5 },
  );
});

test('single bit flips of valid PDUs never throw from the parser', () => {
  fc.assert(
    fc.property(anyPdu, digestModes, fc.nat(), (pdu, mode, bit) => {
      const wire = Buffer.from(encodePduToBuffer(pdu, mode));
      const i = bit % (wire.length * 8);
      wire[i >> 3] ^= 1 << (i & 7);
      const c = collector(mode);
      c.parser.push(wire);
      for (const e of c.errors) assert.ok(e instanceof PduError);
    }),
    { numRuns: RUNS * 2 },
  );
});
