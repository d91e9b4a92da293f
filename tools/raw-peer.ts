// A raw iSCSI peer for hostile-input tests, the fuzzer and the soak: it sends any bytes
// (well-formed PDUs or garbage) and collects what the target answers, PDU by PDU, and
// whether and when the target closed the connection.

import net from 'node:net';
import { Op, type InitiatorPdu, type Pdu } from '../src/iscsi/pdu/messages';
import { PduParser } from '../src/iscsi/pdu/parser';
import { encodePduToBuffer } from '../src/iscsi/pdu/serializer';
import { encodeTextKeys, parseTextKeys } from '../src/iscsi/pdu/text';

export class RawPeer {
  readonly received: Pdu[] = [];
  /** Raw BHS of every received PDU, in order (to check Reject payloads byte for byte). */
  readonly receivedBhs: Buffer[] = [];
  /** Every byte the target sent, as received (padding and digests included). */
  readonly receivedBytes: Buffer[] = [];
  closed = false;
  /** Resolves when the target closes (or resets) the connection. */
  readonly closedP: Promise<void>;
  private waiters: Array<() => void> = [];
  private parserBroken = false;

  private constructor(readonly socket: net.Socket) {
    const parser = new PduParser({
      pdu: (p, bhs) => {
        this.received.push(p);
        this.receivedBhs.push(Buffer.from(bhs));
        this.wake();
      },
      error: () => {
        this.parserBroken = true;
      },
    });
    socket.on('data', (c: Buffer) => {
      this.receivedBytes.push(c);
      parser.push(c);
    });
    socket.on('error', () => undefined);
    this.closedP = new Promise((r) =>
      socket.on('close', () => {
        this.closed = true;
        this.wake();
        r();
      }),
    );
  }

  static connect(host: string, port: number): Promise<RawPeer> {
    return new Promise((resolve, reject) => {
      const s = net.connect({ host, port }, () => {
        s.off('error', reject);
        resolve(new RawPeer(s));
      });
      s.setNoDelay(true);
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Did the target send something our own parser could not frame? */
  get sawBadPdu(): boolean {
    return this.parserBroken;
  }

  write(buf: Buffer): boolean {
    if (this.closed || this.socket.destroyed) return false;
    return this.socket.write(buf);
  }

  send(pdu: InitiatorPdu): boolean {
    return this.write(encodePduToBuffer(pdu, { headerDigest: false, dataDigest: false }));
  }

  /** Wait until `pred` holds for some received PDU (searching from index `from`), or the close, or the timeout. */
  async waitFor(pred: (p: Pdu) => boolean, timeoutMs = 5000, from = 0): Promise<Pdu | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      for (let i = from; i < this.received.length; i++) if (pred(this.received[i])) return this.received[i];
      if (this.closed || Date.now() >= deadline) return undefined;
      await new Promise<void>((r) => {
        const t = setTimeout(r, Math.max(1, deadline - Date.now()));
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
  }

  /** Resolves true when the target closed within `ms`. */
  async closesWithin(ms: number): Promise<boolean> {
    await Promise.race([this.closedP, new Promise((r) => setTimeout(r, ms).unref())]);
    return this.closed;
  }

  /**
   * A plain login (no CHAP) in two PDUs; resolves with the final Login Response. Offers
   * no digests, MaxRecvDataSegmentLength 262144, ImmediateData and InitialR2T=Yes;
   * `operational` replaces any of those keys (or adds others), `extraKeys` are appended.
   */
  async login(opts: {
    initiatorName: string;
    targetName?: string;
    isid?: Buffer;
    tsih?: number;
    operational?: Array<[string, string]>;
    extraKeys?: Array<[string, string]>;
  }): Promise<{ ok: boolean; statusClass: number; statusDetail: number; keys: Map<string, string>; cmdSN: number }> {
    const isid = opts.isid ?? Buffer.from([0x80, 0, 0, 0, 0, 1]);
    const sec: Array<[string, string]> = [
      ['InitiatorName', opts.initiatorName],
      ['SessionType', opts.targetName ? 'Normal' : 'Discovery'],
      ...(opts.targetName ? ([['TargetName', opts.targetName]] as Array<[string, string]>) : []),
      ['AuthMethod', 'None'],
    ];
    const step = async (csg: number, nsg: number, keys: Array<[string, string]>) => {
      const from = this.received.length;
      this.send({
        op: Op.LoginRequest,
        transit: true,
        cont: false,
        csg,
        nsg,
        versionMax: 0,
        versionMin: 0,
        isid,
        tsih: opts.tsih ?? 0,
        itt: 1,
        cid: 0,
        cmdSN: 1,
        expStatSN: 0,
        data: encodeTextKeys(keys),
      });
      const r = await this.waitFor((p) => p.op === Op.LoginResponse, 5000, from);
      if (!r || r.op !== Op.LoginResponse) throw new Error('no login response');
      return r;
    };
    let r = await step(0, 1, sec);
    if (r.statusClass !== 0) return { ok: false, statusClass: r.statusClass, statusDetail: r.statusDetail, keys: new Map(), cmdSN: 1 };
    const operational = new Map<string, string>([
      ['HeaderDigest', 'None'],
      ['DataDigest', 'None'],
      ['MaxRecvDataSegmentLength', '262144'],
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'Yes'],
      ['ErrorRecoveryLevel', '0'],
      ...(opts.operational ?? []),
    ]);
    r = await step(1, 3, [...operational, ...(opts.extraKeys ?? [])]);
    return {
      ok: r.statusClass === 0 && r.transit,
      statusClass: r.statusClass,
      statusDetail: r.statusDetail,
      keys: new Map(parseTextKeys(r.data)),
      cmdSN: r.expCmdSN,
    };
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Resident set size in MiB. */
export function rssMiB(): number {
  return Math.round((process.memoryUsage().rss / 1048576) * 10) / 10;
}
