// The write age limit (scsi/write-age.ts): a write is never handed to the store later than
// the bound after its command PDU arrived; past it the command ends ABORTED COMMAND and the
// store sees nothing. Fake store, fake clock: no Ceph here.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../src/backstore/memory';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { LoopClock } from '../../src/iscsi/loop-clock';
import { parseConfig } from '../../src/config/load';
import { LIMIT_DEFAULTS } from '../../src/config/model';
import type { ScsiResult } from '../../src/scsi/task';
import { be64, CDB, executeOn, expectGood, expectSense, run, task, unmapList } from '../helpers/scsi';

const BOUND = 5000;

/** A memory store with the RBD store's own operations; counts every call that changes data. */
class FakeRbd extends MemoryBackstore {
  changes = 0;
  /** While set, compareAndWrite waits for it (a slow OSD). */
  gate: Promise<void> | null = null;
  override write(buf: Buffer, offset: number): Promise<void> {
    this.changes++;
    return super.write(buf, offset);
  }
  override unmap(offset: number, length: number): Promise<void> {
    this.changes++;
    return super.unmap(offset, length);
  }
  async writeSame(block: Buffer, offset: number, length: number): Promise<void> {
    this.changes++;
    for (let at = 0; at < length; at += block.length) await super.write(block, offset + at);
  }
  async compareAndWrite(cmp: Buffer, data: Buffer, offset: number): Promise<{ mismatchOffset: number } | null> {
    this.changes++;
    if (this.gate) await this.gate;
    const cur = Buffer.alloc(cmp.length);
    await this.read(cur, offset);
    if (!cur.equals(cmp)) return { mismatchOffset: 0 };
    await super.write(data, offset);
    return null;
  }
}

async function setup(bound: number | null = BOUND) {
  const bs = 512;
  const clock = { now: 1_000_000 };
  const store = new FakeRbd(1024 * bs);
  const lu = new LogicalUnit({
    name: 'rbd',
    backstore: store,
    blockSize: bs,
    readonly: false,
    writeAgeLimitMs: bound ?? undefined,
    clock: () => clock.now,
  });
  const luns = new Map([[0, lu]]) as ReadonlyMap<number, LogicalUnit>;
  await run(luns, [0x00]); // the power-on unit attention
  /** Run `cdb` as a command whose PDU arrived `age` ms ago. */
  const aged = (age: number, cdb: number[], dataOut?: Buffer): Promise<ScsiResult> =>
    executeOn(luns, { ...task(cdb, { dataOut }), receivedAt: clock.now - age });
  return { store, lu, luns, bs, clock, aged };
}

const caw = (lba: number) => [0x89, 0, ...be64(lba), 0, 0, 0, 1, 0, 0];
const orWrite = (lba: number) => [0x8b, 0, ...be64(lba), 0, 0, 0, 1, 0, 0];

test('every command that changes data is refused past the bound, and nothing reaches the store', async () => {
  const { store, bs, aged, luns } = await setup();
  const old = BOUND + 1;
  const block = Buffer.alloc(bs, 'N');
  const cases: [string, number[], Buffer | undefined][] = [
    ['WRITE(16)', CDB.write16(1, 1), block],
    ['WRITE(10) FUA', CDB.write10(1, 1, 0x08), block],
    ['WRITE AND VERIFY(16)', [0x8e, 0, ...be64(1), 0, 0, 0, 1, 0, 0], block],
    ['WRITE SAME(16)', CDB.writeSame16(1, 8), block],
    ['WRITE SAME(16) UNMAP', CDB.writeSame16(1, 8, 0x08), block],
    ['UNMAP', CDB.unmap(24), unmapList([[1, 8]])],
    ['COMPARE AND WRITE', caw(1), Buffer.concat([Buffer.alloc(bs), block])],
    ['ORWRITE(16)', orWrite(1), block],
    ['WRITE ATOMIC(16)', CDB.writeAtomic16(1, 1), block],
  ];
  expectGood(await aged(0, CDB.write16(1, 8), Buffer.alloc(8 * bs, 'O')));
  store.changes = 0;
  for (const [name, cdb, data] of cases) {
    const r = await aged(old, cdb, data);
    assert.equal(r.status, 0x02, name);
    expectSense(r, 0x0b, 0x00, 0x00);
  }
  assert.equal(store.changes, 0, 'nothing handed to the store');
  assert.deepEqual((await run(luns, CDB.read16(1, 8))).data, Buffer.alloc(8 * bs, 'O'));
  // At the bound exactly, and reads of any age, still run.
  expectGood(await aged(BOUND, CDB.write16(1, 1), block));
  expectGood(await aged(10 * BOUND, CDB.read16(1, 1)));
});

test('the age is taken when the write is handed to the store, not when the SCSI core starts it', async () => {
  const { store, bs, clock, aged, luns } = await setup();
  let open!: () => void;
  store.gate = new Promise((resolve) => (open = resolve));
  const first = Buffer.alloc(bs, 'A');
  // COMPARE AND WRITE holds blocks 4.. exclusively while its store call waits.
  const cas = aged(0, caw(4), Buffer.concat([Buffer.alloc(bs), first]));
  await new Promise((r) => setImmediate(r));
  // A fresh WRITE to the same block queues behind it ...
  const late = aged(0, CDB.write16(4, 1), Buffer.alloc(bs, 'Z'));
  await new Promise((r) => setImmediate(r));
  // ... and the gateway stalls past the bound before the hold is released.
  clock.now += BOUND + 1;
  open();
  expectGood(await cas); // already handed off: the store's business
  expectSense(await late, 0x0b, 0x00, 0x00);
  assert.deepEqual((await run(luns, CDB.read16(4, 1))).data, first);
});

test('no bound (file volumes): an old write is written', async () => {
  const { aged, bs, luns } = await setup(null);
  expectGood(await aged(60_000, CDB.write16(2, 1), Buffer.alloc(bs, 'F')));
  assert.deepEqual((await run(luns, CDB.read16(2, 1))).data, Buffer.alloc(bs, 'F'));
});

test('limits.writeAgeLimit: 5 s by default, seconds in the YAML, 0 turns it off, at most 30', () => {
  assert.equal(LIMIT_DEFAULTS.writeAgeLimitMs, 5000);
  const base = 'volumes:\n  v: { memory: true, size: 1MiB }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n';
  assert.equal(parseConfig(base + 'limits:\n  writeAgeLimit: 2.5\n', 'c.yaml').limits?.writeAgeLimitMs, 2500);
  assert.equal(parseConfig(base + 'limits:\n  writeAgeLimit: 0\n', 'c.yaml').limits?.writeAgeLimitMs, 0);
  assert.throws(() => parseConfig(base + 'limits:\n  writeAgeLimit: 31\n', 'c.yaml'), /between 0 and 30 seconds/);
});

test('loop clock: a command read after a stall of the process is dated back to before it', async () => {
  const c = new LoopClock(0);
  c.beat(250);
  assert.equal(c.arrivalTime(300), 300, 'on time: the parse time');
  // Resumed in the poll: the socket is read before the late beat.
  assert.equal(c.arrivalTime(8000), 250);
  // Resumed elsewhere: the late beat runs first; the poll after it still gets the old time.
  c.beat(8001);
  assert.equal(c.arrivalTime(8002), 250);
  await new Promise((r) => setImmediate(r));
  assert.equal(c.arrivalTime(8003), 8003, 'caught up');
});
