// One iSCSI connection (one per session: MaxConnections=1). Its phase is a union: login,
// then full feature, then closing. In the full-feature phase it orders non-immediate PDUs
// by CmdSN and handles NOP, Text, Task Management and Logout itself; SCSI commands and
// their data go to the session's CommandFlow (command-flow.ts), and bytes in and out go
// through the PduChannel (pdu-channel.ts).

import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { LIMIT_DEFAULTS, type LimitsConfig } from '../config/model';
import { decodeLun } from '../scsi/lun';
import { TmfFunction, TmfResponse } from '../scsi/task-management';
import { CommandFlow } from './command-flow';
import { Liveness } from './liveness';
import { LoginPhase, loginLine, negotiatedParams } from './login';
import { logFlags } from '../log';
import { textKeys } from './trace';
import { negotiateKeys } from './negotiation';
import { PduChannel, type Sent } from './pdu-channel';
import type { PduError } from './pdu/parser';
import { Op, RESERVED_TAG, RejectReason } from './pdu/messages';
import type { InitiatorPdu, LoginRequest, LogoutRequest, NopOut, Pdu, TargetPdu, TaskMgmtRequest, TextRequest } from './pdu/messages';
import type { Command, Session } from './session';
import { TextExchange } from './text-exchange';
import type { ConnectionHost } from './connection-host';

/** Where a connection is in its life. */
type Phase =
  | { readonly kind: 'login'; readonly login: LoginPhase }
  | { readonly kind: 'full'; readonly session: Session; readonly flow: CommandFlow; readonly text: TextExchange }
  /** Ending (failed login, logout, a fatal protocol error): PDUs are ignored; commands still running retire. */
  | { readonly kind: 'closing'; readonly session?: Session; readonly flow?: CommandFlow };

type FullFeature = Extract<Phase, { kind: 'full' }>;

const EMPTY = Buffer.alloc(0);

export class Connection {
  log: Logger;
  private phase: Phase;
  private readonly channel: PduChannel;
  private statSN = 0;
  private nextTtt = 1;
  /** Non-immediate PDUs that arrived ahead of a CmdSN gap. */
  private readonly pending = new Map<number, { pdu: InitiatorPdu; bhs: Buffer }>();
  private loginTimer?: NodeJS.Timeout;
  private liveness?: Liveness;
  private readonly bounds: LimitsConfig;
  private loggingOut = false;
  private logoutRequested = false;
  private badPdus = 0;

  /** The connection's socket (the accepted one, taken over by the channel). */
  readonly socket: Socket;

  /** `raw`: the accepted socket, with pauseOnConnect. */
  constructor(
    raw: Socket,
    private readonly host: ConnectionHost,
    readonly id: number,
    /** Target Portal Group Tag of the portal it was accepted on (its own target port). */
    readonly tpgt: number,
  ) {
    this.bounds = host.bounds ?? LIMIT_DEFAULTS;
    this.log = host.logger.child({ conn: id, peer: `${raw.remoteAddress}:${raw.remotePort}` });
    this.phase = { kind: 'login', login: new LoginPhase(host, () => host.allocateTsih(), tpgt) };
    this.channel = new PduChannel(
      raw,
      {
        pdu: (pdu, bhs) => this.onPdu(pdu, bhs),
        parseError: (err) => this.onParseError(err),
        dataSink: (bhs, len) =>
          this.phase.kind === 'full' && (bhs[0] & 0x3f) === Op.DataOut ? this.phase.flow.dataOutSink(bhs, len) : null,
        idle: () => this.phase.kind === 'full' && this.phase.session.tasks.size === 0,
        polled: () => {
          if (this.phase.kind === 'full') this.phase.session.counters.polledReads++;
        },
        direct: (bytes) => {
          if (this.phase.kind === 'full') this.phase.session.counters.directBytes += bytes;
        },
        closed: () => this.onClose(),
        fault: this.fault,
      },
      this.bounds.busyPollUs,
      () => this.log,
    );
    this.socket = this.channel.socket;
    this.loginTimer = setTimeout(() => {
      this.log.warn('login not completed in time; closing');
      this.destroy();
    }, host.timeouts.loginMs);
    this.loginTimer.unref();
    this.log.debug('connection accepted');
  }

  get remote(): string {
    return this.channel.remote;
  }

  /** Settles when the socket has closed. */
  get closedP(): Promise<void> {
    return this.channel.closedP;
  }

  /** The session, once logged in. */
  get session(): Session | undefined {
    return this.phase.kind === 'login' ? undefined : this.phase.session;
  }

