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
  done: Promise<void>;
  release: () => void;
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
    let release!: () => void;
    const done = new Promise<void>((r) => (release = r));
    const hold: Hold = { start, end, exclusive, done, release };

    let waitFor: Promise<void>[] | null = null;
    if (count > 0 && (exclusive || this.exclusiveCount > 0)) {
      for (const h of this.holds) {
        if ((exclusive || h.exclusive) && h.start < end && start < h.end) {
          (waitFor ??= []).push(h.done);
        }
      }
    }
    this.holds.add(hold);
    if (exclusive) this.exclusiveCount++;

    const unlock: Release = () => {
      if (!this.holds.delete(hold)) return;
      if (hold.exclusive) this.exclusiveCount--;
      hold.release();
    };
    if (waitFor === null) return unlock;
    return Promise.all(waitFor).then(() => unlock);
  }

  /** Number of holds currently registered (for tests). */
  get size(): number {
    return this.holds.size;
  }
}
