// A small iSCSI initiator: login (Normal or Discovery), SendTargets, SCSI
// commands with immediate/unsolicited/solicited Data-Out and Data-In assembly,
// NOP, task management and logout. Used by tests, benchmarks and `probe`.

import net from 'node:net';
import { randomBytes } from 'node:crypto';
import {
  Op,
  RESERVED_TAG,
  TaskAttr,
  type InitiatorPdu,
  type LoginResponse,
  type Pdu,
  type ScsiResponse,
  type TargetPdu,
} from '../iscsi/pdu/messages';
import { encodePdu } from '../iscsi/pdu/serializer';
import { PduParser } from '../iscsi/pdu/parser';
import { encodeTextKeys, parseTextKeys } from '../iscsi/pdu/text';
import { encodeLun } from '../scsi/lun';
import { CHAP_ALGORITHMS, chapResponse, decodeBinary, encodeHex } from '../iscsi/chap';

export interface InitiatorOptions {
  host: string;
  port?: number;
  initiatorName?: string;
  /** Omit for a Discovery session. */
  targetName?: string;
  headerDigest?: boolean;
  dataDigest?: boolean;
  /** 6 bytes; random when omitted. */
  isid?: Buffer;
  maxRecvDataSegmentLength?: number;
  /** Extra or overriding login keys, sent in the operational stage. */
  loginKeys?: Array<[string, string]>;
  timeoutMs?: number;
  /** CHAP credentials to answer the target's challenge with. */
  chap?: { user: string; secret: string };
  /** Mutual CHAP: the target's expected name and secret; the initiator challenges it. */
  mutual?: { user: string; secret: string };
  /** CHAP_A list to offer (default "7,5": SHA-256 then MD5). */
  chapAlgorithms?: string;
  /** Log out when the target asks to (Async Message, AsyncEvent 1). Default true. */
  honorLogoutRequest?: boolean;
}

export class LoginError extends Error {
  constructor(
    readonly statusClass: number,
    readonly statusDetail: number,
  ) {
    super(`login failed: status 0x${((statusClass << 8) | statusDetail).toString(16).padStart(4, '0')}`);
  }
}

export interface CommandResult {
  status: number;
  sense?: Buffer;
  data: Buffer;
  residual: number;
  overflow: boolean;
  underflow: boolean;
  /** Data-In PDUs received for this command. */
  dataInPdus: number;
  /** Whether status came in the last Data-In (S bit). */
  statusInDataIn: boolean;
}

interface Pending {
  resolve(r: unknown): void;
  reject(e: Error): void;
  kind: 'scsi' | 'nop' | 'tmf' | 'text' | 'logout';
  chunks?: Buffer[];
  received?: number;
  dataOut?: Buffer;
  lun?: bigint;
  dataInPdus?: number;
  text?: Buffer[];
}

export interface Negotiated {
  [key: string]: string;
}

export class Initiator {
  private socket!: net.Socket;
  private parser!: PduParser;
  private itt = 1;
  private cmdSN = 0;
  private expStatSN = 0;
  maxCmdSN = 0;
  expCmdSN = 0;
  tsih = 0;
  /** ITT of the most recent SCSI command sent (for task management tests). */
  lastCommandItt = 0;
  readonly isid: Buffer;
  readonly initiatorName: string;
  /** Keys the target answered during login, last value wins. */
  readonly negotiated: Negotiated = {};
  private readonly pending = new Map<number, Pending>();
  private loginWaiter?: { resolve(r: LoginResponse): void; reject(e: Error): void };
  private digests = { headerDigest: false, dataDigest: false };
  private closed = false;
  private loggingOut = false;
  private closeError?: Error;
  /** Target-initiated PDUs we do not match to a request (Async, NOP-In pings, Reject). */
  readonly unsolicited: TargetPdu[] = [];
  private windowWaiters: Array<() => void> = [];
  params = {
    maxSendDataSegmentLength: 8192,
    maxBurstLength: 262144,
    firstBurstLength: 65536,
    immediateData: true,
    initialR2T: true,
  };

