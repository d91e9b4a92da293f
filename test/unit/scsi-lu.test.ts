// LogicalUnit behaviour across commands: task attributes, unit attentions after resets
// and nexus loss, reservations, the range lock, sense formats and close().

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Backstore } from '../../src/backstore/backstore';
import { MemoryBackstore } from '../../src/backstore/memory';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { RangeLock } from '../../src/scsi/range-lock';
import { buildSense, descriptorSense, fixedSense, parseSense, SenseKey } from '../../src/scsi/sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from '../../src/scsi/task';
import { CDB, executeOn } from '../helpers/scsi';

// ---- helpers (kept local: each test file stands alone)

function nexus(n: number): ItNexus {
  return {
    id: `iqn.2026-01.test:i${n},i,0x40000137000${n}`,
    initiatorName: `iqn.2026-01.test:i${n}`,
    isid: `40000137000${n}`,
    targetName: 'iqn.2026-01.test:target',
    relativePortId: 1,
  };
}
const A = nexus(1);
const B = nexus(2);

const SIMPLE = 1;
const ORDERED = 2;
const HEAD_OF_QUEUE = 3;

/** A store whose writes and reads can be held until released, recording the order of events. */
class GatedStore implements Backstore {
  readonly inner = new MemoryBackstore(1024 * 512);
  events: string[] = [];
  holdWrites = false;
  private held: (() => void)[] = [];
  get path() {
    return 'gated';
  }
  get size() {
    return this.inner.size;
  }
  get readonly() {
    return false;
  }
  async read(buf: Buffer, offset: number): Promise<void> {
    this.events.push(`read ${offset / 512}`);
    await this.inner.read(buf, offset);
  }
  async write(buf: Buffer, offset: number): Promise<void> {
    if (this.holdWrites) await new Promise<void>((r) => this.held.push(r));
    await this.inner.write(buf, offset);
    this.events.push(`write ${offset / 512}`);
  }
  async unmap(offset: number, length: number): Promise<void> {
    await this.inner.unmap(offset, length);
    this.events.push(`unmap ${offset / 512}`);
  }
  releaseWrites(): void {
    this.holdWrites = false;
    const h = this.held;
    this.held = [];
    for (const r of h) r();
  }
  get pendingWrites(): number {
    return this.held.length;
  }
  async flush(): Promise<void> {
    this.events.push('flush');
  }
  async close(): Promise<void> {
    this.events.push('close');
  }
}

function task(cdb: number[], opts: { nexus?: ItNexus; dataOut?: Buffer; attr?: number; expected?: number } = {}): ScsiTask {
  const b = Buffer.alloc(16);
  Buffer.from(cdb).copy(b);
  return {
    cdb: b,
    lun: 0,
    nexus: opts.nexus ?? A,
    expectedLength: opts.expected ?? opts.dataOut?.length ?? 65536,
    dataOut: opts.dataOut ?? null,
    attr: opts.attr ?? SIMPLE,
    aborted: false,
    luns: new Map(),
  };
}

function expectSense(r: ScsiResult, key: number, asc: number, ascq: number): void {
  assert.equal(r.status, ScsiStatus.CheckCondition, 'expected CHECK CONDITION');
  const s = parseSense(r.sense!);
  assert.deepEqual([s.key, s.asc, s.ascq], [key, asc, ascq]);
}

const TUR = [0x00];
const write10 = (lba: number) => CDB.write10(lba, 1);
const read10 = (lba: number) => CDB.read10(lba, 1);

function makeLu(store: Backstore = new MemoryBackstore(1024 * 512), extra: Partial<ConstructorParameters<typeof LogicalUnit>[0]> = {}) {
  const lu = new LogicalUnit({ name: 'vol', backstore: store, blockSize: 512, readonly: false, ...extra });
  return { lu, luns: new Map([[0, lu]]) as ReadonlyMap<number, LogicalUnit> };
}

async function clearUa(luns: ReadonlyMap<number, LogicalUnit>, n: ItNexus): Promise<void> {
  for (let i = 0; i < 20; i++) {
    const r = await executeOn(luns, task(TUR, { nexus: n }));
    if (r.status === ScsiStatus.Good) return;
  }
  assert.fail('unit attention did not clear');
}

