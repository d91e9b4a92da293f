// File- and block-device-backed volumes on raw file descriptors.
//
// I/O is positional (pread/pwrite through libuv's thread pool), so independent commands
// run in parallel on one fd. Small requests that cannot block run inline instead (see
// INLINE_IO_MAX): on tmpfs, and reads that preadv2(RWF_NOWAIT) serves from the page cache.
// Large reads on tmpfs are not copied at all: READ sends a view of the file's pages
// (readView, file-mapping.ts). Reads loop on short reads and read zeros past EOF; writes
// loop on short writes. flush() is fdatasync. Errors are the Node errors themselves, with
// their `code` (EIO, ENOSPC, EROFS, ...), so the SCSI layer can map them to sense data.
//
// Regular files are sparse: a missing file with a configured size is created (mode 0600)
// and ftruncate'd to that size; a configured size larger than the file extends it (still
// sparse); a smaller one is refused, since shrinking would lose data. Block devices are
// opened O_EXCL (the kernel refuses if the device is mounted or otherwise claimed) and
// their size comes from /sys/dev/block/MAJOR:MINOR/size (Node has no ioctl).
//
// Thin provisioning: unmap() punches a hole (fallocate PUNCH_HOLE | KEEP_SIZE, through
// koffi; see native.ts) so the filesystem frees the space and the range reads back as
// zeros; on a block device the same call becomes a zeroing discard. Where the filesystem
// or device cannot do it (EOPNOTSUPP), or the native call is unavailable, unmap() writes
// zeros instead, so "unmapped blocks read as zeros" holds either way. mapStatus() answers
// from lseek SEEK_DATA / SEEK_HOLE: the filesystem's own allocation map.

import * as fs from 'node:fs';
import * as path from 'node:path';
import { DONE_INLINE, writeZeros, type Backstore, type ExtentStatus } from './backstore';
import { FileMapping, type MappedView } from './file-mapping';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, nativeFs, SEEK_DATA, SEEK_HOLE } from './native';

export interface FileBackstoreOptions {
  /** Absolute (or already resolved) path of the file or block device. */
  path: string;
  /** Configured size in bytes; omitted means "use the file's / device's size". */
  size?: number;
  /** Logical block size of the volume; the size must be a multiple of it. */
  blockSize: number;
  readonly: boolean;
  /** Create missing parent folders of a new regular file (default true). */
  createParents?: boolean;
}

/** Largest single pread/pwrite we issue (Linux caps one call at 0x7ffff000 bytes anyway). */
const MAX_IO = 0x4000_0000;

/**
 * Requests up to this size may run inline on the event loop when they cannot block: on a
 * memory filesystem, or (reads) when preadv2(RWF_NOWAIT) finds the data in the page cache.
 * Handing a 4 KiB copy to the thread pool costs far more (a thread wake-up and a wake-up
 * of the loop back) than the copy itself; larger transfers still go to the pool, where
 * they copy in parallel with the loop's network work.
 */
export const INLINE_IO_MAX = 128 * 1024;

/**
 * Buffered writes up to this size to a regular file on a disk filesystem run inline too:
 * they only copy into the page cache (about 1.5 µs for 4 KiB on ext4 here, against tens of
 * µs for a round trip through the thread pool). ext4 refuses RWF_NOWAIT for buffered
 * writes, so a write that would block (dirty-page throttling, a journal commit) cannot be
 * told apart in advance: each inline write is timed, and one slower than
 * inlineWriteTuning.slowMs (0.5 ms) sends the file's writes back to the pool for
 * inlineWriteTuning.backoffMs (2 s).
 * Writes also go to the pool while an fdatasync of the file runs (they could wait on it).
 */
export const INLINE_WRITE_MAX = 64 * 1024;
/** When an inline write counts as slow, and how long writes then go to the pool (tests change them). */
export const inlineWriteTuning = { slowMs: 0.5, backoffMs: 2000 };

/**
 * Reads at least this large on a memory filesystem are sent from a view of the file's
 * pages (file-mapping.ts) rather than copied into a buffer first. Below it the copy is
 * cheaper than the view's bookkeeping.
 */
export const MAPPED_READ_MIN = 64 * 1024;

/** statfs f_type of filesystems whose files live in memory (tmpfs / shmem, ramfs). */
const MEMORY_FS_TYPES = new Set([0x01021994, 0x858458f6]);

