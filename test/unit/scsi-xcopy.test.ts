// EXTENDED COPY (LID1) and RECEIVE COPY RESULTS through executeScsi, with two logical
// units: descriptors as libiscsi's ExtendedCopy suite builds them, the limits OPERATING
// PARAMETERS reports, copies within and between units, and every refusal's sense.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../src/backstore/memory';
import { XCOPY_LIMITS } from '../../src/scsi/extended-copy';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { parseSense } from '../../src/scsi/sense';
import { ScsiStatus, type ItNexus, type ScsiResult } from '../../src/scsi/task';
import {
  b2b,
  be32,
  CDB,
  cscd,
  executeOn,
  expectGood,
  expectSense,
  nexus,
  paramList,
  prOutParams,
  pattern,
  sleep,
  task,
  TestStore,
} from '../helpers/scsi';

const BLOCKS = 8192;
let serial = 0;

async function twoUnits(opts: { readonlyB?: boolean; bsB?: 512 | 4096 } = {}) {
  const n = ++serial;
  const mk = (name: string, bs: 512 | 4096, readonly: boolean) =>
    new LogicalUnit({ name, backstore: new TestStore(new MemoryBackstore(BLOCKS * bs)), blockSize: bs, readonly });
  const a = mk(`xcopy-a-${n}`, 512, false);
  const b = mk(`xcopy-b-${n}`, opts.bsB ?? 512, opts.readonlyB ?? false);
  const luns = new Map([
    [0, a],
    [1, b],
  ]) as ReadonlyMap<number, LogicalUnit>;
  for (const lun of [0, 1]) await exec(luns, lun, [0x00]); // consume the power-on unit attentions
  return { a, b, luns };
}

function exec(
  luns: ReadonlyMap<number, LogicalUnit>,
  lun: number,
  cdb: number[],
  opts: Parameters<typeof task>[1] = {},
): Promise<ScsiResult> {
  return executeOn(luns, { ...task(cdb, opts), lun });
}

const xcopyCdb = (len: number) => [0x83, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, ...be32(len), 0, 0];
const rcrCdb = (sa: number, listId = 0, alloc = 1024) => [0x84, sa, listId, 0, 0, 0, 0, 0, 0, 0, ...be32(alloc), 0, 0];

function xcopy(luns: ReadonlyMap<number, LogicalUnit>, lun: number, list: Buffer, opts: { len?: number; nexus?: ItNexus } = {}) {
  const len = opts.len ?? list.length;
  return exec(luns, lun, xcopyCdb(len), { dataOut: list.subarray(0, len), nexus: opts.nexus });
}

async function writeBlocks(luns: ReadonlyMap<number, LogicalUnit>, lun: number, lba: number, data: Buffer, bs = 512) {
  expectGood(await exec(luns, lun, CDB.write16(lba, data.length / bs), { dataOut: data }));
}

async function readBlocks(luns: ReadonlyMap<number, LogicalUnit>, lun: number, lba: number, n: number) {
  const r = await exec(luns, lun, CDB.read16(lba, n));
  expectGood(r);
  return r.data!;
}

test('OPERATING PARAMETERS reports the limits EXTENDED COPY enforces and the descriptor types it takes', async () => {
  const { luns } = await twoUnits();
  const r = await exec(luns, 0, rcrCdb(0x03));
  expectGood(r);
  const d = r.data!;
  assert.equal(d.readUInt32BE(0), d.length - 4);
  assert.equal(d.readUInt16BE(8), XCOPY_LIMITS.maxCscdDescriptors);
  assert.equal(d.readUInt16BE(10), XCOPY_LIMITS.maxSegmentDescriptors);
  assert.equal(d.readUInt32BE(12), XCOPY_LIMITS.maxDescriptorListLength);
  assert.equal(d.readUInt32BE(16), XCOPY_LIMITS.maxSegmentBytes);
  assert.equal(d.readUInt32BE(20), 0, 'no inline data');
  assert.deepEqual([...d.subarray(44, 44 + d[43])], [0x02, 0xe4]);
  // libiscsi's DescrLimits needs (max+1) descriptors of one kind plus one of the other to
  // fit the list length, and (max+1) of both not to.
  const { maxCscdDescriptors: t, maxSegmentDescriptors: s, maxDescriptorListLength: l } = XCOPY_LIMITS;
  assert.ok((t + 1) * 32 + 28 <= l && 32 + (s + 1) * 28 <= l && (t + 1) * 32 + (s + 1) * 28 > l);
  // Allocation length truncates.
  assert.equal((await exec(luns, 0, rcrCdb(0x03, 0, 10))).data!.length, 10);
});

