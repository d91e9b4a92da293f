// File backstore: sparse creation, extension, refusal to shrink, reopening, fdatasync,
// zeros past EOF; openBackstore's choice of store and path resolution.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
// eslint-disable-next-line @typescript-eslint/no-require-imports -- the CommonJS module object itself, to stub fdatasync
import nodeFs = require('node:fs');
import * as os from 'node:os';
import * as path from 'node:path';
import { DONE_INLINE } from '../../src/backstore/backstore';
import { devMajorMinor, FileBackstore, INLINE_WRITE_MAX, inlineWriteTuning } from '../../src/backstore/file';
import { MemoryBackstore } from '../../src/backstore/memory';
import { openBackstore } from '../../src/backstore/open';
import type { VolumeConfig } from '../../src/config/model';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'backstore-test-'));
after(() => fs.rmSync(tmp, { recursive: true, force: true }));

const MiB = 1024 * 1024;

function vol(v: Partial<VolumeConfig> & { name: string }): VolumeConfig {
  return { readonly: false, blockSize: 512, memory: false, shared: false, ...v };
}

test('a missing file with a size is created sparse, mode 0600, with its parent folder', async () => {
  const p = path.join(tmp, 'luns', 'new.img');
  const s = await FileBackstore.open({ path: p, size: 64 * MiB, blockSize: 512, readonly: false });
  try {
    const st = fs.statSync(p);
    assert.equal(st.size, 64 * MiB);
    assert.equal(s.size, 64 * MiB);
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(st.blocks * 512 < MiB, `sparse: ${st.blocks} blocks allocated`);
    assert.equal(s.kind, 'file');
    assert.match(s.notes.join('\n'), /created sparse/);
  } finally {
    await s.close();
  }
});

test('writes and reads round-trip and survive reopening; reads past EOF are zeros', async () => {
  const p = path.join(tmp, 'data.img');
  const s = await FileBackstore.open({ path: p, size: 4 * MiB, blockSize: 512, readonly: false });
  const data = Buffer.alloc(3 * 4096);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff;
  await s.write(data, 4096);
  await s.flush();
  await s.close();

  const r = await FileBackstore.open({ path: p, blockSize: 512, readonly: false });
  try {
    assert.equal(r.size, 4 * MiB);
    const back = Buffer.alloc(data.length);
    await r.read(back, 4096);
    assert.deepEqual(back, data);
    const hole = Buffer.alloc(4096, 0xee);
    await r.read(hole, 2 * MiB);
    assert.ok(
      hole.every((b) => b === 0),
      'a hole reads zeros',
    );
    const tail = Buffer.alloc(1024, 0xee);
    await r.read(tail, 4 * MiB - 512);
    assert.ok(
      tail.every((b) => b === 0),
      'past EOF reads zeros',
    );
  } finally {
    await r.close();
  }
});

test('a larger configured size extends the file (sparse) and says so; a smaller one is refused', async () => {
  const p = path.join(tmp, 'grow.img');
  fs.writeFileSync(p, Buffer.alloc(1 * MiB, 1));
  const s = await FileBackstore.open({ path: p, size: 8 * MiB, blockSize: 4096, readonly: false });
  try {
    assert.equal(s.size, 8 * MiB);
    assert.equal(fs.statSync(p).size, 8 * MiB);
    assert.match(s.notes.join('\n'), /extended .*grow\.img from 1048576 to 8388608 bytes/);
    const b = Buffer.alloc(512);
    await s.read(b, 0);
    assert.ok(
      b.every((x) => x === 1),
      'existing data kept',
    );
  } finally {
    await s.close();
  }
  await assert.rejects(FileBackstore.open({ path: p, size: 4 * MiB, blockSize: 512, readonly: false }), (err: Error) => {
    assert.match(err.message, /grow\.img/);
    assert.match(err.message, /8388608/);
    assert.match(err.message, /4194304/);
    assert.match(err.message, /shrink/);
    return true;
  });
  assert.equal(fs.statSync(p).size, 8 * MiB, 'not shrunk');
});

