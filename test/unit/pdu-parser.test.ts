import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, DigestOptions, encodePdu, encodePduToBuffer, NopOut, Op, Pdu, PduParser, ScsiCommand } from '../../src/iscsi/pdu';
import { bytes, collector, Collected, expectedDecode, rng, samplePdus } from './pdu-fixtures';
import { dataOut as dataOutPdu } from '../helpers/pdu';

const BOTH: DigestOptions = { headerDigest: true, dataDigest: true };
const NONE: DigestOptions = { headerDigest: false, dataDigest: false };

function stream(pdus: Pdu[], o: DigestOptions): Buffer {
  return Buffer.concat(pdus.flatMap((p) => encodePdu(p, o)));
}

function nop(itt: number, data: Buffer = Buffer.alloc(0)): NopOut {
  return { op: Op.NopOut, immediate: true, lun: 0n, itt, ttt: 0xffffffff, cmdSN: itt, expStatSN: 0, data };
}

function feed(c: Collected, wire: Buffer, splits: number[]): void {
  let pos = 0;
  for (const s of splits) {
    c.parser.push(wire.subarray(pos, s));
    pos = s;
  }
  c.parser.push(wire.subarray(pos));
}

for (const mode of [NONE, BOTH]) {
  const name = mode.headerDigest ? 'with digests' : 'without digests';
  test(`chunk tolerance: byte by byte, random splits and one chunk give the same PDUs (${name})`, () => {
    const pdus = [...samplePdus(), ...samplePdus().reverse()];
    const wire = stream(pdus, mode);
    const expected = pdus.map(expectedDecode);

    const whole = collector(mode);
    whole.parser.push(wire);
    assert.deepEqual(whole.errors, []);
    assert.deepEqual(whole.pdus, expected);

    const byByte = collector(mode);
    for (let i = 0; i < wire.length; i++) byByte.parser.push(wire.subarray(i, i + 1));
    assert.deepEqual(byByte.errors, []);
    assert.deepEqual(byByte.pdus, expected);
    assert.equal(byByte.parser.pendingBytes, 0);

    for (let seed = 1; seed <= 20; seed++) {
      const r = rng(seed);
      const splits: number[] = [];
      let pos = 0;
      for (;;) {
        // Mix tiny splits (inside a BHS) with large ones (spanning several PDUs).
        pos += r() < 0.5 ? 1 + Math.floor(r() * 60) : 1 + Math.floor(r() * 20000);
        if (pos >= wire.length) break;
        splits.push(pos);
      }
      const c = collector(mode);
      feed(c, wire, splits);
      assert.deepEqual(c.errors, []);
      assert.deepEqual(c.pdus, expected, `seed ${seed}`);
      assert.deepEqual(c.bhs, whole.bhs);
    }
  });
}

test('a PDU held in one chunk is sliced, not copied', () => {
  const data = bytes(1000, 21);
  const wire = encodePduToBuffer(nop(1, data), NONE);
  const c = collector();
  c.parser.push(wire);
  const got = c.pdus[0].data;
  assert.equal(got.buffer, wire.buffer);
  assert.equal(got.byteOffset, wire.byteOffset + 48);
});

test('an empty chunk is ignored', () => {
  const c = collector();
  c.parser.push(Buffer.alloc(0));
  c.parser.push(encodePduToBuffer(nop(1), NONE));
  assert.equal(c.pdus.length, 1);
});

test('header digest error is fatal and stops the parser', () => {
  const wire = stream([nop(1), nop(2, bytes(10)), nop(3)], BOTH);
  const second = encodePduToBuffer(nop(1), BOTH).length;
  wire[second + 16] ^= 0x01; // flip a bit in the second PDU's ITT
  const c = collector(BOTH);
  c.parser.push(wire);
  assert.equal(c.pdus.length, 1);
  assert.equal(c.errors.length, 1);
  const e = c.errors[0];
  assert.equal(e.kind, 'header-digest');
  assert.equal(e.fatal, true);
  assert.equal(e.bhs?.length, 48);
  assert.equal(c.parser.closed, true);
  c.parser.push(encodePduToBuffer(nop(4), BOTH));
  assert.equal(c.pdus.length, 1, 'nothing emitted after a fatal error');
  assert.equal(c.errors.length, 1);
});

