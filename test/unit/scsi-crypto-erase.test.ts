// SANITIZE CRYPTOGRAPHIC ERASE on an encrypted volume (a LogicalUnit over an
// EncryptedBackstore): offered in REPORT SUPPORTED OPERATION CODES and VPD 0xB1 (WACEREQ),
// wipes the data (reads zeros, GET LBA STATUS deallocated), checks its CDB, and conflicts with
// another nexus's reservation. Unencrypted volumes keep refusing it (scsi-sanitize.test.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EncryptedBackstore, newKey } from '../../src/backstore/encrypted';
import { MemoryBackstore } from '../../src/backstore/memory';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { ScsiStatus } from '../../src/scsi/task';
import { CDB, expectGood, expectSense, lbaStatus, nexus, pattern, run } from '../helpers/scsi';

const CRYPTO_ERASE = 0x03;

async function encryptedLu(blocks = 2048, bs: 512 | 4096 = 512) {
  const inner = new MemoryBackstore(blocks * bs);
  const store = new EncryptedBackstore(inner, { blockSize: bs, key: newKey() });
  const lu = new LogicalUnit({ name: 'sealed', backstore: store, blockSize: bs, readonly: false });
  lu.sanitize.bytesPerSecond = 0;
  const luns = new Map([[0, lu]]) as ReadonlyMap<number, LogicalUnit>;
  assert.equal((await run(luns, [0x00])).status, ScsiStatus.CheckCondition); // power-on UA
  return { lu, luns, inner, store, bs, blocks };
}

test('encrypted volume: CRYPTO ERASE is reported supported (RSOC) and VPD 0xB1 says WACEREQ 01b', async () => {
  const { luns } = await encryptedLu();
  const one = await run(luns, [0xa3, 0x0c, 0x02, 0x48, 0, CRYPTO_ERASE, 0, 0, 0xff, 0xff, 0, 0]);
  expectGood(one);
  assert.equal(one.data![1] & 7, 3, 'SUPPORT 011b');
  assert.equal(one.data![5], 0xa0 | CRYPTO_ERASE, 'CDB usage: IMMED, AUSE, the service action');
  const all = (await run(luns, [0xa3, 0x0c, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0])).data!;
  let found = false;
  for (let off = 4; off + 8 <= all.length; off += 8) {
    if (all[off] === 0x48 && all.readUInt16BE(off + 2) === CRYPTO_ERASE) found = true;
  }
  assert.ok(found, 'listed among all commands');
  const bdc = await run(luns, [0x12, 1, 0xb1, 0, 64, 0]);
  assert.equal(bdc.data![7] & 0xf0, 0x50, 'WABEREQ 01b, WACEREQ 01b');
});

test('CRYPTO ERASE: the data written before is gone, the volume reads zeros and is all deallocated', async () => {
  const { luns, inner, bs, blocks } = await encryptedLu();
  const a = pattern(256 * bs, 1);
  expectGood(await run(luns, CDB.write16(0, 256), { dataOut: a }));
  expectGood(await run(luns, CDB.write16(blocks - 256, 256), { dataOut: a }));
  const cipherBefore = Buffer.alloc(256 * bs);
  await inner.read(cipherBefore, 0);
  expectGood(await run(luns, CDB.sanitize(CRYPTO_ERASE, 0)));
  const back = (await run(luns, CDB.read16(0, blocks))).data!;
  assert.ok(
    back.every((b) => b === 0),
    'reads zeros after the erase',
  );
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(0, 256))), [[0, blocks, 1]]);
  // Even the old ciphertext, put back, no longer decrypts to the data: the key is gone.
  await inner.write(cipherBefore, 0);
  const again = (await run(luns, CDB.read16(0, 256))).data!;
  assert.notDeepEqual(again, a);
  // And the volume works normally afterwards.
  expectGood(await run(luns, CDB.write16(10, 4), { dataOut: a.subarray(0, 4 * bs) }));
  assert.deepEqual((await run(luns, CDB.read16(10, 4))).data!, a.subarray(0, 4 * bs));
});

test("CRYPTO ERASE: a parameter list is refused; IMMED returns at once; another nexus's RESERVE conflicts", async () => {
  const { luns, lu } = await encryptedLu();
  expectSense(await run(luns, CDB.sanitize(CRYPTO_ERASE, 8), { dataOut: Buffer.alloc(8) }), 0x05, 0x24, 0x00);
  expectGood(await run(luns, CDB.sanitize(CRYPTO_ERASE, 0, { immed: true })));
  while (lu.sanitize.inProgress) await new Promise((r) => setTimeout(r, 5));
  const other = nexus(2);
  assert.equal((await run(luns, [0x00], { nexus: other })).status, ScsiStatus.CheckCondition); // its power-on UA
  expectGood(await run(luns, [0x16, 0, 0, 0, 0, 0], { nexus: other })); // RESERVE(6)
  assert.equal((await run(luns, CDB.sanitize(CRYPTO_ERASE, 0))).status, ScsiStatus.ReservationConflict);
  expectGood(await run(luns, [0x17, 0, 0, 0, 0, 0], { nexus: other })); // RELEASE(6)
  expectGood(await run(luns, CDB.sanitize(CRYPTO_ERASE, 0)));
});

test('unencrypted volume: CRYPTO ERASE is INVALID FIELD IN CDB, unsupported in RSOC, WACEREQ 00b', async () => {
  const lu = new LogicalUnit({ name: 'plain', backstore: new MemoryBackstore(64 * 512), blockSize: 512, readonly: false });
  const luns = new Map([[0, lu]]) as ReadonlyMap<number, LogicalUnit>;
  await run(luns, [0x00]);
  expectSense(await run(luns, CDB.sanitize(CRYPTO_ERASE, 0)), 0x05, 0x24, 0x00);
  const one = await run(luns, [0xa3, 0x0c, 0x02, 0x48, 0, CRYPTO_ERASE, 0, 0, 0xff, 0xff, 0, 0]);
  assert.equal(one.data![1] & 7, 1, 'SUPPORT 001b: not supported');
  const bdc = await run(luns, [0x12, 1, 0xb1, 0, 64, 0]);
  assert.equal(bdc.data![7] & 0x30, 0);
});