test('EXTENDED COPY within one unit (libiscsi Simple) and to another unit, in both directions', async () => {
  const { a, b, luns } = await twoUnits();
  const data = pattern(2048 * 512, 3);
  await writeBlocks(luns, 0, 0, data);
  expectGood(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 2048, 0, BLOCKS - 2048)])));
  assert.deepEqual(await readBlocks(luns, 0, BLOCKS - 2048, 2048), data);

  // a -> b, sent to a (the source) and to b (the destination); two segments.
  const list = paramList([cscd(a), cscd(b)], [b2b(0, 1, 1000, 0, 100), b2b(0, 1, 1048, 1000, 1100)]);
  expectGood(await xcopy(luns, 0, list));
  assert.deepEqual(await readBlocks(luns, 1, 100, 2048), data);
  const data2 = pattern(16 * 512, 9);
  await writeBlocks(luns, 1, 5000, data2);
  expectGood(await xcopy(luns, 1, paramList([cscd(b), cscd(a)], [b2b(0, 1, 16, 5000, 7)])));
  assert.deepEqual(await readBlocks(luns, 0, 7, 16), data2);
  // Zero blocks copies nothing and succeeds; PARAMETER LIST LENGTH 0 likewise.
  expectGood(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 0, 0, 0)])));
  expectGood(await exec(luns, 0, xcopyCdb(0), { expected: 0 }));
});

test('EXTENDED COPY: DC counts destination blocks; 512 -> 4096 byte units; a mismatched DISK BLOCK LENGTH is refused', async () => {
  const { a, b, luns } = await twoUnits({ bsB: 4096 });
  const data = pattern(64 * 512, 5);
  await writeBlocks(luns, 0, 0, data);
  expectGood(await xcopy(luns, 0, paramList([cscd(a), cscd(b)], [b2b(0, 1, 64, 0, 2)]))); // 64 source blocks
  assert.deepEqual((await exec(luns, 1, CDB.read16(2, 8))).data, data);
  expectGood(await xcopy(luns, 0, paramList([cscd(a), cscd(b)], [b2b(0, 1, 8, 0, 20, true)]))); // 8 destination blocks
  assert.deepEqual((await exec(luns, 1, CDB.read16(20, 8))).data, data);
  // 3 source blocks are not whole destination blocks.
  expectSense(await xcopy(luns, 0, paramList([cscd(a), cscd(b)], [b2b(0, 1, 3, 0, 0)])), 0x05, 0x26, 0x00);
  expectSense(await xcopy(luns, 0, paramList([cscd(a, { blockSize: 4096 })], [b2b(0, 0, 1, 0, 1)])), 0x05, 0x26, 0x00);
});

test('EXTENDED COPY within a unit with overlapping ranges copies as if through a buffer', async () => {
  const { a, luns } = await twoUnits();
  const data = pattern(3000 * 512, 11);
  await writeBlocks(luns, 0, 0, data);
  expectGood(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 3000, 0, 1000)])));
  assert.deepEqual(await readBlocks(luns, 0, 1000, 3000), data);
  await writeBlocks(luns, 0, 0, data);
  expectGood(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 3000, 0, 0)])));
  expectGood(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 2000, 1000, 0)])));
  assert.deepEqual(await readBlocks(luns, 0, 0, 2000), data.subarray(1000 * 512));
});

