// The few Linux calls Node's fs module lacks, reached through koffi (an FFI whose npm
// package ships prebuilt binaries, so installing it downloads nothing else):
//
//   fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len)
//       deallocates a byte range of a regular file (reads return zeros afterwards); on a
//       block device the kernel turns it into a zeroing discard (REQ_OP_WRITE_ZEROES with
//       unmap), or refuses with EOPNOTSUPP when the device cannot do that without writing.
//   lseek(fd, off, SEEK_DATA / SEEK_HOLE)
//       finds the allocated extents of a sparse file (honest GET LBA STATUS).
//   mmap(PROT_READ, MAP_SHARED) / madvise(MADV_DONTNEED) / munmap
//       a read-only view of a memory-filesystem volume's pages, so large READs go to the
//       socket with one copy instead of two (see file-mapping.ts).
//
// fallocate runs on koffi's worker threads (it can take a while on large extents); lseek
// is cheap and runs inline. When koffi or libc cannot be loaded (another OS, a missing
// prebuilt binary), `native` is null and callers fall back to writing zeros and to
// reporting everything as mapped.

export interface NativeFs {
  /** fallocate(2); rejects with an errno error (code EOPNOTSUPP, EINVAL, ...). */
  fallocate(fd: number, mode: number, offset: number, length: number): Promise<void>;
  /**
   * lseek(2) with SEEK_DATA or SEEK_HOLE: the resulting offset, or null when there is no
   * data (SEEK_DATA) at or after `offset` (ENXIO). Throws an errno error otherwise.
   */
  seek(fd: number, offset: number, whence: typeof SEEK_DATA | typeof SEEK_HOLE): number | null;
  /**
   * preadv2(2) with RWF_NOWAIT into buf[off, off + len) from `pos`: the bytes read (0 at
   * EOF) when the data was in the page cache; -1 when reading would block (EAGAIN) or
   * failed; -2 when the file does not support RWF_NOWAIT (EOPNOTSUPP: tmpfs, for one).
   * Runs inline: it never waits for a disk.
   */
  readNoWait(fd: number, buf: Buffer, off: number, len: number, pos: number): number;
  /**
   * mmap(NULL, length, PROT_READ, MAP_SHARED, fd, offset): a Buffer over the file's own
   * pages (no copy), or null when the kernel refuses. The Buffer must not be touched after
   * `unmap()`. `dropPages()` is madvise(MADV_DONTNEED): it only unmaps our page-table
   * entries (the data stays in the file; the next access maps it again), which keeps
   * pages we read once out of the process's RSS.
   */
  mapShared(fd: number, offset: number, length: number): SharedMapping | null;
}

export interface SharedMapping {
  buffer: Buffer;
  /**
   * mincore(2): every page of [offset, offset + length) of the mapping is in memory. On
   * a memory filesystem a page that is not is a hole (or swapped out): touching it
   * through the mapping would allocate it.
   */
  resident(offset: number, length: number): boolean;
  dropPages(): void;
  unmap(): void;
}

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const SEEK_DATA = 3;
export const SEEK_HOLE = 4;
export const RWF_NOWAIT = 0x08;
const PROT_READ = 0x1;
const MAP_SHARED = 0x01;
const MADV_DONTNEED = 4;
const MAP_FAILED = 0xffff_ffff_ffff_ffffn; // (void *) -1

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM',
  4: 'EINTR',
  5: 'EIO',
  6: 'ENXIO',
  9: 'EBADF',
  19: 'ENODEV',
  22: 'EINVAL',
  27: 'EFBIG',
  28: 'ENOSPC',
  29: 'ESPIPE',
  30: 'EROFS',
  38: 'ENOSYS',
  95: 'EOPNOTSUPP',
  122: 'EDQUOT',
};

export function errnoError(errno: number, syscall: string): NodeJS.ErrnoException {
  const code = ERRNO_NAMES[errno] ?? `E${errno}`;
  const err = new Error(`${code}: ${syscall} failed (errno ${errno})`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = -errno;
  err.syscall = syscall;
  return err;
}

function load(): NativeFs | null {
  if (process.platform !== 'linux') return null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require('koffi') as typeof import('koffi');
    const libc = koffi.load('libc.so.6');
    const fallocate = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)');
    const lseek = libc.func('int64_t lseek(int fd, int64_t offset, int whence)');
    koffi.struct('iscsi_target_iovec', { base: 'void *', len: 'size_t' });
    const preadv2 = libc.func('int64_t preadv2(int fd, const iscsi_target_iovec *iov, int iovcnt, int64_t offset, int flags)');
    const mmap = libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)');
    const madvise = libc.func('int madvise(void *addr, size_t len, int advice)');
    const munmap = libc.func('int munmap(void *addr, size_t len)');
    const mincore = libc.func('int mincore(uintptr_t addr, size_t len, uint8_t *vec)');
    const PAGE = 4096;
    let vec = Buffer.alloc(64);
    return {
      fallocate(fd, mode, offset, length) {
        return new Promise((resolve, reject) => {
          fallocate.async(fd, mode, offset, length, (err: unknown, res: number) => {
            if (err) reject(err instanceof Error ? err : new Error(`fallocate: ${typeof err === 'string' ? err : 'failed'}`));
            else if (res !== 0) reject(errnoError(koffi.errno() || 5, 'fallocate'));
            else resolve();
          });
        });
      },
      seek(fd, offset, whence) {
        const res = Number(lseek(fd, offset, whence));
        if (res >= 0) return res;
        const errno = koffi.errno();
        if (errno === 6) return null; // ENXIO: no data at or after offset
        throw errnoError(errno || 5, 'lseek');
      },
      readNoWait(fd, buf, off, len, pos) {
        const target = off === 0 && len === buf.length ? buf : buf.subarray(off, off + len);
        const n = Number(preadv2(fd, { base: target, len }, 1, pos, RWF_NOWAIT));
        if (n >= 0) return n;
        return koffi.errno() === 95 ? -2 : -1;
      },
      mapShared(fd, offset, length) {
        const ptr: unknown = mmap(null, length, PROT_READ, MAP_SHARED, fd, offset);
        if (ptr === null || koffi.address(ptr) === MAP_FAILED) return null;
        let mapped = true;
        const base = Number(koffi.address(ptr));
        return {
          buffer: Buffer.from(koffi.view(ptr, length), 0, length),
          resident(offset, len) {
            if (!mapped) return false;
            const first = offset - (offset % PAGE);
            const pages = Math.ceil((offset + len - first) / PAGE);
            if (vec.length < pages) vec = Buffer.alloc(pages);
            if (mincore(base + first, pages * PAGE, vec) !== 0) return false;
            for (let i = 0; i < pages; i++) if ((vec[i] & 1) === 0) return false;
            return true;
          },
          dropPages() {
            if (mapped) madvise(ptr, length, MADV_DONTNEED);
          },
          unmap() {
            if (mapped) munmap(ptr, length);
            mapped = false;
          },
        };
      },
    };
  } catch {
    return null;
  }
}

let cached: NativeFs | null | undefined;

/** The native calls, or null when they are not available on this system. */
export function nativeFs(): NativeFs | null {
  if (cached === undefined) cached = load();
  return cached;
}
