// Thin provisioning through executeScsi: UNMAP (every check), WRITE SAME 10/16 with the
// UNMAP bit, GET LBA STATUS reporting mapped / deallocated extents, READ CAPACITY(16) and
// read-only volumes.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../src/backstore/memory';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { ScsiStatus } from '../../src/scsi/task';
import { be16, be32, CDB, expectGood, expectSense, lbaStatus, NEXUS, pattern, run, setup, unmapList } from '../helpers/scsi';

const MAPPED = 0;
const DEALLOCATED = 1;

test('UNMAP deallocates: the blocks read zeros and GET LBA STATUS reports them deallocated', async () => {
  const { luns, bs, blocks, store } = await setup();
  const data = pattern(64 * bs, 3);
  expectGood(await run(luns, CDB.write16(0, 64), { dataOut: data }));
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(0, 1024))), [
    [0, 64, MAPPED],
    [64, blocks - 64, DEALLOCATED],
  ]);
  const list = unmapList([
    [8, 16],
    [40, 8],
  ]);
  const r = await run(luns, CDB.unmap(list.length), { dataOut: list });
  expectGood(r);
  assert.equal(r.dataOutLength, list.length);
  assert.equal(store.unmaps, 2);
  const back = (await run(luns, CDB.read16(0, 64))).data!;
  assert.deepEqual(back.subarray(0, 8 * bs), data.subarray(0, 8 * bs));
  assert.ok(back.subarray(8 * bs, 24 * bs).every((b) => b === 0));
  assert.deepEqual(back.subarray(24 * bs, 40 * bs), data.subarray(24 * bs, 40 * bs));
  assert.ok(back.subarray(40 * bs, 48 * bs).every((b) => b === 0));
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(0, 1024))), [
    [0, 8, MAPPED],
    [8, 16, DEALLOCATED],
    [24, 16, MAPPED],
    [40, 8, DEALLOCATED],
    [48, 16, MAPPED],
    [64, blocks - 64, DEALLOCATED],
  ]);
});

test('UNMAP: parameter list length 0 is a no-op, 1..7 or short Data-Out is PARAMETER LIST LENGTH ERROR', async () => {
  const { luns, store } = await setup();
  expectGood(await run(luns, CDB.unmap(0)));
  for (let len = 1; len < 8; len++) {
    expectSense(await run(luns, CDB.unmap(len), { dataOut: Buffer.alloc(len) }), 0x05, 0x1a, 0x00);
  }
  const list = unmapList([[0, 1]]);
  expectSense(await run(luns, CDB.unmap(list.length), { dataOut: list.subarray(0, 12) }), 0x05, 0x1a, 0x00);
  // No descriptors; a trailing partial descriptor is ignored.
  expectGood(await run(luns, CDB.unmap(8), { dataOut: unmapList([]) }));
  const partial = Buffer.concat([unmapList([]), Buffer.alloc(8)]);
  partial.writeUInt16BE(8, 2);
  expectGood(await run(luns, CDB.unmap(partial.length), { dataOut: partial }));
  assert.equal(store.unmaps, 0);
});

test('UNMAP: ANCHOR, too many descriptors or blocks, LBA out of range: nothing is deallocated', async () => {
  const { luns, blocks, store, bs } = await setup({ blocks: 4 * 1024 * 1024 });
  expectGood(await run(luns, CDB.write16(0, 1), { dataOut: pattern(bs, 1) }));
  const one = unmapList([[0, 1]]);
  expectSense(await run(luns, CDB.unmap(one.length, 0x01), { dataOut: one }), 0x05, 0x24, 0x00); // ANCHOR
  // 1025 descriptors > MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT (1024).
  const many = unmapList(Array.from({ length: 1025 }, (_, i): [number, number] => [i, 1]));
  expectSense(await run(luns, CDB.unmap(many.length), { dataOut: many }), 0x05, 0x26, 0x00);
  const max = unmapList(Array.from({ length: 1024 }, (_, i): [number, number] => [i, 1]));
  expectGood(await run(luns, CDB.unmap(max.length), { dataOut: max }));
  // More than MAXIMUM UNMAP LBA COUNT (2^20) blocks in all.
  const big = unmapList([
    [0, 1024 * 1024],
    [2 * 1024 * 1024, 1],
  ]);
  store.unmaps = 0;
  expectSense(await run(luns, CDB.unmap(big.length), { dataOut: big }), 0x05, 0x26, 0x00);
  expectGood(await run(luns, CDB.unmap(16), { dataOut: unmapList([[0, 1024 * 1024]]) }));
  // Out of range (also in a later descriptor, and with a 64-bit LBA): checked first.
  store.unmaps = 0;
  for (const desc of [
    [blocks - 1, 2],
    [blocks + 1, 0],
    [2n ** 63n, 1],
    [2n ** 64n - 1n, 1],
  ] as Array<[number | bigint, number]>) {
    const l = unmapList([[0, 1], desc]);
    expectSense(await run(luns, CDB.unmap(l.length), { dataOut: l }), 0x05, 0x21, 0x00);
  }
  assert.equal(store.unmaps, 0);
  // 0 blocks at the capacity is fine.
  const end = unmapList([[blocks, 0]]);
  expectGood(await run(luns, CDB.unmap(end.length), { dataOut: end }));
});