test('EXTENDED COPY parameter list checks (libiscsi ParamHdr, DescrLimits, DescrType)', async () => {
  const { a, luns } = await twoUnits();
  const one = paramList([cscd(a)], [b2b(0, 0, 16, 0, 100)]);
  // Truncated target descriptor, truncated segment descriptor, shorter than a header.
  expectSense(await xcopy(luns, 0, one, { len: 16 + 32 - 1 }), 0x05, 0x1a, 0x00);
  expectSense(await xcopy(luns, 0, one, { len: one.length - 1 }), 0x05, 0x1a, 0x00);
  expectSense(await xcopy(luns, 0, one, { len: 8 }), 0x05, 0x1a, 0x00);
  const { maxCscdDescriptors: t, maxSegmentDescriptors: s } = XCOPY_LIMITS;
  const cs = (n: number) => Array.from({ length: n }, () => cscd(a));
  const ss = (n: number) => Array.from({ length: n }, () => b2b(0, 0, 16, 0, 100));
  expectSense(await xcopy(luns, 0, paramList(cs(t + 1), ss(1))), 0x05, 0x26, 0x06);
  expectSense(await xcopy(luns, 0, paramList(cs(1), ss(s + 1))), 0x05, 0x26, 0x08);
  expectSense(await xcopy(luns, 0, paramList(cs(t + 1), ss(s + 1))), 0x05, 0x1a, 0x00);
  expectGood(await xcopy(luns, 0, paramList(cs(t), ss(s))));
  // Unsupported descriptor type codes: Fibre Channel N_Port_Name CSCD, stream-to-stream segment.
  expectSense(await xcopy(luns, 0, paramList([cscd(a, { type: 0xe0 })], ss(1))), 0x05, 0x26, 0x07);
  const s2s = Buffer.alloc(20);
  s2s[0] = 0x03;
  s2s.writeUInt16BE(16, 2);
  expectSense(await xcopy(luns, 0, paramList([cscd(a)], [s2s])), 0x05, 0x26, 0x09);
  // Reserved LIST ID USAGE; inline data (MAXIMUM INLINE DATA LENGTH is 0).
  expectSense(await xcopy(luns, 0, paramList([cscd(a)], ss(1), { usage: 1 })), 0x05, 0x26, 0x00);
  const inline = Buffer.concat([paramList([cscd(a)], ss(1)), Buffer.alloc(8)]);
  inline.writeUInt32BE(8, 12);
  expectSense(await xcopy(luns, 0, inline), 0x05, 0x26, 0x00);
});

test('EXTENDED COPY: obsolete LU ID TYPE / NUL ignored; bad CSCD index, unknown designator, beyond the end: COPY ABORTED', async () => {
  const { a, b, luns } = await twoUnits();
  expectGood(await xcopy(luns, 0, paramList([cscd(a, { byte1: 0xc0 })], [b2b(0, 0, 16, 0, 100)])));
  expectGood(await xcopy(luns, 0, paramList([cscd(a, { byte1: 0x20 })], [b2b(0, 0, 16, 0, 100)])));
  expectSense(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 1, 16, 0, 100)])), 0x0a, 0x0d, 0x02);
  const stranger = cscd(a);
  stranger[20] ^= 0xff;
  expectSense(await xcopy(luns, 0, paramList([stranger], [b2b(0, 0, 16, 0, 100)])), 0x0a, 0x0d, 0x02);
  expectSense(await xcopy(luns, 0, paramList([cscd(a, { byte1: 0x05 })], [b2b(0, 0, 16, 0, 100)])), 0x0a, 0x0d, 0x02);
  const writes = (b.backstore as TestStore).writes + (a.backstore as TestStore).writes;
  expectSense(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 2048, 0, BLOCKS - 1)])), 0x0a, 0x00, 0x00);
  expectSense(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 2, BLOCKS - 1, 0)])), 0x0a, 0x00, 0x00);
  expectSense(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 2, 2n ** 64n - 1n, 0)])), 0x0a, 0x00, 0x00);
  // A later bad segment stops the copy before any block moves.
  const mixed = paramList([cscd(a), cscd(b)], [b2b(0, 1, 16, 0, 0), b2b(0, 1, 16, 0, BLOCKS)]);
  expectSense(await xcopy(luns, 0, mixed), 0x0a, 0x00, 0x00);
  assert.equal((b.backstore as TestStore).writes + (a.backstore as TestStore).writes, writes, 'nothing written');
});

test('EXTENDED COPY: a unit outside the LUN map is unreachable whoever addressed it; write protected destinations get DATA PROTECT', async () => {
  const { a, b, luns } = await twoUnits({ readonlyB: true });
  // The same initiator (same nexus even) has used b through a session whose map has it;
  // through a session whose map holds only a, b's designator reaches nothing, either way.
  await exec(luns, 1, [0x00]);
  const onlyA = new Map([[0, a]]) as ReadonlyMap<number, LogicalUnit>;
  const list = paramList([cscd(a), cscd(b)], [b2b(1, 0, 16, 0, 0)]);
  expectSense(await xcopy(onlyA, 0, list), 0x0a, 0x0d, 0x02);
  expectSense(await xcopy(onlyA, 0, paramList([cscd(a), cscd(b)], [b2b(0, 1, 16, 0, 0)])), 0x0a, 0x0d, 0x02);
  const other: ItNexus = { ...nexus(7), id: 'iqn.2026-01.test:other,i,0x400001370007', initiatorName: 'iqn.2026-01.test:other' };
  await exec(onlyA, 0, [0x00], { nexus: other });
  expectSense(await xcopy(onlyA, 0, list, { nexus: other }), 0x0a, 0x0d, 0x02);
  expectGood(await xcopy(luns, 0, list)); // from the read-only unit is fine
  expectSense(await xcopy(luns, 0, paramList([cscd(a), cscd(b)], [b2b(0, 1, 16, 0, 0)])), 0x07, 0x27, 0x00);
  expectSense(await xcopy(luns, 1, list), 0x07, 0x27, 0x00); // sent to the read-only unit: a write
  // SWP on the destination.
  const { a: a2, b: b2, luns: l2 } = await twoUnits();
  b2.setModeValues({ ...b2.modeValues, swp: true }, nexus(9));
  const r = await xcopy(l2, 0, paramList([cscd(a2), cscd(b2)], [b2b(0, 1, 16, 0, 0)]));
  expectSense(r, 0x07, 0x27, 0x02);
});