  /** Data and commands this connection holds now (for tests and metrics). */
  get usage(): { bytes: number; commands: number; immediate: number; pendingPdus: number; parserBytes: number } {
    const flow = this.phase.kind === 'login' ? undefined : this.phase.flow;
    const u = flow?.usage ?? { bytes: 0, commands: 0, immediate: 0 };
    return { ...u, pendingPdus: this.pending.size, parserBytes: this.channel.parserBytes };
  }

  /** Mark a command of this session aborted: it gets no response; resolves once it has stopped running. */
  abort(cmd: Command): Promise<void> {
    const flow = this.phase.kind === 'login' ? undefined : this.phase.flow;
    return flow ? flow.abort(cmd) : Promise.resolve();
  }

  // ---------------------------------------------------------------- output

  private send(pdu: TargetPdu, evenIfClosing = false): boolean {
    return this.channel.send(pdu, evenIfClosing);
  }

  private takeStatSN(): number {
    const sn = this.statSN;
    this.statSN = (this.statSN + 1) >>> 0;
    return sn;
  }

  private get expCmdSN(): number {
    return this.session?.expCmdSN ?? 0;
  }

  private get maxCmdSN(): number {
    return this.session?.maxCmdSN ?? 0;
  }

  private allocTtt(): number {
    const t = this.nextTtt;
    this.nextTtt = this.nextTtt >= 0x7fffffff ? 1 : this.nextTtt + 1;
    return t;
  }

  reject(bhs: Buffer, reason: number): void {
    this.send({
      op: Op.Reject,
      reason,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      dataSN: 0,
      data: Buffer.from(bhs.subarray(0, 48)),
    });
  }

  /** End the connection: no more PDUs are taken; commands still running retire as they finish. */
  private toClosing(): void {
    const p = this.phase;
    this.phase = p.kind === 'full' ? { kind: 'closing', session: p.session, flow: p.flow } : p.kind === 'closing' ? p : { kind: 'closing' };
    this.channel.closing = true;
  }

  /**
   * Shutdown: ask the initiator to log out within `seconds` (Async Message, AsyncEvent 1,
   * RFC 7143 §11.9.1). A connection still in login, or a Discovery session, just closes.
   * Resolves when the connection is gone.
   */
  requestLogout(seconds: number): Promise<void> {
    if (this.phase.kind !== 'full' || this.phase.session.type === 'Discovery') {
      this.destroy();
      return this.closedP;
    }
    if (!this.logoutRequested && !this.loggingOut) {
      this.logoutRequested = true;
      this.log.info({ seconds }, 'asking the initiator to log out (target shutting down)');
      this.sendAsync(1, 0, 0, Math.min(0xffff, Math.max(0, Math.ceil(seconds))));
    }
    return this.closedP;
  }

  /** The initiator did not log out in time: say the connection is dropped (AsyncEvent 2), then close. */
  dropAfterLogoutRequest(): void {
    if (this.phase.kind === 'full' && this.logoutRequested) {
      const { cid, params } = this.phase.session;
      this.sendAsync(2, cid, params.defaultTime2Wait, params.defaultTime2Retain);
    }
    this.channel.endSocket();
    setTimeout(() => this.destroy(), 200).unref();
  }

  private sendAsync(event: number, p1: number, p2: number, p3: number): void {
    this.send({
      op: Op.AsyncMessage,
      lun: 0n,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      asyncEvent: event,
      asyncVCode: 0,
      parameter1: p1,
      parameter2: p2,
      parameter3: p3,
      data: EMPTY,
    });
  }

  /** Reject a PDU, then close once the Reject is written (bounded by a second). */
  private rejectAndClose(bhs: Buffer, reason: number): void {
    this.reject(bhs, reason);
    this.toClosing();
    this.channel.endSocket();
    setTimeout(() => this.destroy(), 1000).unref();
  }

  /** Close the connection now (no logout). */
  destroy(): void {
    this.channel.destroy();
  }

  /**
   * The fault boundary: handling this peer's input threw (a bug, or a state nobody foresaw).
   * Only this connection closes, with the error and its stack logged and counted; every
   * other session carries on. The channel's reads, the async handlers and the command
   * flow's deferred work all end here.
   */
  private readonly fault = (err: unknown): void => {
    this.host.connectionFault?.(this, err);
    this.log.error({ err }, `internal error handling this peer: ${(err as Error)?.message ?? String(err)}; closing its connection only`);
    this.toClosing();
    this.destroy();
  };

