// SANITIZE through executeScsi: OVERWRITE and BLOCK ERASE results, CRYPTO ERASE refused,
// every CDB / parameter check, IMMED, NOT READY / SANITIZE IN PROGRESS with progress while
// it runs (INQUIRY and REQUEST SENSE still answer), surviving aborts and resets,
// reservations, read-only volumes, failure mode and EXIT FAILURE MODE.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseSense } from '../../src/scsi/sense';
import { ScsiStatus, type ScsiResult } from '../../src/scsi/task';
import { CDB, executeOn, expectGood, expectSense, lbaStatus, nexus, pattern, run, setup, sleep, task } from '../helpers/scsi';

const OVERWRITE = 0x01;
const BLOCK_ERASE = 0x02;
const CRYPTO_ERASE = 0x03;
const EXIT_FAILURE_MODE = 0x1f;

/** An OVERWRITE parameter list. */
function overwriteList(pat: Buffer, passes = 1, invert = false): Buffer {
  const b = Buffer.alloc(4 + pat.length);
  b[0] = (invert ? 0x80 : 0) | passes;
  b.writeUInt16BE(pat.length, 2);
  pat.copy(b, 4);
  return b;
}

function expectSanitizing(r: ScsiResult): number {
  expectSense(r, 0x02, 0x04, 0x1b);
  const s = r.sense!;
  assert.equal(s[15] & 0x80, 0x80, 'SKSV: progress indication present');
  return s.readUInt16BE(16);
}

test('SANITIZE OVERWRITE writes the pattern (repeated in each block) over the whole volume', async () => {
  const { luns, bs, blocks, store } = await setup({ blocks: 1024 });
  expectGood(await run(luns, CDB.write16(0, 16), { dataOut: pattern(16 * bs, 1) }));
  const pat = Buffer.from([1, 2, 3, 4, 5, 6, 7]); // does not divide the block: restarts per block
  const list = overwriteList(pat);
  const r = await run(luns, CDB.sanitize(OVERWRITE, list.length), { dataOut: list });
  expectGood(r);
  assert.equal(r.dataOutLength, list.length);
  const block = Buffer.alloc(bs).fill(pat);
  const all = (await run(luns, CDB.read16(0, blocks))).data!;
  for (let i = 0; i < blocks; i++) assert.deepEqual(all.subarray(i * bs, (i + 1) * bs), block);
  assert.ok(store.flushes >= 1, 'the pass is made durable');
  // Fully written: every block is mapped now.
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(0, 1024))), [[0, blocks, 0]]);
});

test('SANITIZE OVERWRITE with INVERT and three passes ends with the pattern; a one-block pattern works', async () => {
  const { luns, bs, blocks } = await setup({ blocks: 64 });
  const list = overwriteList(Buffer.from([0x0f]), 3, true);
  expectGood(await run(luns, CDB.sanitize(OVERWRITE, list.length), { dataOut: list }));
  assert.ok((await run(luns, CDB.read16(0, blocks))).data!.every((b) => b === 0x0f));
  const two = overwriteList(Buffer.from([0x0f]), 2, true); // pass 2 inverted: 0xF0
  expectGood(await run(luns, CDB.sanitize(OVERWRITE, two.length), { dataOut: two }));
  assert.ok((await run(luns, CDB.read16(0, blocks))).data!.every((b) => b === 0xf0));
  const full = overwriteList(pattern(bs, 9));
  expectGood(await run(luns, CDB.sanitize(OVERWRITE, full.length), { dataOut: full }));
  assert.deepEqual((await run(luns, CDB.read16(blocks - 1, 1))).data, pattern(bs, 9));
});