test('header digest error is found before waiting for a (corrupted) huge data segment', () => {
  const wire = encodePduToBuffer(nop(1), BOTH);
  wire[5] = 0x10; // DataSegmentLength now ~1 MiB, digest no longer matches
  const c = collector(BOTH);
  c.parser.push(wire);
  assert.equal(c.errors.length, 1);
  assert.equal(c.errors[0].kind, 'header-digest');
});

test('data digest error is not fatal: the PDU is skipped and the next one parses', () => {
  const bad = nop(2, bytes(13, 5));
  const wire = stream([nop(1), bad, nop(3, bytes(7))], BOTH);
  const firstLen = encodePduToBuffer(nop(1), BOTH).length;
  wire[firstLen + 52 + 6] ^= 0x80; // a data byte of the second PDU
  for (const split of [false, true]) {
    const c = collector(BOTH);
    if (split) for (let i = 0; i < wire.length; i += 3) c.parser.push(wire.subarray(i, i + 3));
    else c.parser.push(wire);
    assert.deepEqual(
      c.pdus.map((p) => (p as NopOut).itt),
      [1, 3],
    );
    assert.equal(c.errors.length, 1);
    const e = c.errors[0];
    assert.equal(e.kind, 'data-digest');
    assert.equal(e.fatal, false);
    assert.equal(e.bhs!.readUInt32BE(16), 2, 'bhs of the damaged PDU, for the Reject');
    assert.equal(c.parser.closed, false);
  }
});

test('a damaged padding byte also fails the data digest', () => {
  const wire = encodePduToBuffer(nop(1, bytes(5)), BOTH);
  wire[52 + 6] = 0xff; // padding after 5 data bytes
  const c = collector(BOTH);
  c.parser.push(wire);
  assert.equal(c.errors[0]?.kind, 'data-digest');
});

test('data segment above maxDataSegmentLength is fatal, announced from the BHS alone', () => {
  const c = collector({ max: 8192 });
  c.parser.push(encodePduToBuffer(nop(1, bytes(8192)), NONE));
  assert.equal(c.pdus.length, 1);
  const wire = encodePduToBuffer(nop(2, bytes(8193)), NONE);
  c.parser.push(wire.subarray(0, 48));
  assert.equal(c.errors.length, 1);
  const e = c.errors[0];
  assert.equal(e.kind, 'data-too-long');
  assert.equal(e.fatal, true);
  assert.deepEqual(e.bhs, wire.subarray(0, 48));
  c.parser.push(wire.subarray(48));
  assert.equal(c.pdus.length, 1);
});

test('default maxDataSegmentLength is 16 MiB', () => {
  const p = new PduParser({ pdu() {}, error() {} });
  assert.equal(p.maxDataSegmentLength, 16 * 1024 * 1024);
  assert.equal(p.headerDigest, false);
  assert.equal(p.dataDigest, false);
});

test('unknown opcode is not fatal: its bytes are skipped and the next PDU parses', () => {
  const unknown = encodePduToBuffer(nop(9, bytes(6)), NONE);
  unknown[0] = 0x1c; // vendor-specific initiator opcode
  const wire = Buffer.concat([encodePduToBuffer(nop(1), NONE), unknown, encodePduToBuffer(nop(2), NONE)]);
  const c = collector();
  for (let i = 0; i < wire.length; i += 7) c.parser.push(wire.subarray(i, i + 7));
  assert.deepEqual(
    c.pdus.map((p) => (p as NopOut).itt),
    [1, 2],
  );
  assert.equal(c.errors.length, 1);
  assert.equal(c.errors[0].kind, 'unknown-opcode');
  assert.equal(c.errors[0].fatal, false);
  assert.equal(c.errors[0].bhs![0], 0x1c);
});

test('an AHS running past TotalAHSLength is fatal', () => {
  const cmd = samplePdus().find((x): x is ScsiCommand => x.op === Op.ScsiCommand)!;
  const wire = encodePduToBuffer({ ...cmd, cdb: bytes(32), data: Buffer.alloc(0) }, NONE);
  wire.writeUInt16BE(40, 48); // AHSLength larger than the 20 AHS bytes
  const c = collector();
  c.parser.push(wire);
  c.parser.push(encodePduToBuffer(nop(1), NONE));
  assert.equal(c.pdus.length, 0);
  assert.equal(c.errors.length, 1);
  assert.equal(c.errors[0].kind, 'malformed');
  assert.equal(c.errors[0].fatal, true);
});