// ---- task attributes

test('SIMPLE tasks run concurrently', async () => {
  const store = new GatedStore();
  const { luns } = makeLu(store);
  await clearUa(luns, A);
  store.holdWrites = true;
  const w1 = executeOn(luns, task(write10(1), { dataOut: Buffer.alloc(512, 1) }));
  const w2 = executeOn(luns, task(write10(2), { dataOut: Buffer.alloc(512, 2) }));
  await new Promise((r) => setImmediate(r));
  assert.equal(store.pendingWrites, 2, 'both writes reached the store at once');
  // A read is not held up by the writes either.
  const r = await executeOn(luns, task(read10(9)));
  assert.equal(r.status, ScsiStatus.Good);
  store.releaseWrites();
  assert.equal((await w1).status, ScsiStatus.Good);
  assert.equal((await w2).status, ScsiStatus.Good);
});

test('an ORDERED task waits for earlier SIMPLE tasks, and later tasks wait for it', async () => {
  const store = new GatedStore();
  const { luns } = makeLu(store);
  await clearUa(luns, A);
  store.holdWrites = true;
  const w1 = executeOn(luns, task(write10(1), { dataOut: Buffer.alloc(512, 0xaa) }));
  const ordered = executeOn(luns, task(read10(1), { attr: ORDERED }));
  const after = executeOn(luns, task(read10(7)));
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(store.events, [], 'neither the ORDERED read nor the later read ran');
  store.releaseWrites();
  const ro = await ordered;
  await after;
  assert.deepEqual(store.events, ['write 1', 'read 1', 'read 7']);
  assert.ok(
    ro.data!.every((b) => b === 0xaa),
    'the ORDERED read saw the earlier write',
  );
  assert.equal((await w1).status, ScsiStatus.Good);
});

test('consecutive ORDERED tasks and the SIMPLE tasks between them keep their order', async () => {
  const store = new GatedStore();
  const { luns } = makeLu(store);
  await clearUa(luns, A);
  store.holdWrites = true;
  const t = [
    executeOn(luns, task(write10(1), { dataOut: Buffer.alloc(512) })),
    executeOn(luns, task(read10(2), { attr: ORDERED })),
    executeOn(luns, task(read10(3))),
    executeOn(luns, task(read10(4), { attr: ORDERED })),
    executeOn(luns, task(read10(5))),
  ];
  await new Promise((r) => setTimeout(r, 5));
  store.releaseWrites();
  await Promise.all(t);
  assert.deepEqual(store.events, ['write 1', 'read 2', 'read 3', 'read 4', 'read 5']);
});

test('HEAD OF QUEUE runs at once, even while an ORDERED task waits', async () => {
  const store = new GatedStore();
  const { luns } = makeLu(store);
  await clearUa(luns, A);
  store.holdWrites = true;
  const w = executeOn(luns, task(write10(1), { dataOut: Buffer.alloc(512) }));
  const o = executeOn(luns, task(read10(2), { attr: ORDERED }));
  const h = await executeOn(luns, task(read10(3), { attr: HEAD_OF_QUEUE }));
  assert.equal(h.status, ScsiStatus.Good);
  assert.deepEqual(store.events, ['read 3']);
  store.releaseWrites();
  await Promise.all([w, o]);
});

test('an aborted task is not executed', async () => {
  const store = new GatedStore();
  const { luns } = makeLu(store);
  await clearUa(luns, A);
  const t = task(write10(1), { dataOut: Buffer.alloc(512) });
  t.aborted = true;
  assert.equal((await executeOn(luns, t)).status, ScsiStatus.TaskAborted);
  assert.deepEqual(store.events, []);
});

// ---- unit attentions