test('SANITIZE OVERWRITE parameter checks', async () => {
  const { luns, bs, store } = await setup({ blocks: 64 });
  const writes = store.writes;
  const ok = overwriteList(Buffer.alloc(bs, 0xaa));
  // PARAMETER LIST LENGTH 0..4 and block length + 5: INVALID FIELD IN CDB.
  for (const len of [0, 1, 2, 3, 4, bs + 5]) {
    const data = Buffer.concat([ok, Buffer.alloc(8)]).subarray(0, len);
    expectSense(await run(luns, CDB.sanitize(OVERWRITE, len), { dataOut: data }), 0x05, 0x24, 0x00);
  }
  const bad = (mutate: (b: Buffer) => void): Buffer => {
    const b = Buffer.from(ok);
    mutate(b);
    return b;
  };
  for (const list of [
    bad((b) => (b[0] = 0x00)), // OVERWRITE COUNT 0
    bad((b) => b.writeUInt16BE(0, 2)), // INITIALIZATION PATTERN LENGTH 0
    bad((b) => b.writeUInt16BE(bs + 4, 2)), // longer than a block
    bad((b) => b.writeUInt16BE(bs - 1, 2)), // does not match the parameter list length
    bad((b) => (b[0] |= 0x20)), // TEST
    bad((b) => (b[1] = 1)), // reserved
  ]) {
    expectSense(await run(luns, CDB.sanitize(OVERWRITE, list.length), { dataOut: list }), 0x05, 0x26, 0x00);
  }
  // The Data-Out shorter than the parameter list length.
  expectSense(await run(luns, CDB.sanitize(OVERWRITE, ok.length), { dataOut: ok.subarray(0, 10) }), 0x05, 0x1a, 0x00);
  assert.equal(store.writes, writes, 'nothing was written');
});

test('SANITIZE: reserved bits and bytes, unknown service actions and CRYPTO ERASE: INVALID FIELD IN CDB', async () => {
  const { luns } = await setup({ blocks: 64 });
  const base = CDB.sanitize(BLOCK_ERASE, 0);
  expectSense(await run(luns, [base[0], base[1] | 0x40, ...base.slice(2)]), 0x05, 0x24, 0x00);
  for (let i = 2; i <= 6; i++) {
    const c = [...base];
    c[i] = i;
    expectSense(await run(luns, c), 0x05, 0x24, 0x00);
  }
  for (let sa = 0; sa <= 0x1f; sa++) {
    if (sa === OVERWRITE || sa === BLOCK_ERASE || sa === EXIT_FAILURE_MODE) continue;
    const r = await run(luns, CDB.sanitize(sa, 0));
    expectSense(r, 0x05, 0x24, 0x00);
  }
  // Non-zero parameter list length for BLOCK ERASE / EXIT FAILURE MODE.
  expectSense(await run(luns, CDB.sanitize(BLOCK_ERASE, 8), { dataOut: Buffer.alloc(8) }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, CDB.sanitize(EXIT_FAILURE_MODE, 8), { dataOut: Buffer.alloc(8) }), 0x05, 0x24, 0x00);
  expectGood(await run(luns, CDB.sanitize(EXIT_FAILURE_MODE, 0))); // not in failure mode: nothing to do
  // REPORT SUPPORTED OPERATION CODES: OVERWRITE, BLOCK ERASE, EXIT FAILURE MODE yes, CRYPTO ERASE no.
  for (const [sa, support] of [
    [OVERWRITE, 3],
    [BLOCK_ERASE, 3],
    [CRYPTO_ERASE, 1],
    [EXIT_FAILURE_MODE, 3],
  ]) {
    const r = await run(luns, [0xa3, 0x0c, 0x02, 0x48, 0, sa, 0, 0, 0xff, 0xff, 0, 0]);
    assert.equal(r.data![1] & 7, support, `service action ${sa}`);
    if (support === 3) assert.equal(r.data![5], 0xa0 | sa); // IMMED, AUSE, the service action
  }
  // VPD 0xB1: WABEREQ 01b (reads after BLOCK ERASE succeed), WACEREQ 00b.
  const bdc = await run(luns, [0x12, 1, 0xb1, 0, 64, 0]);
  assert.equal(bdc.data![7] & 0xf0, 0x40);
});

test('SANITIZE BLOCK ERASE deallocates every block: zeros, GET LBA STATUS all deallocated', async () => {
  const { luns, bs, blocks } = await setup({ blocks: 2048 });
  expectGood(await run(luns, CDB.write16(0, 256), { dataOut: pattern(256 * bs, 2) }));
  expectGood(await run(luns, CDB.write16(blocks - 256, 256), { dataOut: pattern(256 * bs, 3) }));
  expectGood(await run(luns, CDB.sanitize(BLOCK_ERASE, 0)));
  assert.ok((await run(luns, CDB.read16(0, blocks))).data!.every((b) => b === 0));
  assert.deepEqual(lbaStatus(await run(luns, CDB.getLbaStatus(0, 256))), [[0, blocks, 1]]);
});

