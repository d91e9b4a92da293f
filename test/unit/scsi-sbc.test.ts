// SBC-3 handlers fed CDBs byte by byte through executeScsi, with MemoryBackstore LUs
// (and wrappers that count flushes, delay or fail I/O), through the shared test harness.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../src/backstore/memory';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { be16, be32, be64, CDB, expectGood, expectSense, NEXUS, pattern, run, setup, sleep } from '../helpers/scsi';

// ---- READ CAPACITY

test('READ CAPACITY(10) and (16)', async () => {
  const { luns } = await setup({ blocks: 1000, blockSize: 4096 });
  const r10 = await run(luns, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  expectGood(r10);
  assert.equal(r10.data!.readUInt32BE(0), 999);
  assert.equal(r10.data!.readUInt32BE(4), 4096);
  expectSense(await run(luns, [0x25, 0, 0, 0, 0, 1, 0, 0, 0, 0]), 0x05, 0x24, 0x00); // LBA without PMI
  const r16 = await run(luns, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, ...be32(32), 0, 0]);
  expectGood(r16);
  assert.equal(r16.data!.length, 32);
  assert.equal(Number(r16.data!.readBigUInt64BE(0)), 999);
  assert.equal(r16.data!.readUInt32BE(8), 4096);
  assert.equal(r16.data![12], 0); // no protection
  assert.equal(r16.data![13], 0); // LBPPBE 0
  assert.equal(r16.data![14] & 0xc0, 0xc0); // LBPME / LBPRZ: thin, unmapped blocks read as zeros
  for (let alloc = 0; alloc < 16; alloc++) {
    const r = await run(luns, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, ...be32(alloc), 0, 0]);
    expectGood(r);
    assert.equal(r.data!.length, alloc);
  }
});

test('READ CAPACITY(10) reports 0xFFFFFFFF when the last LBA does not fit', async () => {
  const big = new MemoryBackstore(512);
  Object.defineProperty(big, 'size', { get: () => 2 ** 33 * 512 });
  const lu = new LogicalUnit({ name: 'big', backstore: big, blockSize: 512, readonly: false });
  const luns = new Map([[0, lu]]);
  await run(luns, [0x00]);
  const r = await run(luns, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(r.data!.readUInt32BE(0), 0xffffffff);
  const r16 = await run(luns, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, ...be32(32), 0, 0]);
  assert.equal(r16.data!.readBigUInt64BE(0), 2n ** 33n - 1n);
});

// ---- READ / WRITE round trips

test('write-then-read round trips for every READ/WRITE size', async () => {
  const { luns, bs } = await setup();
  const sizes: [keyof typeof CDB, keyof typeof CDB, number][] = [
    ['write6', 'read6', 0],
    ['write10', 'read10', 1],
    ['write12', 'read12', 2],
    ['write16', 'read16', 3],
  ];
  for (const [w, r, seed] of sizes) {
    const lba = 100 + seed * 50;
    const data = pattern(7 * bs, seed);
    const wr = await run(luns, CDB[w](lba, 7), { dataOut: data });
    expectGood(wr);
    assert.equal(wr.dataOutLength, 7 * bs);
    const rd = await run(luns, CDB[r](lba, 7));
    expectGood(rd);
    assert.deepEqual(rd.data, data, `${w} -> ${r}`);
    // Cross check with READ(16).
    assert.deepEqual((await run(luns, CDB.read16(lba, 7))).data, data);
  }
});

test('READ(6)/WRITE(6) transfer length 0 means 256 blocks; others 0 means nothing', async () => {
  const { luns, bs, store } = await setup();
  const data = pattern(256 * bs, 9);
  expectGood(await run(luns, CDB.write6(0, 0), { dataOut: data }));
  const rd = await run(luns, CDB.read6(0, 0));
  assert.equal(rd.data!.length, 256 * bs);
  assert.deepEqual(rd.data, data);
  const writes = store.writes;
  for (const cdb of [CDB.read10(0, 0), CDB.read12(0, 0), CDB.read16(0, 0)]) {
    const r = await run(luns, cdb);
    expectGood(r);
    assert.equal(r.data!.length, 0);
  }
  for (const cdb of [CDB.write10(0, 0), CDB.write12(0, 0), CDB.write16(0, 0)]) {
    const r = await run(luns, cdb, { expected: 0 });
    expectGood(r);
    assert.equal(r.dataOutLength, 0);
  }
  assert.equal(store.writes, writes);
});