  // ---------------------------------------------------------------- input

  private onParseError(err: PduError): void {
    // A peer repeating bad PDUs on one connection must not flood the log.
    if (++this.badPdus <= 10) this.log.warn({ kind: err.kind, fatal: err.fatal }, `bad PDU: ${err.message}`);
    else if (this.badPdus === 11) this.log.warn('more bad PDUs from this peer; not logging each one');
    const loggedIn = this.phase.kind === 'full';
    if (err.kind === 'data-too-long' && loggedIn && err.bhs) {
      // More data than our MaxRecvDataSegmentLength: a protocol error (RFC 7143 §11.17.1,
      // as LIO answers it). Its data is never buffered, so the stream cannot be resynced:
      // say why, then close.
      this.rejectAndClose(err.bhs, RejectReason.ProtocolError);
      return;
    }
    if (err.fatal || !loggedIn) {
      this.destroy();
      return;
    }
    if (err.bhs) {
      this.reject(err.bhs, err.kind === 'data-digest' ? RejectReason.DataDigestError : RejectReason.CommandNotSupported);
    }
  }

  private onPdu(pdu: Pdu, bhs: Buffer): void {
    const phase = this.phase;
    if (phase.kind === 'closing') return;
    if (bhs[4] !== 0 && pdu.op !== Op.ScsiCommand) {
      // Only a SCSI Command carries AHS (RFC 7143 §11.2.1.2): anything else is garbage framing.
      this.log.warn({ op: pdu.op, totalAhsLength: bhs[4] }, 'AHS on a PDU that carries none; closing');
      this.destroy();
      return;
    }
    if (phase.kind === 'login') {
      if (pdu.op !== Op.LoginRequest) {
        // Anything but a Login Request before login completes is a protocol error:
        // RFC 7143 §6.3 has the target drop the connection.
        this.log.warn({ op: pdu.op }, 'non-login PDU during login; closing');
        this.destroy();
        return;
      }
      this.onLogin(phase.login, pdu);
      return;
    }
    switch (pdu.op) {
      case Op.DataOut:
        phase.flow.onDataOut(pdu, bhs);
        return;
      case Op.NopOut:
      case Op.ScsiCommand:
      case Op.TaskMgmtRequest:
      case Op.TextRequest:
      case Op.LogoutRequest:
        break;
      default:
        // SNACK needs ERL 1 (RFC 7143 §11.16); a Login Request has no place here; the
        // rest are the target's own opcodes.
        this.reject(bhs, RejectReason.ProtocolError);
        return;
    }
    // Immediate PDUs, and a NOP-Out answering our ping (it carries no CmdSN of its own),
    // are not ordered.
    if (pdu.immediate || (pdu.op === Op.NopOut && pdu.itt === RESERVED_TAG)) {
      this.dispatch(phase, pdu, bhs);
      return;
    }
    const session = phase.session;
    switch (session.classify(pdu.cmdSN)) {
      case 'now':
        session.expCmdSN = (session.expCmdSN + 1) >>> 0;
        this.dispatch(phase, pdu, bhs);
        this.drainPending(phase);
        return;
      case 'later':
        this.pending.set(pdu.cmdSN, { pdu, bhs: Buffer.from(bhs) });
        return;
      case 'outside':
        // RFC 7143 §3.2.2.1: silently ignore commands outside the window.
        this.log.debug({ cmdSN: pdu.cmdSN, exp: session.expCmdSN, max: session.maxCmdSN }, 'CmdSN outside window');
        return;
    }
  }

  private drainPending(phase: FullFeature): void {
    const session = phase.session;
    while (this.pending.size > 0 && this.phase === phase) {
      const next = this.pending.get(session.expCmdSN);
      if (!next) return;
      this.pending.delete(session.expCmdSN);
      session.expCmdSN = (session.expCmdSN + 1) >>> 0;
      this.dispatch(phase, next.pdu, next.bhs);
    }
  }

  private dispatch(phase: FullFeature, pdu: InitiatorPdu, bhs: Buffer): void {
    switch (pdu.op) {
      case Op.ScsiCommand:
        if (phase.session.type === 'Discovery') this.reject(bhs, RejectReason.ProtocolError);
        else phase.flow.onCommand(pdu, bhs);
        return;
      case Op.NopOut:
        this.onNopOut(pdu);
        return;
      case Op.TaskMgmtRequest:
        this.onTaskMgmt(phase.session, pdu).catch(this.fault);
        return;
      case Op.TextRequest:
        this.onText(phase, pdu, bhs);
        return;
      case Op.LogoutRequest:
        this.onLogout(phase, pdu, bhs).catch(this.fault);
        return;
      default:
        this.reject(bhs, RejectReason.ProtocolError);
    }
  }

