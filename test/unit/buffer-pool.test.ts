// The data-buffer pool: exact lengths, reuse after release, only its own buffers taken
// back, and a bounded idle budget.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BufferPool } from '../../src/scsi/buffer-pool';

test('take() gives exactly the length asked; a released buffer is lent again', () => {
  const pool = new BufferPool();
  const a = pool.take(4096);
  assert.equal(a.length, 4096);
  a.fill(1);
  pool.release(a);
  assert.equal(pool.idleBytes, 4096);
  const b = pool.take(3000);
  assert.equal(b.length, 3000);
  assert.equal(b.buffer, a.buffer, 'same memory reused for a request of the same class');
  assert.equal(pool.idleBytes, 0);
  const c = pool.take(3000);
  assert.notEqual(c.buffer, b.buffer, 'a lent buffer is never lent twice');
});

test('release() takes back only buffers it lent, and each only once', () => {
  const pool = new BufferPool();
  pool.release(Buffer.allocUnsafeSlow(4096));
  pool.release(Buffer.alloc(8192));
  assert.equal(pool.idleBytes, 0, 'foreign buffers are ignored');
  const a = pool.take(8192);
  pool.release(a.subarray(100, 200)); // a view of a lent buffer returns the whole buffer
  pool.release(a);
  assert.equal(pool.idleBytes, 8192, 'a second release of the same buffer is ignored');
});

test('sizes round up to power-of-two classes; beyond 1 MiB nothing is pooled', () => {
  const pool = new BufferPool();
  const a = pool.take(4097);
  assert.equal(a.buffer.byteLength, 8192);
  const big = pool.take(2 * 1024 * 1024);
  assert.equal(big.length, 2 * 1024 * 1024);
  pool.release(big);
  assert.equal(pool.idleBytes, 0);
});

test('idle buffers are kept only up to the byte budget', () => {
  const pool = new BufferPool(64 * 1024);
  const bufs = Array.from({ length: 4 }, () => pool.take(32 * 1024));
  for (const b of bufs) pool.release(b);
  assert.equal(pool.idleBytes, 64 * 1024);
});

test('a full pool drops idle buffers of other sizes to keep the size now in use', () => {
  const pool = new BufferPool(64 * 1024);
  const small = Array.from({ length: 4 }, () => pool.take(16 * 1024));
  for (const b of small) pool.release(b);
  assert.equal(pool.idleBytes, 64 * 1024);
  const big = [pool.take(32 * 1024), pool.take(32 * 1024)];
  for (const b of big) pool.release(b);
  assert.equal(pool.idleBytes, 64 * 1024);
  // Both 32 KiB buffers are kept: taking them again reuses them (no 16 KiB one is left).
  const again = pool.take(32 * 1024);
  assert.ok(again.buffer === big[0].buffer || again.buffer === big[1].buffer);
  assert.equal(pool.idleBytes, 32 * 1024);
});
