// Encryption at rest (src/backstore/encrypted.ts): plaintext round trips, the store holds
// AES-256-XTS ciphertext with the LBA as tweak, holes and unmapped ranges read zeros,
// crypto erase makes old data unreadable and rewrites the key file (0600), and
// openBackstore creates, reads and refuses key files as documented.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { EncryptedBackstore, newKey, readKeyFile } from '../../src/backstore/encrypted';
import { MemoryBackstore } from '../../src/backstore/memory';
import { openBackstore } from '../../src/backstore/open';
import { xtsBulk, xtsSupported } from '../../src/backstore/xts';
import type { VolumeConfig } from '../../src/config/model';

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 131 + seed * 17 + (i >> 8)) & 0xff;
  return b;
}

function xtsDecrypt(key: Buffer, block: Buffer, lba: number): Buffer {
  const iv = Buffer.alloc(16);
  iv.writeBigUInt64LE(BigInt(lba));
  const d = createDecipheriv('aes-256-xts', key, iv);
  return Buffer.concat([d.update(block), d.final()]);
}

test(
  'bulk XTS (xts.ts) equals OpenSSL aes-256-xts per data unit, both ways, at small and huge tweaks',
  { skip: !xtsSupported() && 'big-endian host' },
  () => {
    for (const unit of [512, 4096]) {
      for (const first of [0, 1, 255, 2 ** 32 - 2, 2 ** 40 + 5, Number.MAX_SAFE_INTEGER - 9]) {
        const key = newKey();
        const units = 7;
        const plain = randomBytes(units * unit);
        const bulk = xtsBulk(key, plain, unit, first, true);
        for (let i = 0; i < units; i++) {
          const iv = Buffer.alloc(16);
          iv.writeBigUInt64LE(BigInt(first + i));
          const c = createCipheriv('aes-256-xts', key, iv);
          const ref = Buffer.concat([c.update(plain.subarray(i * unit, (i + 1) * unit)), c.final()]);
          assert.deepEqual(bulk.subarray(i * unit, (i + 1) * unit), ref, `unit ${unit}, tweak ${first + i}`);
        }
        assert.deepEqual(xtsBulk(key, bulk, unit, first, false), plain);
        // An unaligned source (a slice at an odd offset) gives the same result.
        const odd = Buffer.alloc(plain.length + 3);
        plain.copy(odd, 3);
        assert.deepEqual(xtsBulk(key, odd.subarray(3), unit, first, true), bulk);
      }
    }
  },
);

test('reads decrypt runs of data between holes', async () => {
  const bs = 512;
  const inner = new MemoryBackstore(64 * bs);
  const enc = new EncryptedBackstore(inner, { blockSize: bs, key: newKey() });
  const data = pattern(64 * bs, 9);
  const want = Buffer.alloc(64 * bs);
  for (const [lba, n] of [
    [0, 1],
    [3, 5],
    [9, 1],
    [20, 30],
    [63, 1],
  ]) {
    await enc.write(data.subarray(lba * bs, (lba + n) * bs), lba * bs);
    data.copy(want, lba * bs, lba * bs, (lba + n) * bs);
  }
  const back = Buffer.alloc(64 * bs);
  await enc.read(back, 0);
  assert.deepEqual(back, want);
  const mid = Buffer.alloc(10 * bs);
  await enc.read(mid, 25 * bs);
  assert.deepEqual(mid, want.subarray(25 * bs, 35 * bs));
});

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-enc-'));
}