test('4096-byte blocks', async () => {
  const { luns } = await setup({ blockSize: 4096, blocks: 64 });
  const data = pattern(3 * 4096, 4);
  expectGood(await run(luns, CDB.write10(60, 3), { dataOut: data }));
  assert.deepEqual((await run(luns, CDB.read10(60, 3))).data, data);
  expectSense(await run(luns, CDB.read10(62, 3)), 0x05, 0x21, 0x00);
});

// ---- LBA range checks

test('out-of-range LBAs -> LOGICAL BLOCK ADDRESS OUT OF RANGE (64-bit safe)', async () => {
  const { luns, blocks, bs } = await setup();
  const one = Buffer.alloc(bs);
  // Last block is fine, one past is not.
  expectGood(await run(luns, CDB.read10(blocks - 1, 1)));
  expectSense(await run(luns, CDB.read10(blocks, 1)), 0x05, 0x21, 0x00);
  expectSense(await run(luns, CDB.read10(blocks - 1, 2)), 0x05, 0x21, 0x00);
  expectSense(await run(luns, CDB.write10(blocks, 1), { dataOut: one }), 0x05, 0x21, 0x00);
  expectSense(await run(luns, CDB.read12(0xffffffff, 1)), 0x05, 0x21, 0x00);
  expectSense(await run(luns, CDB.read6(blocks, 1)), 0x05, 0x21, 0x00);
  // 0 blocks: at the capacity is fine, beyond it is not.
  expectGood(await run(luns, CDB.read10(blocks, 0)));
  expectSense(await run(luns, CDB.read10(blocks + 1, 0)), 0x05, 0x21, 0x00);
  expectSense(await run(luns, CDB.read10(0xffffffff, 0)), 0x05, 0x21, 0x00);
  // 64-bit LBAs that would wrap around in 32 or 64 bits.
  for (const lba of [2n ** 63n, 2n ** 64n - 1n, 2n ** 55n, 2n ** 53n - 1n, BigInt(blocks) - 1n + 2n ** 32n]) {
    expectSense(await run(luns, CDB.read16(lba, 1)), 0x05, 0x21, 0x00);
    expectSense(await run(luns, CDB.write16(lba, 1), { dataOut: one }), 0x05, 0x21, 0x00);
  }
  expectSense(await run(luns, CDB.read16(1, 0xffffffff)), 0x05, 0x21, 0x00);
});

test('RDPROTECT/WRPROTECT non-zero -> INVALID FIELD IN CDB; DPO/FUA accepted', async () => {
  const { luns, bs } = await setup();
  for (let p = 1; p < 8; p++) {
    expectSense(await run(luns, CDB.read10(0, 1, p << 5)), 0x05, 0x24, 0x00);
    expectSense(await run(luns, CDB.write16(0, 1, p << 5), { dataOut: Buffer.alloc(bs) }), 0x05, 0x24, 0x00);
  }
  expectGood(await run(luns, CDB.read10(0, 1, 0x18)));
  expectGood(await run(luns, CDB.write12(0, 1, 0x18), { dataOut: Buffer.alloc(bs) }));
});

test('a transfer longer than MAXIMUM TRANSFER LENGTH -> INVALID FIELD IN CDB', async () => {
  const big = new MemoryBackstore(512);
  Object.defineProperty(big, 'size', { get: () => 2 ** 40 });
  const lu = new LogicalUnit({ name: 'big', backstore: big, blockSize: 512, readonly: false });
  const luns = new Map([[0, lu]]);
  await run(luns, [0x00]);
  expectSense(await run(luns, CDB.read16(0, lu.maxTransferBlocks + 1)), 0x05, 0x24, 0x00);
  expectSense(await run(luns, CDB.read12(0, 2 ** 30)), 0x05, 0x24, 0x00);
  expectSense(await run(luns, CDB.read12(0, 0xffffffff)), 0x05, 0x21, 0x00); // range is checked first
});

// ---- residuals: CDB length vs expected data transfer length