test('sizes must be positive multiples of the block size; a missing file needs a size', async () => {
  const odd = path.join(tmp, 'odd.img');
  fs.writeFileSync(odd, Buffer.alloc(1000));
  await assert.rejects(FileBackstore.open({ path: odd, blockSize: 512, readonly: false }), /not a multiple of the 512-byte block size/);
  await assert.rejects(
    FileBackstore.open({ path: path.join(tmp, 'x.img'), size: 4096 + 512, blockSize: 4096, readonly: false }),
    /not a multiple of the 4096-byte block size/,
  );
  await assert.rejects(
    FileBackstore.open({ path: path.join(tmp, 'missing.img'), blockSize: 512, readonly: false }),
    /does not exist and no size is configured/,
  );
  const empty = path.join(tmp, 'empty.img');
  fs.writeFileSync(empty, '');
  await assert.rejects(FileBackstore.open({ path: empty, blockSize: 512, readonly: false }), /positive/);
  await assert.rejects(FileBackstore.open({ path: tmp, blockSize: 512, readonly: false }), /neither a regular file nor a block device/);
  assert.equal(fs.existsSync(path.join(tmp, 'x.img')), false);
});

test('read-only volumes open O_RDONLY and are never created or extended', async () => {
  const p = path.join(tmp, 'ro.img');
  fs.writeFileSync(p, Buffer.alloc(MiB));
  const s = await FileBackstore.open({ path: p, blockSize: 512, readonly: true });
  try {
    assert.equal(s.readonly, true);
    await assert.rejects(s.write(Buffer.alloc(512), 0), (err: NodeJS.ErrnoException) => err.code === 'EBADF');
  } finally {
    await s.close();
  }
  await assert.rejects(FileBackstore.open({ path: p, size: 2 * MiB, blockSize: 512, readonly: true }), /never extended/);
  await assert.rejects(
    FileBackstore.open({ path: path.join(tmp, 'ro-missing.img'), size: MiB, blockSize: 512, readonly: true }),
    /does not exist/,
  );
});

test('flush() is fdatasync on the volume fd', async () => {
  const p = path.join(tmp, 'sync.img');
  const s = await FileBackstore.open({ path: p, size: MiB, blockSize: 512, readonly: false });
  // Patch the real module object (FileBackstore reads fs.fdatasync through it at call time).
  const real = nodeFs.fdatasync;
  const calls: number[] = [];
  nodeFs.fdatasync = ((fd: number, cb: fs.NoParamCallback) => {
    calls.push(fd);
    real(fd, cb);
  }) as typeof fs.fdatasync;
  try {
    await s.write(Buffer.alloc(512, 9), 0);
    await s.flush();
    assert.equal(calls.length, 1);
  } finally {
    nodeFs.fdatasync = real;
    await s.close();
  }
});

test('I/O after close fails with EBADF; errors keep their code', async () => {
  const p = path.join(tmp, 'closed.img');
  const s = await FileBackstore.open({ path: p, size: MiB, blockSize: 512, readonly: false });
  await s.close();
  await s.close(); // idempotent
  await assert.rejects(s.read(Buffer.alloc(512), 0), (err: NodeJS.ErrnoException) => err.code === 'EBADF');
  await assert.rejects(s.flush(), (err: NodeJS.ErrnoException) => err.code === 'EBADF');
});

test('many concurrent positional writes and reads on one fd', async () => {
  const p = path.join(tmp, 'parallel.img');
  const s = await FileBackstore.open({ path: p, size: 4 * MiB, blockSize: 512, readonly: false });
  try {
    await Promise.all(Array.from({ length: 64 }, (_, i) => s.write(Buffer.alloc(4096, i + 1), i * 4096)));
    const bufs = Array.from({ length: 64 }, () => Buffer.alloc(4096));
    await Promise.all(bufs.map((b, i) => s.read(b, i * 4096)));
    bufs.forEach((b, i) => assert.ok(b.every((x) => x === i + 1)));
  } finally {
    await s.close();
  }
});

test('block device numbers decode like glibc major()/minor()', () => {
  assert.deepEqual(devMajorMinor(0x0801n), { major: 8, minor: 1 }); // sda1
  assert.deepEqual(devMajorMinor(0x10300n), { major: 259, minor: 0 }); // nvme0n1 (major 259)
  assert.deepEqual(devMajorMinor((0x123n << 8n) | 0x45n | (0x6n << 20n)), { major: 0x123, minor: 0x45 | (0x6 << 8) });
});

test('openBackstore: memory volumes, relative paths against baseDir, errors name the volume', async () => {
  const m = await openBackstore(vol({ name: 'ram', memory: true, size: MiB }), tmp);
  assert.ok(m instanceof MemoryBackstore);
  assert.equal(m.size, MiB);
  await m.close();
  await assert.rejects(openBackstore(vol({ name: 'ram2', memory: true }), tmp), /ram2: a memory volume needs a size/);

  const f = await openBackstore(vol({ name: 'rel', path: 'luns/rel.img', size: 2 * MiB, blockSize: 4096 }), tmp);
  try {
    assert.ok(f instanceof FileBackstore);
    assert.equal(f.path, path.join(tmp, 'luns', 'rel.img'));
    assert.ok(fs.existsSync(path.join(tmp, 'luns', 'rel.img')));
  } finally {
    await f.close();
  }
  await assert.rejects(openBackstore(vol({ name: 'nope', path: 'none.img' }), tmp), /volume nope: .*none\.img/);
  await assert.rejects(openBackstore(vol({ name: 'nopath' }), tmp), /nopath: no path configured/);
});