test('RECEIVE COPY RESULTS: COPY STATUS, RECEIVE DATA and FAILED SEGMENT DETAILS for held list identifiers', async () => {
  const { a, luns } = await twoUnits();
  // Nothing held: INVALID FIELD IN CDB (libiscsi CopyStatus, "no copy in progress").
  for (const sa of [0x00, 0x01, 0x04]) expectSense(await exec(luns, 0, rcrCdb(sa, 1)), 0x05, 0x24, 0x00);
  // LIST ID USAGE 10b (discard) holds nothing.
  expectGood(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 16, 0, 100)], { usage: 2 })));
  expectSense(await exec(luns, 0, rcrCdb(0x00, 1)), 0x05, 0x24, 0x00);
  // 00b holds the results for this I_T nexus only.
  expectGood(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 16, 0, 100), b2b(0, 0, 8, 0, 200)], { usage: 0 })));
  expectSense(await exec(luns, 0, rcrCdb(0x00, 1), { nexus: nexus(2) }), 0x06, 0x29, 0x00); // its power-on UA first
  expectSense(await exec(luns, 0, rcrCdb(0x00, 1), { nexus: nexus(2) }), 0x05, 0x24, 0x00);
  const rd = await exec(luns, 0, rcrCdb(0x01, 1));
  expectGood(rd);
  assert.deepEqual([...rd.data!], [0, 0, 0, 0]);
  const st = await exec(luns, 0, rcrCdb(0x00, 1));
  expectGood(st);
  const d = st.data!;
  assert.equal(d.readUInt32BE(0), 8);
  assert.equal(d[4] & 0x7f, 0x01, 'completed without errors');
  assert.equal(d.readUInt16BE(5), 2, 'segments processed');
  assert.equal(d[7], 0x00);
  assert.equal(d.readUInt32BE(8), 24 * 512, 'bytes transferred');
  // A finished copy's status is returned once.
  expectSense(await exec(luns, 0, rcrCdb(0x00, 1)), 0x05, 0x24, 0x00);
  // A failed copy: COPY STATUS says so, FAILED SEGMENT DETAILS carries the sense data.
  const bad = paramList([cscd(a)], [b2b(0, 0, 16, 0, 0)], { listId: 9, usage: 0 });
  (a.backstore as TestStore).failWrite = 'EIO';
  expectSense(await xcopy(luns, 0, bad), 0x0a, 0x0c, 0x00); // the write error, as COPY ABORTED
  (a.backstore as TestStore).failWrite = null;
  const st2 = (await exec(luns, 0, rcrCdb(0x00, 9))).data!;
  assert.equal(st2[4] & 0x7f, 0x02);
  assert.equal(st2.readUInt16BE(5), 0);
  const fsd = await exec(luns, 0, rcrCdb(0x04, 9));
  expectGood(fsd);
  assert.equal(fsd.data![56], ScsiStatus.CheckCondition);
  const sense = fsd.data!.subarray(60, 60 + fsd.data!.readUInt16BE(58));
  assert.deepEqual(parseSense(sense), { key: 0x0a, asc: 0x0c, ascq: 0x00, descriptor: false });
  expectSense(await exec(luns, 0, rcrCdb(0x04, 9)), 0x05, 0x24, 0x00);
  // Unknown service action.
  expectSense(await exec(luns, 0, rcrCdb(0x02, 1)), 0x05, 0x24, 0x00);
  // The I_T nexus going away drops what it held.
  expectGood(await xcopy(luns, 0, paramList([cscd(a)], [b2b(0, 0, 1, 0, 100)], { listId: 3, usage: 0 })));
  a.nexusLost(task([0]).nexus);
  await exec(luns, 0, [0x00]);
  expectSense(await exec(luns, 0, rcrCdb(0x00, 3)), 0x05, 0x24, 0x00);
});