test('UNMAP on a read-only volume: DATA PROTECT, WRITE PROTECTED; with the write cache off it flushes', async () => {
  const { luns } = await setup({ readonly: true });
  const l = unmapList([[0, 1]]);
  expectSense(await run(luns, CDB.unmap(l.length), { dataOut: l }), 0x07, 0x27, 0x00);

  const { lu, luns: luns2, store } = await setup();
  lu.setModeValues({ ...lu.modeValues, wce: false }, NEXUS);
  expectGood(await run(luns2, CDB.unmap(l.length), { dataOut: l }));
  assert.equal(store.flushes, 1);
});

test('WRITE SAME(10)/(16) with UNMAP deallocate whatever the block holds; NDOB + UNMAP too; 0 blocks = to the end', async () => {
  const { luns, bs, blocks, store } = await setup();
  const ones = Buffer.alloc(bs, 0xff);
  // (Extents in multiples of 8 blocks: the memory store maps 4 KiB granules.)
  expectGood(await run(luns, CDB.write16(0, 296), { dataOut: Buffer.alloc(296 * bs, 0xff) }));
  // WRITE SAME(10) UNMAP with a block of 0xFF: deallocated, reads zeros (LBPRZ).
  const r = await run(luns, CDB.writeSame10(0, 96, 0x08), { dataOut: ones });
  expectGood(r);
  assert.equal(r.dataOutLength, bs);
  assert.ok((await run(luns, CDB.read16(0, 96))).data!.every((b) => b === 0));
  // WRITE SAME(16) UNMAP with zeros, and with NDOB.
  expectGood(await run(luns, CDB.writeSame16(96, 104, 0x08), { dataOut: Buffer.alloc(bs) }));
  expectGood(await run(luns, CDB.writeSame16(200, 48, 0x09), { expected: 0 }));
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(0, 64))), [
    [0, 248, DEALLOCATED],
    [248, 48, MAPPED],
    [296, blocks - 296, DEALLOCATED],
  ]);
  assert.deepEqual((await run(luns, CDB.read16(248, 48))).data, Buffer.alloc(48 * bs, 0xff));
  // Not aligned to the store's granule: zeros all the same, the partial granule stays mapped.
  expectGood(await run(luns, CDB.writeSame16(250, 3, 0x08), { dataOut: ones }));
  assert.ok((await run(luns, CDB.read16(250, 3))).data!.every((b) => b === 0));
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(248, 24))), [[248, 48, MAPPED]]);
  // 0 blocks: from the LBA to the end of the medium.
  expectGood(await run(luns, CDB.write16(blocks - 10, 10), { dataOut: Buffer.alloc(10 * bs, 1) }));
  const before = store.unmaps;
  expectGood(await run(luns, CDB.writeSame16(blocks - 10, 0, 0x08), { dataOut: ones }));
  assert.equal(store.unmaps, before + 1);
  assert.ok((await run(luns, CDB.read16(blocks - 10, 10))).data!.every((b) => b === 0));
  // The Data-Out must still be exactly one block (too small / too large: refused).
  expectSense(await run(luns, CDB.writeSame16(0, 1, 0x08), { dataOut: Buffer.alloc(bs / 2) }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, CDB.writeSame10(0, 1, 0x08), { dataOut: Buffer.alloc(2 * bs) }), 0x05, 0x24, 0x00);
  // More than MAXIMUM WRITE SAME LENGTH, out of range: refused.
  const { luns: big } = await setup({ blocks: 70000 });
  expectSense(await run(big, CDB.writeSame16(0, 65536, 0x08), { dataOut: Buffer.alloc(bs) }), 0x05, 0x24, 0x00);
  expectGood(await run(big, CDB.writeSame16(0, 65535, 0x08), { dataOut: Buffer.alloc(bs) }));
  expectSense(await run(luns, CDB.writeSame10(blocks - 1, 2, 0x08), { dataOut: ones }), 0x05, 0x21, 0x00);
});