test('small I/O runs inline where it cannot block, and round-trips like pool I/O', async (t) => {
  // Volumes on tmpfs run small requests inline; elsewhere reads try RWF_NOWAIT first.
  const dirs: Array<[string, string]> = [[tmp, 'disk']];
  if (fs.existsSync('/dev/shm')) dirs.push([fs.mkdtempSync(path.join('/dev/shm', 'backstore-test-')), 'memory']);
  t.after(() => {
    for (const [d] of dirs.slice(1)) fs.rmSync(d, { recursive: true, force: true });
  });
  for (const [dir, kind] of dirs) {
    const p = path.join(dir, 'inline.img');
    const s = await FileBackstore.open({ path: p, size: 4 * MiB, blockSize: 512, readonly: false });
    try {
      if (kind === 'memory') assert.equal(s.inlineIo, 'memory');
      else assert.notEqual(s.inlineIo, 'memory');
      for (const size of [512, 4096, 64 * 1024, 64 * 1024 + 512, 1 * MiB]) {
        const data = Buffer.alloc(size);
        for (let i = 0; i < size; i++) data[i] = (i * 13 + size) & 0xff;
        const at = 3 * MiB - 512;
        await s.write(data, at - (size > MiB / 2 ? MiB : 0));
        const back = Buffer.alloc(size, 0xee);
        await s.read(back, at - (size > MiB / 2 ? MiB : 0));
        assert.deepEqual(back, data, `${kind}: ${size} bytes round-trip`);
      }
      // A small read that runs past the end of the file reads zeros there.
      await s.write(Buffer.alloc(512, 0x5a), 4 * MiB - 512);
      const tail = Buffer.alloc(4096, 0xee);
      await s.read(tail, 4 * MiB - 512);
      assert.ok(
        tail.subarray(0, 512).every((b) => b === 0x5a),
        `${kind}: last block`,
      );
      assert.ok(
        tail.subarray(512).every((b) => b === 0),
        `${kind}: zeros past EOF`,
      );
    } finally {
      await s.close();
    }
    await assert.rejects(s.read(Buffer.alloc(512), 0), { code: 'EBADF' });
  }
});

test('small buffered writes to a file on a disk filesystem run inline; large ones, ones during an fdatasync, and all of them for a while after a slow one go to the pool', async (t) => {
  const p = path.join(tmp, 'inline-writes.img');
  const s = await FileBackstore.open({ path: p, size: 4 * MiB, blockSize: 512, readonly: false });
  const saved = { ...inlineWriteTuning };
  t.after(async () => {
    Object.assign(inlineWriteTuning, saved);
    await s.close();
  });
  if (s.inlineIo === 'memory') {
    t.skip('the test folder is on a memory filesystem, where every small write runs inline anyway');
    return;
  }
  const small = Buffer.alloc(4096, 0x11);
  assert.equal(s.write(small, 0), DONE_INLINE, 'a 4 KiB write completes inline');
  const large = s.write(Buffer.alloc(INLINE_WRITE_MAX + 512, 0x22), MiB);
  assert.notEqual(large, DONE_INLINE, 'a write above INLINE_WRITE_MAX goes to the pool');
  await large;
  const flushing = s.flush();
  const during = s.write(small, 8192);
  assert.notEqual(during, DONE_INLINE, 'not inline while an fdatasync of the file runs');
  await Promise.all([flushing, during]);
  assert.equal(s.write(small, 16384), DONE_INLINE, 'inline again once it is done');
  // A write slower than the threshold (here: any) sends the next ones to the pool.
  inlineWriteTuning.slowMs = -1;
  inlineWriteTuning.backoffMs = 60_000;
  assert.equal(s.write(small, 20480), DONE_INLINE, 'this one ran inline, and was "slow"');
  assert.equal(s.slowInlineWrites, 1);
  const after = s.write(small, 24576);
  assert.notEqual(after, DONE_INLINE, 'the next one goes to the pool');
  await after;
  const back = Buffer.alloc(4096);
  for (const at of [0, 8192, 16384, 20480, 24576]) {
    await s.read(back, at);
    assert.ok(back.equals(small), `the write at ${at} landed`);
  }
});
