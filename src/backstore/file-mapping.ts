// Read-only views of a memory-filesystem volume's pages, for large READs.
//
// A READ normally costs two copies: pread from the page cache into one of our buffers,
// then writev from that buffer into the socket. On tmpfs the page cache *is* the
// medium, so a READ can hand the socket a Buffer over the file's mapped pages instead:
// one copy, straight from the volume into the socket (measured here: 128 KiB chunks to a
// loopback socket, 1.4-1.5 GB/s with pread + writev, 2.3-2.5 GB/s from the mapping).
//
// The catch is that the socket copies later than pread would have: when the send buffer
// is full the bytes wait in the socket's queue, still pointing at live pages. A write
// landing on those blocks in the meantime would change what the READ returns. So every
// view stays *pending* until the transport says its bytes are out (or dropped), and
// writes and unmaps of an overlapping range wait for that (`whenClear`): a READ returns
// the data as it was when it completed, as with a copy. Writes elsewhere never wait.
//
// The file is mapped in windows of WINDOW_BYTES (a Buffer has a size limit, and a view
// must not straddle two mappings); a read that would straddle falls back to a copy.
// Pages touched through the mapping count in the process's RSS, so every DROP_EVERY
// bytes of views the page-table entries are dropped (MADV_DONTNEED; the data stays in
// the file). A window is unmapped only once no view of it is pending: when the volume
// grows (its last window is mapped again at the new size) or closes.

import type { NativeFs } from './native';

/** A view handed to the transport: `release` once its bytes have been sent or dropped. */
export interface MappedView {
  data: Buffer;
  release: () => void;
}

const WINDOW_BYTES = 1024 * 1024 * 1024;
/**
 * Granularity of the "known to hold data" map: mincore costs about 4 µs per 128 KiB,
 * more than half the copy it saves, so a chunk found resident is remembered until an
 * unmap (hole punch) of it.
 */
const CHUNK_BYTES = 64 * 1024;
const DROP_EVERY = 8 * 1024 * 1024;

interface Window {
  start: number;
  length: number;
  buffer: Buffer;
  resident(offset: number, length: number): boolean;
  dropPages(): void;
  unmap(): void;
  /** Views of this window not yet released. */
  refs: number;
  /** Replaced or closed: unmap once refs reaches 0. */
  retired: boolean;
}

interface Pending {
  start: number;
  end: number;
}

interface Waiter {
  start: number;
  end: number;
  resolve: () => void;
  timer: NodeJS.Timeout;
}

/**
 * A write waits at most this long for a view to be released. A peer that stops reading
 * its socket is dropped well before (limits.nopInterval + nopTimeout, which releases its
 * views); a view still pending after this long was lost by a bug, and a write that waited
 * for it forever would hang its initiator: it goes ahead, with a warning.
 */
export const viewWait = { maxMs: 60_000 };

export class FileMapping {
  private windows: (Window | null)[] = [];
  private readonly pending = new Set<Pending>();
  private waiters: Waiter[] = [];
  private sinceDrop = 0;
  private closed = false;
  /** One bit per CHUNK_BYTES: set once the chunk was seen to hold data (no hole). */
  private known = new Uint32Array(0);

  private constructor(
    private readonly native: NativeFs,
    private readonly fd: number,
    private size: number,
  ) {}

  /** Map `size` bytes of `fd`; null when the kernel refuses (the caller copies instead). */
  static create(native: NativeFs, fd: number, size: number): FileMapping | null {
    const m = new FileMapping(native, fd, size);
    m.known = new Uint32Array(Math.ceil(size / CHUNK_BYTES / 32));
    for (let start = 0; start < size; start += WINDOW_BYTES) {
      const w = m.mapWindow(start);
      if (w === null) {
        m.close();
        return null;
      }
      m.windows.push(w);
    }
    return m;
  }

  private mapWindow(start: number): Window | null {
    const length = Math.min(WINDOW_BYTES, this.size - start);
    const map = this.native.mapShared(this.fd, start, length);
    if (map === null) return null;
    return {
      start,
      length,
      buffer: map.buffer,
      resident: (o, l) => map.resident(o, l),
      dropPages: () => map.dropPages(),
      unmap: () => map.unmap(),
      refs: 0,
      retired: false,
    };
  }

