// Is the initiator alive, and is it moving? Once a session is logged in, a clock ticks
// (at most once a second) and checks two things:
//
//   NOP-In pings (limits.nopInterval, nopTimeout): after nopInterval without a word from
//     the initiator, a ping; one unanswered past nopTimeout drops the peer if we wait on
//     it (or with dropIdlePeers). Synchronous initiators (libiscsi's tools) read their
//     socket only while they wait for a command, so an idle one that does not answer is
//     not dead; TCP keepalive catches the idle dead ones.
//   stalls (limits.stallTimeout): a peer that owes Data-Out, or leaves READ data unread,
//     with no progress for that long is closed: the write and read budgets it holds meanwhile
//     are every host's, whatever else it keeps sending (NOP-Outs do not count).

import type { Logger } from 'pino';
import type { LimitsConfig } from '../config/model';

/** What the clock reads from, and does to, the connection. */
export interface LivenessProbe {
  readonly log: Logger;
  /** When the peer was last heard from (Date.now()). */
  lastHeard(): number;
  /** Do we wait on the peer (Data-Out owed, or READ data it has not read)? */
  waitingOnPeer(): boolean;
  /** A counter that moves whenever the peer does (Data-Out accepted, read data written). */
  progress(): number;
  /** Output queued in the socket, not yet written. */
  queuedBytes(): number;
  /** Send a NOP-In ping with this Target Transfer Tag. */
  ping(ttt: number): void;
  allocTtt(): number;
  /** Close the connection now. */
  drop(): void;
}

export class Liveness {
  private timer?: NodeJS.Timeout;
  private pingTtt = 0;
  private pingSentAt = 0;
  private stallMark = 0;
  private stallSince = 0;
  private stallQueued = 0;

  constructor(
    private readonly probe: LivenessProbe,
    private readonly timeouts: { nopIntervalMs: number; nopTimeoutMs: number },
    private readonly bounds: Pick<LimitsConfig, 'stallTimeoutMs' | 'dropIdlePeers'>,
  ) {}

  start(): void {
    const { nopIntervalMs, nopTimeoutMs } = this.timeouts;
    const stallMs = this.bounds.stallTimeoutMs;
    this.stallSince = Date.now();
    const tick = Math.min(nopIntervalMs > 0 ? nopIntervalMs : 1000, nopTimeoutMs, Math.max(50, stallMs / 4), 1000);
    this.timer = setInterval(() => this.tick(Date.now()), tick);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
  }

  /** A NOP-Out answering a ping (ITT ffffffffh) carries its TTT. */
  answered(ttt: number): void {
    if (ttt === this.pingTtt) this.pingTtt = 0;
  }

  private tick(now: number): void {
    const stallMs = this.bounds.stallTimeoutMs;
    if (this.stalled(now, stallMs)) {
      this.probe.log.warn(
        { seconds: stallMs / 1000 },
        'initiator stalled: it owes Data-Out or leaves its READ data unread, with no progress; closing',
      );
      this.probe.drop();
      return;
    }
    if (this.timeouts.nopIntervalMs > 0) this.ping(now);
  }

  private ping(now: number): void {
    const { nopIntervalMs, nopTimeoutMs } = this.timeouts;
    const lastHeard = this.probe.lastHeard();
    if (this.pingTtt !== 0 && now - this.pingSentAt > nopTimeoutMs && now - lastHeard > nopTimeoutMs) {
      if (this.bounds.dropIdlePeers || this.probe.waitingOnPeer()) {
        this.probe.log.warn('initiator did not answer NOP-In ping; closing');
        this.probe.drop();
        return;
      }
      this.pingTtt = 0;
    }
    if (this.pingTtt === 0 && now - lastHeard >= nopIntervalMs) {
      this.pingTtt = this.probe.allocTtt();
      this.pingSentAt = now;
      this.probe.ping(this.pingTtt);
    }
  }

  /** Owed something, with no progress, for `ms`? */
  private stalled(now: number, ms: number): boolean {
    // Queued output that shrank since the last look is a reading peer too (a slow link
    // may take longer than one batch per tick).
    const queued = this.probe.queuedBytes();
    const draining = queued < this.stallQueued;
    this.stallQueued = queued;
    const progress = this.probe.progress();
    if (draining || progress !== this.stallMark || !this.probe.waitingOnPeer()) {
      this.stallMark = progress;
      this.stallSince = now;
      return false;
    }
    return now - this.stallSince >= ms;
  }
}