for (const bs of [512, 4096]) {
  test(`${bs}-byte blocks: data round-trips; the store holds XTS ciphertext (tweak = LBA), not the plaintext`, async () => {
    const inner = new MemoryBackstore(256 * bs);
    const key = newKey();
    const enc = new EncryptedBackstore(inner, { blockSize: bs, key });
    const data = pattern(16 * bs, 1);
    await enc.write(data, 10 * bs);
    const back = Buffer.alloc(16 * bs);
    await enc.read(back, 10 * bs);
    assert.deepEqual(back, data);

    const raw = Buffer.alloc(16 * bs);
    await inner.read(raw, 10 * bs);
    assert.notDeepEqual(raw, data);
    for (let i = 0; i < 16; i++) {
      const c = raw.subarray(i * bs, (i + 1) * bs);
      assert.ok(c.indexOf(data.subarray(i * bs, i * bs + 32)) < 0, 'no plaintext run in the ciphertext');
      assert.deepEqual(xtsDecrypt(key, c, 10 + i), data.subarray(i * bs, (i + 1) * bs), `block ${10 + i}`);
    }
    // The same plaintext at another LBA encrypts differently (the tweak).
    await enc.write(data.subarray(0, bs), 100 * bs);
    const raw100 = Buffer.alloc(bs);
    await inner.read(raw100, 100 * bs);
    assert.notDeepEqual(raw100, raw.subarray(0, bs));
    // The caller's buffer is left alone (WRITE SAME and SANITIZE reuse theirs).
    assert.deepEqual(data, pattern(16 * bs, 1));
  });
}

test('never-written, unmapped and zero-written blocks read as zeros; zeros written are still encrypted', async () => {
  const bs = 512;
  const inner = new MemoryBackstore(64 * bs);
  const enc = new EncryptedBackstore(inner, { blockSize: bs, key: newKey() });
  const all = Buffer.alloc(64 * bs, 0xee);
  await enc.read(all, 0);
  assert.ok(
    all.every((b) => b === 0),
    'a fresh volume reads zeros',
  );

  await enc.write(pattern(32 * bs, 2), 0);
  await enc.unmap(8 * bs, 16 * bs);
  const back = Buffer.alloc(32 * bs);
  await enc.read(back, 0);
  assert.deepEqual(back.subarray(0, 8 * bs), pattern(32 * bs, 2).subarray(0, 8 * bs));
  assert.ok(
    back.subarray(8 * bs, 24 * bs).every((b) => b === 0),
    'unmapped blocks read zeros',
  );
  assert.deepEqual(back.subarray(24 * bs), pattern(32 * bs, 2).subarray(24 * bs));
  assert.deepEqual(await enc.mapStatus!(8 * bs, 16 * bs), { mapped: false, length: 16 * bs }, 'the store map shows through');

  await enc.write(Buffer.alloc(bs), 40 * bs);
  const z = Buffer.alloc(bs, 1);
  await enc.read(z, 40 * bs);
  assert.ok(z.every((b) => b === 0));
  const raw = Buffer.alloc(bs);
  await inner.read(raw, 40 * bs);
  assert.ok(
    raw.some((b) => b !== 0),
    'a block of zeros is stored as ciphertext',
  );
});

test('unaligned reads and writes go through whole blocks', async () => {
  const bs = 512;
  const enc = new EncryptedBackstore(new MemoryBackstore(16 * bs), { blockSize: bs, key: newKey() });
  const data = pattern(8 * bs, 3);
  await enc.write(data, 0);
  const patch = Buffer.alloc(700, 0x55);
  await enc.write(patch, 300);
  data.fill(0x55, 300, 1000);
  const part = Buffer.alloc(1500);
  await enc.read(part, 123);
  assert.deepEqual(part, data.subarray(123, 1623));
});

test('crypto erase: a new key; data written before cannot be read back', async () => {
  const bs = 4096;
  const inner = new MemoryBackstore(64 * bs);
  const enc = new EncryptedBackstore(inner, { blockSize: bs, key: newKey() });
  const data = pattern(8 * bs, 4);
  await enc.write(data, 0);
  await enc.cryptoErase();
  const back = Buffer.alloc(8 * bs);
  await enc.read(back, 0);
  for (let i = 0; i < 8; i++) {
    assert.notDeepEqual(back.subarray(i * bs, (i + 1) * bs), data.subarray(i * bs, (i + 1) * bs), `block ${i}`);
  }
  // New writes work with the new key.
  await enc.write(data, 0);
  await enc.read(back, 0);
  assert.deepEqual(back, data);
});

function fileVolume(dir: string, extra: Partial<VolumeConfig> = {}): VolumeConfig {
  return {
    name: 'sealed',
    path: path.join(dir, 'sealed.img'),
    size: 1024 * 1024,
    readonly: false,
    blockSize: 512,
    memory: false,
    shared: false,
    encryption: {},
    ...extra,
  };
}

