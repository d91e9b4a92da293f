// A bound on how old a write may be when it is handed to the store (RBD volumes).
//
// Why: a gateway whose event loop stalls (GC pause, swap, SIGSTOP, a VM frozen) with a write
// received but not yet handed to librbd keeps its RADOS session, so nothing fences it. The
// host meanwhile times the command out (Linux: 30 s, then abort and session drop; with
// multipath the I/O is re-issued on another gateway as soon as the path is failed, 10-15 s
// at the earliest with open-iscsi's noop 5 s/5 s and replacement_timeout 5 s). If the
// stalled gateway then handed the old write to librbd, librbd would take the exclusive lock
// back and the write would land over the newer data. So every write is checked right before
// the synchronous call that hands it to the store, with no await in between: past the bound
// it fails and nothing is written. The age counts from ScsiTask.receivedAt, dated back over a
// stall of the process by iscsi/loop-clock.ts (bytes read only after it waited in the kernel).
//
// The sense: ABORTED COMMAND, no additional sense code. SPC: the device server aborted the
// command and the application client may recover by trying it again; every host retries it
// (Linux: NEEDS_RETRY on the same path, then the path is failed and dm-multipath retries on
// another). Not 2E/02 (COMMAND TIMEOUT BEFORE PROCESSING): Linux fails that one without a
// retry, for command duration limits. By then the host has usually aborted the command
// anyway, and the answer goes nowhere; what matters is that nothing was written.
//
// Not covered here: a write already handed to librbd when the loop stalls is in librbd's
// threads, which the stall does not stop; it lands at once or, if the gateway's RADOS session
// is gone, never (librbd blocklists a lost lock holder before anyone else writes).
import { ASC, checkCondition, SenseKey } from './sense';
import type { ScsiTask } from './task';

export class WriteAgeLimit {
  /**
   * @param limitMs the bound (> 0), from when the command PDU was parsed (ScsiTask.receivedAt)
   * @param now monotonic milliseconds, the clock receivedAt was read from (tests pass a fake)
   */
  constructor(
    readonly limitMs: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Throws ABORTED COMMAND if `task` is older than the bound; call it just before the store call. */
  check(task: ScsiTask): void {
    const at = task.receivedAt;
    if (at !== undefined && this.now() - at > this.limitMs) {
      throw checkCondition(SenseKey.AbortedCommand, ASC.NO_ADDITIONAL_SENSE);
    }
  }
}
