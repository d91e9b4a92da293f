// Process-wide budgets for command data held in memory, so many sessions with deep
// queues of large transfers cannot make the daemon's memory grow without bound: whatever
// the number of sessions, their queue depth or the transfer size, READ data between the
// backstore read and the socket taking it, and WRITE data between its arrival and the
// backstore write, stay within these byte counts (and the data-buffer pool, sized to
// them, recycles the buffers instead of leaving them to the garbage collector).
//
// WRITE's lever is the R2T: data the initiator may send unasked (immediate, unsolicited)
// has to be taken, but data it sends only when asked waits until there is room. READ's
// is simply to start the read later. A command that must wait queues here, in arrival
// order, and goes on once its bytes are granted. One command is always admitted when
// nothing else is held, however large.

export interface BudgetWaiter {
  readonly bytes: number;
  readonly grant: () => void;
  cancelled: boolean;
}

export class DataBudget {
  private used = 0;
  private readonly queue: BudgetWaiter[] = [];
  /** How many requests have had to wait, since start. */
  waited = 0;

  /** Bytes that may be held at once (tests lower it). */
  constructor(public limit: number) {}

  /** Take `bytes` now if they fit and nobody is queued; false otherwise. */
  tryTake(bytes: number): boolean {
    if (this.queue.length > 0 || (this.used !== 0 && this.used + bytes > this.limit)) return false;
    this.used += bytes;
    return true;
  }

  /** Take `bytes` regardless (data that is on its way anyway). */
  force(bytes: number): void {
    this.used += bytes;
  }

  /** Queue for `bytes`; `grant` runs once they have been taken on the caller's behalf. */
  wait(bytes: number, grant: () => void): BudgetWaiter {
    const w: BudgetWaiter = { bytes, grant, cancelled: false };
    this.queue.push(w);
    this.waited++;
    return w;
  }

  cancel(w: BudgetWaiter): void {
    w.cancelled = true;
    this.pump();
  }

  give(bytes: number): void {
    this.used -= bytes;
    this.pump();
  }

  /** Bytes currently taken. */
  get inUse(): number {
    return this.used;
  }

  /** Waiters not yet granted (cancelled ones included until they reach the front). */
  get waiting(): number {
    return this.queue.length;
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const w = this.queue[0];
      if (!w.cancelled && this.used !== 0 && this.used + w.bytes > this.limit) return;
      this.queue.shift();
      if (w.cancelled) continue;
      this.used += w.bytes;
      w.grant();
    }
  }
}

/**
 * WRITE data buffered at once across all sessions (beyond what initiators send unasked).
 * 16 MiB keeps 16 one-MiB WRITEs in flight to the backstore, more than one QD8 session
 * needs; 32 MiB cost RSS without adding throughput.
 */
export const writeBudget = new DataBudget(16 * 1024 * 1024);

/**
 * READ data (plain READs) read and not yet handed to the socket, across all sessions.
 * 16 MiB is 128 KiB READs at QD128 over any number of sessions, or 2 MiB queued for each
 * of 8 sockets, which keeps loopback busy.
 */
export const readBudget = new DataBudget(16 * 1024 * 1024);