export class FileBackstore implements Backstore {
  readonly path: string;
  readonly readonly: boolean;
  readonly kind: 'file' | 'block';
  /** Human-readable notes about what opening did (created, extended). Also worth logging. */
  readonly notes: string[];
  /** This open created the file (it held no data before). */
  created = false;
  /** Regular files grow (Backstore.grow); a block device's size is the device's. */
  readonly grow?: (size: number) => Promise<void>;
  readonly file?: string;
  private _size: number;
  private fd: number;
  private closed = false;
  /** Set once fallocate said the filesystem / device cannot punch holes: write zeros. */
  private punchUnsupported = false;
  /** The file lives in memory (tmpfs): small reads and writes run inline, they never block. */
  private memoryFs = false;
  /** preadv2(RWF_NOWAIT) is worth trying for small reads (cleared on EOPNOTSUPP). */
  private tryNoWait = false;
  /** Small buffered writes may run inline (a regular file on a disk filesystem); see INLINE_WRITE_MAX. */
  private inlineWrites = false;
  /** Inline writes are off until then (performance.now()), after a slow one. */
  private inlineWritesAfter = 0;
  /** fdatasync calls running on the file. */
  private flushing = 0;
  /** Inline writes that took longer than inlineWriteTuning.slowMs (tests). */
  slowInlineWrites = 0;
  /** The file's pages, mapped read-only, on a memory filesystem (see readView). */
  private mapping: FileMapping | null = null;

  private constructor(p: string, fd: number, size: number, kind: 'file' | 'block', ro: boolean, notes: string[]) {
    this.path = p;
    this.fd = fd;
    this._size = size;
    this.kind = kind;
    this.readonly = ro;
    this.notes = notes;
    if (kind === 'file') {
      this.file = p;
      this.grow = (size) => this.growFile(size);
    }
  }

  get size(): number {
    return this._size;
  }

  /** How small requests run: inline on a memory filesystem, inline on page-cache hits, or always in the pool. */
  get inlineIo(): 'memory' | 'nowait-reads' | 'none' {
    return this.memoryFs ? 'memory' : this.tryNoWait ? 'nowait-reads' : 'none';
  }

  static async open(opts: FileBackstoreOptions): Promise<FileBackstore> {
    const b = await FileBackstore.openFile(opts);
    if (b.kind === 'file') {
      try {
        b.memoryFs = MEMORY_FS_TYPES.has(Number((await fs.promises.statfs(b.path)).type));
      } catch {
        // Unknown filesystem: treat as one that may block.
      }
    }
    b.tryNoWait = !b.memoryFs && nativeFs() !== null;
    b.inlineWrites = b.kind === 'file' && !b.memoryFs;
    const native = nativeFs();
    if (b.memoryFs && native !== null && b._size > 0) b.mapping = FileMapping.create(native, b.fd, b._size);
    return b;
  }