test('while SANITIZE runs: NOT READY, SANITIZE IN PROGRESS with progress; INQUIRY, REQUEST SENSE, REPORT LUNS answer', async () => {
  const { luns, store, bs } = await setup({ blocks: 16 * 1024 }); // 8 MiB: 8 chunks
  store.delayWrite = 20;
  const list = overwriteList(Buffer.from([0x5a]));
  const immed = await run(luns, CDB.sanitize(OVERWRITE, list.length, { immed: true }), { dataOut: list });
  expectGood(immed); // returned at once; the operation runs on
  const first = expectSanitizing(await run(luns, [0x00]));
  expectSanitizing(await run(luns, CDB.read16(0, 1)));
  expectSanitizing(await run(luns, CDB.write16(0, 1), { dataOut: Buffer.alloc(bs) }));
  expectSanitizing(await run(luns, [0x1b, 1, 0, 0, 0x02, 0])); // START STOP UNIT
  expectSanitizing(await run(luns, CDB.sanitize(BLOCK_ERASE, 0))); // a second SANITIZE too
  expectGood(await run(luns, [0x12, 0, 0, 0, 96, 0])); // INQUIRY
  expectGood(await run(luns, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])); // REPORT LUNS
  const rs = await run(luns, [0x03, 0, 0, 0, 18, 0]); // REQUEST SENSE: the pollable sense
  expectGood(rs);
  assert.deepEqual([parseSense(rs.data!).key, parseSense(rs.data!).asc, parseSense(rs.data!).ascq], [0x02, 0x04, 0x1b]);
  // Descriptor-format REQUEST SENSE carries the progress in a sense key specific descriptor.
  const rsd = await run(luns, [0x03, 1, 0, 0, 252, 0]);
  assert.equal(rsd.data![0], 0x72);
  assert.equal(rsd.data![8], 0x02);
  await sleep(80);
  const later = expectSanitizing(await run(luns, [0x00]));
  assert.ok(later > first, `progress advances: ${first} -> ${later}`);
  while ((await run(luns, [0x00])).status !== ScsiStatus.Good) await sleep(10);
  assert.ok((await run(luns, CDB.read16(0, 16 * 1024))).data!.every((b) => b === 0x5a));
});

test('SANITIZE without IMMED waits for the end; aborted meanwhile it stops waiting and the sanitize goes on', async () => {
  const { lu, luns, store } = await setup({ blocks: 32 * 1024 }); // 16 chunks of 15 ms
  store.delayWrite = 15;
  const list = overwriteList(Buffer.from([0x77]));
  const t = task(CDB.sanitize(OVERWRITE, list.length), { dataOut: list });
  const pending = executeOn(luns, t);
  await sleep(30);
  t.aborted = true; // ABORT TASK
  const r = await pending;
  assert.equal(r.status, ScsiStatus.TaskAborted);
  assert.ok(lu.sanitize.inProgress, 'still sanitizing after the abort');
  lu.reset('lun'); // and after a LUN RESET
  assert.ok(lu.sanitize.inProgress);
  expectSense(await run(luns, [0x00]), 0x06, 0x29, 0x03); // the reset's unit attention first
  expectSanitizing(await run(luns, [0x00]));
  while ((await run(luns, [0x00])).status !== ScsiStatus.Good) await sleep(10);
  assert.ok((await run(luns, CDB.read16(0, 32 * 1024))).data!.every((b) => b === 0x77));

  // Not aborted: GOOD once the whole volume is written.
  store.delayWrite = 0;
  const list2 = overwriteList(Buffer.from([0x33]));
  const done = await run(luns, CDB.sanitize(OVERWRITE, list2.length), { dataOut: list2 });
  expectGood(done);
  assert.equal(lu.sanitize.inProgress, false);
  assert.ok((await run(luns, CDB.read16(0, 32 * 1024))).data!.every((b) => b === 0x33));
});