test('re-entrancy: a handler turning digests on applies to the very next PDU in the same chunk', () => {
  // Login phase without digests, then full feature phase with both digests.
  const wire = Buffer.concat([
    encodePduToBuffer(nop(1, bytes(3)), NONE),
    encodePduToBuffer(nop(2, bytes(5)), BOTH),
    encodePduToBuffer(nop(3), BOTH),
  ]);
  for (const step of [wire.length, 1, 50]) {
    const itts: number[] = [];
    const errors: string[] = [];
    const parser: PduParser = new PduParser({
      pdu(p) {
        itts.push((p as NopOut).itt);
        if ((p as NopOut).itt === 1) {
          parser.headerDigest = true;
          parser.dataDigest = true;
        }
      },
      error(e) {
        errors.push(e.kind);
      },
    });
    for (let i = 0; i < wire.length; i += step) parser.push(wire.subarray(i, i + step));
    assert.deepEqual(errors, [], `step ${step}`);
    assert.deepEqual(itts, [1, 2, 3], `step ${step}`);
  }
});

test('re-entrancy: a handler may push more bytes; order is preserved', () => {
  const later = encodePduToBuffer(nop(3), NONE);
  const itts: number[] = [];
  const parser: PduParser = new PduParser({
    pdu(p) {
      itts.push((p as NopOut).itt);
      if ((p as NopOut).itt === 1) parser.push(later);
    },
    error() {
      assert.fail('no error expected');
    },
  });
  parser.push(Buffer.concat([encodePduToBuffer(nop(1), NONE), encodePduToBuffer(nop(2), NONE)]));
  assert.deepEqual(itts, [1, 2, 3]);
});

test('a handler that throws does not corrupt the parser state', () => {
  let calls = 0;
  const itts: number[] = [];
  const parser = new PduParser({
    pdu(p) {
      calls++;
      if (calls === 1) throw new Error('boom');
      itts.push((p as NopOut).itt);
    },
    error() {},
  });
  const wire = Buffer.concat([encodePduToBuffer(nop(1), NONE), encodePduToBuffer(nop(2), NONE)]);
  assert.throws(() => parser.push(wire), /boom/);
  parser.push(encodePduToBuffer(nop(3), NONE));
  assert.deepEqual(itts, [2, 3]);
});

test('many small PDUs across many chunks (chunk list compaction)', () => {
  const pdus = Array.from({ length: 500 }, (_, i) => nop(i, bytes(i % 9, i + 1)));
  const wire = stream(pdus, BOTH);
  const c = collector(BOTH);
  // Keep a partial PDU pending across many tiny chunks.
  for (let i = 0; i < wire.length; i += 5) c.parser.push(wire.subarray(i, i + 5));
  assert.deepEqual(c.errors, []);
  assert.deepEqual(c.pdus, pdus);
  // A data segment spread over > 64 chunks.
  const big = nop(9999, bytes(70000, 3));
  const w2 = encodePduToBuffer(big, BOTH);
  const c2 = collector(BOTH);
  for (let i = 0; i < w2.length; i += 100) c2.parser.push(w2.subarray(i, i + 100));
  assert.deepEqual(c2.pdus, [big]);
  assert.equal(crc32c(c2.pdus[0].data), crc32c(big.data));
});

// ---- data sink: a split data segment assembled straight into the caller's buffer

const dataOut = (itt: number, offset: number, data: Buffer): Pdu => dataOutPdu({ itt, ttt: 0x10, bufferOffset: offset, data });

function sinkCollector(mode: DigestOptions, dest: Buffer) {
  const pdus: Pdu[] = [];
  const errors: string[] = [];
  const asked: number[] = [];
  const parser = new PduParser({
    pdu: (p) => pdus.push(p),
    error: (e) => errors.push(e.kind),
    dataSink(bhs, len) {
      asked.push(len);
      if ((bhs[0] & 0x3f) !== Op.DataOut) return null;
      const off = bhs.readUInt32BE(40);
      return dest.subarray(off, off + len);
    },
  });
  parser.headerDigest = mode.headerDigest;
  parser.dataDigest = mode.dataDigest;
  return { parser, pdus, errors, asked };
}

