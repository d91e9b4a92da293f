import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  crc32c,
  DataIn,
  decodePdu,
  DigestOptions,
  encodePdu,
  encodePduToBuffer,
  encodeTextKeys,
  LoginRequest,
  Op,
  parseTextKeys,
  Pdu,
  PduError,
  Reject,
  ScsiCommand,
  ScsiResponse,
  TaskAttr,
} from '../../src/iscsi/pdu';
import { RFC_B4_READ10_HEADER_HEX, bytes, collector, expectedDecode, samplePdus } from './pdu-fixtures';

const DIGEST_MODES: DigestOptions[] = [
  { headerDigest: false, dataDigest: false },
  { headerDigest: true, dataDigest: false },
  { headerDigest: false, dataDigest: true },
  { headerDigest: true, dataDigest: true },
];

function modeName(o: DigestOptions): string {
  return `hd=${o.headerDigest ? 'on' : 'off'} dd=${o.dataDigest ? 'on' : 'off'}`;
}

function parseOne(wire: Buffer, o: DigestOptions): { pdu: Pdu; bhs: Buffer } {
  const c = collector(o);
  c.parser.push(wire);
  assert.deepEqual(c.errors, []);
  assert.equal(c.pdus.length, 1);
  assert.equal(c.parser.pendingBytes, 0);
  return { pdu: c.pdus[0], bhs: c.bhs[0] };
}

