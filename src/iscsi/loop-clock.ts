// When a command's bytes may have arrived, as far as the write age limit (scsi/write-age.ts)
// needs to know. The time a PDU is parsed is not enough after a stall: bytes a host sent
// while this process was stopped (SIGSTOP, a frozen VM, a long GC pause) wait in the kernel
// and are parsed fresh once it runs again, although the host may have timed the command out
// and re-issued it on another gateway meanwhile. A heartbeat timer tells a stall apart: when
// it is late, what the loop reads next is dated back to the last beat before the stall.
//
// libuv resumes either in its poll (the socket is read before the late timer runs: the gap
// since the last beat shows it) or elsewhere (the late timer runs first: `floor` holds the
// pre-stall time until the poll that follows has read the sockets; setImmediate runs after it).

/** Heartbeat period; a beat later than LATE_MS means the loop did not run meanwhile. */
const BEAT_MS = 250;
const LATE_MS = 1000;

export class LoopClock {
  private lastBeat: number;
  private floor: number | null = null;

  constructor(now: number) {
    this.lastBeat = now;
  }

  /** The timer's callback. */
  beat(now: number): void {
    if (now - this.lastBeat > LATE_MS) {
      const since = this.lastBeat;
      this.floor = since;
      setImmediate(() => {
        if (this.floor === since) this.floor = null;
      });
    }
    this.lastBeat = now;
  }

  /**
   * A command parsed at `now` (performance.now()) arrived no earlier than this: `now` while
   * the loop runs on time, the last beat before a stall when it has not caught up yet.
   * Errs early by at most LATE_MS for stalls shorter than that.
   */
  arrivalTime(now: number): number {
    if (now - this.lastBeat > LATE_MS) return this.lastBeat;
    return this.floor ?? now;
  }
}

export const loopClock = new LoopClock(performance.now());
let timer: NodeJS.Timeout | undefined;

/** Start the heartbeat (once per process; it never keeps the process alive). */
export function startLoopClock(): void {
  if (timer) return;
  loopClock.beat(performance.now());
  timer = setInterval(() => loopClock.beat(performance.now()), BEAT_MS);
  timer.unref();
}
// With the transport, which is what reads commands (command-flow.ts imports this).
startLoopClock();
