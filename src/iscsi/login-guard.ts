// What stands between a TCP connection and a session: a budget for connections still in
// login, apart from logged-in sessions, and answers that slow down after repeated failed
// logins from one address.

import net from 'node:net';
import type { Logger } from 'pino';
import type { LimitsConfig } from '../config/model';

/** What the budget needs of a connection. */
interface Closable {
  readonly remote: string;
  destroy(): void;
}

/**
 * Connections that have not finished login have their own budget, apart from logged-in
 * sessions (bounded by maxSessions): limits.maxLoginConnections at once, and
 * limits.maxLoginConnectionsPerAddress from one address. A newcomer over either closes the
 * oldest such connection (of its own address, for the second), never a logged-in session:
 * idle sockets held open cannot keep hosts from logging in, only delay themselves.
 */
export class LoginBudget<C extends Closable> {
  /** Connections still in login, oldest first (a Map keeps insertion order), with their address. */
  private readonly inLogin = new Map<C, string>();
  private readonly byAddress = new Map<string, Set<C>>();
  /** Connections in login closed to make room (for metrics and status). */
  evictions = 0;
  private lastEvictionLog = 0;

  constructor(
    private readonly bounds: Pick<LimitsConfig, 'maxLoginConnections' | 'maxLoginConnectionsPerAddress'>,
    private readonly logger: Logger,
  ) {}

  /** Connections that have not finished login. */
  get size(): number {
    return this.inLogin.size;
  }

  /** A new connection from `remoteAddress`: room is made for it first. */
  enter(conn: C, remoteAddress: string | undefined): void {
    const addr = addressKey(remoteAddress);
    const mine = this.byAddress.get(addr);
    if (mine && mine.size >= this.bounds.maxLoginConnectionsPerAddress) this.evict(mine.values().next().value!, 'address');
    if (this.inLogin.size >= this.bounds.maxLoginConnections) this.evict(this.inLogin.keys().next().value!, 'total');
    this.inLogin.set(conn, addr);
    let set = this.byAddress.get(addr);
    if (!set) this.byAddress.set(addr, (set = new Set()));
    set.add(conn);
  }

  /** The connection finished login (or closed): it no longer counts. */
  leave(conn: C): void {
    const addr = this.inLogin.get(conn);
    if (addr === undefined) return;
    this.inLogin.delete(conn);
    const mine = this.byAddress.get(addr);
    mine?.delete(conn);
    if (mine?.size === 0) this.byAddress.delete(addr);
  }

  private evict(conn: C, budget: 'address' | 'total'): void {
    this.leave(conn);
    this.evictions++;
    conn.destroy();
    const now = Date.now();
    if (now - this.lastEvictionLog >= 1000) {
      // At most once a second: a flood must not flood the log.
      this.lastEvictionLog = now;
      this.logger.warn(
        {
          peer: conn.remote,
          budget,
          maxLoginConnections: this.bounds.maxLoginConnections,
          perAddress: this.bounds.maxLoginConnectionsPerAddress,
          evicted: this.evictions,
        },
        'closed the oldest connection still in login to make room for a new one',
      );
    }
  }
}

/** Failed logins per address, to answer repeated ones ever more slowly. */
export class LoginFailures {
  private readonly recent = new Map<string, { count: number; last: number }>();

  /** Count a failure from `address`; returns how long to hold its answer back (ms). */
  failed(address: string): number {
    const now = Date.now();
    const prev = this.recent.get(address);
    // Failures older than a minute are forgiven.
    const count = prev && now - prev.last < 60000 ? prev.count + 1 : 1;
    this.recent.set(address, { count, last: now });
    if (this.recent.size > 10000) {
      for (const [a, f] of this.recent) if (now - f.last >= 60000) this.recent.delete(a);
      // Many addresses failing at once (IPv6 makes that cheap): forget the oldest, stay bounded.
      for (const a of this.recent.keys()) {
        if (this.recent.size <= 10000) break;
        this.recent.delete(a);
      }
    }
    // The first few are answered at once (typos happen); then 0.5 s, 1 s, 2 s ... up to 5 s.
    return count <= 5 ? 0 : Math.min(5000, 500 * 2 ** (count - 6));
  }

  succeeded(address: string): void {
    this.recent.delete(address);
  }
}

/**
 * What the per-address login budget counts by: the IPv4 address (also when mapped into
 * IPv6), or the /64 of an IPv6 address, since one host can use a whole /64.
 */
export function addressKey(addr: string | undefined): string {
  if (!addr) return '';
  if (addr.startsWith('::ffff:') && net.isIPv4(addr.slice(7))) return addr.slice(7);
  if (!net.isIPv6(addr)) return addr;
  const [head, tail] = addr.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return `${groups
    .slice(0, 4)
    .map((g) => parseInt(g, 16).toString(16))
    .join(':')}::/64`;
}