test('LUN reset: BUS DEVICE RESET FUNCTION OCCURRED (29/03) for every nexus, reservation released', async () => {
  const { lu, luns } = makeLu();
  await clearUa(luns, A);
  await clearUa(luns, B);
  assert.equal((await executeOn(luns, task([0x16], { nexus: A }))).status, ScsiStatus.Good);
  assert.equal((await executeOn(luns, task(TUR, { nexus: B }))).status, ScsiStatus.ReservationConflict);
  lu.reset('lun', A);
  expectSense(await executeOn(luns, task(TUR, { nexus: A })), 0x06, 0x29, 0x03);
  expectSense(await executeOn(luns, task(TUR, { nexus: B })), 0x06, 0x29, 0x03);
  assert.equal((await executeOn(luns, task(TUR, { nexus: A }))).status, ScsiStatus.Good);
  // B can reserve now.
  assert.equal((await executeOn(luns, task([0x16], { nexus: B }))).status, ScsiStatus.Good);
});

test('target warm reset -> 29/00, cold reset -> 29/01; mode pages back to defaults', async () => {
  const { lu, luns } = makeLu();
  await clearUa(luns, A);
  lu.setModeValues({ wce: false, dSense: true, swp: true }, A);
  lu.reset('warm');
  assert.deepEqual(lu.modeValues, { wce: true, dSense: false, swp: false });
  const r = await executeOn(luns, task(TUR));
  expectSense(r, 0x06, 0x29, 0x00);
  assert.equal(r.sense![0], 0x70);
  lu.reset('cold');
  expectSense(await executeOn(luns, task(TUR)), 0x06, 0x29, 0x01);
  assert.equal((await executeOn(luns, task(TUR))).status, ScsiStatus.Good);
});

test('a newer reset supersedes older unit attentions', async () => {
  const { lu, luns } = makeLu();
  await clearUa(luns, A);
  lu.capacityChanged();
  lu.reset('lun');
  expectSense(await executeOn(luns, task(TUR)), 0x06, 0x29, 0x03);
  assert.equal((await executeOn(luns, task(TUR))).status, ScsiStatus.Good);
  lu.reset('lun');
  lu.capacityChanged();
  expectSense(await executeOn(luns, task(TUR)), 0x06, 0x29, 0x03);
  expectSense(await executeOn(luns, task(TUR)), 0x06, 0x2a, 0x09);
  assert.equal((await executeOn(luns, task(TUR))).status, ScsiStatus.Good);
});

test('INQUIRY does not report or clear a unit attention', async () => {
  const { luns } = makeLu();
  for (let i = 0; i < 3; i++) {
    assert.equal((await executeOn(luns, task([0x12, 0, 0, 0, 36, 0]))).status, ScsiStatus.Good);
  }
  expectSense(await executeOn(luns, task(TUR)), 0x06, 0x29, 0x00);
});

test('nexus loss releases the reservation; the returning nexus is new (29/00) by default', async () => {
  const { lu, luns } = makeLu();
  await clearUa(luns, A);
  await clearUa(luns, B);
  assert.equal((await executeOn(luns, task([0x16], { nexus: A }))).status, ScsiStatus.Good);
  lu.nexusLost(A);
  assert.equal(lu.reservationHolder, null);
  assert.equal((await executeOn(luns, task([0x16], { nexus: B }))).status, ScsiStatus.Good);
  expectSense(await executeOn(luns, task(TUR, { nexus: A })), 0x06, 0x29, 0x00);
  // The other nexus's state is untouched.
  assert.equal((await executeOn(luns, task(TUR, { nexus: B }))).status, ScsiStatus.Good);
});

test('with nexusLossUnitAttention, the returning nexus gets I_T NEXUS LOSS OCCURRED (29/07)', async () => {
  const { lu, luns } = makeLu(undefined, { nexusLossUnitAttention: true });
  await clearUa(luns, A);
  lu.nexusLost(A);
  expectSense(await executeOn(luns, task(TUR, { nexus: A })), 0x06, 0x29, 0x07);
  assert.equal((await executeOn(luns, task(TUR, { nexus: A }))).status, ScsiStatus.Good);
  // A nexus never seen before still gets 29/00.
  expectSense(await executeOn(luns, task(TUR, { nexus: B })), 0x06, 0x29, 0x00);
});

