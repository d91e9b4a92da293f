// The RBD backstore against the real test cluster: data round trips, unmap reading zeros
// (also within an object), flush, grow, compare-and-write, write-same, allocation status,
// image metadata, and the errors an admin sees.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { RbdBackstore } from '../src/backstore/rbd';
import { cephConf, newImageName, rbd, removeImages } from './cluster';

const MiB = 1024 * 1024;
let conf: string;
const images: string[] = [];
let store: RbdBackstore;

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

before(async () => {
  conf = cephConf();
  const image = newImageName('bs');
  images.push(image);
  store = await RbdBackstore.open({ pool: 'rbd', image, conf, size: 64 * MiB });
});

after(async () => {
  await store?.close();
  removeImages(conf, images);
});

test('a missing image is created with the size given; rbd info agrees', () => {
  assert.equal(store.size, 64 * MiB);
  assert.equal(store.path, `rbd:rbd/${images[0]}`);
  assert.deepEqual(store.notes, [`created RBD image rbd/${images[0]} of ${64 * MiB} bytes`]);
  const info = JSON.parse(rbd(conf, ['info', '--format', 'json', `rbd/${images[0]}`])) as { size: number };
  assert.equal(info.size, 64 * MiB);
});

test('writes read back, across object boundaries, with many requests in flight', async () => {
  const data = pattern(3 * MiB, 1);
  const at = 4 * MiB - MiB; // straddles the first 4 MiB object boundary
  await store.write(data, at);
  const back = Buffer.alloc(data.length);
  await store.read(back, at);
  assert.ok(back.equals(data));
  // 64 concurrent 4 KiB writes, then concurrent reads.
  const writes = Array.from({ length: 64 }, (_, i) => store.write(pattern(4096, i + 10), 40 * MiB + i * 8192));
  await Promise.all(writes);
  const reads = await Promise.all(
    Array.from({ length: 64 }, async (_, i) => {
      const b = Buffer.alloc(4096);
      await store.read(b, 40 * MiB + i * 8192);
      return b.equals(pattern(4096, i + 10));
    }),
  );
  assert.deepEqual(reads, Array(64).fill(true) as boolean[]);
  await store.flush();
});

test('unmap reads back zeros: whole objects, part of an object, unaligned edges', async () => {
  const data = pattern(12 * MiB, 2);
  await store.write(data, 8 * MiB); // objects 2, 3 and 4 full
  await store.unmap(8 * MiB + 4096, 4096); // 4 KiB inside an object
  await store.unmap(12 * MiB, 4 * MiB); // the whole of object 3
  await store.unmap(16 * MiB + 100, 1000); // not even sector aligned
  const back = Buffer.alloc(12 * MiB);
  await store.read(back, 8 * MiB);
  const expect = Buffer.from(data);
  expect.fill(0, 4096, 8192);
  expect.fill(0, 4 * MiB, 8 * MiB);
  expect.fill(0, 8 * MiB + 100, 8 * MiB + 1100);
  assert.equal(back.compare(expect), 0, 'unmapped ranges must read as zeros, the rest unchanged');
  const status = await store.mapStatus(12 * MiB, 4 * MiB);
  assert.deepEqual(status, { mapped: false, length: 4 * MiB }, 'a discarded whole object is deallocated');
  const mapped = await store.mapStatus(16 * MiB, 4 * MiB);
  assert.equal(mapped.mapped, true);
});

test('allocation status: a never-written range is unmapped, written data is mapped', async () => {
  const s = await store.mapStatus(56 * MiB, 8 * MiB);
  assert.deepEqual(s, { mapped: false, length: 8 * MiB });
  await store.write(pattern(8192, 3), 60 * MiB);
  const before = await store.mapStatus(56 * MiB, 8 * MiB);
  assert.equal(before.mapped, false);
  assert.ok(before.length <= 4 * MiB && before.length > 0, `unmapped run ends at or before the written object (${before.length})`);
  const at = await store.mapStatus(60 * MiB, 8192);
  assert.deepEqual(at, { mapped: true, length: 8192 });
});