test('GET LBA STATUS: starting LBA at or beyond the capacity is LBA OUT OF RANGE', async () => {
  const { luns, blocks } = await setup();
  for (const lba of [blocks, blocks + 1, 2n ** 63n, 2n ** 64n - 1n]) {
    expectSense(await run(luns, CDB.getLbaStatus(lba, 24)), 0x05, 0x21, 0x00);
  }
  const last = lbaStatus(await run(luns, CDB.getLbaStatus(blocks - 1, 24)));
  assert.deepEqual(last, [[blocks - 1, 1, DEALLOCATED]]);
});

test('GET LBA STATUS: the first descriptor starts at the starting LBA; the allocation length bounds the list', async () => {
  const { luns, bs, blocks } = await setup();
  // Map every other 8-block (4 KiB) stretch of the first 128 blocks.
  for (let lba = 0; lba < 128; lba += 16) {
    expectGood(await run(luns, CDB.write16(lba, 8), { dataOut: pattern(8 * bs, lba) }));
  }
  const all = lbaStatus(await run(luns, CDB.getLbaStatus(0, 8 + 16 * 100)));
  assert.equal(all.length, 16);
  all.forEach(([lba, n, st], i) => {
    if (i < 15) assert.deepEqual([lba, n, st], [8 * i, 8, i % 2 === 0 ? MAPPED : DEALLOCATED]);
  });
  assert.deepEqual(all[15], [120, blocks - 120, DEALLOCATED]);
  // Starting inside an extent.
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(3, 24))), [[3, 5, MAPPED]]);
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(9, 24))), [[9, 7, DEALLOCATED]]);
  // Allocation length 24 holds one descriptor; 40 two; below 8 just part of the header.
  const r = await run(luns, CDB.getLbaStatus(0, 40));
  assert.equal(r.data!.length, 40);
  assert.equal(r.data!.readUInt32BE(0), 36);
  const tiny = await run(luns, CDB.getLbaStatus(0, 4));
  expectGood(tiny);
  assert.equal(tiny.data!.length, 4);
  assert.equal(tiny.data!.readUInt32BE(0), 20);
});

test('GET LBA STATUS on 4096-byte blocks, and on a store that cannot tell (everything mapped)', async () => {
  const { luns, bs, blocks } = await setup({ blockSize: 4096, blocks: 256 });
  expectGood(await run(luns, CDB.write16(10, 2), { dataOut: pattern(2 * bs, 5) }));
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(0, 1024))), [
    [0, 10, DEALLOCATED],
    [10, 2, MAPPED],
    [12, blocks - 12, DEALLOCATED],
  ]);

  const inner = new MemoryBackstore(64 * 512);
  const blind = {
    path: 'blind',
    size: inner.size,
    readonly: false,
    read: inner.read.bind(inner),
    write: inner.write.bind(inner),
    unmap: inner.unmap.bind(inner),
    flush: inner.flush.bind(inner),
    close: inner.close.bind(inner),
  };
  const lu = new LogicalUnit({ name: 'blind', backstore: blind, blockSize: 512, readonly: false });
  const map = new Map([[0, lu]]);
  await run(map, [0x00]);
  assert.deepEqual(lbaStatus(await run(map, CDB.getLbaStatus(0, 1024))), [[0, 64, MAPPED]]);
});