  private static async openFile(opts: FileBackstoreOptions): Promise<FileBackstore> {
    const p = opts.path;
    const bs = opts.blockSize;
    const notes: string[] = [];
    if (opts.size !== undefined) checkSize(p, opts.size, bs, 'configured size');

    let st: fs.Stats | null = null;
    try {
      st = await fs.promises.stat(p);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw annotate(err, `cannot access volume ${p}`);
    }

    if (st === null) {
      // A new sparse file.
      if (opts.readonly) {
        throw new Error(`volume file ${p} does not exist (a read-only volume is never created)`);
      }
      if (opts.size === undefined) {
        throw new Error(`volume file ${p} does not exist and no size is configured to create it with`);
      }
      if (opts.createParents !== false) {
        await fs.promises.mkdir(path.dirname(p), { recursive: true });
      }
      const c = fs.constants;
      let fd: number;
      try {
        fd = await openFd(p, c.O_RDWR | c.O_CREAT | c.O_EXCL, 0o600);
      } catch (err) {
        throw annotate(err, `cannot create volume file ${p}`);
      }
      try {
        await ftruncate(fd, opts.size);
      } catch (err) {
        await closeFd(fd).catch(() => undefined);
        await fs.promises.unlink(p).catch(() => undefined);
        throw annotate(err, `cannot size new volume file ${p} to ${opts.size} bytes`);
      }
      notes.push(`created sparse volume file ${p} of ${opts.size} bytes`);
      const store = new FileBackstore(p, fd, opts.size, 'file', false, notes);
      store.created = true;
      return store;
    }

    if (st.isBlockDevice()) {
      const c = fs.constants;
      let fd: number;
      try {
        fd = await openFd(p, (opts.readonly ? c.O_RDONLY : c.O_RDWR) | c.O_EXCL);
      } catch (err) {
        throw annotate(err, `cannot open block device ${p}`);
      }
      try {
        const fst = await fstatBig(fd);
        if (!fst.isBlockDevice()) throw new Error(`${p} is no longer a block device`);
        const size = await blockDeviceSize(p, fst.rdev);
        if (opts.size !== undefined && opts.size !== size) {
          throw new Error(
            `block device ${p} is ${size} bytes but the configured size is ${opts.size} bytes; ` +
              `leave the size out for block devices (it is read from the device)`,
          );
        }
        checkSize(p, size, bs, 'device size');
        return new FileBackstore(p, fd, size, 'block', opts.readonly, notes);
      } catch (err) {
        await closeFd(fd).catch(() => undefined);
        throw err;
      }
    }

    if (!st.isFile()) {
      throw new Error(`volume path ${p} is neither a regular file nor a block device`);
    }

    const c = fs.constants;
    let fd: number;
    try {
      fd = await openFd(p, opts.readonly ? c.O_RDONLY : c.O_RDWR);
    } catch (err) {
      throw annotate(err, `cannot open volume file ${p}`);
    }
    try {
      const fst = await fstat(fd);
      const current = fst.size;
      let size = current;
      if (opts.size !== undefined && opts.size !== current) {
        if (opts.size < current) {
          throw new Error(
            `volume file ${p} is ${current} bytes but the configured size is ${opts.size} bytes; ` +
              `refusing to shrink it (that would lose data)`,
          );
        }
        if (opts.readonly) {
          throw new Error(
            `volume file ${p} is ${current} bytes but the configured size is ${opts.size} bytes; a read-only volume is never extended`,
          );
        }
        await ftruncate(fd, opts.size);
        notes.push(`extended volume file ${p} from ${current} to ${opts.size} bytes (sparse)`);
        size = opts.size;
      }
      checkSize(p, size, bs, 'file size');
      return new FileBackstore(p, fd, size, 'file', opts.readonly, notes);
    } catch (err) {
      await closeFd(fd).catch(() => undefined);
      throw err;
    }
  }

  read(buf: Buffer, offset: number): Promise<void> {
    if (this.closed) return Promise.reject(ebadf(this.path));
    const len = buf.length;
    if (len <= INLINE_IO_MAX) {
      if (this.memoryFs) {
        try {
          readFullySync(this.fd, buf, offset);
          return RESOLVED;
        } catch (err) {
          return Promise.reject(err);
        }
      }
      if (this.tryNoWait) {
        // Page-cache hit: done inline. Miss (or a short read): the rest goes to the pool.
        const n = nativeFs()!.readNoWait(this.fd, buf, 0, len, offset);
        if (n === len) return RESOLVED;
        if (n === -2) this.tryNoWait = false;
        if (n > 0) return readFully(this.fd, buf.subarray(n), offset + n);
      }
    }
    return readFully(this.fd, buf, offset);
  }

  /**
   * A view of the file's own pages for a large read on a memory filesystem, when the
   * range holds data all through (see FileMapping.view). Null: use read().
   */
  readView(offset: number, length: number): MappedView | null {
    const mapping = this.mapping;
    if (mapping === null || this.closed || length < MAPPED_READ_MIN) return null;
    return mapping.view(offset, length);
  }

  write(buf: Buffer, offset: number): Promise<void> {
    if (this.closed) return Promise.reject(ebadf(this.path));
    // A READ still sending these blocks from the mapping gets them as they were.
    const mapping = this.mapping;
    if (mapping !== null && mapping.busy(offset, buf.length))
      return mapping.whenClear(offset, buf.length).then(() => this.writeNow(buf, offset));
    return this.writeNow(buf, offset);
  }

  private writeNow(buf: Buffer, offset: number): Promise<void> {
    if (this.closed) return Promise.reject(ebadf(this.path));
    if (this.memoryFs && buf.length <= INLINE_IO_MAX) {
      try {
        writeFullySync(this.fd, buf, offset);
        return RESOLVED;
      } catch (err) {
        return Promise.reject(err);
      }
    }
    if (this.inlineWrites && buf.length <= INLINE_WRITE_MAX && this.flushing === 0) {
      const t0 = performance.now();
      if (t0 >= this.inlineWritesAfter) {
        try {
          writeFullySync(this.fd, buf, offset);
        } catch (err) {
          return Promise.reject(err);
        }
        if (performance.now() - t0 > inlineWriteTuning.slowMs) {
          this.slowInlineWrites++;
          this.inlineWritesAfter = performance.now() + inlineWriteTuning.backoffMs;
        }
        return RESOLVED;
      }
    }
    return writeFully(this.fd, buf, offset);
  }