test('compare-and-write: a match writes; a mismatch reports the first differing byte and writes nothing', async () => {
  const off = 30 * MiB + 512;
  const cur = pattern(512, 4);
  await store.write(cur, off);
  const next = Buffer.alloc(512, 0xab);
  assert.equal(await store.compareAndWrite(cur, next, off), null);
  const back = Buffer.alloc(512);
  await store.read(back, off);
  assert.ok(back.equals(next));
  const wrong = Buffer.from(next);
  wrong[321] ^= 0xff;
  assert.deepEqual(await store.compareAndWrite(wrong, Buffer.alloc(512, 1), off), { mismatchOffset: 321 });
  await store.read(back, off);
  assert.ok(back.equals(next), 'nothing written on a miscompare');
  // Wider than one 512-byte sector: librbd 16 cannot; the SCSI core then does it itself.
  await assert.rejects(store.compareAndWrite(Buffer.alloc(1024), Buffer.alloc(1024), off), { code: 'EOPNOTSUPP' });
});

test('write-same repeats one block over the range', async () => {
  const block = pattern(512, 5);
  await store.writeSame(block, 20 * MiB, MiB);
  const back = Buffer.alloc(MiB);
  await store.read(back, 20 * MiB);
  for (let i = 0; i < MiB; i += 512) assert.ok(back.subarray(i, i + 512).equals(block), `block at ${i}`);
});

test('grow extends the image (rbd sees it); a smaller size never shrinks it', async () => {
  await store.grow(96 * MiB);
  assert.equal(store.size, 96 * MiB);
  await store.grow(32 * MiB);
  assert.equal(store.size, 96 * MiB);
  const info = JSON.parse(rbd(conf, ['info', '--format', 'json', `rbd/${images[0]}`])) as { size: number };
  assert.equal(info.size, 96 * MiB);
  const tail = Buffer.alloc(4096, 1);
  await store.read(tail, 96 * MiB - 4096);
  assert.ok(tail.equals(Buffer.alloc(4096)));
});

test("uniqueId names the cluster, the pool and the image's id, as rbd and ceph see them", () => {
  const info = JSON.parse(rbd(conf, ['info', '--format', 'json', `rbd/${images[0]}`])) as { id: string };
  const fsid = spawnSync('ceph', ['--conf', conf, 'fsid'], { encoding: 'utf8' }).stdout.trim();
  assert.match(fsid, /^[0-9a-f-]{36}$/);
  assert.match(store.uniqueId(), new RegExp(`^${fsid}/\\d+/${info.id}$`));
});

test('image metadata round trips; a missing key is undefined', async () => {
  assert.equal(await store.getMetadata('iscsi-target.test'), undefined);
  const long = 'x'.repeat(1000); // longer than the first buffer tried
  await store.setMetadata('iscsi-target.test', long);
  assert.equal(await store.getMetadata('iscsi-target.test'), long);
});

test('errors: I/O past the end is EINVAL; read-only refuses writes with EROFS', async () => {
  await assert.rejects(store.write(Buffer.alloc(4096), store.size), (e: NodeJS.ErrnoException) => {
    assert.equal(e.code, 'EINVAL');
    return true;
  });
  const ro = await RbdBackstore.open({ pool: 'rbd', image: images[0], conf, readonly: true });
  try {
    assert.throws(() => ro.write(Buffer.alloc(512), 0), { code: 'EROFS' });
    const b = Buffer.alloc(512);
    await ro.read(b, 30 * MiB + 512);
    assert.ok(b.equals(Buffer.alloc(512, 0xab)));
  } finally {
    await ro.close();
  }
});

test('errors an admin can act on: missing image without size, missing pool, unreachable monitors', async () => {
  await assert.rejects(RbdBackstore.open({ pool: 'rbd', image: newImageName('nope'), conf }), {
    code: 'ENOENT',
    message: /does not exist and no size is configured to create it/,
  });
  await assert.rejects(RbdBackstore.open({ pool: 'no-such-pool', image: 'x', conf, size: MiB }), {
    code: 'ENOENT',
    message: /Ceph pool no-such-pool does not exist/,
  });
  await assert.rejects(RbdBackstore.open({ pool: 'rbd', image: 'x', conf: '/nonexistent/ceph.conf' }), {
    code: 'ENOENT',
    message: /\/nonexistent\/ceph\.conf/,
  });
});