  // ---------------------------------------------------------------- login

  private onLogin(login: LoginPhase, req: LoginRequest): void {
    const step = login.handle(req);
    if (logFlags.debug) {
      const answered = step.responses[step.responses.length - 1]?.data ?? EMPTY;
      this.log.debug(
        { stage: `${req.csg}->${req.nsg}`, transit: req.transit, offered: textKeys(req.data), answered: textKeys(answered) },
        'login negotiation',
      );
    }
    if (step.failed) {
      const f = step.failed;
      this.toClosing();
      // Repeated failures from one address are answered ever more slowly.
      const delayMs = this.host.loginFailed(this.socket.remoteAddress ?? '');
      this.log.warn(
        { status: f.status.toString(16).padStart(4, '0'), initiator: f.initiatorName, target: f.targetName, delayMs },
        `login failed: ${f.reason}`,
      );
      const answer = () => {
        for (const res of step.responses) this.send(res, true);
        this.channel.endSocket();
      };
      if (delayMs > 0) setTimeout(answer, delayMs).unref();
      else answer();
      return;
    }
    for (const res of step.responses) this.send(res);
    if (!step.outcome) return;
    const o = step.outcome;
    clearTimeout(this.loginTimer);
    this.statSN = (o.statSN + 1) >>> 0;
    const p = o.params;
    this.channel.configure({
      headerDigest: p.headerDigest,
      dataDigest: p.dataDigest,
      maxRecvDataSegmentLength: p.maxRecvDataSegmentLength,
    });
    this.host.loginSucceeded(this.socket.remoteAddress ?? '');
    const session = this.host.openSession(o, this);
    this.log = this.log.child({ tsih: session.tsih });
    this.phase = {
      kind: 'full',
      session,
      flow: this.newFlow(session),
      text: new TextExchange(
        () => this.allocTtt(),
        (pairs) => this.textAnswers(session, pairs),
      ),
    };
    // The one info line of a login; its negotiated parameters at debug level.
    const line = loginLine(o, this.remote, session.luns.keys());
    this.log.info(line.fields, line.message);
    this.log.debug(negotiatedParams(o), 'negotiated');
    this.startLiveness(this.phase.flow);
  }

  private newFlow(session: Session): CommandFlow {
    const channel = this.channel;
    const host = this.host;
    return new CommandFlow(
      session,
      {
        log: this.log,
        send: (pdu) => channel.send(pdu),
        afterWrite: (sent: Sent, readBytes: number, copied: boolean) => channel.afterWrite(sent, readBytes, copied),
        cork: () => channel.cork(),
        uncork: () => channel.uncork(),
        reject: (bhs, reason) => this.reject(bhs, reason),
        takeStatSN: () => this.takeStatSN(),
        peekStatSN: () => this.statSN,
        allocTtt: () => this.allocTtt(),
        get gone() {
          return channel.closing || channel.socket.destroyed;
        },
        noteCommand: (queued) => channel.noteCommand(queued),
        fault: this.fault,
        commandDone: host.commandDone ? (cmd, status, bytes, sense) => host.commandDone!(session, cmd, status, bytes, sense) : undefined,
      },
      this.bounds,
    );
  }

  // ---------------------------------------------------------------- NOP and liveness

  /** The NOP-In pings and the stall check of a logged-in session (liveness.ts). */
  private startLiveness(flow: CommandFlow): void {
    const channel = this.channel;
    this.liveness = new Liveness(
      {
        log: this.log,
        lastHeard: () => channel.lastHeard,
        // READ data handed to the socket and not yet written holds its buffers and its room
        // in the read budget, in batches waiting for their write or still charged to the command.
        waitingOnPeer: () => channel.holdsUnwrittenData || flow.owesUs(channel.queuedBytes),
        progress: () => flow.progress + channel.written,
        queuedBytes: () => channel.queuedBytes,
        ping: (ttt) =>
          this.send({
            op: Op.NopIn,
            lun: 0n,
            itt: RESERVED_TAG,
            ttt,
            statSN: this.statSN, // not advanced (RFC 7143 §11.19)
            expCmdSN: this.expCmdSN,
            maxCmdSN: this.maxCmdSN,
            data: EMPTY,
          }),
        allocTtt: () => this.allocTtt(),
        drop: () => this.destroy(),
      },
      this.host.timeouts,
      this.bounds,
    );
    this.liveness.start();
  }

