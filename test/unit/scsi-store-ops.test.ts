// COMPARE AND WRITE and WRITE SAME reach a backstore's own operations when it has them
// (the RBD store: atomic compare-and-write in the OSD, writesame), and the SCSI core keeps
// its own path when the store declines a range (EOPNOTSUPP).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../src/backstore/memory';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { be16, be32, be64, CDB, expectGood, expectSense, run } from '../helpers/scsi';

/** A memory store with the optional operations, done (non-atomically) over its bytes and counted. */
class OpsStore extends MemoryBackstore {
  caw = 0;
  ws: { block: Buffer; offset: number; length: number }[] = [];
  decline = false;
  async compareAndWrite(cmp: Buffer, data: Buffer, offset: number): Promise<{ mismatchOffset: number } | null> {
    this.caw++;
    if (this.decline) {
      const e = new Error('not this range') as NodeJS.ErrnoException;
      e.code = 'EOPNOTSUPP';
      throw e;
    }
    const cur = Buffer.alloc(cmp.length);
    await this.read(cur, offset);
    for (let i = 0; i < cmp.length; i++) if (cur[i] !== cmp[i]) return { mismatchOffset: i };
    await this.write(data, offset);
    return null;
  }
  async writeSame(block: Buffer, offset: number, length: number): Promise<void> {
    this.ws.push({ block: Buffer.from(block), offset, length });
    for (let at = 0; at < length; at += block.length) await this.write(block, offset + at);
  }
}

async function setup() {
  const bs = 512;
  const store = new OpsStore(1024 * bs);
  const lu = new LogicalUnit({ name: 'ops', backstore: store, blockSize: bs, readonly: false });
  lu.sanitize.bytesPerSecond = 0;
  const luns = new Map([[0, lu]]) as ReadonlyMap<number, LogicalUnit>;
  await run(luns, [0x00]); // the power-on unit attention
  return { store, luns, bs };
}

test("COMPARE AND WRITE uses the store's operation: MISCOMPARE carries its offset, a match writes", async () => {
  const { store, luns, bs } = await setup();
  const a = Buffer.alloc(2 * bs, 'A');
  const b = Buffer.alloc(2 * bs, 'B');
  expectGood(await run(luns, CDB.write16(10, 2), { dataOut: a }));
  const verify = Buffer.from(a);
  verify[bs + 37] = 0;
  const m = await run(luns, [0x89, 0, ...be64(10n), 0, 0, 0, 2, 0, 0], { dataOut: Buffer.concat([verify, b]) });
  expectSense(m, 0x0e, 0x1d, 0x00);
  assert.equal(m.sense!.readUInt32BE(3), bs + 37); // INFORMATION: offset of the first difference
  assert.equal(store.caw, 1);
  assert.deepEqual((await run(luns, CDB.read16(10, 2))).data, a);
  expectGood(await run(luns, [0x89, 0, ...be64(10n), 0, 0, 0, 2, 0, 0], { dataOut: Buffer.concat([a, b]) }));
  assert.equal(store.caw, 2);
  assert.deepEqual((await run(luns, CDB.read16(10, 2))).data, b);
});

test('COMPARE AND WRITE falls back to the core when the store declines (EOPNOTSUPP)', async () => {
  const { store, luns, bs } = await setup();
  store.decline = true;
  const a = Buffer.alloc(bs, 'A');
  expectGood(await run(luns, CDB.write16(3, 1), { dataOut: a }));
  const bad = Buffer.from(a);
  bad[5] = 1;
  const m = await run(luns, [0x89, 0, ...be64(3n), 0, 0, 0, 1, 0, 0], { dataOut: Buffer.concat([bad, Buffer.alloc(bs, 'C')]) });
  expectSense(m, 0x0e, 0x1d, 0x00);
  assert.equal(m.sense!.readUInt32BE(3), 5);
  expectGood(await run(luns, [0x89, 0, ...be64(3n), 0, 0, 0, 1, 0, 0], { dataOut: Buffer.concat([a, Buffer.alloc(bs, 'C')]) }));
  assert.deepEqual((await run(luns, CDB.read16(3, 1))).data, Buffer.alloc(bs, 'C'));
  assert.equal(store.caw, 2);
});

test("WRITE SAME(10) and (16) use the store's writesame, one call per command", async () => {
  const { store, luns, bs } = await setup();
  const block = Buffer.alloc(bs, 0x77);
  expectGood(await run(luns, [0x41, 0, ...be32(20), 0, ...be16(8), 0], { dataOut: block }));
  assert.equal(store.ws.length, 1);
  assert.deepEqual(store.ws[0], { block, offset: 20 * bs, length: 8 * bs });
  assert.deepEqual((await run(luns, CDB.read16(20, 8))).data, Buffer.alloc(8 * bs, 0x77));
  // NDOB: zeros, with no Data-Out.
  expectGood(await run(luns, [0x93, 0x01, ...be64(22n), ...be32(2), 0, 0], { expected: 0 }));
  assert.equal(store.ws.length, 2);
  assert.deepEqual(store.ws[1].block, Buffer.alloc(bs));
  assert.deepEqual((await run(luns, CDB.read16(20, 8))).data!.subarray(2 * bs, 4 * bs), Buffer.alloc(2 * bs));
});
