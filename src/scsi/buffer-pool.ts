// Reusable data buffers for READ results and WRITE Data-Out, so steady-state I/O does not
// allocate (and later garbage-collect) a fresh ArrayBuffer per command.
//
// Buffers come in power-of-two classes from 4 KiB to 1 MiB; larger requests get a
// one-off allocation. take() lends a buffer, release() returns it once its last user is
// done (the socket has sent the Data-In, the backstore has written the Data-Out). Only
// buffers lent by take() and not yet released are accepted back (a WeakSet tells them
// apart, so a lent buffer that is never released is simply collected). Idle buffers are
// kept up to a byte budget, which bounds what the pool holds on to; the default covers
// what the transport's read and write budgets (src/iscsi/data-budget.ts) let be lent at
// once, so under any load the same buffers go round instead of a stream of new ones
// piling up for the garbage collector (which frees them late, and RSS shows it). Idle
// buffers are dropped after a quiet spell, so an idle daemon does not keep them.

const MIN_CLASS = 4096;
const MAX_CLASS = 1024 * 1024;

export class BufferPool {
  private readonly free = new Map<number, ArrayBuffer[]>();
  private readonly lent = new WeakSet<ArrayBuffer>();
  private idle = 0;
  /** take() was called since the last quiet-spell check. */
  private busy = false;
  private trimTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly maxIdleBytes = 32 * 1024 * 1024,
    /** Idle buffers are dropped once no take() has come for this long (0: never). */
    readonly trimAfterMs = 10_000,
  ) {}

  /** A buffer of exactly `length` bytes (contents undefined). */
  take(length: number): Buffer {
    this.busy = true;
    if (length > MAX_CLASS) return Buffer.allocUnsafeSlow(length);
    const size = classOf(length);
    const list = this.free.get(size);
    let ab = list?.pop();
    if (ab !== undefined) this.idle -= size;
    else {
      // A new buffer replaces idle ones of other sizes (what an earlier workload left),
      // so a change of transfer size does not add a second set to the first.
      if (this.idle > 0) this.evictOthers(size, this.idle - size);
      ab = Buffer.allocUnsafeSlow(size).buffer;
    }
    this.lent.add(ab);
    return Buffer.from(ab, 0, length);
  }

  /** Give back a buffer from take() (or any view of it). Anything else is ignored. */
  release(buf: Buffer): void {
    const ab = buf.buffer as ArrayBuffer;
    if (!this.lent.delete(ab)) return;
    const size = ab.byteLength;
    // Over the idle budget, buffers of other sizes make room: they are what an earlier
    // workload left behind, and this one is what the current workload uses.
    if (this.idle + size > this.maxIdleBytes && !this.evictOthers(size, this.maxIdleBytes - size)) return;
    let list = this.free.get(size);
    if (list === undefined) this.free.set(size, (list = []));
    list.push(ab);
    this.idle += size;
    if (this.trimTimer === undefined && this.trimAfterMs > 0) {
      this.trimTimer = setInterval(this.trimIfQuiet, this.trimAfterMs);
      this.trimTimer.unref();
    }
  }

  /** Drop every idle buffer. */
  trim(): void {
    this.free.clear();
    this.idle = 0;
  }

  private readonly trimIfQuiet = (): void => {
    if (this.busy) {
      this.busy = false;
      return;
    }
    this.trim();
    clearInterval(this.trimTimer);
    this.trimTimer = undefined;
  };

  /** Drop idle buffers not of class `size` until at most `keep` idle bytes remain; false if they cannot. */
  private evictOthers(size: number, keep: number): boolean {
    for (const [cls, list] of this.free) {
      if (cls === size) continue;
      while (list.length > 0 && this.idle > keep) {
        list.pop();
        this.idle -= cls;
      }
      if (this.idle <= keep) return true;
    }
    return this.idle <= keep;
  }

  /** Bytes held by idle buffers. */
  get idleBytes(): number {
    return this.idle;
  }
}

function classOf(length: number): number {
  let size = MIN_CLASS;
  while (size < length) size *= 2;
  return size;
}

/** The process-wide pool for command data. */
export const dataBuffers = new BufferPool();
