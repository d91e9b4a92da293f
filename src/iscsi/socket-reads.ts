// Reads from an accepted socket into memory we hand out, instead of Node's default of a
// fresh 64 KiB allocation (shrunk to size, wrapped in a new ArrayBuffer) and a stream
// 'data' event per read: at queue depth 1 every command costs one read.

import * as net from 'node:net';

/** Reads land in slabs of this size; a slab with less room than MIN_READ is left behind. */
const SLAB_BYTES = 64 * 1024;
const MIN_READ = 16 * 1024;

/**
 * Take over a socket accepted with `pauseOnConnect` (nothing read yet): returns a socket on
 * the same connection whose received bytes go to `onChunk` as views into slabs. Each view
 * covers bytes no later read overwrites (a slab is never reused), so the parser may keep
 * them; a slab is freed once no view into it is left.
 */
export function adoptAccepted(raw: net.Socket, onChunk: (chunk: Buffer) => void): net.Socket {
  const r = raw as unknown as { _handle: unknown };
  const handle = r._handle;
  // The accepted socket lets go of the connection (nothing was read or written through
  // it); the new one owns it from here, and its close closes the connection.
  r._handle = null;
  raw.destroy();
  let slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
  let used = 0;
  const socket = new net.Socket({
    handle,
    readable: true,
    writable: true,
    onread: {
      buffer: () => {
        if (slab.length - used < MIN_READ) {
          slab = Buffer.allocUnsafeSlow(SLAB_BYTES);
          used = 0;
        }
        return slab.subarray(used);
      },
      callback: (n: number) => {
        const chunk = slab.subarray(used, used + n);
        used += n;
        onChunk(chunk);
      },
    },
  } as net.SocketConstructorOpts);
  return socket;
}