test('EXTENDED COPY writes under the destination range lock and waits for an exclusive hold (COMPARE AND WRITE)', async () => {
  const { a, b, luns } = await twoUnits();
  const release = await b.writeLock.acquire(100, 8, true);
  let done = false;
  const p = xcopy(luns, 0, paramList([cscd(a), cscd(b)], [b2b(0, 1, 16, 0, 96)])).then((r) => {
    done = true;
    return r;
  });
  await sleep(20);
  assert.equal(done, false, 'the copy waits for the exclusive hold');
  release();
  expectGood(await p);
  assert.equal(b.writeLock.size, 0);
});

test('REPORT SUPPORTED OPERATION CODES lists EXTENDED COPY and RECEIVE COPY RESULTS; persistent reservations treat EXTENDED COPY as a write', async () => {
  const { luns } = await twoUnits();
  for (const [op, sa] of [
    [0x83, 0x00],
    [0x84, 0x00],
    [0x84, 0x01],
    [0x84, 0x03],
    [0x84, 0x04],
  ]) {
    const r = await exec(luns, 0, [0xa3, 0x0c, 0x02, op, 0, sa, 0, 0, 0, 0xff, 0, 0]);
    expectGood(r);
    assert.equal(r.data![1] & 7, 3, `0x${op.toString(16)}/${sa}`);
    assert.equal(r.data!.readUInt16BE(2), 16);
    assert.equal(r.data![4], op);
  }
  expectSense(await exec(luns, 0, [0x83, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0x05, 0x24, 0x00);
  const { COMMANDS } = await import('../../src/scsi/commands');
  assert.equal(COMMANDS.find((c) => c.opcode === 0x83)!.writesMedium, true);
});

test('EXTENDED COPY meets a reservation held by another I_T nexus on its source (as a READ would) and its destination (as a write)', async () => {
  const { a, b, luns } = await twoUnits();
  const holder = nexus(5);
  await exec(luns, 1, [0x00], { nexus: holder }); // the holder's power-on unit attention
  await writeBlocks(luns, 1, 0, pattern(8192, 3));
  const fromB = paramList([cscd(a), cscd(b)], [b2b(1, 0, 16, 0, 0)]);
  const toB = paramList([cscd(a), cscd(b)], [b2b(0, 1, 16, 0, 64)]);
  // SPC-2 RESERVE on b by another nexus: neither a READ nor a write of b gets through.
  expectGood(await exec(luns, 1, [0x16, 0, 0, 0, 0, 0], { nexus: holder }));
  assert.equal((await exec(luns, 1, CDB.read16(0, 16))).status, ScsiStatus.ReservationConflict);
  expectSense(await xcopy(luns, 0, fromB), 0x0a, 0x0d, 0x02);
  expectSense(await xcopy(luns, 0, toB), 0x0a, 0x0d, 0x02);
  expectGood(await exec(luns, 1, [0x17, 0, 0, 0, 0, 0], { nexus: holder }));
  // A persistent reservation, Exclusive Access, held by another nexus on b: reads conflict too.
  const pr = (sa: number, type: number, key: bigint, sark: bigint) =>
    exec(luns, 1, [0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0], { nexus: holder, dataOut: prOutParams(key, sark) });
  expectGood(await pr(0x00, 0, 0n, 0x77n)); // REGISTER
  expectGood(await pr(0x01, 0x03, 0x77n, 0n)); // RESERVE, Exclusive Access
  assert.equal((await exec(luns, 1, CDB.read16(0, 16))).status, ScsiStatus.ReservationConflict);
  expectSense(await xcopy(luns, 0, fromB), 0x0a, 0x0d, 0x02);
  expectSense(await xcopy(luns, 0, toB), 0x0a, 0x0d, 0x02);
  // Write Exclusive: reading b is allowed, so copying from it is too; writing it is not.
  expectGood(await pr(0x02, 0x03, 0x77n, 0n)); // RELEASE
  expectGood(await pr(0x01, 0x01, 0x77n, 0n)); // RESERVE, Write Exclusive
  expectGood(await xcopy(luns, 0, fromB));
  expectSense(await xcopy(luns, 0, toB), 0x0a, 0x0d, 0x02);
});
