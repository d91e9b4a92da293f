// Thin provisioning in the backstores: unmap() deallocates (punches holes in a file) and
// the range reads back as zeros; mapStatus() reports the allocated extents (SEEK_DATA /
// SEEK_HOLE for files, the 4 KiB granule map for memory); the native calls load.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Backstore } from '../../src/backstore/backstore';
import { FileBackstore } from '../../src/backstore/file';
import { MemoryBackstore } from '../../src/backstore/memory';
import { nativeFs, SEEK_DATA } from '../../src/backstore/native';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backstore-unmap-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const KiB = 1024;
const MiB = 1024 * KiB;

/** Every extent mapStatus reports over the whole store, as [mapped, offset, length]. */
async function extents(s: Backstore): Promise<Array<[boolean, number, number]>> {
  const out: Array<[boolean, number, number]> = [];
  for (let off = 0; off < s.size;) {
    const st = await s.mapStatus!(off, s.size - off);
    assert.ok(st.length > 0 && st.length <= s.size - off, `length ${st.length} at ${off}`);
    const last = out[out.length - 1];
    if (last && last[0] === st.mapped) last[2] += st.length;
    else out.push([st.mapped, off, st.length]);
    off += st.length;
  }
  return out;
}

test('koffi loads and reaches libc on this Linux machine', () => {
  const native = nativeFs();
  assert.ok(native !== null, 'native calls unavailable');
  const p = path.join(tmp, 'seek.img');
  fs.writeFileSync(p, Buffer.alloc(0));
  fs.truncateSync(p, MiB);
  const fd = fs.openSync(p, 'r');
  try {
    assert.equal(native.seek(fd, 0, SEEK_DATA), null); // all hole: ENXIO
  } finally {
    fs.closeSync(fd);
  }
});

test('file: unmap punches a hole (space is freed), the range reads zeros, the rest is kept', async () => {
  const p = path.join(tmp, 'thin.img');
  const s = await FileBackstore.open({ path: p, size: 8 * MiB, blockSize: 512, readonly: false });
  try {
    assert.deepEqual(await extents(s), [[false, 0, 8 * MiB]]);
    await s.write(Buffer.alloc(4 * MiB, 0xab), 0);
    await s.flush();
    const before = fs.statSync(p).blocks * 512;
    assert.ok(before >= 4 * MiB, `allocated ${before}`);
    assert.deepEqual(await extents(s), [
      [true, 0, 4 * MiB],
      [false, 4 * MiB, 4 * MiB],
    ]);

    await s.unmap(MiB, 2 * MiB);
    assert.ok(s.deallocates);
    const after = fs.statSync(p).blocks * 512;
    assert.ok(before - after >= 2 * MiB, `freed ${before - after} bytes`);
    const back = Buffer.alloc(4 * MiB);
    await s.read(back, 0);
    assert.ok(back.subarray(0, MiB).every((b) => b === 0xab));
    assert.ok(back.subarray(MiB, 3 * MiB).every((b) => b === 0));
    assert.ok(back.subarray(3 * MiB).every((b) => b === 0xab));
    assert.deepEqual(await extents(s), [
      [true, 0, MiB],
      [false, MiB, 2 * MiB],
      [true, 3 * MiB, MiB],
      [false, 4 * MiB, 4 * MiB],
    ]);

    // A 512-byte unmap inside a filesystem block zeros it; the block stays allocated.
    await s.unmap(512, 512);
    const small = Buffer.alloc(1536);
    await s.read(small, 0);
    assert.ok(small.subarray(0, 512).every((b) => b === 0xab));
    assert.ok(small.subarray(512, 1024).every((b) => b === 0));
    assert.ok(small.subarray(1024).every((b) => b === 0xab));
    assert.equal((await s.mapStatus(0, 8 * MiB)).mapped, true);
  } finally {
    await s.close();
  }
});

test('file: unmap of a read-only volume is refused with EROFS', async () => {
  const p = path.join(tmp, 'ro.img');
  fs.writeFileSync(p, Buffer.alloc(MiB, 1));
  const s = await FileBackstore.open({ path: p, blockSize: 512, readonly: true });
  try {
    await assert.rejects(s.unmap(0, 4096), { code: 'EROFS' });
  } finally {
    await s.close();
  }
});

test('memory: unmap zeros the range and unmaps whole 4 KiB granules; mapStatus follows writes', async () => {
  const s = new MemoryBackstore(64 * KiB);
  assert.deepEqual(await extents(s), [[false, 0, 64 * KiB]]);
  await s.write(Buffer.alloc(16 * KiB, 7), 8 * KiB);
  assert.deepEqual(await extents(s), [
    [false, 0, 8 * KiB],
    [true, 8 * KiB, 16 * KiB],
    [false, 24 * KiB, 40 * KiB],
  ]);
  // 10 KiB .. 18 KiB: the granules at 8 and 16 KiB are partly covered, so stay mapped.
  await s.unmap(10 * KiB, 8 * KiB);
  const b = Buffer.alloc(16 * KiB);
  await s.read(b, 8 * KiB);
  assert.ok(b.subarray(0, 2 * KiB).every((x) => x === 7));
  assert.ok(b.subarray(2 * KiB, 10 * KiB).every((x) => x === 0));
  assert.ok(b.subarray(10 * KiB).every((x) => x === 7));
  assert.deepEqual(await extents(s), [
    [false, 0, 8 * KiB],
    [true, 8 * KiB, 4 * KiB],
    [false, 12 * KiB, 4 * KiB],
    [true, 16 * KiB, 8 * KiB],
    [false, 24 * KiB, 40 * KiB],
  ]);
  await s.unmap(0, 64 * KiB);
  assert.deepEqual(await extents(s), [[false, 0, 64 * KiB]]);
  const ro = new MemoryBackstore(4 * KiB, { readonly: true });
  await assert.rejects(ro.unmap(0, 512), { code: 'EROFS' });
});
