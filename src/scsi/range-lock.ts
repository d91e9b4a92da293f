// A per-logical-unit lock over LBA ranges.
//
// Ordinary writes take a *shared* hold on their range: they never wait for each other
// (SIMPLE tasks may overlap in any order), only for an *exclusive* holder. COMPARE AND
// WRITE and ORWRITE take an *exclusive* hold, which waits for every overlapping hold taken
// before it and makes every later overlapping hold wait for it. Holds are registered
// synchronously at acquire time, so arrival order decides who waits for whom.
//
// When no exclusive hold exists (the common case) a shared acquire is one Set insertion.

interface Hold {
  start: number;
  end: number; // exclusive
  exclusive: boolean;
  released: boolean;
  /** Settles on release; made only when a later hold has to wait for this one. */
  done: Promise<void> | null;
  resolve: (() => void) | null;
}

/** The promise a waiter waits on: settled when `h` is released. */
function doneOf(h: Hold): Promise<void> {
  if (h.done === null) h.done = new Promise<void>((r) => (h.resolve = r));
  return h.done;
}

export type Release = () => void;

export class RangeLock {
  private holds = new Set<Hold>();
  private exclusiveCount = 0;

  /**
   * Hold blocks [start, start + count). Resolves (with the release function) once no
   * conflicting earlier hold remains. `count` 0 holds nothing and never waits.
   */
  acquire(start: number, count: number, exclusive: boolean): Promise<Release> | Release {
    const end = start + count;
    const hold: Hold = { start, end, exclusive, released: false, done: null, resolve: null };

    let waitFor: Promise<void>[] | null = null;
    if (count > 0 && (exclusive || this.exclusiveCount > 0)) {
      for (const h of this.holds) {
        if ((exclusive || h.exclusive) && h.start < end && start < h.end) {
          (waitFor ??= []).push(doneOf(h));
        }
      }
    }
    this.holds.add(hold);
    if (exclusive) this.exclusiveCount++;

    const unlock: Release = () => {
      if (hold.released) return;
      hold.released = true;
      this.holds.delete(hold);
      if (hold.exclusive) this.exclusiveCount--;
      if (hold.resolve !== null) hold.resolve();
    };
    if (waitFor === null) return unlock;
    return Promise.all(waitFor).then(() => unlock);
  }

  /** Number of holds currently registered (for tests). */
  get size(): number {
    return this.holds.size;
  }
}