test('SANITIZE waits for the writes already running, then holds off new ones', async () => {
  const { luns, store, bs } = await setup({ blocks: 256 });
  store.delayWrite = 40;
  const write = run(luns, CDB.write16(0, 1), { dataOut: Buffer.alloc(bs, 9) });
  await sleep(5);
  store.delayWrite = 0;
  const list = overwriteList(Buffer.from([0x11]));
  const sanitize = run(luns, CDB.sanitize(OVERWRITE, list.length), { dataOut: list });
  expectGood(await write);
  expectGood(await sanitize);
  // The write finished first, so the sanitize overwrote it.
  assert.ok((await run(luns, CDB.read16(0, 1))).data!.every((b) => b === 0x11));
});

test('SANITIZE under another I_T nexus RESERVE(6): RESERVATION CONFLICT; read-only / SWP: DATA PROTECT', async () => {
  const { luns } = await setup({ blocks: 64 });
  const other = nexus(2);
  await run(luns, [0x00], { nexus: other }); // its power-on unit attention
  expectGood(await run(luns, [0x16, 0, 0, 0, 0, 0], { nexus: other }));
  const list = overwriteList(Buffer.from([1]));
  assert.equal((await run(luns, CDB.sanitize(OVERWRITE, list.length), { dataOut: list })).status, ScsiStatus.ReservationConflict);
  assert.equal((await run(luns, CDB.sanitize(BLOCK_ERASE, 0))).status, ScsiStatus.ReservationConflict);
  expectGood(await run(luns, [0x17, 0, 0, 0, 0, 0], { nexus: other }));

  const ro = await setup({ blocks: 64, readonly: true });
  expectSense(await run(ro.luns, CDB.sanitize(OVERWRITE, list.length), { dataOut: list }), 0x07, 0x27, 0x00);
  expectSense(await run(ro.luns, CDB.sanitize(BLOCK_ERASE, 0)), 0x07, 0x27, 0x00);
  // Software write protect (control mode page SWP) set by MODE SELECT.
  const { lu, luns: swp } = await setup({ blocks: 64 });
  lu.setModeValues({ ...lu.modeValues, swp: true }, nexus(1));
  expectSense(await run(swp, CDB.sanitize(BLOCK_ERASE, 0)), 0x07, 0x27, 0x02);
});

test('a failed SANITIZE leaves failure mode; EXIT FAILURE MODE ends it only when AUSE was set', async () => {
  const { lu, luns, store } = await setup({ blocks: 64 });
  store.failUnmap = 'EIO';
  expectSense(await run(luns, CDB.sanitize(BLOCK_ERASE, 0)), 0x03, 0x0c, 0x00); // MEDIUM ERROR, WRITE ERROR
  assert.ok(lu.sanitize.failed);
  expectSense(await run(luns, CDB.read16(0, 1)), 0x03, 0x31, 0x03); // SANITIZE COMMAND FAILED
  expectSense(await run(luns, [0x00]), 0x03, 0x31, 0x03);
  expectGood(await run(luns, [0x12, 0, 0, 0, 96, 0]));
  expectSense(await run(luns, CDB.sanitize(EXIT_FAILURE_MODE, 0)), 0x05, 0x24, 0x00); // AUSE was 0
  // A SANITIZE that completes ends it.
  store.failUnmap = null;
  expectGood(await run(luns, CDB.sanitize(BLOCK_ERASE, 0)));
  expectGood(await run(luns, [0x00]));
  // With AUSE = 1, EXIT FAILURE MODE ends it.
  store.failUnmap = 'EIO';
  expectSense(await run(luns, CDB.sanitize(BLOCK_ERASE, 0, { ause: true })), 0x03, 0x0c, 0x00);
  expectGood(await run(luns, CDB.sanitize(EXIT_FAILURE_MODE, 0)));
  expectGood(await run(luns, CDB.read16(0, 1)));
});

test('closing the LU stops a running SANITIZE', async () => {
  const { lu, luns, store } = await setup({ blocks: 16 * 1024 });
  store.delayWrite = 10;
  const list = overwriteList(Buffer.from([0x42]));
  expectGood(await run(luns, CDB.sanitize(OVERWRITE, list.length, { immed: true }), { dataOut: list }));
  await sleep(25);
  await lu.close();
  assert.equal(lu.sanitize.inProgress, false);
  assert.ok(store.writes < 16, `stopped early after ${store.writes} chunks`);
});
