// Busy polling: after a connection's commands are all answered, read its socket for a
// little while longer (limits.busyPoll, 50 µs by default) instead of going straight back
// to the event loop, where the process sleeps in epoll until the next command wakes it.
//
// At queue depth 1 that sleep and wake-up is most of a command's cost: on this 2-core VM
// a wake-up (an inter-processor interrupt and a context switch, through the hypervisor)
// costs more than all our JavaScript for the command. An initiator that issues its next
// command as soon as it has the answer usually does so within tens of microseconds, so
// the poll finds it and the process never sleeps: measured with iscsi-perf at QD1,
// 20.1K IOPS with polling against 10.7K without, and less CPU per command (50 against
// 58 µs), since the spin replaces the sleep/wake work.
//
// It only runs where it can pay off, and never for long:
//   - only right after commands that were answered at once (inline I/O on tmpfs, memory
//     volumes and page-cache reads; see file.ts), with nothing of the connection
//     outstanding (no command running, nothing queued in the socket): it never delays an
//     answer, and it does not spin while a disk works (measured: no gain for QD1 writes
//     that go through the thread pool);
//   - only for initiators that send one command at a time: one that keeps a queue (two
//     commands in one read, or one arriving while another runs) is left to the event
//     loop for a while, whose reads then pick up many commands at once, answered in one
//     write (polling would take them one by one: measured 12 % fewer IOPS at QD32);
//   - only while this connection is the only one receiving (with several busy
//     connections, the next command is likelier on another one: epoll finds it);
//   - a connection whose initiator missed the window several times in a row stops being
//     polled for a while (idle hosts, slow or deep-queued initiators cost nothing);
//   - a run of polled commands goes back to the event loop after MAX_ROUNDS, so timers
//     and other connections are served.
//
// The bytes are read with recv(MSG_DONTWAIT) on the socket's descriptor (through koffi),
// into slabs that are never reused, so the parser may keep views of what it read.
// libuv never sees them: it reads only when the socket is readable again, and everything
// we took is gone from the socket by then, in order.

/** recv(fd, buf, len, MSG_DONTWAIT): bytes read, 0 at EOF, -1 when nothing is there or on error. */
export type RecvNow = (fd: number, buf: Buffer, len: number) => number;

let recvFn: RecvNow | null | undefined;

/** The non-blocking recv, or null where koffi or libc cannot be loaded (no polling then). */
export function recvNow(): RecvNow | null {
  if (recvFn !== undefined) return recvFn;
  recvFn = null;
  if (process.platform !== 'linux') return null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require('koffi') as typeof import('koffi');
    const recv = koffi.load('libc.so.6').func('int64_t recv(int fd, void *buf, size_t len, int flags)');
    const MSG_DONTWAIT = 0x40;
    recvFn = (fd, buf, len) => Number(recv(fd, buf, len, MSG_DONTWAIT));
  } catch {
    recvFn = null;
  }
  return recvFn;
}

/** Polled commands handled before going back to the event loop. */
export const MAX_ROUNDS = 32;
/** Windows missed in a row after which a connection is left alone for a while ... */
export const MAX_MISSES = 4;
/** ... namely for this many received chunks. */
export const SKIP_CHUNKS = 256;
/** Another connection received within this many milliseconds: do not poll. */
export const ALONE_MS = 1;

const SLAB_BYTES = 64 * 1024;
const MIN_READ = 16 * 1024;
let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
let used = 0;

/** Room to read into: the rest of the current slab (a fresh one when it is nearly full). */
export function pollRoom(): Buffer {
  if (slab.length - used < MIN_READ) {
    slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
    used = 0;
  }
  return slab.subarray(used);
}

/** The `n` bytes just read into pollRoom(), as a chunk no later read overwrites. */
export function pollTaken(n: number): Buffer {
  const chunk = slab.subarray(used, used + n);
  used += n;
  return chunk;
}

/** Which connection received last, and since when others have not: see ALONE_MS. */
let lastReceiver: unknown = null;
let aloneSince = 0;

/** Note that `who` received bytes at `now` (performance.now()). */
export function noteReceive(who: unknown, now: number): void {
  if (who !== lastReceiver) {
    lastReceiver = who;
    aloneSince = now;
  }
}

/** `who` has been the only connection receiving for ALONE_MS. */
export function receivingAlone(who: unknown, now: number): boolean {
  return who === lastReceiver && now - aloneSince >= ALONE_MS;
}
