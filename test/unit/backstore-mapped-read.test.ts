// Large reads on tmpfs are sent from a view of the volume's own pages (file-mapping.ts):
// the view holds the file's bytes, holes and small reads are not mapped, and a write or
// unmap of blocks a pending view covers waits until the view is released, so a READ
// returns the data as it was when it completed.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { FileBackstore, MAPPED_READ_MIN } from '../../src/backstore/file';
import { nativeFs } from '../../src/backstore/native';
import { viewWait } from '../../src/backstore/file-mapping';

const SHM = '/dev/shm';
const haveShm = fs.existsSync(SHM) && nativeFs() !== null;
const dir = haveShm ? fs.mkdtempSync(path.join(SHM, 'mapped-read-')) : '';
after(() => {
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const MiB = 1024 * 1024;
const LEN = 128 * 1024;

async function filled(name: string, size: number): Promise<{ store: FileBackstore; data: Buffer }> {
  const data = randomBytes(size);
  const p = path.join(dir, name);
  fs.writeFileSync(p, data);
  const store = await FileBackstore.open({ path: p, blockSize: 512, readonly: false });
  return { store, data };
}

/** Settles within a few loop turns? (A write waiting on a view must not.) */
async function settlesSoon(p: Promise<unknown>): Promise<boolean> {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  return done;
}

test('on tmpfs a large read is a view of the file, equal to what read() returns', { skip: !haveShm && 'no /dev/shm' }, async () => {
  const { store, data } = await filled('a.img', 4 * MiB);
  try {
    const v = store.readView(MiB + 4096, LEN);
    assert.ok(v !== null, 'a view');
    assert.ok(v.data.equals(data.subarray(MiB + 4096, MiB + 4096 + LEN)));
    // Unaligned to pages (512-byte blocks) works too.
    const u = store.readView(512 * 3, LEN);
    assert.ok(u !== null && u.data.equals(data.subarray(1536, 1536 + LEN)));
    // Small reads are copied: the view is not worth it.
    assert.equal(store.readView(0, MAPPED_READ_MIN - 512), null);
    // Past the end: no view.
    assert.equal(store.readView(4 * MiB - 4096, LEN), null);
    v.release();
    u.release();
  } finally {
    await store.close();
  }
});

test(
  'a range with a hole is not mapped (mapping would allocate it), and stays unallocated',
  { skip: !haveShm && 'no /dev/shm' },
  async () => {
    const p = path.join(dir, 'sparse.img');
    const store = await FileBackstore.open({ path: p, size: 64 * MiB, blockSize: 512, readonly: false });
    try {
      await store.write(randomBytes(LEN), 0);
      const before = fs.statSync(p).blocks;
      assert.equal(store.readView(MiB, LEN), null, 'all hole');
      assert.equal(store.readView(LEN / 2, LEN), null, 'half data, half hole');
      const v = store.readView(0, LEN);
      assert.ok(v !== null, 'all data');
      v.release();
      assert.equal(fs.statSync(p).blocks, before, 'no block allocated by the checks');
      // After an unmap the range is a hole again: no view, even though it had data before.
      await store.unmap(0, LEN);
      assert.equal(store.readView(0, LEN), null);
      assert.equal(fs.statSync(p).blocks, 0);
    } finally {
      await store.close();
    }
  },
);

test(
  'a write to blocks a pending view covers waits for its release; elsewhere it does not',
  { skip: !haveShm && 'no /dev/shm' },
  async () => {
    const { store, data } = await filled('b.img', 4 * MiB);
    try {
      const v = store.readView(MiB, LEN)!;
      assert.ok(v !== null);
      const overlapping = store.write(Buffer.alloc(4096, 0xaa), MiB + LEN - 4096);
      const elsewhere = store.write(Buffer.alloc(4096, 0xbb), 2 * MiB);
      assert.equal(await settlesSoon(elsewhere), true, 'a write elsewhere goes through');
      assert.equal(await settlesSoon(overlapping), false, 'the overlapping write waits');
      assert.ok(v.data.equals(data.subarray(MiB, MiB + LEN)), 'the view still shows the data as read');
      const punch = store.unmap(MiB, 4096);
      assert.equal(await settlesSoon(punch), false, 'an unmap of those blocks waits too');
      v.release();
      v.release(); // twice is harmless
      await overlapping;
      await punch;
      const back = Buffer.alloc(4096);
      await store.read(back, MiB + LEN - 4096);
      assert.ok(back.equals(Buffer.alloc(4096, 0xaa)), 'the write landed after the release');
      await store.read(back, MiB);
      assert.ok(back.equals(Buffer.alloc(4096)), 'and the unmap');
    } finally {
      await store.close();
    }
  },
);

test('a grown volume maps its new blocks; a view outlives close until released', { skip: !haveShm && 'no /dev/shm' }, async () => {
  const { store, data } = await filled('c.img', 3 * MiB);
  const v = store.readView(2 * MiB, LEN)!;
  assert.ok(v !== null);
  await store.grow!(8 * MiB);
  const more = randomBytes(LEN);
  await store.write(more, 6 * MiB);
  const w = store.readView(6 * MiB, LEN);
  assert.ok(w !== null && w.data.equals(more), 'new blocks are mapped');
  w.release();
  // The view from before the grow still reads its pages (its window is unmapped only
  // once it is released), also after close.
  await store.close();
  assert.ok(v.data.equals(data.subarray(2 * MiB, 2 * MiB + LEN)));
  assert.equal(store.readView(0, LEN), null, 'no views after close');
  v.release();
});

test('not on tmpfs: no views (reads from disk are copied)', async () => {
  const d = fs.mkdtempSync(path.join(process.cwd(), '.mapped-read-'));
  try {
    const p = path.join(d, 'disk.img');
    fs.writeFileSync(p, randomBytes(MiB));
    const store = await FileBackstore.open({ path: p, blockSize: 512, readonly: false });
    const onTmpfs = store.inlineIo === 'memory';
    assert.equal(store.readView(0, LEN) === null, !onTmpfs);
    await store.close();
  } finally {
    fs.rmSync(d, { recursive: true, force: true });
  }
});

test(
  'a view never released does not hang writes for ever: they go ahead after viewWait.maxMs, with a warning',
  { skip: !haveShm && 'no /dev/shm' },
  async () => {
    const { store } = await filled('d.img', MiB);
    const saved = viewWait.maxMs;
    viewWait.maxMs = 100;
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
    process.on('warning', onWarning);
    try {
      const lost = store.readView(0, LEN);
      assert.ok(lost !== null);
      const write = store.write(Buffer.alloc(4096, 0xcc), 4096);
      assert.equal(await settlesSoon(write), false, 'waits at first');
      const alive = setInterval(() => undefined, 10); // the wait's own timer does not hold the process
      await write; // after about 100 ms
      clearInterval(alive);
      await new Promise((r) => setImmediate(r));
      assert.equal(warnings.length, 1, warnings.join('\n'));
      assert.match(warnings[0], /^MappedReadWarning: a write to bytes 4096\+4096 waited 0.1 s/);
      const back = Buffer.alloc(4096);
      await store.read(back, 4096);
      assert.ok(back.equals(Buffer.alloc(4096, 0xcc)));
    } finally {
      viewWait.maxMs = saved;
      process.off('warning', onWarning);
      await store.close();
    }
  },
);
