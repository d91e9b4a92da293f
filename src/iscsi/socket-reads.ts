// Reads from an accepted socket into memory we choose, instead of Node's default (a fresh
// 64 KiB allocation per read and a stream 'data' event). Before each read the owner names
// the place: the rest of a Data-Out's data segment inside its command's buffer when the
// parser is in the middle of one (the kernel then copies the payload straight there, the
// only copy it ever gets), else room in a slab of the connection's own.
//
// Node asks for the next read's buffer as soon as a read has been delivered, and holds it
// until data comes: a slab is therefore the connection's alone (a shared one would be
// handed to two connections at once). Slabs are never reused, so the parser may keep views
// of what was read; a connection starts with a small one (idle and never-logged-in
// connections hold little) and moves to 64 KiB ones once it reads more.

import net from 'node:net';

const SMALL_SLAB = 4 * 1024;
const SLAB = 64 * 1024;
/** A slab with less room than this is left behind for a new one. */
const MIN_ROOM = 16 * 1024;

export interface ReadTarget {
  /** Where the next bytes should go, or null for slab room. */
  direct(): Buffer | null;
  /** `chunk` was read (a view of the buffer handed out); `direct`: into the place direct() named. */
  read(chunk: Buffer, direct: boolean): void;
}

/**
 * Take over a socket accepted with `pauseOnConnect` (nothing read yet): returns a socket on
 * the same connection whose received bytes go to `target`.
 */
export function adoptAccepted(raw: net.Socket, target: ReadTarget): net.Socket {
  const r = raw as unknown as { _handle: unknown };
  const handle = r._handle;
  // The accepted socket lets go of the connection (nothing was read or written through
  // it); the new one owns it from here, and its close closes the connection.
  r._handle = null;
  raw.destroy();
  let slab = Buffer.allocUnsafeSlow(SMALL_SLAB);
  let used = 0;
  let reads = 0;
  let last: Buffer = slab;
  let fromSlab = true;
  return new net.Socket({
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: (): Buffer => {
        const d = target.direct();
        if (d !== null) {
          fromSlab = false;
          last = d;
          return d;
        }
        if (slab.length - used < MIN_ROOM) {
          slab = Buffer.allocUnsafeSlow(reads > 4 ? SLAB : SMALL_SLAB);
          used = 0;
        }
        fromSlab = true;
        last = slab.subarray(used);
        return last;
      },
      callback: (n: number): void => {
        reads++;
        const chunk = last.subarray(0, n);
        if (fromSlab) used += n;
        target.read(chunk, !fromSlab);
      },
    },
  } as net.SocketConstructorOpts);
}