test('READ CAPACITY(16) says LBPME and LBPRZ; REPORT SUPPORTED OPERATION CODES lists UNMAP and GET LBA STATUS', async () => {
  const { luns } = await setup();
  const rc = await run(luns, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, ...be32(32), 0, 0]);
  assert.equal(rc.data![14] & 0xc0, 0xc0);
  assert.equal(rc.data![13] & 0x0f, 0); // one logical block per physical block
  const unmap = await run(luns, [0xa3, 0x0c, 0x01, 0x42, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
  assert.equal(unmap.data![1] & 7, 3);
  assert.equal(unmap.data!.readUInt16BE(2), 10);
  const gls = await run(luns, [0xa3, 0x0c, 0x02, 0x9e, ...be16(0x12), 0, 0, 0xff, 0xff, 0, 0]);
  assert.equal(gls.data![1] & 7, 3);
  assert.equal(gls.data![5], 0x12);
  assert.equal(gls.status, ScsiStatus.Good);
});

test('512-byte blocks on 4 KiB physical blocks: exponent 3, unmap granularity 8 aligned at 0; a partial physical block stays mapped', async () => {
  const { luns, bs, blocks } = await setup({ physicalBlockSize: 4096 });
  const rc = await run(luns, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, ...be32(32), 0, 0]);
  assert.equal(rc.data![13] & 0x0f, 3); // 8 logical blocks per physical block
  assert.equal(rc.data!.readUInt16BE(14) & 0x3fff, 0); // LOWEST ALIGNED LBA 0
  const b0 = await run(luns, [0x12, 0x01, 0xb0, 0, 64, 0]);
  assert.equal(b0.data!.readUInt32BE(28), 8); // OPTIMAL UNMAP GRANULARITY = one physical block
  assert.equal(b0.data!.readUInt32BE(32), 0x80000000); // UGAVALID, UNMAP GRANULARITY ALIGNMENT 0
  assert.ok(b0.data!.readUInt32BE(20) >= 8); // MAXIMUM UNMAP LBA COUNT >= 2^exponent

  expectGood(await run(luns, CDB.write16(0, 32), { dataOut: Buffer.alloc(32 * bs, 0xaa) }));
  // One whole physical block: deallocated. One logical block of another: zeros, still mapped.
  const list = unmapList([
    [8, 8],
    [17, 1],
  ]);
  expectGood(await run(luns, CDB.unmap(list.length), { dataOut: list }));
  assert.ok((await run(luns, CDB.read16(8, 8))).data!.every((x) => x === 0));
  assert.ok((await run(luns, CDB.read16(16, 1))).data!.every((x) => x === 0xaa));
  assert.ok((await run(luns, CDB.read16(17, 1))).data!.every((x) => x === 0));
  assert.ok((await run(luns, CDB.read16(18, 14))).data!.every((x) => x === 0xaa));
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(0, 1024))), [
    [0, 8, MAPPED],
    [8, 8, DEALLOCATED],
    [16, 16, MAPPED],
    [32, blocks - 32, DEALLOCATED],
  ]);
  // The first descriptor starts at the LBA asked for, even inside a physical block.
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(17, 64)))[0], [17, 15, MAPPED]);
  // WRITE SAME (UNMAP) not aligned to the physical block: GOOD, zeros, the block stays mapped.
  expectGood(await run(luns, CDB.writeSame16(27, 5, 0x08), { dataOut: Buffer.alloc(bs, 0xa6) }));
  assert.ok((await run(luns, CDB.read16(27, 5))).data!.every((x) => x === 0));
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(24, 24)))[0], [24, 8, MAPPED]);
});

test('physicalBlockSize smaller than the block size is refused; 4096-byte blocks keep exponent 0', async () => {
  const store = new MemoryBackstore(64 * 4096);
  assert.throws(() => new LogicalUnit({ name: 'x', backstore: store, blockSize: 4096, physicalBlockSize: 512, readonly: false }));
  const { luns } = await setup({ blockSize: 4096, physicalBlockSize: 4096 });
  const rc = await run(luns, [0x9e, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, ...be32(32), 0, 0]);
  assert.equal(rc.data![13] & 0x0f, 0);
  const b0 = await run(luns, [0x12, 0x01, 0xb0, 0, 64, 0]);
  assert.equal(b0.data!.readUInt32BE(28), 0, 'one-block granularity is reported as 0 (not reported)');
});