test('READ: data is the CDB length even when the initiator expects less or more', async () => {
  const { luns, bs } = await setup();
  const data = pattern(2 * bs, 5);
  expectGood(await run(luns, CDB.write10(10, 2), { dataOut: data }));
  const less = await run(luns, CDB.read10(10, 2), { expected: bs });
  expectGood(less);
  assert.equal(less.data!.length, 2 * bs);
  assert.deepEqual(less.data!.subarray(0, bs), data.subarray(0, bs));
  const more = await run(luns, CDB.read10(10, 1), { expected: 10000 });
  assert.equal(more.data!.length, bs);
  const none = await run(luns, CDB.read10(10, 1), { expected: 0 });
  expectGood(none);
  assert.equal(none.data!.length, bs);
});

test('WRITE: only whole blocks the initiator sent are written; dataOutLength is the CDB length', async () => {
  const { luns, bs } = await setup();
  const a = Buffer.alloc(2 * bs, 'a');
  expectGood(await run(luns, CDB.write10(20, 2), { dataOut: a }));
  // TL 1 block, 2 blocks sent: one block written.
  const r1 = await run(luns, CDB.write10(20, 1), { dataOut: Buffer.alloc(2 * bs, 'b') });
  expectGood(r1);
  assert.equal(r1.dataOutLength, bs);
  let rd = (await run(luns, CDB.read10(20, 2))).data!;
  assert.equal(rd.subarray(0, bs).toString(), 'b'.repeat(bs));
  assert.equal(rd.subarray(bs).toString(), 'a'.repeat(bs));
  // TL 2 blocks, 1 block sent: one block written, dataOutLength says 2.
  const r2 = await run(luns, CDB.write10(20, 2), { dataOut: Buffer.alloc(bs, 'c') });
  expectGood(r2);
  assert.equal(r2.dataOutLength, 2 * bs);
  rd = (await run(luns, CDB.read10(20, 2))).data!;
  assert.equal(rd.subarray(0, bs).toString(), 'c'.repeat(bs));
  assert.equal(rd.subarray(bs).toString(), 'a'.repeat(bs));
  // Nothing sent at all (expected length 0): GOOD, nothing written.
  const r3 = await run(luns, CDB.write10(20, 1), { expected: 0, dataOut: null });
  expectGood(r3);
  assert.equal(r3.dataOutLength, bs);
  // A partial block (200 bytes): not written.
  expectGood(await run(luns, CDB.write10(20, 1), { dataOut: Buffer.alloc(200, 'd') }));
  rd = (await run(luns, CDB.read10(20, 1))).data!;
  assert.equal(rd.toString(), 'c'.repeat(bs));
});

// ---- FUA, WCE and SYNCHRONIZE CACHE

test('FUA flushes before GOOD; plain writes do not (WCE = 1)', async () => {
  const { luns, store, bs } = await setup();
  const one = Buffer.alloc(bs, 1);
  expectGood(await run(luns, CDB.write10(0, 1), { dataOut: one }));
  assert.equal(store.flushes, 0);
  expectGood(await run(luns, CDB.write10(0, 1, 0x08), { dataOut: one }));
  assert.equal(store.flushes, 1);
  assert.deepEqual(store.log.slice(-2), ['write 0', 'flush']);
  expectGood(await run(luns, CDB.write12(0, 1, 0x08), { dataOut: one }));
  expectGood(await run(luns, CDB.write16(0, 1, 0x08), { dataOut: one }));
  assert.equal(store.flushes, 3);
});

test('with WCE = 0 every write is flushed', async () => {
  const { luns, store, bs, lu } = await setup();
  lu.setModeValues({ ...lu.modeValues, wce: false }, NEXUS);
  expectGood(await run(luns, CDB.write10(0, 1), { dataOut: Buffer.alloc(bs) }));
  expectGood(await run(luns, CDB.write6(1, 1), { dataOut: Buffer.alloc(bs) }));
  assert.equal(store.flushes, 2);
});