test('openBackstore: a new encrypted volume gets a 0600 key file beside it; reopening reads the data back', async () => {
  const dir = tmpdir();
  try {
    const vol = fileVolume(dir);
    const s1 = await openBackstore(vol, dir);
    assert.ok(s1 instanceof EncryptedBackstore);
    const keyFile = path.join(dir, 'sealed.img.key');
    const st = fs.statSync(keyFile);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.size, 64);
    const data = pattern(4 * 512, 5);
    await s1.write(data, 512 * 100);
    await s1.flush();
    await s1.close();
    // On disk: ciphertext only.
    const disk = fs.readFileSync(vol.path!);
    assert.ok(disk.indexOf(data.subarray(0, 64)) < 0, 'the plaintext is not in the volume file');

    const s2 = await openBackstore(vol, dir);
    const back = Buffer.alloc(data.length);
    await s2.read(back, 512 * 100);
    assert.deepEqual(back, data);

    // Crypto erase rewrites the key file (atomically, still 0600), and the old key no longer opens anything.
    const oldKey = fs.readFileSync(keyFile);
    await s2.cryptoErase!();
    const newKeyBytes = fs.readFileSync(keyFile);
    assert.equal(newKeyBytes.length, 64);
    assert.notDeepEqual(newKeyBytes, oldKey);
    assert.equal(fs.statSync(keyFile).mode & 0o777, 0o600);
    assert.deepEqual(fs.readdirSync(dir).sort(), ['sealed.img', 'sealed.img.key'], 'no temporary file left');
    await s2.read(back, 512 * 100);
    assert.notDeepEqual(back, data);
    await s2.close();
    assert.deepEqual((await readKeyFile(keyFile)).key, newKeyBytes);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('openBackstore refuses: a volume holding data without its key file, a bad key file, a read-only volume without a key', async () => {
  const dir = tmpdir();
  try {
    // Plain volume with data, then encryption switched on: its blocks would read as noise.
    const plain = fileVolume(dir, { encryption: undefined });
    const s = await openBackstore(plain, dir);
    await s.write(pattern(4096, 6), 0);
    await s.close();
    await assert.rejects(
      openBackstore(fileVolume(dir), dir),
      /volume sealed: key file .*sealed\.img\.key does not exist, but the volume holds data/,
    );
    assert.equal(fs.existsSync(path.join(dir, 'sealed.img.key')), false, 'no key file was made');

    fs.writeFileSync(path.join(dir, 'short.key'), Buffer.alloc(32, 1), { mode: 0o600 });
    await assert.rejects(
      openBackstore(fileVolume(dir, { encryption: { keyFile: path.join(dir, 'short.key') } }), dir),
      /an AES-256-XTS key is 64 bytes, this one is 32/,
    );
    await assert.rejects(
      openBackstore(fileVolume(dir, { readonly: true, encryption: { keyFile: path.join(dir, 'none.key') } }), dir),
      /does not exist \(a read-only volume never gets a new key\)/,
    );
    // An existing but empty (never written) volume may get its key now.
    const empty = fileVolume(dir, { name: 'empty', path: path.join(dir, 'empty.img') });
    fs.writeFileSync(empty.path!, '');
    fs.truncateSync(empty.path!, 1024 * 1024);
    const e = await openBackstore(empty, dir);
    assert.ok(fs.existsSync(path.join(dir, 'empty.img.key')));
    await e.close();
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a memory volume with encryption keeps its key in memory', async () => {
  const s = await openBackstore(
    { name: 'm', size: 65536, readonly: false, blockSize: 512, memory: true, shared: false, encryption: {} },
    '/',
  );
  assert.ok(s instanceof EncryptedBackstore);
  assert.equal(s.keyFile, undefined);
  const data = pattern(1024, 7);
  await s.write(data, 512);
  const back = Buffer.alloc(1024);
  await s.read(back, 512);
  assert.deepEqual(back, data);
  await s.cryptoErase();
  await s.read(back, 512);
  assert.notDeepEqual(back, data);
});
