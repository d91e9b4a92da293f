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
