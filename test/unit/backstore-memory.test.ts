import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../src/backstore/memory';

test('MemoryBackstore round trip, zeros past the end, errors with codes', async () => {
  const m = new MemoryBackstore(8192);
  assert.equal(m.size, 8192);
  assert.equal(m.path, 'memory');
  await m.write(Buffer.alloc(512, 7), 512);
  const b = Buffer.alloc(1024, 0xff);
  await m.read(b, 0);
  assert.ok(b.subarray(0, 512).every((x) => x === 0));
  assert.ok(b.subarray(512).every((x) => x === 7));
  const tail = Buffer.alloc(1024, 0xff);
  await m.read(tail, 7680);
  assert.ok(tail.every((x) => x === 0));
  await assert.rejects(m.write(Buffer.alloc(1024), 7680), (e: NodeJS.ErrnoException) => e.code === 'ENOSPC');
  await m.flush();
  await m.close();
  await assert.rejects(m.read(b, 0), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
});

test('MemoryBackstore read-only and size checks', async () => {
  const ro = new MemoryBackstore(4096, { readonly: true, path: 'memory:x' });
  assert.equal(ro.readonly, true);
  assert.equal(ro.path, 'memory:x');
  await assert.rejects(ro.write(Buffer.alloc(512), 0), (e: NodeJS.ErrnoException) => e.code === 'EROFS');
  assert.throws(() => new MemoryBackstore(0), /positive/);
  assert.throws(() => new MemoryBackstore(-1), /positive/);
});

test('the allocation map is a bitfield (one bit per 4 KiB granule) that follows writes and unmaps', async () => {
  const { default: BitField } = await import('bitfield');
  const m = new MemoryBackstore(64 * 1024);
  const map = (m as unknown as { map: unknown }).map;
  assert.ok(map instanceof BitField, 'the memory store keeps its map in a BitField');
  const bits = map;
  assert.equal(bits.length >= 16, true);
  await m.write(Buffer.alloc(4096, 1), 3 * 4096 + 100); // touches granules 3 and 4
  assert.deepEqual(
    [0, 1, 2, 3, 4, 5].map((g) => bits.get(g)),
    [false, false, false, true, true, false],
  );
  await m.unmap(4 * 4096, 4096); // granule 4 exactly
  assert.deepEqual(
    [3, 4].map((g) => bits.get(g)),
    [true, false],
  );
  assert.deepEqual(await m.mapStatus(3 * 4096, 3 * 4096), { mapped: true, length: 4096 });
  assert.deepEqual(await m.mapStatus(4 * 4096, 2 * 4096), { mapped: false, length: 2 * 4096 });
});