/** Hex with whitespace and comments ("# ...") allowed, for byte vectors. */
function hex(s: string): Buffer {
  return Buffer.from(s.replace(/#[^\n]*/g, '').replace(/\s+/g, ''), 'hex');
}

// ---------------------------------------------------------------------------
// Round trips

for (const mode of DIGEST_MODES) {
  test(`every PDU type round-trips through encode -> PduParser (${modeName(mode)})`, () => {
    const seen = new Set<number>();
    for (const p of samplePdus()) {
      const wire = encodePduToBuffer(p, mode);
      const { pdu, bhs } = parseOne(wire, mode);
      assert.deepEqual(pdu, expectedDecode(p), `opcode 0x${p.op.toString(16)}`);
      assert.deepEqual(bhs, wire.subarray(0, 48));
      seen.add(p.op);
    }
    assert.equal(seen.size, 18);
  });
}

test('every PDU type round-trips through encodePduToBuffer -> decodePdu', () => {
  for (const p of samplePdus()) {
    const wire = encodePduToBuffer(p, { headerDigest: false, dataDigest: false });
    assert.deepEqual(decodePdu(wire), expectedDecode(p));
  }
});

test('wire length is BHS + AHS + header digest + padded data + data digest', () => {
  for (const mode of DIGEST_MODES) {
    for (const p of samplePdus()) {
      const wire = encodePduToBuffer(p, mode);
      const dl = wire.readUIntBE(5, 3);
      const expected = 48 + wire[4] * 4 + (mode.headerDigest ? 4 : 0) + ((dl + 3) & ~3) + (mode.dataDigest && dl > 0 ? 4 : 0);
      assert.equal(wire.length, expected);
    }
  }
});

test('encodePdu does not copy the data segment and omits an empty trailer', () => {
  const data = bytes(4096, 9);
  const p: DataIn = {
    op: Op.DataIn,
    final: true,
    ack: false,
    overflow: false,
    underflow: false,
    hasStatus: false,
    status: 0,
    lun: 0n,
    itt: 1,
    ttt: 0xffffffff,
    statSN: 0,
    expCmdSN: 1,
    maxCmdSN: 2,
    dataSN: 0,
    bufferOffset: 0,
    residualCount: 0,
    data,
  };
  const parts = encodePdu(p, { headerDigest: false, dataDigest: false });
  assert.equal(parts.length, 2);
  assert.equal(parts[0].length, 48);
  assert.equal(parts[1], data);
  const withDigests = encodePdu(p, { headerDigest: true, dataDigest: true });
  assert.equal(withDigests.length, 3);
  assert.equal(withDigests[0].length, 52);
  assert.equal(withDigests[1], data);
  assert.equal(withDigests[2].length, 4);
  assert.equal(withDigests[2].readUInt32LE(0), crc32c(data));
  assert.equal(withDigests[0].readUInt32LE(48), crc32c(withDigests[0].subarray(0, 48)));
  // No data: just the header, and no data digest even when enabled.
  const empty = encodePdu({ ...p, data: Buffer.alloc(0) }, { headerDigest: true, dataDigest: true });
  assert.equal(empty.length, 1);
  assert.equal(empty[0].length, 52);
});

for (const len of [1, 2, 3, 4, 5]) {
  test(`padding: data length ${len}`, () => {
    const data = Buffer.alloc(len, 0xa5);
    const p: Pdu = {
      op: Op.NopOut,
      immediate: true,
      lun: 0n,
      itt: 3,
      ttt: 0xffffffff,
      cmdSN: 1,
      expStatSN: 1,
      data,
    };
    const pad = (4 - (len % 4)) % 4;
    const plain = encodePdu(p, { headerDigest: false, dataDigest: false });
    assert.equal(plain.length, pad ? 3 : 2);
    if (pad) assert.deepEqual(plain[2], Buffer.alloc(pad));
    assert.equal(plain[0].readUIntBE(5, 3), len, 'DataSegmentLength excludes padding');

    const dd = encodePdu(p, { headerDigest: false, dataDigest: true });
    assert.equal(dd[2].length, pad + 4);
    assert.deepEqual(dd[2].subarray(0, pad), Buffer.alloc(pad));
    // The data digest covers data + padding.
    assert.equal(dd[2].readUInt32LE(pad), crc32c(Buffer.concat([data, Buffer.alloc(pad)])));

    for (const mode of DIGEST_MODES) {
      const wire = encodePduToBuffer(p, mode);
      assert.equal(wire.length % 4, 0);
      assert.deepEqual(parseOne(wire, mode).pdu, p);
    }
  });
}

test('extended CDB: a 32-byte CDB travels as BHS CDB + type-1 AHS and round-trips', () => {
  const cdb = bytes(32, 11);
  cdb[0] = 0x7f; // variable-length CDB
  const p: ScsiCommand = {
    op: Op.ScsiCommand,
    immediate: false,
    final: true,
    read: true,
    write: false,
    attr: TaskAttr.Ordered,
    lun: 0n,
    itt: 77,
    expectedDataLength: 512,
    cmdSN: 5,
    expStatSN: 6,
    cdb,
    ahs: [],
    data: Buffer.alloc(0),
  };
  const wire = encodePduToBuffer(p, { headerDigest: false, dataDigest: false });
  assert.equal(wire.length, 48 + 20);
  assert.equal(wire[4], 5, 'TotalAHSLength in words');
  assert.deepEqual(wire.subarray(32, 48), cdb.subarray(0, 16));
  assert.equal(wire.readUInt16BE(48), 17, 'AHSLength = CDB length - 15');
  assert.equal(wire[50], 1, 'AHSType = Extended CDB');
  assert.equal(wire[51], 0, 'reserved');
  assert.deepEqual(wire.subarray(52, 68), cdb.subarray(16));
  for (const mode of DIGEST_MODES) {
    assert.deepEqual(parseOne(encodePduToBuffer(p, mode), mode).pdu, p);
  }
  assert.deepEqual(decodePdu(wire), p);
});

test('extended CDB of odd length, bidi read length AHS and unknown AHS are padded and round-trip', () => {
  const p: ScsiCommand = {
    op: Op.ScsiCommand,
    immediate: true,
    final: true,
    read: true,
    write: true,
    attr: TaskAttr.HeadOfQueue,
    lun: 0x0003000000000000n,
    itt: 78,
    expectedDataLength: 1000,
    cmdSN: 6,
    expStatSN: 7,
    cdb: bytes(17, 12),
    bidiReadLength: 0x12345678,
    ahs: [{ type: 0x40, raw: Buffer.from([0, 1, 2, 3, 4, 5]) }],
    data: bytes(10, 13),
  };
  const wire = encodePduToBuffer(p, { headerDigest: false, dataDigest: false });
  // ext CDB: 3 + 2 = 5 -> 8; bidi: 3 + 5 = 8; raw: 3 + 6 = 9 -> 12
  assert.equal(wire[4], (8 + 8 + 12) / 4);
  assert.equal(wire.readUInt16BE(48), 2);
  assert.equal(wire[50], 1);
  assert.equal(wire[52], p.cdb[16]);
  assert.deepEqual(wire.subarray(53, 56), Buffer.alloc(3), 'AHS padding');
  assert.equal(wire.readUInt16BE(56), 5);
  assert.equal(wire[58], 2);
  assert.equal(wire.readUInt32BE(60), 0x12345678);
  assert.equal(wire.readUInt16BE(64), 6);
  assert.equal(wire[66], 0x40);
  for (const mode of DIGEST_MODES) {
    assert.deepEqual(parseOne(encodePduToBuffer(p, mode), mode).pdu, p);
  }
});

test('a CDB shorter than 16 bytes is zero-padded in the BHS', () => {
  const p = samplePdus().find((x): x is ScsiCommand => x.op === Op.ScsiCommand)!;
  const short = { ...p, cdb: Buffer.from('2800000000100000080000', 'hex').subarray(0, 10) };
  const wire = encodePduToBuffer(short, { headerDigest: false, dataDigest: false });
  assert.deepEqual(wire.subarray(32, 48), Buffer.concat([short.cdb, Buffer.alloc(6)]));
  assert.equal(wire[4], 0);
});

test('ScsiResponse: sense is sent as SenseLength + sense, and decoded back', () => {
  const sense = Buffer.from('f00006000000000a0000000029000000000000', 'hex');
  const base = samplePdus().find((x): x is ScsiResponse => x.op === Op.ScsiResponse)!;
  const p: ScsiResponse = { ...base, sense, data: Buffer.from('ignored') };
  const wire = encodePduToBuffer(p, { headerDigest: false, dataDigest: false });
  assert.equal(wire.readUIntBE(5, 3), 2 + sense.length);
  assert.equal(wire.readUInt16BE(48), sense.length);
  assert.deepEqual(wire.subarray(50, 50 + sense.length), sense);
  const d = decodePdu(wire) as ScsiResponse;
  assert.deepEqual(d.sense, sense);
  assert.equal(d.data.length, 2 + sense.length);
  // No sense: the data segment is sent as is (empty here) and no `sense` key appears.
  const { sense: _omit, ...noSense } = base;
  const d2 = decodePdu(encodePduToBuffer(noSense, { headerDigest: false, dataDigest: false }));
  assert.deepEqual(d2, noSense);
  assert.ok(!('sense' in d2));
});

test('ScsiResponse with a SenseLength past the data segment is a non-fatal malformed error', () => {
  const base = samplePdus().find((x): x is ScsiResponse => x.op === Op.ScsiResponse)!;
  const { sense: _omit, ...noSense } = base;
  const bad = { ...noSense, data: Buffer.from([0x00, 0x20, 1, 2, 3]) };
  const c = collector();
  c.parser.push(encodePduToBuffer(bad, { headerDigest: false, dataDigest: false }));
  c.parser.push(encodePduToBuffer(noSense, { headerDigest: false, dataDigest: false }));
  assert.equal(c.errors.length, 1);
  assert.equal(c.errors[0].kind, 'malformed');
  assert.equal(c.errors[0].fatal, false);
  assert.equal(c.pdus.length, 1);
});

test('flags and fixed fields: F bit always set where mandatory, ITT 0xffffffff on Reject/Async', () => {
  for (const p of samplePdus()) {
    const wire = encodePduToBuffer(p, { headerDigest: false, dataDigest: false });
    assert.equal(wire[0] & 0x3f, p.op);
    if (
      [
        Op.NopOut,
        Op.TaskMgmtRequest,
        Op.LogoutRequest,
        Op.Snack,
        Op.NopIn,
        Op.ScsiResponse,
        Op.TaskMgmtResponse,
        Op.LogoutResponse,
        Op.R2T,
        Op.AsyncMessage,
        Op.Reject,
      ].includes(p.op)
    ) {
      assert.equal(wire[1] & 0x80, 0x80, `F bit of opcode 0x${p.op.toString(16)}`);
    }
    if (p.op === Op.Reject || p.op === Op.AsyncMessage) assert.equal(wire.readUInt32BE(16), 0xffffffff);
    if (p.op === Op.LoginRequest) assert.equal(wire[0], 0x43, 'Login Request always has the I bit');
  }
});

test('sequence numbers wrap modulo 2^32 on encode', () => {
  const p = samplePdus()[0];
  const wire = encodePduToBuffer({ ...p, cmdSN: 2 ** 32 + 5 } as Pdu, { headerDigest: false, dataDigest: false });
  assert.equal(wire.readUInt32BE(24), 5);
});

// ---------------------------------------------------------------------------
// Byte vectors

test('vector: SCSI Command READ(10), BHS written out byte by byte (RFC 7143 §11.3)', () => {
  const wire = hex(`
    01                # opcode 0x01, I=0
    c1                # F=1 R=1 W=0, ATTR=1 (simple)
    00 00             # reserved
    00                # TotalAHSLength
    00 00 00          # DataSegmentLength
    00 01 00 00 00 00 00 00   # LUN 1 (SAM single level, peripheral addressing)
    00 00 00 0a       # ITT
    00 00 10 00       # Expected Data Transfer Length = 4096
    00 00 00 05       # CmdSN
    00 00 00 07       # ExpStatSN
    28 00 00 00 12 34 00 00 08 00 00 00 00 00 00 00   # READ(10) LBA 0x1234, 8 blocks
  `);
  assert.equal(wire.length, 48);
  const p = decodePdu(wire) as ScsiCommand;
  assert.equal(p.op, Op.ScsiCommand);
  assert.equal(p.immediate, false);
  assert.equal(p.final, true);
  assert.equal(p.read, true);
  assert.equal(p.write, false);
  assert.equal(p.attr, TaskAttr.Simple);
  assert.equal(p.lun, 0x0001000000000000n);
  assert.equal(p.itt, 10);
  assert.equal(p.expectedDataLength, 4096);
  assert.equal(p.cmdSN, 5);
  assert.equal(p.expStatSN, 7);
  assert.equal(p.cdb.length, 16);
  assert.equal(p.cdb[0], 0x28);
  assert.equal(p.cdb.readUInt32BE(2), 0x1234);
  assert.equal(p.cdb.readUInt16BE(7), 8);
  assert.deepEqual(p.ahs, []);
  assert.equal(p.bidiReadLength, undefined);
  assert.equal(p.data.length, 0);
  assert.deepEqual(encodePduToBuffer(p, { headerDigest: false, dataDigest: false }), wire);
});

test('vector: RFC 7143 B.4 read PDU gets header digest bytes 56 3a 96 d9', () => {
  const p: ScsiCommand = {
    op: Op.ScsiCommand,
    immediate: false,
    final: true,
    read: true,
    write: false,
    attr: TaskAttr.Untagged,
    lun: 0n,
    itt: 0x14000000,
    expectedDataLength: 0x400,
    cmdSN: 0x14,
    expStatSN: 0x18,
    cdb: hex('28000000 00000000 02000000 00000000'),
    ahs: [],
    data: Buffer.alloc(0),
  };
  const wire = encodePduToBuffer(p, { headerDigest: true, dataDigest: true });
  assert.equal(wire.toString('hex'), RFC_B4_READ10_HEADER_HEX + '563a96d9');
  assert.deepEqual(parseOne(wire, { headerDigest: true, dataDigest: true }).pdu, p);
});

test('vector: Login Request as open-iscsi sends it', () => {
  const text =
    'InitiatorName=iqn.1993-08.org.debian:01:8f5a3c2b1d0e\0' +
    'InitiatorAlias=host-a\0' +
    'TargetName=iqn.2026-11.io.example:lab\0' +
    'SessionType=Normal\0' +
    'AuthMethod=None\0';
  const len = Buffer.byteLength(text);
  const pad = (4 - (len % 4)) % 4;
  const wire = Buffer.concat([
    hex(`
      43                # I=1, opcode 0x03
      81                # T=1 C=0 CSG=0 NSG=1
      00 00             # VersionMax 0, VersionMin 0
      00                # TotalAHSLength
    `),
    Buffer.from([len >> 16, (len >> 8) & 0xff, len & 0xff]),
    hex(`
      00 02 3d 00 00 00 # ISID: type 0 (OUI format), OUI-ish 0x023d, qualifier 0
      00 00             # TSIH 0: new session
      00 00 00 00       # ITT
      00 00 00 00       # CID 0, reserved
      00 00 00 00       # CmdSN
      00 00 00 00       # ExpStatSN
      00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00  # reserved
    `),
    Buffer.from(text),
    Buffer.alloc(pad),
  ]);
  const { pdu } = parseOne(wire, { headerDigest: false, dataDigest: false });
  const p = pdu as LoginRequest;
  assert.equal(p.op, Op.LoginRequest);
  assert.equal(p.transit, true);
  assert.equal(p.cont, false);
  assert.equal(p.csg, 0);
  assert.equal(p.nsg, 1);
  assert.equal(p.versionMax, 0);
  assert.equal(p.versionMin, 0);
  assert.equal(p.isid.toString('hex'), '00023d000000');
  assert.equal(p.tsih, 0);
  assert.equal(p.itt, 0);
  assert.equal(p.cid, 0);
  assert.equal(p.cmdSN, 0);
  assert.equal(p.expStatSN, 0);
  assert.deepEqual(parseTextKeys(p.data), [
    ['InitiatorName', 'iqn.1993-08.org.debian:01:8f5a3c2b1d0e'],
    ['InitiatorAlias', 'host-a'],
    ['TargetName', 'iqn.2026-11.io.example:lab'],
    ['SessionType', 'Normal'],
    ['AuthMethod', 'None'],
  ]);
  // Re-encoding gives the same bytes.
  const again: LoginRequest = { ...p, data: encodeTextKeys(parseTextKeys(p.data)) };
  assert.deepEqual(encodePduToBuffer(again, { headerDigest: false, dataDigest: false }), wire);
});

test('vector: Data-In with the S bit carries status and residual', () => {
  const wire = hex(`
    25                # opcode 0x25
    83                # F=1 A=0 O=0 U=1 S=1
    00                # reserved
    00                # status GOOD
    00 00 00 08       # TotalAHSLength 0, DataSegmentLength 8
    00 00 00 00 00 00 00 00   # LUN
    00 00 00 2a       # ITT
    ff ff ff ff       # TTT
    00 00 00 64       # StatSN 100
    00 00 00 0b       # ExpCmdSN
    00 00 00 4a       # MaxCmdSN
    00 00 00 00       # DataSN
    00 00 00 00       # Buffer Offset
    00 00 01 f8       # Residual Count 504
    01 02 03 04 05 06 07 08   # data
  `);
  const p = decodePdu(wire) as DataIn;
  assert.deepEqual(p, {
    op: Op.DataIn,
    final: true,
    ack: false,
    overflow: false,
    underflow: true,
    hasStatus: true,
    status: 0,
    lun: 0n,
    itt: 42,
    ttt: 0xffffffff,
    statSN: 100,
    expCmdSN: 11,
    maxCmdSN: 74,
    dataSN: 0,
    bufferOffset: 0,
    residualCount: 504,
    data: hex('0102030405060708'),
  });
  assert.deepEqual(encodePduToBuffer(p, { headerDigest: false, dataDigest: false }), wire);
});

test('vector: Reject carries the rejected header as data', () => {
  const rejected = encodePduToBuffer(samplePdus()[1], { headerDigest: false, dataDigest: false }).subarray(0, 48);
  const wire = Buffer.concat([
    hex(`
      3f 80 04 00       # opcode 0x3f, F, reason 0x04 protocol error
      00 00 00 30       # DataSegmentLength 48
      00 00 00 00 00 00 00 00   # reserved
      ff ff ff ff       # 0xffffffff
      00 00 00 00       # reserved
      00 00 00 10       # StatSN
      00 00 00 20       # ExpCmdSN
      00 00 00 5f       # MaxCmdSN
      00 00 00 00       # DataSN/R2TSN
      00 00 00 00 00 00 00 00   # reserved
    `),
    rejected,
  ]);
  const p = decodePdu(wire) as Reject;
  assert.deepEqual(p, {
    op: Op.Reject,
    reason: 4,
    statSN: 16,
    expCmdSN: 32,
    maxCmdSN: 95,
    dataSN: 0,
    data: rejected,
  });
  assert.deepEqual(encodePduToBuffer(p, { headerDigest: false, dataDigest: false }), wire);
});

test('decodePdu: short or truncated input and unknown opcodes throw PduError', () => {
  assert.throws(
    () => decodePdu(Buffer.alloc(47)),
    (e: unknown) => e instanceof PduError && e.kind === 'malformed',
  );
  const wire = encodePduToBuffer(samplePdus()[0], { headerDigest: false, dataDigest: false });
  assert.throws(
    () => decodePdu(wire.subarray(0, 50)),
    (e: unknown) => e instanceof PduError && e.kind === 'malformed',
  );
  const unknown = Buffer.alloc(48);
  unknown[0] = 0x1c;
  assert.throws(
    () => decodePdu(unknown),
    (e: unknown) => e instanceof PduError && e.kind === 'unknown-opcode' && !e.fatal && e.bhs?.[0] === 0x1c,
  );
});
