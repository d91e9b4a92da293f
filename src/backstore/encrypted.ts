// Encryption at rest: a Backstore that encrypts every logical block with AES-256-XTS
// (node:crypto, OpenSSL) before it reaches the store underneath, and decrypts on the way
// back. The SCSI layer never sees it: it reads and writes plaintext byte ranges as usual.
//
//   data unit  one logical block (512 or 4096 bytes), tweak = its LBA as a 128-bit
//              little-endian number (dm-crypt's "plain64"), so a block is encrypted the
//              same way wherever in a request it travels and sectors never share a tweak.
//   key        64 random bytes (two AES-256 keys, as XTS wants), in a key file of mode
//              0600 (default `<volume file>.key`), created with the volume. A memory
//              volume keeps its key in memory.
//   holes      thin provisioning keeps working: an unmapped range reads back as zeros from
//              the store, and a block whose ciphertext is all zeros is returned as zeros
//              rather than decrypted into noise. That covers holes, ranges unmap() zeroed
//              where it could not punch, and the never-written rest of a filesystem block
//              a neighbouring write allocated. (A real ciphertext block is all zeros with
//              probability 2^-4096.) unmap() and mapStatus() go straight to the store.
//
// cryptoErase() is SANITIZE CRYPTOGRAPHIC ERASE's half: a new random key replaces the old
// one (key file rewritten atomically; the old file is overwritten first), after which
// nothing written before can be decrypted; sanitize.ts then deallocates every block so the
// volume reads zeros and the space is freed.
//
// Cost: OpenSSL's aes-256-xts takes the tweak at cipher set-up (one createCipheriv per
// block: about 80 MiB/s per core for 512-byte blocks), so requests go through xts.ts, which
// builds the same XTS from two AES-256-ECB calls per request and is checked against
// OpenSSL's XTS byte for byte. Unencrypted volumes never come here.

import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Backstore, ExtentStatus } from './backstore';
import { xtsBulk, xtsSupported } from './xts';

export const XTS_KEY_BYTES = 64;
const CIPHER = 'aes-256-xts';

export interface EncryptedBackstoreOptions {
  /** Logical block size: the XTS data unit. */
  blockSize: number;
  /** The 64-byte XTS key. */
  key: Buffer;
  /** Where the key lives (rewritten by cryptoErase()); absent: the key is only in memory. */
  keyFile?: string;
}

export class EncryptedBackstore implements Backstore {
  readonly inner: Backstore;
  readonly blockSize: number;
  readonly keyFile: string | undefined;
  /** The store's own allocation map: ciphertext and plaintext are mapped alike. */
  readonly mapStatus?: (offset: number, length: number) => Promise<ExtentStatus>;
  /** Growing adds unallocated blocks, which read as zeros like every unmapped block. */
  readonly grow?: (size: number) => Promise<void>;
  private key: Buffer;
  private readonly zeroBlock: Buffer;

  constructor(inner: Backstore, opts: EncryptedBackstoreOptions) {
    checkKey(opts.key, opts.keyFile ?? 'key');
    if (opts.blockSize !== 512 && opts.blockSize !== 4096) throw new Error('encrypted volume: block size must be 512 or 4096');
    this.inner = inner;
    this.blockSize = opts.blockSize;
    this.key = Buffer.from(opts.key);
    this.keyFile = opts.keyFile;
    this.zeroBlock = Buffer.alloc(opts.blockSize);
    if (inner.mapStatus) this.mapStatus = (offset, length) => inner.mapStatus!(offset, length);
    const grow = inner.grow;
    if (grow) {
      this.grow = (size) => {
        if (size % this.blockSize !== 0)
          return Promise.reject(new Error(`encrypted volume: ${size} bytes is not a whole number of blocks`));
        return grow(size);
      };
    }
  }

  get path(): string {
    return this.inner.path;
  }

  get file(): string | undefined {
    return this.inner.file;
  }

  get size(): number {
    return this.inner.size;
  }

  get readonly(): boolean {
    return this.inner.readonly;
  }

  async read(buf: Buffer, offset: number): Promise<void> {
    const bs = this.blockSize;
    if (offset % bs === 0 && buf.length % bs === 0) {
      await this.inner.read(buf, offset);
      this.decryptInPlace(buf, offset / bs);
      return;
    }
    // Not block-aligned (no SCSI command does this): read the covering blocks.
    const start = Math.floor(offset / bs) * bs;
    const end = Math.ceil((offset + buf.length) / bs) * bs;
    const tmp = Buffer.allocUnsafe(end - start);
    await this.read(tmp, start);
    tmp.copy(buf, 0, offset - start, offset - start + buf.length);
  }

  async write(buf: Buffer, offset: number): Promise<void> {
    const bs = this.blockSize;
    if (offset % bs === 0 && buf.length % bs === 0) {
      // Never encrypt in place: callers reuse their buffers (WRITE SAME, SANITIZE).
      await this.inner.write(this.encrypt(buf, offset / bs), offset);
      return;
    }
    // Not block-aligned: read, modify and write the covering blocks.
    const start = Math.floor(offset / bs) * bs;
    const end = Math.ceil((offset + buf.length) / bs) * bs;
    const tmp = Buffer.allocUnsafe(end - start);
    await this.read(tmp, start);
    buf.copy(tmp, offset - start);
    await this.write(tmp, start);
  }

  unmap(offset: number, length: number): Promise<void> {
    return this.inner.unmap(offset, length);
  }

  flush(): Promise<void> {
    return this.inner.flush();
  }

  async close(): Promise<void> {
    await this.inner.close();
    this.key.fill(0);
  }

