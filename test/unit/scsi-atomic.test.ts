// WRITE ATOMIC(16) through executeScsi: VPD 0xB0 atomic limits, the checks libiscsi's
// WriteAtomic16 suite makes, and atomicity: overlapping reads and writes from any session
// see all of it or none of it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScsiStatus } from '../../src/scsi/task';
import { CDB, expectGood, expectSense, nexus, pattern, run, setup, sleep } from '../helpers/scsi';

test('VPD 0xB0: MAXIMUM ATOMIC TRANSFER LENGTH within MAXIMUM TRANSFER LENGTH, no alignment or granularity', async () => {
  for (const blockSize of [512, 4096] as const) {
    const { luns, lu } = await setup({ blockSize, blocks: 256 });
    const bl = (await run(luns, [0x12, 1, 0xb0, 0, 64, 0])).data!;
    const maxAtomic = bl.readUInt32BE(44);
    assert.ok(maxAtomic >= 256 && maxAtomic <= bl.readUInt32BE(8), `max atomic ${maxAtomic}`);
    assert.equal(maxAtomic, Math.min(lu.maxTransferBlocks, 0xffff));
    assert.equal(bl.readUInt32BE(48), 0);
    assert.equal(bl.readUInt32BE(52), 0);
  }
});

test('WRITE ATOMIC(16) writes 1..256 blocks at the start and the end; DPO/FUA accepted, FUA flushes', async () => {
  const { luns, bs, blocks, store } = await setup();
  const data = pattern(256 * bs, 4);
  for (const n of [1, 2, 7, 128, 256]) {
    const r = await run(luns, CDB.writeAtomic16(0, n), { dataOut: data.subarray(0, n * bs) });
    expectGood(r);
    assert.equal(r.dataOutLength, n * bs);
    expectGood(await run(luns, CDB.writeAtomic16(blocks - n, n), { dataOut: data.subarray(0, n * bs) }));
  }
  assert.deepEqual((await run(luns, CDB.read16(blocks - 256, 256))).data, data);
  const flushes = store.flushes;
  expectGood(await run(luns, CDB.writeAtomic16(0, 1, 0x10), { dataOut: data.subarray(0, bs) })); // DPO
  assert.equal(store.flushes, flushes);
  expectGood(await run(luns, CDB.writeAtomic16(0, 1, 0x18), { dataOut: data.subarray(0, bs) })); // DPO + FUA
  assert.equal(store.flushes, flushes + 1);
  // REPORT SUPPORTED OPERATION CODES: DPO and FUA in the CDB usage data (DPOFUA = 1).
  const rsoc = await run(luns, [0xa3, 0x0c, 0x01, 0x9c, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
  assert.equal(rsoc.data![1] & 7, 3);
  assert.equal(rsoc.data![5] & 0x18, 0x18);
});

test('WRITE ATOMIC(16): 0 blocks, beyond the end, too long, ATOMIC BOUNDARY, WRPROTECT, short Data-Out', async () => {
  const { luns, bs, blocks, lu, store } = await setup();
  expectGood(await run(luns, CDB.writeAtomic16(0, 0), { expected: 0 }));
  expectGood(await run(luns, CDB.writeAtomic16(blocks, 0), { expected: 0 }));
  for (const lba of [blocks + 1, 2n ** 63n, 2n ** 64n - 1n]) {
    expectSense(await run(luns, CDB.writeAtomic16(lba, 0), { expected: 0 }), 0x05, 0x21, 0x00);
    expectSense(await run(luns, CDB.writeAtomic16(lba, 1), { dataOut: Buffer.alloc(bs) }), 0x05, 0x21, 0x00);
  }
  expectSense(await run(luns, CDB.writeAtomic16(blocks - 1, 2), { dataOut: Buffer.alloc(2 * bs) }), 0x05, 0x21, 0x00);
  const writes = store.writes;
  const { luns: big, lu: bigLu } = await setup({ blocks: 70000 });
  const tooLong = Math.min(bigLu.maxTransferBlocks, 0xffff) + 1;
  expectSense(await run(big, CDB.writeAtomic16(0, tooLong), { expected: tooLong * bs }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, CDB.writeAtomic16(0, 1, 0, 1), { dataOut: Buffer.alloc(bs) }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, CDB.writeAtomic16(0, 1, 0x20), { dataOut: Buffer.alloc(bs) }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, CDB.writeAtomic16(0, 2), { dataOut: Buffer.alloc(bs) }), 0x05, 0x24, 0x00);
  assert.equal(store.writes, writes, 'nothing written');
  // Software write protect and read-only volumes.
  lu.setModeValues({ ...lu.modeValues, swp: true }, nexus(1));
  expectSense(await run(luns, CDB.writeAtomic16(0, 1), { dataOut: Buffer.alloc(bs) }), 0x07, 0x27, 0x02);
  const ro = await setup({ readonly: true });
  expectSense(await run(ro.luns, CDB.writeAtomic16(0, 1), { dataOut: Buffer.alloc(bs) }), 0x07, 0x27, 0x00);
});

test('WRITE ATOMIC(16) is atomic: an overlapping READ from another session sees all new or all old data', async () => {
  const { luns, bs, store } = await setup();
  await run(luns, [0x00], { nexus: nexus(2) }); // the second session's power-on unit attention
  const old = Buffer.alloc(64 * bs, 0x01);
  expectGood(await run(luns, CDB.write16(0, 64), { dataOut: old }));
  store.delayWrite = 40;
  const fresh = Buffer.alloc(64 * bs, 0x02);
  const atomic = run(luns, CDB.writeAtomic16(0, 64), { dataOut: fresh });
  await sleep(5); // the atomic write is in the store now
  store.delayWrite = 0;
  const read = run(luns, CDB.read16(32, 32), { nexus: nexus(2) });
  const other = run(luns, CDB.read16(100, 1)); // a read elsewhere does not wait
  const first = await Promise.race([read.then(() => 'read'), other.then(() => 'other')]);
  assert.equal(first, 'other');
  expectGood(await atomic);
  const r = await read;
  assert.equal(r.status, ScsiStatus.Good);
  assert.deepEqual(r.data, fresh.subarray(32 * bs));
  // An overlapping plain WRITE issued during the atomic one lands after it.
  store.delayWrite = 30;
  const atomic2 = run(luns, CDB.writeAtomic16(0, 8), { dataOut: Buffer.alloc(8 * bs, 0x03) });
  await sleep(5);
  store.delayWrite = 0;
  const plain = run(luns, CDB.write16(4, 1), { dataOut: Buffer.alloc(bs, 0x04), nexus: nexus(2) });
  expectGood(await atomic2);
  expectGood(await plain);
  const back = (await run(luns, CDB.read16(0, 8))).data!;
  assert.ok(back.subarray(4 * bs, 5 * bs).every((b) => b === 0x04));
  assert.ok(back.subarray(0, 4 * bs).every((b) => b === 0x03));
});
