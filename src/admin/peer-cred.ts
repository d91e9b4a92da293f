// Who is at the other end of a unix socket: getsockopt(SO_PEERCRED), through the koffi FFI
// (Node has no binding). The kernel fills it in at connect time, so neither side can lie
// about it. Both ends of the control socket use it: the daemon answers only root and its
// own user, and the CLI sends a config (secrets included) only to a daemon it trusts.
import type { Socket } from 'node:net';

export interface PeerCred {
  pid: number;
  uid: number;
  gid: number;
}

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;

type GetSockOpt = (fd: number, level: number, name: number, val: Buffer, len: number[]) => number;
let getsockopt: GetSockOpt | null | undefined;

function load(): GetSockOpt | null {
  if (process.platform !== 'linux') return null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require('koffi') as typeof import('koffi');
    const libc = koffi.load('libc.so.6');
    return libc.func('int getsockopt(int fd, int level, int name, _Out_ uint8_t *val, _Inout_ uint32_t *len)') as GetSockOpt;
  } catch {
    return null;
  }
}

/** The peer's pid, uid and gid, or null when they cannot be read (no FFI, no descriptor). */
export function peerCred(sock: Socket): PeerCred | null {
  if (getsockopt === undefined) getsockopt = load();
  const fd = (sock as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (getsockopt === null || typeof fd !== 'number' || fd < 0) return null;
  const buf = Buffer.alloc(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
  const len = [buf.length];
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, buf, len) !== 0 || len[0] !== 12) return null;
  return { pid: buf.readInt32LE(0), uid: buf.readUInt32LE(4), gid: buf.readUInt32LE(8) };
}

/** Our own uid (0 where there is none). */
export function myUid(): number {
  return typeof process.getuid === 'function' ? process.getuid() : 0;
}