  /**
   * Replace the key with a new random one (and the key file, atomically), so that no block
   * written before can be decrypted again. The caller then deallocates the volume.
   */
  async cryptoErase(): Promise<void> {
    if (this.readonly) throw Object.assign(new Error('EROFS: encrypted volume is read-only'), { code: 'EROFS' });
    const key = newKey();
    if (this.keyFile !== undefined) await replaceKeyFile(this.keyFile, key);
    const old = this.key;
    this.key = key;
    old.fill(0);
  }

  /** Encrypt whole blocks starting at `lba` into a new buffer. */
  encrypt(plain: Buffer, lba: number): Buffer {
    if (xtsSupported()) return xtsBulk(this.key, plain, this.blockSize, lba, true);
    const bs = this.blockSize;
    const out = Buffer.allocUnsafe(plain.length);
    const tweak = Buffer.alloc(16);
    for (let off = 0; off < plain.length; off += bs, lba++) {
      setTweak(tweak, lba);
      const c = createCipheriv(CIPHER, this.key, tweak);
      const n = c.update(plain.subarray(off, off + bs)).copy(out, off);
      if (n !== bs) throw new Error('aes-256-xts: short output');
      c.final();
    }
    return out;
  }

  /** Decrypt whole blocks starting at `lba` in place; all-zero blocks (holes) stay zeros. */
  decryptInPlace(buf: Buffer, lba: number): void {
    const bs = this.blockSize;
    const n = buf.length / bs;
    // Runs of blocks that hold ciphertext, each decrypted in one go.
    for (let i = 0; i < n;) {
      if (buf.subarray(i * bs, (i + 1) * bs).equals(this.zeroBlock)) {
        i++;
        continue;
      }
      let j = i + 1;
      while (j < n && !buf.subarray(j * bs, (j + 1) * bs).equals(this.zeroBlock)) j++;
      this.decryptRun(buf.subarray(i * bs, j * bs), lba + i);
      i = j;
    }
  }

  private decryptRun(run: Buffer, lba: number): void {
    if (xtsSupported()) {
      xtsBulk(this.key, run, this.blockSize, lba, false).copy(run);
      return;
    }
    const bs = this.blockSize;
    const tweak = Buffer.alloc(16);
    for (let off = 0; off < run.length; off += bs, lba++) {
      setTweak(tweak, lba);
      const d = createDecipheriv(CIPHER, this.key, tweak);
      d.update(run.subarray(off, off + bs)).copy(run, off);
      d.final();
    }
  }
}

/** The XTS tweak of a block: its LBA, 128-bit little-endian. */
function setTweak(tweak: Buffer, lba: number): void {
  tweak.writeBigUInt64LE(BigInt(lba), 0);
}

function checkKey(key: Buffer, where: string): void {
  if (key.length !== XTS_KEY_BYTES) {
    throw new Error(`${where}: an AES-256-XTS key is ${XTS_KEY_BYTES} bytes, this one is ${key.length}`);
  }
  // OpenSSL refuses an XTS key whose two halves are equal (and such a key would be weak).
  if (key.subarray(0, 32).equals(key.subarray(32))) throw new Error(`${where}: the two halves of the XTS key are equal`);
}

/** A new random XTS key (two different AES-256 keys). */
export function newKey(): Buffer {
  for (;;) {
    const k = randomBytes(XTS_KEY_BYTES);
    if (!k.subarray(0, 32).equals(k.subarray(32))) return k;
  }
}

/** The default key file of a volume file. */
export function defaultKeyFile(volumePath: string): string {
  return `${volumePath}.key`;
}

/** Read and check a key file; rejects with an Error that names the file. */
export async function readKeyFile(file: string): Promise<{ key: Buffer; warning?: string }> {
  const st = await fs.promises.stat(file);
  if (!st.isFile()) throw new Error(`key file ${file} is not a regular file`);
  const key = await fs.promises.readFile(file);
  checkKey(key, `key file ${file}`);
  const warning =
    (st.mode & 0o077) !== 0
      ? `key file ${file} can be read by other users (mode ${(st.mode & 0o777).toString(8)}); chmod 600 it`
      : undefined;
  return { key, warning };
}

/** Create a key file (mode 0600, never overwriting one) holding a new key; returns the key. */
export async function createKeyFile(file: string): Promise<Buffer> {
  const key = newKey();
  await fs.promises.mkdir(path.dirname(file), { recursive: true });
  const fh = await fs.promises.open(file, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL, 0o600);
  try {
    await fh.writeFile(key);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await syncDir(path.dirname(file));
  return key;
}

/**
 * Put `key` in `file` atomically: write it to a temporary file (0600) and fsync it,
 * overwrite the old key in place (so its bytes do not simply linger in a freed block),
 * rename the new file over it and fsync the folder. A crash leaves either key file, or
 * the overwritten one: never the old key.
 */
async function replaceKeyFile(file: string, key: Buffer): Promise<void> {
  const dir = path.dirname(file);
  const tmp = path.join(dir, `.${path.basename(file)}.${process.pid}.tmp`);
  const fh = await fs.promises.open(tmp, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600);
  try {
    await fh.writeFile(key);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    const old = await fs.promises.open(file, fs.constants.O_WRONLY);
    try {
      await old.write(randomBytes(XTS_KEY_BYTES), 0, XTS_KEY_BYTES, 0);
      await old.sync();
    } finally {
      await old.close();
    }
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      await fs.promises.unlink(tmp).catch(() => undefined);
      throw err;
    }
  }
  await fs.promises.rename(tmp, file);
  await syncDir(dir);
}

async function syncDir(dir: string): Promise<void> {
  const d = await fs.promises.open(dir, fs.constants.O_RDONLY);
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}
