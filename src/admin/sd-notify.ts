// sd_notify(3) without libsystemd: one datagram to the unix socket systemd names in
// $NOTIFY_SOCKET ("@name" is in the abstract namespace). Node has no unix datagram sockets,
// so socket/sendto/close go through the koffi FFI the backstores already use. Without
// $NOTIFY_SOCKET (not started by systemd with Type=notify) every call does nothing.
//
// What `serve` says: READY=1 once every portal listens and the control socket is up,
// RELOADING=1 then READY=1 around a SIGHUP reload, STOPPING=1 when it starts draining,
// and a STATUS= line each time.

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_NOSIGNAL = 0x4000;

type Sys = {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): number;
  close(fd: number): number;
};
let sys: Sys | null | undefined;

function load(): Sys | null {
  if (process.platform !== 'linux') return null;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require('koffi') as typeof import('koffi');
    const libc = koffi.load('libc.so.6');
    return {
      socket: libc.func('int socket(int domain, int type, int protocol)') as Sys['socket'],
      sendto: libc.func(
        'int64_t sendto(int fd, const uint8_t *buf, size_t len, int flags, const uint8_t *addr, uint32_t addrlen)',
      ) as Sys['sendto'],
      close: libc.func('int close(int fd)') as Sys['close'],
    };
  } catch {
    return null;
  }
}

/** struct sockaddr_un for `path` ("@..." abstract), and its length; undefined if it cannot be one. */
export function unixAddress(path: string): { addr: Buffer; len: number } | undefined {
  const abstract = path.startsWith('@');
  const name = Buffer.from(abstract ? path.slice(1) : path, 'utf8');
  if (name.length === 0 || name.length > 107 || (!abstract && !path.startsWith('/'))) return undefined;
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, abstract ? 3 : 2); // abstract: a NUL first, and no NUL at the end
  return { addr, len: 2 + (abstract ? 1 : 0) + name.length + (abstract ? 0 : 1) };
}

/** Send `state` ("READY=1\nSTATUS=...") to systemd. Returns whether it was sent. */
export function sdNotify(state: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const target = env.NOTIFY_SOCKET;
  if (!target) return false;
  const a = unixAddress(target);
  if (!a) return false;
  if (sys === undefined) sys = load();
  if (sys === null) return false;
  const fd = sys.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  try {
    const msg = Buffer.from(state, 'utf8');
    return Number(sys.sendto(fd, msg, msg.length, MSG_NOSIGNAL, a.addr, a.len)) === msg.length;
  } finally {
    sys.close(fd);
  }
}

/** CLOCK_MONOTONIC in µs, as RELOADING=1 wants it (process.hrtime is that clock on Linux). */
export function monotonicUsec(): string {
  return String(process.hrtime.bigint() / 1000n);
}