test('unit attentions use the current sense format (D_SENSE)', async () => {
  const { lu, luns } = makeLu();
  lu.setModeValues({ ...lu.modeValues, dSense: true }, A);
  const r = await executeOn(luns, task(TUR));
  expectSense(r, 0x06, 0x29, 0x00);
  assert.equal(r.sense![0], 0x72);
});

// ---- close

test('close() waits for running tasks, flushes and closes the store', async () => {
  const store = new GatedStore();
  const { lu, luns } = makeLu(store);
  await clearUa(luns, A);
  store.holdWrites = true;
  const w = executeOn(luns, task(write10(1), { dataOut: Buffer.alloc(512) }));
  const closing = lu.close();
  await new Promise((r) => setTimeout(r, 5));
  assert.deepEqual(store.events, []);
  store.releaseWrites();
  await closing;
  assert.equal((await w).status, ScsiStatus.Good);
  assert.deepEqual(store.events, ['write 1', 'flush', 'close']);
});

// ---- range lock

test('RangeLock: shared holds never wait for each other; exclusive holds wait for overlaps', async () => {
  const lock = new RangeLock();
  const s1 = lock.acquire(0, 10, false);
  const s2 = lock.acquire(5, 10, false);
  assert.equal(typeof s1, 'function');
  assert.equal(typeof s2, 'function');
  let exclusiveGot = false;
  const ex = Promise.resolve(lock.acquire(8, 4, true)).then((rel) => {
    exclusiveGot = true;
    return rel;
  });
  // Non-overlapping shared hold: no wait even with an exclusive one pending.
  const s3 = lock.acquire(100, 1, false);
  assert.equal(typeof s3, 'function');
  // Overlapping shared hold after the exclusive one: waits for it.
  let laterGot = false;
  const later = Promise.resolve(lock.acquire(9, 1, false)).then((rel) => {
    laterGot = true;
    return rel;
  });
  await new Promise((r) => setImmediate(r));
  assert.equal(exclusiveGot, false);
  (s1 as () => void)();
  await new Promise((r) => setImmediate(r));
  assert.equal(exclusiveGot, false);
  (s2 as () => void)();
  const relEx = await ex;
  assert.equal(exclusiveGot, true);
  assert.equal(laterGot, false);
  relEx();
  (await later)();
  (s3 as () => void)();
  assert.equal(lock.size, 0);
});

// ---- sense builders

test('fixed and descriptor sense layouts', () => {
  const f = fixedSense({ key: SenseKey.IllegalRequest, asc: 0x24, ascq: 0, field: { cd: true, byte: 1, bit: 4 } });
  assert.equal(f.length, 18);
  assert.deepEqual([f[0], f[2], f[7], f[12], f[13]], [0x70, 0x05, 10, 0x24, 0x00]);
  assert.equal(f[15], 0x80 | 0x40 | 0x08 | 4); // SKSV, C/D, BPV, bit 4
  assert.equal(f.readUInt16BE(16), 1);

  const m = fixedSense({ key: SenseKey.Miscompare, asc: 0x1d, ascq: 0, info: 1234 });
  assert.equal(m[0], 0xf0); // VALID
  assert.equal(m.readUInt32BE(3), 1234);

  const d = descriptorSense({ key: SenseKey.Miscompare, asc: 0x1d, ascq: 0, info: 2n ** 40n, field: { cd: false, byte: 7 } });
  assert.deepEqual([d[0], d[1], d[2], d[3]], [0x72, 0x0e, 0x1d, 0x00]);
  assert.equal(d[7], d.length - 8);
  assert.deepEqual([d[8], d[9], d[10]], [0x00, 0x0a, 0x80]);
  assert.equal(d.readBigUInt64BE(12), 2n ** 40n);
  assert.deepEqual([d[20], d[21], d[24]], [0x02, 0x06, 0x80]);
  assert.equal(d.readUInt16BE(25), 7);

  assert.equal(buildSense({ key: 6, asc: 0x29, ascq: 0 }, true).length, 8);
  assert.deepEqual(parseSense(buildSense({ key: 6, asc: 0x29, ascq: 7 }, false)), { key: 6, asc: 0x29, ascq: 7, descriptor: false });
});