  /**
   * A view of [offset, offset + length), pending until released; null when the range is
   * not inside one window or holds a hole (mapping a hole would allocate it: the caller
   * copies instead, which reads zeros without allocating).
   */
  view(offset: number, length: number): MappedView | null {
    if (this.closed) return null;
    const w = this.windows[Math.floor(offset / WINDOW_BYTES)];
    if (w == null) return null;
    const rel = offset - w.start;
    if (rel + length > w.length || !this.holdsData(w, offset, length)) return null;
    this.sinceDrop += length;
    if (this.sinceDrop >= DROP_EVERY) {
      // Views still in flight just map their pages again when the socket copies them.
      this.sinceDrop = 0;
      for (const x of this.windows) x?.dropPages();
    }
    w.refs++;
    const p: Pending = { start: offset, end: offset + length };
    this.pending.add(p);
    let released = false;
    return {
      data: w.buffer.subarray(rel, rel + length),
      release: () => {
        if (released) return;
        released = true;
        this.pending.delete(p);
        if (--w.refs === 0 && w.retired) w.unmap();
        if (this.waiters.length > 0) this.wakeWaiters();
      },
    };
  }

  private holdsData(w: Window, offset: number, length: number): boolean {
    const first = Math.floor(offset / CHUNK_BYTES);
    const end = Math.ceil((offset + length) / CHUNK_BYTES);
    const k = this.known;
    let all = true;
    for (let c = first; c < end; c++) {
      if ((k[c >>> 5] & (1 << (c & 31))) === 0) {
        all = false;
        break;
      }
    }
    if (all) return true;
    if (!w.resident(offset - w.start, length)) return false;
    // Remember the chunks the range covers whole.
    const whole0 = Math.ceil(offset / CHUNK_BYTES);
    const whole1 = Math.floor((offset + length) / CHUNK_BYTES);
    for (let c = whole0; c < whole1; c++) k[c >>> 5] |= 1 << (c & 31);
    return true;
  }

  /** [offset, offset + length) may now hold holes (it was unmapped): check it again. */
  forget(offset: number, length: number): void {
    const first = Math.floor(offset / CHUNK_BYTES);
    const end = Math.min(Math.ceil((offset + length) / CHUNK_BYTES), this.known.length * 32);
    for (let c = first; c < end; c++) this.known[c >>> 5] &= ~(1 << (c & 31));
  }

  /** Some view of bytes overlapping [offset, offset + length) is still pending. */
  busy(offset: number, length: number): boolean {
    if (this.pending.size === 0) return false;
    return this.overlaps(offset, offset + length);
  }

  /** Resolves once no pending view overlaps [offset, offset + length). */
  whenClear(offset: number, length: number): Promise<void> {
    if (!this.busy(offset, length)) return Promise.resolve();
    return new Promise((resolve) => {
      const w: Waiter = {
        start: offset,
        end: offset + length,
        resolve,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          process.emitWarning(
            `a write to bytes ${offset}+${length} waited ${viewWait.maxMs / 1000} s for a READ's view of them; going ahead`,
            'MappedReadWarning',
          );
          resolve();
        }, viewWait.maxMs),
      };
      w.timer.unref();
      this.waiters.push(w);
    });
  }

  private overlaps(start: number, end: number): boolean {
    for (const p of this.pending) if (p.start < end && start < p.end) return true;
    return false;
  }

  private wakeWaiters(): void {
    const still: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.overlaps(w.start, w.end)) still.push(w);
      else {
        clearTimeout(w.timer);
        w.resolve();
      }
    }
    this.waiters = still;
  }

  /** The file grew to `size`: map the new bytes (a partial last window is mapped again). */
  grow(size: number): boolean {
    if (this.closed || size <= this.size) return true;
    const oldSize = this.size;
    this.size = size;
    const known = new Uint32Array(Math.ceil(size / CHUNK_BYTES / 32));
    known.set(this.known);
    this.known = known;
    const first = Math.floor(oldSize / WINDOW_BYTES);
    const last = Math.ceil(size / WINDOW_BYTES);
    for (let i = first; i < last; i++) {
      const old = this.windows[i] ?? null;
      if (old !== null && old.length === WINDOW_BYTES) continue;
      const w = this.mapWindow(i * WINDOW_BYTES);
      if (old !== null) this.retire(old);
      this.windows[i] = w;
      if (w === null) return false; // that range is simply copied from now on
    }
    return true;
  }

  /** No new views; each window is unmapped once its last pending view is released. */
  close(): void {
    this.closed = true;
    for (const w of this.windows) if (w !== null) this.retire(w);
    this.windows = [];
  }

  private retire(w: Window): void {
    w.retired = true;
    if (w.refs === 0) w.unmap();
  }

  /** Views not yet released (for tests and status). */
  get pendingViews(): number {
    return this.pending.size;
  }
}