test('SYNCHRONIZE CACHE(10)/(16) flush, with a range check', async () => {
  const { luns, store, blocks } = await setup();
  expectGood(await run(luns, [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
  expectGood(await run(luns, [0x91, 0, ...be64(10n), ...be32(10), 0, 0]));
  assert.equal(store.flushes, 2);
  expectSense(await run(luns, [0x35, 0, ...be32(blocks - 1), 0, ...be16(2), 0]), 0x05, 0x21, 0x00);
  expectSense(await run(luns, [0x91, 0, ...be64(BigInt(blocks) + 1n), 0, 0, 0, 0, 0, 0]), 0x05, 0x21, 0x00);
  store.failFlush = 'EIO';
  expectSense(await run(luns, [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]), 0x03, 0x0c, 0x00);
});

// ---- read-only LUs

test('a read-only LU refuses every medium write with DATA PROTECT / WRITE PROTECTED', async () => {
  const { luns, bs, store } = await setup({ readonly: true });
  const one = Buffer.alloc(bs);
  const writes = [
    [CDB.write6(0, 1), one],
    [CDB.write10(0, 1), one],
    [CDB.write12(0, 1), one],
    [CDB.write16(0, 1), one],
    [[0x2e, 0, 0, 0, 0, 0, 0, 0, 1, 0], one], // WRITE AND VERIFY(10)
    [[0x41, 0, 0, 0, 0, 0, 0, 0, 1, 0], one], // WRITE SAME(10)
    [[0x41, 0x08, 0, 0, 0, 0, 0, 0, 1, 0], one], // WRITE SAME(10) with UNMAP
    [[0x93, 0, ...be64(0n), ...be32(1), 0, 0], one], // WRITE SAME(16)
    [[0x8b, 0, ...be64(0n), ...be32(1), 0, 0], one], // ORWRITE
    [[0x89, 0, ...be64(0n), 0, 0, 0, 1, 0, 0], Buffer.alloc(2 * bs)], // COMPARE AND WRITE
  ] as const;
  for (const [cdb, data] of writes) {
    expectSense(await run(luns, [...cdb], { dataOut: data }), 0x07, 0x27, 0x00);
  }
  assert.equal(store.writes, 0);
  expectGood(await run(luns, CDB.read10(0, 1)));
  // WP bit in MODE SENSE.
  const ms = (await run(luns, [0x1a, 0x08, 0x3f, 0, 255, 0])).data!;
  assert.equal(ms[2] & 0x80, 0x80);
});

// ---- backstore errors

test('EIO on read -> MEDIUM ERROR / UNRECOVERED READ ERROR; on write -> WRITE ERROR', async () => {
  const { luns, store, bs } = await setup();
  store.failRead = 'EIO';
  expectSense(await run(luns, CDB.read10(5, 1)), 0x03, 0x11, 0x00);
  expectSense(await run(luns, [0x2f, 0, ...be32(5), 0, 0, 1, 0]), 0x03, 0x11, 0x00); // VERIFY BYTCHK 0
  store.failRead = null;
  store.failWrite = 'EIO';
  expectSense(await run(luns, CDB.write10(5, 1), { dataOut: Buffer.alloc(bs) }), 0x03, 0x0c, 0x00);
  // The LU keeps serving.
  store.failWrite = null;
  expectGood(await run(luns, CDB.write10(5, 1), { dataOut: Buffer.alloc(bs) }));
});

test('ENOSPC -> DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT; others -> HARDWARE ERROR', async () => {
  const { luns, store, bs } = await setup();
  store.failWrite = 'ENOSPC';
  expectSense(await run(luns, CDB.write16(5, 1), { dataOut: Buffer.alloc(bs) }), 0x07, 0x27, 0x07);
  store.failWrite = 'EBADF';
  expectSense(await run(luns, CDB.write16(5, 1), { dataOut: Buffer.alloc(bs) }), 0x04, 0x44, 0x00);
  store.failWrite = 'EROFS';
  expectSense(await run(luns, CDB.write16(5, 1), { dataOut: Buffer.alloc(bs) }), 0x07, 0x27, 0x00);
});

// ---- VERIFY

test('VERIFY: BYTCHK 0 range check, BYTCHK 1 compare with MISCOMPARE offset', async () => {
  const { luns, bs, blocks } = await setup();
  const data = pattern(4 * bs, 3);
  expectGood(await run(luns, CDB.write10(40, 4), { dataOut: data }));
  expectGood(await run(luns, [0x2f, 0, ...be32(40), 0, 0, 4, 0]));
  const ok = await run(luns, [0x2f, 0x02, ...be32(40), 0, 0, 4, 0], { dataOut: data });
  expectGood(ok);
  assert.equal(ok.dataOutLength, 4 * bs);
  const bad = Buffer.from(data);
  bad[3 * bs + 17] ^= 0xff;
  const r = await run(luns, [0x2f, 0x02, ...be32(40), 0, 0, 4, 0], { dataOut: bad });
  expectSense(r, 0x0e, 0x1d, 0x00);
  assert.equal(r.sense![0] & 0x80, 0x80); // VALID
  assert.equal(r.sense!.readUInt32BE(3), 3 * bs + 17);
  // VERIFY(12) and (16) too; VRPROTECT refused; beyond the end refused.
  expectGood(await run(luns, [0xaf, 0x02, ...be32(40), ...be32(4), 0, 0], { dataOut: data }));
  expectSense(await run(luns, [0x8f, 0x02, ...be64(40n), ...be32(4), 0, 0], { dataOut: bad }), 0x0e, 0x1d, 0x00);
  expectSense(await run(luns, [0x2f, 0x22, ...be32(40), 0, 0, 1, 0], { dataOut: data.subarray(0, bs) }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, [0x2f, 0, ...be32(blocks), 0, 0, 1, 0]), 0x05, 0x21, 0x00);
  // BYTCHK 11b: one block compared with every block.
  const same = Buffer.alloc(bs, 0x5a);
  expectGood(await run(luns, [0x93, 0, ...be64(60n), ...be32(3), 0, 0], { dataOut: same }));
  const r3 = await run(luns, [0x2f, 0x06, ...be32(60), 0, 0, 3, 0], { dataOut: same });
  expectGood(r3);
  assert.equal(r3.dataOutLength, bs);
});

test('WRITE AND VERIFY writes, flushes and reads back', async () => {
  const { luns, store, bs } = await setup();
  const data = pattern(2 * bs, 8);
  const r = await run(luns, [0x2e, 0x02, ...be32(70), 0, 0, 2, 0], { dataOut: data });
  expectGood(r);
  assert.equal(r.dataOutLength, 2 * bs);
  assert.equal(store.flushes, 1);
  assert.deepEqual((await run(luns, CDB.read10(70, 2))).data, data);
  expectGood(await run(luns, [0xae, 0, ...be32(70), ...be32(2), 0, 0], { dataOut: data }));
  expectGood(await run(luns, [0x8e, 0, ...be64(70n), ...be32(2), 0, 0], { dataOut: data }));
});

// ---- WRITE SAME

test('WRITE SAME(10)/(16) repeat one block; NDOB writes zeros; 0 blocks means to the end; ANCHOR refused', async () => {
  const { luns, bs, blocks } = await setup();
  const block = pattern(bs, 11);
  const r = await run(luns, [0x41, 0, ...be32(200), 0, ...be16(300), 0], { dataOut: block });
  expectGood(r);
  assert.equal(r.dataOutLength, bs);
  const rd = (await run(luns, CDB.read10(200, 300))).data!;
  for (let i = 0; i < 300; i++) assert.deepEqual(rd.subarray(i * bs, (i + 1) * bs), block);
  // WRITE SAME(16) with NDOB: zeros.
  expectGood(await run(luns, [0x93, 0x01, ...be64(200n), ...be32(10), 0, 0], { expected: 0 }));
  assert.ok((await run(luns, CDB.read10(200, 10))).data!.every((b) => b === 0));
  assert.deepEqual((await run(luns, CDB.read10(210, 1))).data, block);
  // ANCHOR (ANC_SUP = 0), with or without UNMAP: INVALID FIELD IN CDB.
  expectSense(await run(luns, [0x41, 0x10, ...be32(0), 0, 0, 1, 0], { dataOut: block }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, [0x41, 0x18, ...be32(0), 0, 0, 1, 0], { dataOut: block }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, [0x93, 0x18, ...be64(0n), ...be32(1), 0, 0], { dataOut: block }), 0x05, 0x24, 0x00);
  // 0 blocks (WSNZ = 0): from the LBA to the end of the medium.
  const tail = pattern(bs, 12);
  expectGood(await run(luns, [0x41, 0, ...be32(blocks - 5), 0, 0, 0, 0], { dataOut: tail }));
  const rt = (await run(luns, CDB.read10(blocks - 6, 6))).data!;
  assert.notDeepEqual(rt.subarray(0, bs), tail);
  for (let i = 1; i < 6; i++) assert.deepEqual(rt.subarray(i * bs, (i + 1) * bs), tail);
  expectGood(await run(luns, [0x41, 0, ...be32(blocks), 0, 0, 0, 0], { dataOut: tail })); // nothing to write
  expectSense(await run(luns, [0x41, 0, ...be32(blocks + 1), 0, 0, 0, 0], { dataOut: block }), 0x05, 0x21, 0x00);
  expectSense(await run(luns, [0x41, 0, ...be32(blocks - 1), 0, 0, 2, 0], { dataOut: block }), 0x05, 0x21, 0x00);
  // Data-Out must be exactly one block.
  expectSense(await run(luns, [0x41, 0, ...be32(0), 0, 0, 1, 0], { dataOut: Buffer.alloc(2 * bs) }), 0x05, 0x24, 0x00);
});

// ---- ORWRITE, COMPARE AND WRITE

test('ORWRITE ORs the data into the blocks', async () => {
  const { luns, bs } = await setup();
  expectGood(await run(luns, CDB.write10(300, 2), { dataOut: Buffer.alloc(2 * bs, 0x0f) }));
  const r = await run(luns, [0x8b, 0, ...be64(300n), ...be32(2), 0, 0], { dataOut: Buffer.alloc(2 * bs, 0xa0) });
  expectGood(r);
  assert.ok((await run(luns, CDB.read10(300, 2))).data!.every((b) => b === 0xaf));
  expectSense(await run(luns, [0x8b, 0x20, ...be64(300n), ...be32(1), 0, 0], { dataOut: Buffer.alloc(bs) }), 0x05, 0x24, 0x00);
});

test('COMPARE AND WRITE: match writes, mismatch reports MISCOMPARE with the offset and writes nothing', async () => {
  const { luns, bs, store } = await setup();
  const a = Buffer.alloc(3 * bs, 'A');
  const b = Buffer.alloc(3 * bs, 'B');
  expectGood(await run(luns, CDB.write16(400, 3), { dataOut: a }));
  const caw = (lba: number, n: number, data: Buffer, b1 = 0) =>
    run(luns, [0x89, b1, ...be64(BigInt(lba)), 0, 0, 0, n, 0, 0], { dataOut: data });
  const r = await caw(400, 3, Buffer.concat([a, b]));
  expectGood(r);
  assert.equal(r.dataOutLength, 6 * bs);
  assert.deepEqual((await run(luns, CDB.read16(400, 3))).data, b);

  const verify = Buffer.from(b);
  verify[2 * bs + 100] = 'C'.charCodeAt(0);
  const writes = store.writes;
  const m = await caw(400, 3, Buffer.concat([verify, a]));
  expectSense(m, 0x0e, 0x1d, 0x00);
  assert.equal(m.sense!.readUInt32BE(3), 2 * bs + 100);
  assert.equal(store.writes, writes);
  assert.deepEqual((await run(luns, CDB.read16(400, 3))).data, b);

  // FUA flushes.
  const flushes = store.flushes;
  expectGood(await caw(400, 1, Buffer.concat([b.subarray(0, bs), a.subarray(0, bs)]), 0x08));
  assert.equal(store.flushes, flushes + 1);
  // Data-Out size must match 2 x NUMBER OF LOGICAL BLOCKS; too many blocks refused.
  expectSense(await caw(400, 1, Buffer.alloc(4 * bs)), 0x05, 0x24, 0x00);
  expectSense(await caw(400, 0, Buffer.alloc(2 * bs)), 0x05, 0x24, 0x00);
  expectGood(await run(luns, [0x89, 0, ...be64(400n), 0, 0, 0, 0, 0, 0], { expected: 0 }));
});

test('COMPARE AND WRITE miscompare in descriptor format', async () => {
  const { luns, bs, lu } = await setup();
  lu.setModeValues({ ...lu.modeValues, dSense: true }, NEXUS);
  const r = await run(luns, [0x89, 0, ...be64(0n), 0, 0, 0, 1, 0, 0], {
    dataOut: Buffer.concat([Buffer.alloc(bs, 1), Buffer.alloc(bs, 2)]),
  });
  expectSense(r, 0x0e, 0x1d, 0x00);
  const s = r.sense!;
  assert.equal(s[0], 0x72);
  assert.equal(s[8], 0x00); // information descriptor
  assert.equal(s[10] & 0x80, 0x80);
  assert.equal(s.readBigUInt64BE(12), 0n); // first byte differs
});

test('COMPARE AND WRITE is atomic against overlapping writes', async () => {
  const { luns, bs, store } = await setup();
  const a = Buffer.alloc(bs, 'A');
  const b = Buffer.alloc(bs, 'B');
  const c = Buffer.alloc(bs, 'C');
  expectGood(await run(luns, CDB.write10(500, 1), { dataOut: a }));
  store.delayRead = 20; // the CAW's read is slow
  const caw = run(luns, [0x89, 0, ...be64(500n), 0, 0, 0, 1, 0, 0], { dataOut: Buffer.concat([a, b]) });
  await sleep(1);
  store.delayRead = 0;
  // A WRITE issued while the CAW is between its read and its write must wait for it.
  const w = run(luns, CDB.write10(500, 1), { dataOut: c });
  expectGood(await caw);
  expectGood(await w);
  assert.deepEqual((await run(luns, CDB.read10(500, 1))).data, c);
  assert.equal(lu_writeLockSize(luns), 0);
});

function lu_writeLockSize(luns: ReadonlyMap<number, LogicalUnit>): number {
  return luns.get(0)!.writeLock.size;
}

// ---- PRE-FETCH, START STOP UNIT, PREVENT ALLOW

test('PRE-FETCH(10)/(16): range check, GOOD', async () => {
  const { luns, blocks } = await setup();
  expectGood(await run(luns, [0x34, 0, ...be32(0), 0, 0, 1, 0]));
  expectGood(await run(luns, [0x34, 0x02, ...be32(blocks - 1), 3, 0, 1, 0]));
  expectSense(await run(luns, [0x34, 0, ...be32(blocks), 0, 0, 1, 0]), 0x05, 0x21, 0x00);
  expectGood(await run(luns, [0x90, 0, ...be64(0n), ...be32(8), 0, 0]));
  expectSense(await run(luns, [0x90, 0, ...be64(2n ** 63n), ...be32(1), 0, 0]), 0x05, 0x21, 0x00);
});

test('WRITE SAME longer than MAXIMUM WRITE SAME LENGTH (also implied by 0 blocks) is refused', async () => {
  const big = new MemoryBackstore(512);
  Object.defineProperty(big, 'size', { get: () => 2 ** 40 });
  const lu = new LogicalUnit({ name: 'big', backstore: big, blockSize: 512, readonly: false });
  const luns = new Map([[0, lu]]);
  await run(luns, [0x00]);
  const block = Buffer.alloc(512);
  expectSense(await run(luns, [0x93, 0, ...be64(0n), ...be32(lu.maxWriteSameBlocks + 1), 0, 0], { dataOut: block }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, [0x41, 0, ...be32(0), 0, 0, 0, 0], { dataOut: block }), 0x05, 0x24, 0x00);
});

test('READ DEFECT DATA(10)/(12): empty lists', async () => {
  const { luns } = await setup();
  const r10 = await run(luns, [0x37, 0, 0x18 | 0x05, 0, 0, 0, 0, 0, 32, 0]);
  expectGood(r10);
  assert.deepEqual([...r10.data!], [0, 0x1d, 0, 0]);
  const r12 = await run(luns, [0xb7, 0x08, 0, 0, 0, 0, 0, 0, 0, 32, 0, 0]);
  expectGood(r12);
  assert.deepEqual([...r12.data!], [0, 0x08, 0, 0, 0, 0, 0, 0]);
  assert.equal((await run(luns, [0x37, 0, 0, 0, 0, 0, 0, 0, 2, 0])).data!.length, 2);
});

test('START STOP UNIT and PREVENT ALLOW MEDIUM REMOVAL are accepted', async () => {
  const { luns, store } = await setup();
  expectGood(await run(luns, [0x1b, 0, 0, 0, 0x01, 0])); // start
  expectGood(await run(luns, [0x1b, 0x01, 0, 0, 0x00, 0])); // stop: flushes
  assert.equal(store.flushes, 1);
  expectGood(await run(luns, [0x1b, 0, 0, 0, 0x04, 0])); // stop, NO_FLUSH
  assert.equal(store.flushes, 1);
  expectGood(await run(luns, [0x1b, 0, 0, 0, 0x03, 0])); // LOEJ + start
  expectGood(await run(luns, [0x1e, 0, 0, 0, 1, 0]));
  expectGood(await run(luns, [0x1e, 0, 0, 0, 0, 0]));
  expectSense(await run(luns, [0x1e, 0, 0, 0, 2, 0]), 0x05, 0x24, 0x00);
  expectGood(await run(luns, CDB.read10(0, 1))); // still serving
});