  /**
   * Deallocate a byte range (punch a hole); where that is not possible, write zeros.
   * Either way the range reads back as zeros afterwards.
   */
  async unmap(offset: number, length: number): Promise<void> {
    if (this.closed) throw ebadf(this.path);
    if (length <= 0) return;
    if (this.readonly) throw erofs(this.path);
    const mapping = this.mapping;
    if (mapping === null) return this.deallocate(offset, length);
    // A READ still sending these blocks from the mapping gets them as they were; and the
    // blocks must be checked for holes again (during the punch too) before a view.
    await mapping.whenClear(offset, length);
    mapping.forget(offset, length);
    try {
      await this.deallocate(offset, length);
    } finally {
      mapping.forget(offset, length);
    }
  }

  private async deallocate(offset: number, length: number): Promise<void> {
    const native = nativeFs();
    if (native !== null && !this.punchUnsupported) {
      try {
        await native.fallocate(this.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, length);
        return;
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code === 'EINVAL' && this.kind === 'block') {
          // A device whose logical block is larger than this range's alignment: zero it.
        } else if (code === 'EOPNOTSUPP' || code === 'ENOSYS' || code === 'ENODEV') {
          this.punchUnsupported = true;
        } else {
          throw err;
        }
      }
    }
    await writeZeros((b, o) => writeFully(this.fd, b, o), offset, length);
  }

  /** True when unmap() really deallocates (punches holes) rather than writing zeros. */
  get deallocates(): boolean {
    return nativeFs() !== null && !this.punchUnsupported;
  }

  /**
   * Allocation status from `offset`, from the filesystem (SEEK_DATA / SEEK_HOLE). A block
   * device (or a system without the native calls) cannot tell: everything is mapped.
   */
  async mapStatus(offset: number, length: number): Promise<ExtentStatus> {
    if (this.closed) throw ebadf(this.path);
    const native = nativeFs();
    if (native === null || this.kind === 'block' || length <= 0) return { mapped: true, length };
    const data = native.seek(this.fd, offset, SEEK_DATA);
    if (data === null) return { mapped: false, length }; // no data from here to EOF
    if (data > offset) return { mapped: false, length: Math.min(data - offset, length) };
    const hole = native.seek(this.fd, offset, SEEK_HOLE) ?? offset + length;
    return { mapped: true, length: Math.max(1, Math.min(hole - offset, length)) };
  }

  flush(): Promise<void> {
    if (this.closed) return Promise.reject(ebadf(this.path));
    const fd = this.fd;
    this.flushing++;
    return new Promise((resolve, reject) => {
      fs.fdatasync(fd, (err) => {
        this.flushing--;
        if (err) reject(err);
        else resolve();
      });
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.mapping?.close();
    await closeFd(this.fd);
  }

  /** Grow a regular file (sparsely) to `size` bytes: `volume resize` on a running target. */
  private async growFile(size: number): Promise<void> {
    if (this.closed) throw ebadf(this.path);
    if (size < this._size) throw new Error(`${this.path}: shrinking from ${this._size} to ${size} bytes would lose data`);
    if (size === this._size) return;
    await ftruncate(this.fd, size);
    this._size = size;
    if (this.mapping !== null && !this.mapping.grow(size)) {
      this.mapping.close();
      this.mapping = null;
    }
  }
}

// ---- positional I/O ----

function preadOnce(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.read(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

function pwriteOnce(fd: number, buf: Buffer, off: number, len: number, pos: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.write(fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)));
  });
}

/** Fill all of `buf` from `pos`, looping on short reads; past EOF reads zeros. */
export async function readFully(fd: number, buf: Buffer, pos: number): Promise<void> {
  const len = buf.length;
  let done = 0;
  while (done < len) {
    const n = await preadOnce(fd, buf, done, Math.min(len - done, MAX_IO), pos + done);
    if (n === 0) {
      buf.fill(0, done);
      return;
    }
    done += n;
  }
}