  private constructor(private readonly opts: InitiatorOptions) {
    this.isid = opts.isid ?? Buffer.concat([Buffer.from([0x80]), randomBytes(5)]);
    this.initiatorName = opts.initiatorName ?? 'iqn.2026-11.io.iscsi-target:test-initiator';
  }

  static async connect(opts: InitiatorOptions): Promise<Initiator> {
    const ini = new Initiator(opts);
    await ini.open();
    try {
      await ini.login();
    } catch (e) {
      ini.close();
      throw e;
    }
    return ini;
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host: this.opts.host, port: this.opts.port ?? 3260 }, () => resolve());
      s.setNoDelay(true);
      this.socket = s;
      this.parser = new PduParser({
        pdu: (p) => this.onPdu(p),
        error: (e) => this.fail(new Error(`initiator: bad PDU from target: ${e.message}`)),
      });
      s.on('data', (c: Buffer) => this.parser.push(c));
      s.on('error', (e) => {
        reject(e);
        this.fail(e);
      });
      s.on('close', () => this.fail(new Error('connection closed by target')));
    });
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.closed = true;
    this.closeError = e;
    for (const p of this.pending.values()) p.reject(e);
    this.pending.clear();
    this.loginWaiter?.reject(e);
    for (const w of this.windowWaiters) w();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  private send(pdu: InitiatorPdu): void {
    const parts = encodePdu(pdu, this.digests);
    this.socket.cork();
    for (const p of parts) this.socket.write(p);
    this.socket.uncork();
  }

  // ---------------------------------------------------------------- login

  private async loginExchange(
    csg: number,
    nsg: number,
    transit: boolean,
    keys: Array<[string, string]>,
  ): Promise<{ res: LoginResponse; keys: Map<string, string> }> {
    const itt = this.itt;
    const data = encodeTextKeys(keys);
    let res = await this.loginPdu(csg, nsg, transit, data, itt);
    const texts = [res.data];
    while (res.cont) {
      res = await this.loginPdu(csg, nsg, transit, Buffer.alloc(0), itt);
      texts.push(res.data);
    }
    if (res.statusClass !== 0) throw new LoginError(res.statusClass, res.statusDetail);
    const got = new Map(parseTextKeys(Buffer.concat(texts)));
    for (const [k, v] of got) this.negotiated[k] = v;
    return { res, keys: got };
  }

  private loginPdu(csg: number, nsg: number, transit: boolean, data: Buffer, itt: number): Promise<LoginResponse> {
    return new Promise((resolve, reject) => {
      if (this.closed) return reject(this.closeError ?? new Error('closed'));
      this.loginWaiter = { resolve, reject };
      this.send({
        op: Op.LoginRequest,
        transit,
        cont: false,
        csg,
        nsg,
        versionMax: 0,
        versionMin: 0,
        isid: this.isid,
        tsih: this.tsih,
        itt,
        cid: 0,
        cmdSN: this.cmdSN,
        expStatSN: this.expStatSN,
        data,
      });
    });
  }

  private async login(): Promise<void> {
    const o = this.opts;
    const discovery = !o.targetName;
    const sec: Array<[string, string]> = [
      ['InitiatorName', this.initiatorName],
      ['SessionType', discovery ? 'Discovery' : 'Normal'],
      ...(discovery ? [] : ([['TargetName', o.targetName!]] as Array<[string, string]>)),
      ['AuthMethod', 'None'],
    ];
    if (o.chap) {
      sec[sec.length - 1] = ['AuthMethod', 'CHAP,None'];
      await this.chapLogin(sec, o.chap, o.mutual);
    } else {
      const first = await this.loginExchange(0, 1, true, sec);
      if (!first.res.transit) throw new Error('target did not agree to leave the security stage');
    }
    const mrdsl = o.maxRecvDataSegmentLength ?? 262144;
    const op: Array<[string, string]> = [
      ['HeaderDigest', o.headerDigest ? 'CRC32C' : 'None'],
      ['DataDigest', o.dataDigest ? 'CRC32C' : 'None'],
      ['MaxRecvDataSegmentLength', String(mrdsl)],
      ['DefaultTime2Wait', '2'],
      ['DefaultTime2Retain', '0'],
      ['ErrorRecoveryLevel', '0'],
    ];
    if (!discovery) {
      op.push(
        ['InitialR2T', 'No'],
        ['ImmediateData', 'Yes'],
        ['MaxBurstLength', '16776192'],
        ['FirstBurstLength', '262144'],
        ['MaxOutstandingR2T', '1'],
        ['MaxConnections', '1'],
        ['DataPDUInOrder', 'Yes'],
        ['DataSequenceInOrder', 'Yes'],
      );
    }
    for (const [k, v] of o.loginKeys ?? []) {
      const i = op.findIndex(([key]) => key === k);
      if (i >= 0) op[i] = [k, v];
      else op.push([k, v]);
    }
    let step = await this.loginExchange(1, 3, true, op);
    while (!step.res.transit) step = await this.loginExchange(1, 3, true, []);
    const n = this.negotiated;
    this.tsih = step.res.tsih;
    this.digests = { headerDigest: n.HeaderDigest === 'CRC32C', dataDigest: n.DataDigest === 'CRC32C' };
    this.parser.headerDigest = this.digests.headerDigest;
    this.parser.dataDigest = this.digests.dataDigest;
    if (n.MaxRecvDataSegmentLength) this.params.maxSendDataSegmentLength = Number(n.MaxRecvDataSegmentLength);
    if (n.MaxBurstLength) this.params.maxBurstLength = Number(n.MaxBurstLength);
    if (n.FirstBurstLength) this.params.firstBurstLength = Number(n.FirstBurstLength);
    if (n.ImmediateData) this.params.immediateData = n.ImmediateData === 'Yes';
    if (n.InitialR2T) this.params.initialR2T = n.InitialR2T === 'Yes';
  }

  /** The security stage with CHAP (and optionally mutual CHAP). */
  private async chapLogin(
    sec: Array<[string, string]>,
    chap: { user: string; secret: string },
    mutual?: { user: string; secret: string },
  ): Promise<void> {
    const a = await this.loginExchange(0, 1, false, sec);
    if (a.keys.get('AuthMethod') !== 'CHAP') throw new Error(`target chose AuthMethod=${a.keys.get('AuthMethod')}`);
    const b = await this.loginExchange(0, 1, false, [['CHAP_A', this.opts.chapAlgorithms ?? '7,5']]);
    const alg = Number(b.keys.get('CHAP_A'));
    const id = Number(b.keys.get('CHAP_I'));
    const challenge = decodeBinary(b.keys.get('CHAP_C') ?? '');
    if (!CHAP_ALGORITHMS[alg] || !challenge) throw new Error('target sent a malformed CHAP challenge');
    const answer: Array<[string, string]> = [
      ['CHAP_N', chap.user],
      ['CHAP_R', encodeHex(chapResponse(alg, id, Buffer.from(chap.secret), challenge))],
    ];
    let mine: { id: number; challenge: Buffer } | undefined;
    if (mutual) {
      mine = { id: randomBytes(1)[0], challenge: randomBytes(CHAP_ALGORITHMS[alg].challengeBytes) };
      answer.push(['CHAP_I', String(mine.id)], ['CHAP_C', encodeHex(mine.challenge)]);
    }
    const c = await this.loginExchange(0, 1, true, answer);
    if (mine && mutual) {
      const r = decodeBinary(c.keys.get('CHAP_R') ?? '');
      const expected = chapResponse(alg, mine.id, Buffer.from(mutual.secret), mine.challenge);
      if (c.keys.get('CHAP_N') !== mutual.user || !r || !r.equals(expected)) {
        throw new Error('mutual CHAP: the target did not prove its identity');
      }
    }
    if (!c.res.transit) throw new Error('target did not agree to leave the security stage');
  }

  // ---------------------------------------------------------------- receive

  private onPdu(p: Pdu): void {
    switch (p.op) {
      case Op.LoginResponse: {
        this.expStatSN = (p.statSN + 1) >>> 0;
        this.expCmdSN = p.expCmdSN;
        this.maxCmdSN = p.maxCmdSN;
        const w = this.loginWaiter;
        this.loginWaiter = undefined;
        w?.resolve(p);
        return;
      }
      case Op.DataIn: {
        this.window(p.expCmdSN, p.maxCmdSN);
        const pend = this.pending.get(p.itt);
        if (!pend) return;
        pend.chunks!.push(p.data);
        pend.dataInPdus!++;
        if (p.hasStatus) {
          this.expStatSN = (p.statSN + 1) >>> 0;
          this.pending.delete(p.itt);
          const data = Buffer.concat(pend.chunks!);
          pend.resolve({
            status: p.status,
            data,
            residual: p.residualCount,
            overflow: p.overflow,
            underflow: p.underflow,
            dataInPdus: pend.dataInPdus!,
            statusInDataIn: true,
          } satisfies CommandResult);
        }
        return;
      }
      case Op.ScsiResponse:
        this.statusPdu(p.statSN, p.expCmdSN, p.maxCmdSN);
        this.finishScsi(p);
        return;
      case Op.R2T: {
        this.window(p.expCmdSN, p.maxCmdSN);
        const pend = this.pending.get(p.itt);
        if (!pend?.dataOut) return;
        this.sendDataOut(p.itt, pend.lun!, p.ttt, pend.dataOut, p.bufferOffset, p.desiredLength);
        return;
      }
      case Op.NopIn:
        if (p.itt === RESERVED_TAG) {
          // A ping from the target: answer it.
          this.window(p.expCmdSN, p.maxCmdSN);
          this.unsolicited.push(p);
          this.send({
            op: Op.NopOut,
            immediate: true,
            lun: p.lun,
            itt: RESERVED_TAG,
            ttt: p.ttt,
            cmdSN: this.cmdSN,
            expStatSN: this.expStatSN,
            data: Buffer.alloc(0),
          });
          return;
        }
        this.statusPdu(p.statSN, p.expCmdSN, p.maxCmdSN);
        this.settle(p.itt, p.data);
        return;
      case Op.TaskMgmtResponse:
        this.statusPdu(p.statSN, p.expCmdSN, p.maxCmdSN);
        this.settle(p.itt, p.response);
        return;
      case Op.TextResponse: {
        this.statusPdu(p.statSN, p.expCmdSN, p.maxCmdSN);
        const pend = this.pending.get(p.itt);
        if (!pend) return;
        pend.text!.push(p.data);
        if (p.cont || !p.final) {
          // Ask for the rest with an empty Text Request carrying the TTT.
          this.send({
            op: Op.TextRequest,
            immediate: true,
            final: true,
            cont: false,
            lun: 0n,
            itt: p.itt,
            ttt: p.ttt,
            cmdSN: this.cmdSN,
            expStatSN: this.expStatSN,
            data: Buffer.alloc(0),
          });
          return;
        }
        this.settle(p.itt, Buffer.concat(pend.text!));
        return;
      }
      case Op.LogoutResponse:
        this.statusPdu(p.statSN, p.expCmdSN, p.maxCmdSN);
        this.settle(p.itt, p.response);
        return;
      case Op.Reject:
        this.statusPdu(p.statSN, p.expCmdSN, p.maxCmdSN);
        this.unsolicited.push(p);
        return;
      case Op.AsyncMessage:
        this.statusPdu(p.statSN, p.expCmdSN, p.maxCmdSN);
        this.unsolicited.push(p);
        if (p.asyncEvent === 1 && this.opts.honorLogoutRequest !== false && !this.loggingOut) {
          // The target asks us to log out within Parameter3 seconds (RFC 7143 §11.9.1): no
          // new commands; those already sent get their answers, then we log out.
          this.loggingOut = true;
          this.logoutWhenIdle().catch(() => undefined); // logging out is best effort
        }
        return;
      default:
        return;
    }
  }

  private statusPdu(statSN: number, expCmdSN: number, maxCmdSN: number): void {
    this.expStatSN = (statSN + 1) >>> 0;
    this.window(expCmdSN, maxCmdSN);
  }

  private window(expCmdSN: number, maxCmdSN: number): void {
    // Only move forward (serial arithmetic): PDUs can carry stale values.
    if (((maxCmdSN - this.maxCmdSN) | 0) > 0 || ((expCmdSN - this.expCmdSN) | 0) > 0) {
      this.expCmdSN = expCmdSN;
      this.maxCmdSN = maxCmdSN;
    } else if (maxCmdSN !== this.maxCmdSN) {
      this.maxCmdSN = maxCmdSN;
    }
    if (this.windowWaiters.length > 0) {
      const w = this.windowWaiters;
      this.windowWaiters = [];
      for (const f of w) f();
    }
  }

  private settle(itt: number, value: unknown): void {
    const p = this.pending.get(itt);
    if (!p) return;
    this.pending.delete(itt);
    p.resolve(value);
  }

  private finishScsi(p: ScsiResponse): void {
    const pend = this.pending.get(p.itt);
    if (!pend) return;
    this.pending.delete(p.itt);
    pend.resolve({
      status: p.status,
      sense: p.sense,
      data: Buffer.concat(pend.chunks!),
      residual: p.residualCount,
      overflow: p.overflow,
      underflow: p.underflow,
      dataInPdus: pend.dataInPdus!,
      statusInDataIn: false,
    } satisfies CommandResult);
  }

  // ---------------------------------------------------------------- send

  private nextItt(): number {
    const t = this.itt;
    this.itt = this.itt >= 0x7fffffff ? 1 : this.itt + 1;
    return t;
  }

  /**
   * Wait until the CmdSN window has room, and take the CmdSN in the same step:
   * checking and taking apart would let several waiters through on one slot.
   */
  private async reserveCmdSN(): Promise<number> {
    while (!this.closed && ((this.maxCmdSN - this.cmdSN) | 0) < 0) {
      await new Promise<void>((r) => this.windowWaiters.push(r));
    }
    if (this.closed) throw this.closeError ?? new Error('closed');
    return this.takeCmdSN(false);
  }

  private takeCmdSN(immediate: boolean): number {
    const sn = this.cmdSN;
    if (!immediate) this.cmdSN = (this.cmdSN + 1) >>> 0;
    return sn;
  }

  /**
   * Run one SCSI command. `dataOut` is sent immediate/unsolicited/solicited as
   * negotiated; `readLength` is the Expected Data Transfer Length for reads.
   */
  async command(
    lun: number,
    cdb: Buffer,
    opts: {
      dataOut?: Buffer;
      readLength?: number;
      expectedLength?: number;
      attr?: TaskAttr;
      immediate?: boolean;
      /** Announce the Data-Out (W bit, length) but never send it: for abort tests. */
      holdData?: boolean;
    } = {},
  ): Promise<CommandResult> {
    const immediate = opts.immediate ?? false;
    if (this.loggingOut) throw new Error('the target asked us to log out: no new commands');
    const cmdSN = immediate ? this.cmdSN : await this.reserveCmdSN();
    if (this.closed) throw this.closeError ?? new Error('closed');
    const itt = this.nextItt();
    this.lastCommandItt = itt;
    const lunRaw = encodeLun(lun);
    const held = opts.holdData ? opts.dataOut : undefined;
    const out = opts.holdData ? undefined : opts.dataOut;
    const edtl = opts.expectedLength ?? (out ? out.length : held ? held.length : (opts.readLength ?? 0));
    const immLen =
      out && this.params.immediateData ? Math.min(out.length, this.params.firstBurstLength, this.params.maxSendDataSegmentLength) : 0;
    const unsolicitedEnd = out ? (this.params.initialR2T ? immLen : Math.min(out.length, this.params.firstBurstLength)) : 0;
    const result = new Promise<CommandResult>((resolve, reject) => {
      this.pending.set(itt, {
        resolve: resolve,
        reject,
        kind: 'scsi',
        chunks: [],
        dataOut: out,
        lun: lunRaw,
        dataInPdus: 0,
      });
    });
    this.send({
      op: Op.ScsiCommand,
      immediate,
      final: !out || unsolicitedEnd <= immLen,
      read: !out && !held && (opts.readLength ?? 0) > 0,
      write: !!out || !!held,
      attr: opts.attr ?? TaskAttr.Simple,
      lun: lunRaw,
      itt,
      expectedDataLength: edtl,
      cmdSN,
      expStatSN: this.expStatSN,
      cdb,
      ahs: [],
      data: out ? out.subarray(0, immLen) : Buffer.alloc(0),
    });
    if (out && unsolicitedEnd > immLen) {
      this.sendDataOut(itt, lunRaw, RESERVED_TAG, out, immLen, unsolicitedEnd - immLen);
    }
    return result;
  }

  private sendDataOut(itt: number, lun: bigint, ttt: number, buf: Buffer, offset: number, length: number): void {
    const seg = this.params.maxSendDataSegmentLength;
    let dataSN = 0;
    const end = Math.min(offset + length, buf.length);
    this.socket.cork();
    for (let off = offset; off < end; off += seg) {
      const n = Math.min(seg, end - off);
      this.send({
        op: Op.DataOut,
        final: off + n >= end,
        lun,
        itt,
        ttt,
        expStatSN: this.expStatSN,
        dataSN: dataSN++,
        bufferOffset: off,
        data: buf.subarray(off, off + n),
      });
    }
    this.socket.uncork();
  }

  /** READ(16) of `blocks` blocks at `lba`. */
  async read(lun: number, lba: number, blocks: number, blockSize = 512): Promise<Buffer> {
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x88;
    cdb.writeBigUInt64BE(BigInt(lba), 2);
    cdb.writeUInt32BE(blocks, 10);
    const r = await this.command(lun, cdb, { readLength: blocks * blockSize });
    if (r.status !== 0) throw new ScsiError('READ(16)', r);
    return r.data;
  }

  /** WRITE(16) of `data` at `lba`. */
  async write(lun: number, lba: number, data: Buffer, blockSize = 512, fua = false): Promise<void> {
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x8a;
    if (fua) cdb[1] = 0x08;
    cdb.writeBigUInt64BE(BigInt(lba), 2);
    cdb.writeUInt32BE(data.length / blockSize, 10);
    const r = await this.command(lun, cdb, { dataOut: data });
    if (r.status !== 0) throw new ScsiError('WRITE(16)', r);
  }

  /** READ CAPACITY(16): { blocks, blockSize }. */
  async readCapacity(lun: number): Promise<{ blocks: bigint; blockSize: number }> {
    const cdb = Buffer.alloc(16);
    cdb[0] = 0x9e;
    cdb[1] = 0x10;
    cdb.writeUInt32BE(32, 10);
    const r = await this.command(lun, cdb, { readLength: 32 });
    if (r.status !== 0) throw new ScsiError('READ CAPACITY(16)', r);
    return { blocks: r.data.readBigUInt64BE(0) + 1n, blockSize: r.data.readUInt32BE(8) };
  }

  /** TEST UNIT READY until it answers GOOD (clearing unit attentions), at most `tries` times. */
  async testUnitReady(lun: number, tries = 5): Promise<CommandResult> {
    let r!: CommandResult;
    for (let i = 0; i < tries; i++) {
      r = await this.command(lun, Buffer.alloc(6));
      if (r.status === 0) break;
    }
    return r;
  }

  private request<T>(kind: Pending['kind'], itt: number, build: () => InitiatorPdu): Promise<T> {
    if (this.closed) return Promise.reject(this.closeError ?? new Error('closed'));
    const p = new Promise<T>((resolve, reject) => {
      this.pending.set(itt, { resolve: resolve, reject, kind, text: [] });
    });
    this.send(build());
    return p;
  }

  /** NOP-Out ping; resolves with the echoed data. */
  nop(data: Buffer = Buffer.alloc(0)): Promise<Buffer> {
    const itt = this.nextItt();
    return this.request('nop', itt, () => ({
      op: Op.NopOut,
      immediate: true,
      lun: 0n,
      itt,
      ttt: RESERVED_TAG,
      cmdSN: this.cmdSN,
      expStatSN: this.expStatSN,
      data,
    }));
  }

  /** Task management; resolves with the TMF response code. */
  taskManagement(func: number, lun: number, refTaskTag = RESERVED_TAG): Promise<number> {
    const itt = this.nextItt();
    return this.request('tmf', itt, () => ({
      op: Op.TaskMgmtRequest,
      immediate: true,
      func,
      lun: encodeLun(lun),
      itt,
      refTaskTag,
      cmdSN: this.cmdSN,
      expStatSN: this.expStatSN,
      refCmdSN: 0,
      expDataSN: 0,
      data: Buffer.alloc(0),
    }));
  }

  /** A Text request; resolves with the answered key/value pairs. */
  async text(keys: Array<[string, string]>): Promise<Array<[string, string]>> {
    const itt = this.nextItt();
    const data = await this.request<Buffer>('text', itt, () => ({
      op: Op.TextRequest,
      immediate: true,
      final: true,
      cont: false,
      lun: 0n,
      itt,
      ttt: RESERVED_TAG,
      cmdSN: this.cmdSN,
      expStatSN: this.expStatSN,
      data: encodeTextKeys(keys),
    }));
    return parseTextKeys(data);
  }

  /** SendTargets=All (in a Discovery session): each target with its addresses. */
  async sendTargets(value = 'All'): Promise<Array<{ name: string; addresses: string[] }>> {
    const pairs = await this.text([['SendTargets', value]]);
    const out: Array<{ name: string; addresses: string[] }> = [];
    for (const [k, v] of pairs) {
      if (k === 'TargetName') out.push({ name: v, addresses: [] });
      else if (k === 'TargetAddress' && out.length > 0) out[out.length - 1].addresses.push(v);
    }
    return out;
  }

  private async logoutWhenIdle(): Promise<void> {
    while (!this.closed && this.pending.size > 0) await new Promise((r) => setTimeout(r, 5));
    if (!this.closed) await this.logout().catch(() => undefined);
  }

  /** Logout (close session) and close the socket; resolves with the logout response code. */
  async logout(): Promise<number> {
    const itt = this.nextItt();
    const r = await this.request<number>('logout', itt, () => ({
      op: Op.LogoutRequest,
      immediate: true,
      reason: 0,
      itt,
      cid: 0,
      cmdSN: this.cmdSN,
      expStatSN: this.expStatSN,
      data: Buffer.alloc(0),
    }));
    this.close();
    return r;
  }

  close(): void {
    // Commands still waiting fail now rather than never settling.
    this.fail(new Error('initiator closed'));
    this.socket?.destroy();
  }
}

export class ScsiError extends Error {
  constructor(
    what: string,
    readonly result: CommandResult,
  ) {
    const s = result.sense;
    const detail = s
      ? s[0] >= 0x72
        ? ` sense ${(s[1] & 0xf).toString(16)}/${s[2].toString(16)}/${s[3].toString(16)}`
        : ` sense ${(s[2] & 0xf).toString(16)}/${s[12].toString(16)}/${s[13].toString(16)}`
      : '';
    super(`${what} failed: status 0x${result.status.toString(16)}${detail}`);
  }
}

/** Sense key, ASC and ASCQ of fixed or descriptor sense data. */
export function senseOf(sense: Buffer | undefined): { key: number; asc: number; ascq: number } | undefined {
  if (!sense || sense.length < 4) return undefined;
  if ((sense[0] & 0x7f) >= 0x72) return { key: sense[1] & 0xf, asc: sense[2], ascq: sense[3] };
  return { key: sense[2] & 0xf, asc: sense[12], ascq: sense[13] };
}
