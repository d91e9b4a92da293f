// The systemd side of sd_notify for tests: a unix datagram socket (Node has none, so koffi)
// bound at a path or an abstract "@name", collecting what the daemon sends.
import { unixAddress } from '../../src/admin/sd-notify';

type Sys = {
  socket(d: number, t: number, p: number): number;
  bind(fd: number, addr: Buffer, len: number): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
  close(fd: number): number;
};

function sys(): Sys {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const koffi = require('koffi') as typeof import('koffi');
  const libc = koffi.load('libc.so.6');
  return {
    socket: libc.func('int socket(int, int, int)') as Sys['socket'],
    bind: libc.func('int bind(int fd, const uint8_t *addr, uint32_t len)') as Sys['bind'],
    recv: libc.func('int64_t recv(int fd, _Out_ uint8_t *buf, size_t len, int flags)') as Sys['recv'],
    close: libc.func('int close(int)') as Sys['close'],
  };
}

export class NotifySocket {
  readonly messages: string[] = [];
  private readonly s = sys();
  private readonly fd: number;

  constructor(readonly path: string) {
    const a = unixAddress(path)!;
    this.fd = this.s.socket(1, 2 | 0o4000 /* SOCK_NONBLOCK */, 0);
    if (this.fd < 0 || this.s.bind(this.fd, a.addr, a.len) !== 0) throw new Error(`cannot bind ${path}`);
  }

  /** Take what arrived. */
  poll(): string[] {
    const buf = Buffer.alloc(4096);
    for (;;) {
      const n = Number(this.s.recv(this.fd, buf, buf.length, 0x40 /* MSG_DONTWAIT */));
      if (n <= 0) break;
      this.messages.push(buf.subarray(0, n).toString('utf8'));
    }
    return this.messages;
  }

  /** Wait until a message has the line `line` (searching from message `from`); its index, or -1. */
  async waitFor(line: string, ms = 10000, from = 0): Promise<number> {
    const end = Date.now() + ms;
    for (;;) {
      const i = this.poll().findIndex((m, k) => k >= from && m.split('\n').includes(line));
      if (i >= 0 || Date.now() > end) return i;
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  close(): void {
    this.s.close(this.fd);
  }
}
