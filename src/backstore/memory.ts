// A RAM-only volume: one Buffer. For tests and scratch volumes (`memory: true`).
//
// Thin provisioning is kept simple: an allocation map with one bit per 4 KiB granule.
// A write maps the granules it touches; unmap() zeros the range and unmaps the granules it
// covers completely (a partly covered granule keeps its other bytes, so stays mapped).
// The map is a `bitfield` (one bit per granule).

import BitField from 'bitfield';
import { DONE_INLINE, type Backstore, type ExtentStatus } from './backstore';

export interface MemoryBackstoreOptions {
  readonly?: boolean;
  /** Shown as the location; defaults to "memory". */
  path?: string;
}

/** Allocation granule of the memory store's map, in bytes. */
export const MEMORY_GRANULE = 4096;

export class MemoryBackstore implements Backstore {
  readonly path: string;
  readonly readonly: boolean;
  private buf: Buffer;
  /** One bit per granule: set = mapped (written since the last unmap). */
  private readonly map: BitField;
  private closed = false;

  constructor(size: number, opts: MemoryBackstoreOptions = {}) {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new Error(`memory volume: size must be a positive whole number of bytes (got ${size})`);
    }
    this.buf = Buffer.alloc(size);
    this.map = new BitField(Math.ceil(size / MEMORY_GRANULE));
    this.path = opts.path ?? 'memory';
    this.readonly = opts.readonly ?? false;
  }

  get size(): number {
    return this.buf.length;
  }

  // read() and write() are done when they return (DONE_INLINE): the SCSI core then answers
  // in the same turn, with no promise hop.
  read(buf: Buffer, offset: number): Promise<void> {
    try {
      this.readNow(buf, offset);
      return DONE_INLINE;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private readNow(buf: Buffer, offset: number): void {
    this.checkOpen();
    checkRange(offset, buf.length);
    const end = Math.min(offset + buf.length, this.buf.length);
    let n = 0;
    if (offset < end) n = this.buf.copy(buf, 0, offset, end);
    if (n < buf.length) buf.fill(0, n);
  }

  write(buf: Buffer, offset: number): Promise<void> {
    try {
      this.writeNow(buf, offset);
      return DONE_INLINE;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private writeNow(buf: Buffer, offset: number): void {
    this.checkOpen();
    checkRange(offset, buf.length);
    if (this.readonly) throw errno('EROFS', `memory volume is read-only`);
    if (offset + buf.length > this.buf.length) {
      throw errno('ENOSPC', `write beyond the end of the memory volume`);
    }
    buf.copy(this.buf, offset);
    if (buf.length > 0) {
      const last = Math.floor((offset + buf.length - 1) / MEMORY_GRANULE);
      for (let g = Math.floor(offset / MEMORY_GRANULE); g <= last; g++) this.setMapped(g, true);
    }
  }

  async unmap(offset: number, length: number): Promise<void> {
    this.checkOpen();
    checkRange(offset, length);
    if (this.readonly) throw errno('EROFS', `memory volume is read-only`);
    const end = Math.min(offset + length, this.buf.length);
    if (end <= offset) return;
    this.buf.fill(0, offset, end);
    const first = Math.ceil(offset / MEMORY_GRANULE);
    // The last granule counts as covered when the range reaches the end of the store.
    const stop = end === this.buf.length ? Math.ceil(end / MEMORY_GRANULE) : Math.floor(end / MEMORY_GRANULE);
    for (let g = first; g < stop; g++) this.setMapped(g, false);
  }

  async mapStatus(offset: number, length: number): Promise<ExtentStatus> {
    this.checkOpen();
    checkRange(offset, length);
    const end = Math.min(offset + length, this.buf.length);
    if (end <= offset) return { mapped: true, length };
    let g = Math.floor(offset / MEMORY_GRANULE);
    const mapped = this.isMapped(g);
    let pos = (g + 1) * MEMORY_GRANULE;
    for (g++; pos < end && this.isMapped(g) === mapped; g++) pos += MEMORY_GRANULE;
    return { mapped, length: Math.min(pos, end) - offset };
  }

  async flush(): Promise<void> {
    this.checkOpen();
  }

  async close(): Promise<void> {
    this.closed = true;
  }

  private isMapped(g: number): boolean {
    return this.map.get(g);
  }

  private setMapped(g: number, on: boolean): void {
    this.map.set(g, on);
  }

  private checkOpen(): void {
    if (this.closed) throw errno('EBADF', 'memory volume is closed');
  }
}

function checkRange(offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(offset + length)) {
    throw new RangeError(`bad offset ${offset}`);
  }
}

function errno(code: string, message: string): NodeJS.ErrnoException {
  const err = new Error(`${code}: ${message}`) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}