for (const mode of [NONE, BOTH]) {
  const name = mode.headerDigest ? 'with digests' : 'without digests';
  test(`Data-Out segments land in the sink as they arrive, once; other PDUs stay views (${name})`, () => {
    const payload = Buffer.from(Array.from({ length: 1001 }, (_, i) => (i * 7) & 0xff)); // 1001: padded
    const wire = stream([dataOut(5, 3000, payload), nop(9, Buffer.from('ping')), dataOut(5, 0, payload.subarray(0, 8))], mode);
    const dest = Buffer.alloc(8192);
    const c = sinkCollector(mode, dest);
    // Split inside the first PDU's data segment; what arrived of it is in place at once.
    c.parser.push(wire.subarray(0, 300));
    assert.equal(c.pdus.length, 0);
    const headerBytes = 48 + (mode.headerDigest ? 4 : 0);
    assert.deepEqual(dest.subarray(3000, 3000 + 300 - headerBytes), payload.subarray(0, 300 - headerBytes), 'copied on arrival');
    assert.equal(c.parser.pendingBytes, 0, 'nothing of it left in the chunks');
    c.parser.push(wire.subarray(300));
    assert.deepEqual(c.errors, []);
    assert.equal(c.pdus.length, 3);
    const first = c.pdus[0];
    assert.deepEqual(first.data, payload);
    assert.equal(first.data.buffer, dest.buffer, 'data assembled in the sink');
    assert.equal(first.data.byteOffset, dest.byteOffset + 3000);
    assert.deepEqual(dest.subarray(3000, 4001), payload);
    assert.deepEqual(c.asked, [1001, 4, 8], 'the sink is asked once per PDU with data');
    assert.deepEqual((c.pdus[1] as NopOut).data, Buffer.from('ping'));
    assert.notEqual(c.pdus[1].data.buffer, dest.buffer, 'a declined segment stays a view');
    assert.equal(c.pdus[2].data.buffer, dest.buffer);
    assert.equal(c.parser.pendingBytes, 0);
  });

  test(`directTarget: the rest of a sunk segment is offered for the socket to read into, and taken without a copy (${name})`, () => {
    const payload = Buffer.from(Array.from({ length: 6000 }, (_, i) => (i * 13 + 1) & 0xff));
    const wire = stream([dataOut(5, 0, payload), nop(9)], mode);
    const dest = Buffer.alloc(8192);
    const c = sinkCollector(mode, dest);
    const headerBytes = 48 + (mode.headerDigest ? 4 : 0);
    assert.equal(c.parser.directTarget(), null, 'nothing to offer before a header');
    c.parser.push(wire.subarray(0, headerBytes + 1000));
    const target = c.parser.directTarget()!;
    assert.ok(target, 'the rest of the segment is offered');
    assert.equal(target.byteOffset, dest.byteOffset + 1000);
    assert.equal(target.length, 5000);
    // The socket reads 3000 bytes into it, then the rest arrives in an ordinary chunk.
    wire.copy(target, 0, headerBytes + 1000, headerBytes + 4000);
    dest.fill(0xee, 4000); // bytes not yet read: a copy from elsewhere would overwrite these
    c.parser.push(target.subarray(0, 3000));
    assert.equal(c.parser.directTarget()!.byteOffset, dest.byteOffset + 4000);
    c.parser.push(wire.subarray(headerBytes + 4000));
    assert.deepEqual(c.errors, []);
    assert.equal(c.pdus.length, 2);
    assert.deepEqual(c.pdus[0].data, payload);
    assert.equal(c.pdus[0].data.buffer, dest.buffer);
    assert.equal(c.parser.directTarget(), null, 'nothing once the segment is complete');
    assert.equal(c.pdus[1].op, Op.NopOut);
  });
}

test('a corrupted data digest on a sunk Data-Out is reported and parsing goes on', () => {
  const payload = Buffer.alloc(2000, 0x41);
  const wire = Buffer.from(stream([dataOut(5, 0, payload), nop(9)], BOTH));
  wire[48 + 4 + 1500] ^= 0xff; // inside the data segment
  const c = sinkCollector(BOTH, Buffer.alloc(4096));
  c.parser.push(wire.subarray(0, 700));
  c.parser.push(wire.subarray(700));
  assert.deepEqual(c.errors, ['data-digest']);
  assert.equal(c.pdus.length, 1);
  assert.equal(c.pdus[0].op, Op.NopOut);
});

test('a sink that declines (null) leaves assembly to the parser', () => {
  const payload = Buffer.alloc(3000, 0x42);
  const wire = stream([dataOut(5, 0, payload)], NONE);
  const pdus: Pdu[] = [];
  const parser = new PduParser({ pdu: (p) => pdus.push(p), error: () => assert.fail('no error'), dataSink: () => null });
  parser.push(wire.subarray(0, 1000));
  parser.push(wire.subarray(1000));
  assert.equal(pdus.length, 1);
  assert.deepEqual(pdus[0].data, payload);
});