/** readFully() inline, for stores that cannot block (memory filesystems). */
function readFullySync(fd: number, buf: Buffer, pos: number): void {
  const len = buf.length;
  let done = 0;
  while (done < len) {
    const n = fs.readSync(fd, buf, done, len - done, pos + done);
    if (n === 0) {
      buf.fill(0, done);
      return;
    }
    done += n;
  }
}

/** writeFully() inline, for stores that cannot block (memory filesystems). */
function writeFullySync(fd: number, buf: Buffer, pos: number): void {
  const len = buf.length;
  let done = 0;
  while (done < len) {
    const n = fs.writeSync(fd, buf, done, len - done, pos + done);
    if (n === 0) {
      const err = new Error(`ENOSPC: short write (0 bytes) at offset ${pos + done}`) as NodeJS.ErrnoException;
      err.code = 'ENOSPC';
      throw err;
    }
    done += n;
  }
}

const RESOLVED = DONE_INLINE;

/** Write all of `buf` at `pos`, looping on short writes. */
export async function writeFully(fd: number, buf: Buffer, pos: number): Promise<void> {
  const len = buf.length;
  let done = 0;
  while (done < len) {
    const n = await pwriteOnce(fd, buf, done, Math.min(len - done, MAX_IO), pos + done);
    if (n === 0) {
      // A zero-byte write that is not an error: treat as out of space rather than spin.
      const err = new Error(`ENOSPC: short write (0 bytes) at offset ${pos + done}`) as NodeJS.ErrnoException;
      err.code = 'ENOSPC';
      throw err;
    }
    done += n;
  }
}

// ---- small promisified helpers on raw fds ----

function openFd(p: string, flags: number, mode?: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fs.open(p, flags, mode, (err, fd) => (err ? reject(err) : resolve(fd)));
  });
}

function closeFd(fd: number): Promise<void> {
  return new Promise((resolve, reject) => fs.close(fd, (err) => (err ? reject(err) : resolve())));
}

function ftruncate(fd: number, len: number): Promise<void> {
  return new Promise((resolve, reject) => fs.ftruncate(fd, len, (err) => (err ? reject(err) : resolve())));
}

function fstat(fd: number): Promise<fs.Stats> {
  return new Promise((resolve, reject) => fs.fstat(fd, (err, st) => (err ? reject(err) : resolve(st))));
}

function fstatBig(fd: number): Promise<fs.BigIntStats> {
  return new Promise((resolve, reject) => fs.fstat(fd, { bigint: true }, (err, st) => (err ? reject(err) : resolve(st))));
}

/** Linux dev_t -> major/minor (glibc's gnu_dev_major / gnu_dev_minor). */
export function devMajorMinor(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

async function blockDeviceSize(p: string, rdev: bigint): Promise<number> {
  const { major, minor } = devMajorMinor(rdev);
  const sysPath = `/sys/dev/block/${major}:${minor}/size`;
  let text: string;
  try {
    text = await fs.promises.readFile(sysPath, 'utf8');
  } catch (err) {
    throw annotate(err, `cannot read the size of block device ${p} from ${sysPath}`);
  }
  const sectors = Number(text.trim());
  if (!Number.isSafeInteger(sectors) || sectors < 0) {
    throw new Error(`block device ${p}: unexpected size "${text.trim()}" in ${sysPath}`);
  }
  return sectors * 512;
}

function checkSize(p: string, size: number, blockSize: number, what: string): void {
  if (!Number.isSafeInteger(size) || size <= 0) {
    throw new Error(`volume ${p}: ${what} must be a positive whole number of bytes (got ${size})`);
  }
  if (size % blockSize !== 0) {
    throw new Error(`volume ${p}: ${what} ${size} bytes is not a multiple of the ${blockSize}-byte block size`);
  }
}

/** Prefix an fs error's message with context, keeping it (and its `code`) the same object. */
function annotate(err: unknown, context: string): Error {
  if (err instanceof Error) {
    err.message = `${context}: ${err.message}`;
    return err;
  }
  return new Error(`${context}: ${String(err)}`);
}

function erofs(p: string): NodeJS.ErrnoException {
  const err = new Error(`EROFS: volume ${p} is read-only`) as NodeJS.ErrnoException;
  err.code = 'EROFS';
  return err;
}

function ebadf(p: string): NodeJS.ErrnoException {
  const err = new Error(`EBADF: volume ${p} is closed`) as NodeJS.ErrnoException;
  err.code = 'EBADF';
  return err;
}