  private onNopOut(pdu: NopOut): void {
    if (pdu.itt === RESERVED_TAG) {
      if (pdu.ttt !== RESERVED_TAG) this.liveness?.answered(pdu.ttt);
      return;
    }
    this.send({
      op: Op.NopIn,
      lun: pdu.lun,
      itt: pdu.itt,
      ttt: RESERVED_TAG,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      data: pdu.data,
    });
  }

  // ---------------------------------------------------------------- task management

  private async onTaskMgmt(session: Session, pdu: TaskMgmtRequest): Promise<void> {
    const lun = decodeLun(pdu.lun);
    const response =
      session.type === 'Discovery' ? TmfResponse.NotSupported : await this.host.taskManagement(session, pdu.func, lun, pdu.refTaskTag);
    this.log.info({ func: pdu.func, lun, response }, 'task management');
    this.send({
      op: Op.TaskMgmtResponse,
      response,
      itt: pdu.itt,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      data: EMPTY,
    });
    if (pdu.func === TmfFunction.TargetColdReset && response === TmfResponse.Complete) {
      // A cold reset ends the issuing initiator's connections, this one once the response is out.
      this.channel.endSocket();
    }
  }

  // ---------------------------------------------------------------- text

  private onText(phase: FullFeature, pdu: TextRequest, bhs: Buffer): void {
    const a = phase.text.request(pdu, phase.session.params.maxSendDataSegmentLength);
    if ('reject' in a) {
      this.reject(bhs, a.reject);
      return;
    }
    this.send({
      op: Op.TextResponse,
      final: a.final,
      cont: a.cont,
      lun: pdu.lun,
      itt: pdu.itt,
      ttt: a.ttt,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      data: a.data,
    });
  }

  /** A complete Text Request's answer: SendTargets, then any keys renegotiated in full feature. */
  private textAnswers(session: Session, pairs: Array<[string, string]>): Array<[string, string]> {
    const answers: Array<[string, string]> = [];
    for (const [k, v] of pairs) {
      if (k === 'SendTargets') answers.push(...this.host.sendTargets(session.initiatorName, v, session, this.socket.localAddress ?? ''));
    }
    const others = pairs.filter(([k]) => k !== 'SendTargets');
    answers.push(...negotiateKeys(others, session.params, { sessionType: session.type, phase: 'full-feature', limits: this.host.limits }));
    return answers;
  }

  // ---------------------------------------------------------------- logout

  private async onLogout(phase: FullFeature, pdu: LogoutRequest, bhs: Buffer): Promise<void> {
    const session = phase.session;
    let response = 0;
    if (pdu.reason === 2)
      response = 2; // connection recovery is not supported (ERL < 2)
    else if (pdu.reason === 1 && pdu.cid !== session.cid)
      response = 1; // CID not found
    else if (pdu.reason > 2) {
      this.reject(bhs, RejectReason.InvalidPduField);
      return;
    }
    if (response === 0) {
      this.loggingOut = true;
      // Let running commands finish and answer before the session goes.
      await Promise.all(phase.flow.running());
      // The nexus ends before the initiator hears so: a RESERVE it held is gone by the
      // time its next session (or another initiator) sends a command.
      this.host.closeSession(session);
    }
    this.send({
      op: Op.LogoutResponse,
      response,
      itt: pdu.itt,
      statSN: this.takeStatSN(),
      expCmdSN: this.expCmdSN,
      maxCmdSN: this.maxCmdSN,
      time2Wait: 0,
      time2Retain: 0,
      data: EMPTY,
    });
    if (response === 0) {
      this.log.debug({ reason: pdu.reason === 0 ? 'close session' : 'close connection' }, 'logout request');
      this.toClosing();
      this.channel.endSocket();
    }
  }

  // ---------------------------------------------------------------- close

  private onClose(): void {
    clearTimeout(this.loginTimer);
    this.liveness?.stop();
    const p = this.phase;
    this.toClosing();
    const session = p.kind === 'login' ? undefined : p.session;
    if (p.kind !== 'login' && p.flow) p.flow.connectionLost();
    if (!session) {
      this.log.debug('connection closed');
      return;
    }
    this.host.closeSession(session);
    // The one info line of a logout (or of a session lost without one).
    const line = session.endLine(this.loggingOut);
    this.log.info(line.fields, line.message);
  }
}
