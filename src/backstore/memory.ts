// A RAM-only volume: one Buffer. For tests and scratch volumes (`memory: true`).

import type { Backstore } from './backstore';

export interface MemoryBackstoreOptions {
  readonly?: boolean;
  /** Shown as the location; defaults to "memory". */
  path?: string;
}

export class MemoryBackstore implements Backstore {
  readonly path: string;
  readonly readonly: boolean;
  private buf: Buffer;
  private closed = false;

  constructor(size: number, opts: MemoryBackstoreOptions = {}) {
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new Error(`memory volume: size must be a positive whole number of bytes (got ${size})`);
    }
    this.buf = Buffer.alloc(size);
    this.path = opts.path ?? 'memory';
    this.readonly = opts.readonly ?? false;
  }

  get size(): number {
    return this.buf.length;
  }

  async read(buf: Buffer, offset: number): Promise<void> {
    this.checkOpen();
    checkRange(offset, buf.length);
    const end = Math.min(offset + buf.length, this.buf.length);
    let n = 0;
    if (offset < end) n = this.buf.copy(buf, 0, offset, end);
    if (n < buf.length) buf.fill(0, n);
  }

  async write(buf: Buffer, offset: number): Promise<void> {
    this.checkOpen();
    checkRange(offset, buf.length);
    if (this.readonly) throw errno('EROFS', `memory volume is read-only`);
    if (offset + buf.length > this.buf.length) {
      throw errno('ENOSPC', `write beyond the end of the memory volume`);
    }
    buf.copy(this.buf, offset);
  }

  async flush(): Promise<void> {
    this.checkOpen();
  }

  async close(): Promise<void> {
    this.closed = true;
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
