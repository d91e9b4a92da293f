// Each host reaches only its own volumes: every path docs/security.md lists, tried by one
// host against another, over raw PDUs (tools/raw-peer.ts), our own initiator sending hostile
// CDBs and task management, and libiscsi's tools. The victim (host A, CHAP) keeps a
// persistent reservation, an SPC-2 RESERVE and known data on its two LUNs; after every
// attack its data, reservations, unit-attention state and session must be as they were.
//
// Fixture: target SAN with three ACLs (A and B behind CHAP, C without, C allowed target
// resets) and an open target LAB that anyone can log in to under any name.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Initiator, senseOf, type CommandResult } from '../../src/initiator/initiator';
import { Op, RESERVED_TAG, type Pdu, type R2T, type Reject, type ScsiResponse } from '../../src/iscsi/pdu/messages';
import { encodeLun } from '../../src/scsi/lun';
import { PrIn, PrOut, PrType } from '../../src/scsi/persistent-reservations';
import { dataBuffers } from '../../src/scsi/buffer-pool';
import { TargetMetrics } from '../../src/admin/metrics';
import { RawPeer } from '../../tools/raw-peer';
import { CDB, b2b, be32, cscd, paramList, prOutParams } from '../helpers/scsi';
import { requireTools, runAsync } from '../helpers/daemon';
import { memoryVolume, startTarget, type TestTarget } from '../helpers/target';
import { dataOut as dataOutPdu, scsiCommand } from '../helpers/pdu';

const SAN = 'iqn.2026-11.io.example:san1';
const LAB = 'iqn.2026-11.io.example:lab';
const A = 'iqn.1994-05.com.redhat:host-a';
const B = 'iqn.1994-05.com.redhat:host-b';
const C = 'iqn.1994-05.com.redhat:host-c';
const STRANGER = 'iqn.1994-05.com.redhat:stranger';
const A_CHAP = { user: 'host-a', secret: 'host-a-secret-1' };
const B_CHAP = { user: 'host-b', secret: 'host-b-secret-1' };
const MiB = 1024 * 1024;
/** limits.stallTimeout in this fixture. */
const STALL_MS = 3000;
const KEY_A = 0xa11ce0000000000an;
const KEY_B = 0xb0b0000000000000n;

const TUR = Buffer.alloc(6);
const cdb = (bytes: number[]): Buffer => {
  const b = Buffer.alloc(bytes.length <= 6 ? 6 : bytes.length <= 10 ? 10 : bytes.length <= 12 ? 12 : 16);
  Buffer.from(bytes).copy(b);
  return b;
};
const write10 = (lba: number, blocks: number) => cdb(CDB.write10(lba, blocks));
const read10 = (lba: number, blocks: number) => cdb(CDB.read10(lba, blocks));
const xcopyCdb = (len: number) => cdb([0x83, 0, 0, 0, 0, 0, 0, 0, 0, 0, ...be32(len), 0, 0]);
const rcrCdb = (sa: number, listId: number) => cdb([0x84, sa, listId, 0, 0, 0, 0, 0, 0, 0, ...be32(1024), 0, 0]);
const prOutCdb = (sa: number, type: number) => cdb([0x5f, sa, type, 0, 0, 0, 0, 0, 24, 0]);
const prInCdb = (sa: number) => cdb([0x5e, sa, 0, 0, 0, 0, 0, 0x20, 0x00, 0]);

function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 131 + seed * 17 + (i >> 8)) & 0xff || 0x5a;
  return b;
}

/** The CHECK CONDITION's sense as [key, asc, ascq]. */
function senseTriple(r: CommandResult): [number, number, number] {
  assert.equal(r.status, 0x02, `expected CHECK CONDITION, got status 0x${r.status.toString(16)}`);
  const s = senseOf(r.sense)!;
  return [s.key, s.asc, s.ascq];
}

function expectGood(r: CommandResult, what: string): void {
  const s = senseOf(r.sense);
  assert.equal(r.status, 0, `${what}: status 0x${r.status.toString(16)}${s ? ` sense ${s.key}/${s.asc.toString(16)}/${s.ascq}` : ''}`);
}

const LU_NOT_SUPPORTED: [number, number, number] = [0x05, 0x25, 0x00];
const COPY_TARGET_NOT_REACHABLE: [number, number, number] = [0x0a, 0x0d, 0x02];

/** A SCSI session driven PDU by PDU: the attacker's hand on the wire. */
class RawHost {
  private itt = 0x100;
  private constructor(
    readonly peer: RawPeer,
    private cmdSN: number,
  ) {}

  static async login(t: TestTarget, initiatorName: string, targetName: string, operational?: Array<[string, string]>): Promise<RawHost> {
    const peer = await RawPeer.connect(t.host, t.port);
    const r = await peer.login({ initiatorName, targetName, isid: randomBytes(6).fill(0x80, 0, 1), operational });
    assert.ok(r.ok, `raw login of ${initiatorName} to ${targetName}`);
    const h = new RawHost(peer, r.cmdSN);
    // The power-on unit attention first, so that what follows is judged on its own.
    for (let i = 0; i < 3 && (await h.response(h.command(TUR))).status !== 0; i++);
    return h;
  }

  /** Send a SCSI Command (no immediate data); returns its ITT. */
  command(cdbBytes: Buffer, o: { write?: number; read?: number; final?: boolean; lun?: number; data?: Buffer } = {}): number {
    const itt = this.itt++;
    this.peer.send(
      scsiCommand({
        final: o.final ?? true,
        read: (o.read ?? 0) > 0,
        write: (o.write ?? 0) > 0,
        lun: encodeLun(o.lun ?? 0),
        itt,
        expectedDataLength: o.write ?? o.read ?? 0,
        cmdSN: this.cmdSN,
        cdb: cdbBytes,
        data: o.data ?? Buffer.alloc(0),
      }),
    );
    this.cmdSN = (this.cmdSN + 1) >>> 0;
    return itt;
  }

  dataOut(itt: number, ttt: number, offset: number, data: Buffer, dataSN: number, final: boolean): void {
    this.peer.send(dataOutPdu({ final, itt, ttt, dataSN, bufferOffset: offset, data }));
  }

  r2t(itt: number): Promise<R2T> {
    return this.waitFor((p): p is R2T => p.op === Op.R2T && p.itt === itt, `R2T for ITT ${itt}`);
  }

  response(itt: number): Promise<ScsiResponse> {
    return this.waitFor((p): p is ScsiResponse => p.op === Op.ScsiResponse && p.itt === itt, `SCSI Response for ITT ${itt}`);
  }

  async waitFor<T extends Pdu>(pred: (p: Pdu) => p is T, what: string): Promise<T> {
    const p = await this.peer.waitFor(pred, 5000);
    assert.ok(p, `${what} arrives`);
    return p as T;
  }

  rejects(): Reject[] {
    return this.peer.received.filter((p): p is Reject => p.op === Op.Reject);
  }

  close(): void {
    this.peer.close();
  }
}

describe('isolation: each host reaches only its own volumes', () => {
  let t: TestTarget;
  /** Host A: the victim, logged in to SAN with CHAP, LUN 0 = db-a (PR held), LUN 1 = db-a2 (RESERVE held). */
  let victim: Initiator;
  /** Host B: a legitimate, CHAP-authenticated host of the same target, turned attacker. */
  let hostB: Initiator;
  /** Anyone on the open target LAB, under any name. */
  let labReader: Initiator;
  const SECRET = pattern(256 * 1024, 1);
  const SECRET2 = pattern(64 * 1024, 2);
  let victimRound = 0;

  before(async () => {
    t = await startTarget({
      volumes: [
        memoryVolume('db-a', 16 * MiB),
        memoryVolume('db-a2', 8 * MiB),
        memoryVolume('db-b', 16 * MiB),
        memoryVolume('db-c', 8 * MiB),
        memoryVolume('scratch', 16 * MiB),
      ],
      targets: [
        {
          iqn: SAN,
          luns: new Map(),
          acls: [
            {
              initiator: A,
              luns: new Map([
                [0, 'db-a'],
                [1, 'db-a2'],
              ]),
              chap: A_CHAP,
            },
            { initiator: B, luns: new Map([[0, 'db-b']]), chap: B_CHAP },
            { initiator: C, luns: new Map([[0, 'db-c']]), allowTargetReset: true },
          ],
        },
        { iqn: LAB, luns: new Map([[0, 'scratch']]), acls: [] },
      ],
      server: { bounds: { stallTimeoutMs: STALL_MS } },
    });
    victim = await Initiator.connect({ host: t.host, port: t.port, targetName: SAN, initiatorName: A, chap: A_CHAP });
    for (const lun of [0, 1]) await victim.testUnitReady(lun);
    await victim.write(0, 0, SECRET);
    await victim.write(1, 0, SECRET2);
    expectGood(await victim.command(0, prOutCdb(PrOut.REGISTER, 0), { dataOut: prOutParams(0n, KEY_A) }), 'victim REGISTER');
    expectGood(
      await victim.command(0, prOutCdb(PrOut.RESERVE, PrType.WRITE_EXCLUSIVE), { dataOut: prOutParams(KEY_A, 0n) }),
      'victim PR RESERVE',
    );
    expectGood(await victim.command(1, cdb([0x16, 0, 0, 0, 0, 0])), 'victim RESERVE(6)');
    hostB = await Initiator.connect({ host: t.host, port: t.port, targetName: SAN, initiatorName: B, chap: B_CHAP });
    await hostB.testUnitReady(0);
    labReader = await Initiator.connect({ host: t.host, port: t.port, targetName: LAB, initiatorName: `${STRANGER}-reader` });
    await labReader.testUnitReady(0);
  });

  after(async () => {
    for (const i of [victim, hostB, labReader]) i?.close();
    await t?.stop();
  });

  /** A volume's identity as the target reports it (VPD 0x80 serial, VPD 0x83 NAA). */
  function identity(volume: string): { naa: Buffer; serial: string } {
    const lu = t.server.units.get(volume)!;
    return { naa: lu.naa, serial: lu.serial };
  }

  /**
   * The victim is untouched: no unit attention pending, its data, its persistent
   * reservation and its RESERVE as it left them, and its session still serves I/O.
   */
  async function victimIntact(): Promise<void> {
    assert.ok(!victim.isClosed, "the victim's session is still open");
    for (const lun of [0, 1]) expectGood(await victim.command(lun, TUR), `victim TEST UNIT READY on LUN ${lun} (no unit attention)`);
    assert.ok((await victim.read(0, 0, SECRET.length / 512)).equals(SECRET), "the victim's LUN 0 data is unchanged");
    assert.ok((await victim.read(1, 0, SECRET2.length / 512)).equals(SECRET2), "the victim's LUN 1 data is unchanged");
    const rr = await victim.command(0, prInCdb(PrIn.READ_RESERVATION), { readLength: 0x2000 });
    expectGood(rr, 'victim READ RESERVATION');
    assert.equal(rr.data.readUInt32BE(4), 16, 'a persistent reservation is still held');
    assert.equal(rr.data.readBigUInt64BE(8), KEY_A, "by the victim's key");
    assert.equal(rr.data[21] & 0x0f, PrType.WRITE_EXCLUSIVE);
    const a2 = t.server.units.get('db-a2')!;
    assert.ok(a2.reservationHolder?.startsWith(`${A},i,0x${victim.isid.toString('hex')}`), "the victim's RESERVE(6) still holds");
    const fresh = randomBytes(8192);
    const lba = 1024 + (victimRound++ % 64) * 16;
    await victim.write(0, lba, fresh);
    assert.ok((await victim.read(0, lba, 16)).equals(fresh), 'the victim writes and reads back');
  }

  /**
   * The victim announces a WRITE and holds back its data (an aborted task gets no answer,
   * so the promise is left to the session's close). Resolves with the task's ITT once the
   * target has it.
   */
  async function heldVictimWrite(fill: number): Promise<number> {
    void victim.command(0, write10(4096, 16), { dataOut: Buffer.alloc(8192, fill), holdData: true }).catch(() => undefined);
    let itt = -1;
    await waitUntil(() => {
      for (const s of t.server.sessions.keys()) {
        if (s.initiatorName !== A || s.targetName !== SAN) continue;
        for (const cmd of s.tasks.values()) if (cmd.state === 'receiving') itt = cmd.itt;
      }
      return itt >= 0;
    }, 'the held task exists');
    return itt;
  }

  /** Fill the buffer pool with the victim's data: what a gap in a buffer would leak. */
  async function plantVictimData(): Promise<void> {
    for (let i = 0; i < 4; i++) {
      await victim.read(0, 0, SECRET.length / 512);
      await victim.read(0, 0, 128); // 64 KiB reads: the class a 64 KiB WRITE borrows from
      await victim.write(0, 2048, SECRET.subarray(0, 128 * 1024)); // immediate + R2T: a pooled 128 KiB buffer
    }
  }

  /** Bytes of the LAB volume `scratch` at `lba`, read by an honest client. */
  async function scratch(lba: number, bytes: number): Promise<Buffer> {
    return labReader.read(0, lba, bytes / 512);
  }

  function assertNoVictimBytes(b: Buffer, what: string): void {
    const probe = SECRET.subarray(4096, 4096 + 64);
    assert.equal(b.indexOf(probe), -1, `${what}: holds none of the victim's data`);
  }

  // ------------------------------------------------------------------ EXTENDED COPY

  test("EXTENDED COPY: another host's volume is neither a source nor a destination, under its own name on an open target or from the same target", async () => {
    // Designators are not secrets (an old volume's derives from its name; any host that
    // once had the volume, or a backup of the identity file, knows it): the attacker has them.
    const dbA = identity('db-a');
    const scratchId = identity('scratch');
    // An attacker that knows A's initiator name (not its CHAP secret) logs in to LAB as A.
    const asA = await Initiator.connect({ host: t.host, port: t.port, targetName: LAB, initiatorName: A, isid: victim.isid });
    try {
      await asA.testUnitReady(0);
      const mine = pattern(64 * 1024, 9);
      await asA.write(0, 4096, mine);
      const steal = paramList(
        [cscd({ naa: dbA.naa, blockSize: 512 }), cscd({ naa: scratchId.naa, blockSize: 512 })],
        [b2b(0, 1, 128, 0, 8192)],
      );
      assert.deepEqual(
        senseTriple(await asA.command(0, xcopyCdb(steal.length), { dataOut: steal })),
        COPY_TARGET_NOT_REACHABLE,
        'victim -> attacker',
      );
      const plant = paramList(
        [cscd({ naa: scratchId.naa, blockSize: 512 }), cscd({ naa: dbA.naa, blockSize: 512 })],
        [b2b(0, 1, 128, 4096, 0)],
      );
      assert.deepEqual(
        senseTriple(await asA.command(0, xcopyCdb(plant.length), { dataOut: plant })),
        COPY_TARGET_NOT_REACHABLE,
        'attacker -> victim',
      );
      const only = paramList([cscd({ naa: dbA.naa, blockSize: 512 })], [b2b(0, 0, 128, 0, 1024)]);
      assert.deepEqual(
        senseTriple(await asA.command(0, xcopyCdb(only.length), { dataOut: only })),
        COPY_TARGET_NOT_REACHABLE,
        'victim -> victim',
      );
      assert.ok((await scratch(8192, 64 * 1024)).equals(Buffer.alloc(64 * 1024)), 'nothing was copied out');
      // Host B, authenticated on the same target, names A's volume from its own LUN.
      const fromB = paramList(
        [cscd({ naa: dbA.naa, blockSize: 512 }), cscd({ naa: identity('db-b').naa, blockSize: 512 })],
        [b2b(0, 1, 128, 0, 0)],
      );
      assert.deepEqual(
        senseTriple(await hostB.command(0, xcopyCdb(fromB.length), { dataOut: fromB })),
        COPY_TARGET_NOT_REACHABLE,
        'B: A -> B',
      );
      const toA = paramList(
        [cscd({ naa: identity('db-b').naa, blockSize: 512 }), cscd({ naa: dbA.naa, blockSize: 512 })],
        [b2b(0, 1, 128, 0, 0)],
      );
      assert.deepEqual(senseTriple(await hostB.command(0, xcopyCdb(toA.length), { dataOut: toA })), COPY_TARGET_NOT_REACHABLE, 'B: B -> A');
    } finally {
      asA.close();
    }
    await victimIntact();
  });

  test("EXTENDED COPY within one's own map still works (the victim copies between its two LUNs)", async () => {
    const ids = (name: string) => ({ naa: identity(name).naa, blockSize: 512 });
    const list = paramList([cscd(ids('db-a')), cscd(ids('db-a2'))], [b2b(0, 1, 16, 0, 4096)], { usage: 0, listId: 7 });
    expectGood(await victim.command(0, xcopyCdb(list.length), { dataOut: list }), 'victim EXTENDED COPY db-a -> db-a2');
    assert.ok((await victim.read(1, 4096, 16)).equals(SECRET.subarray(0, 8192)));
  });

  test("RECEIVE COPY RESULTS: another nexus's held copy results are not visible", async () => {
    // The victim's copy above held its result under list identifier 7 (LIST ID USAGE 00b).
    for (const who of [hostB]) {
      assert.deepEqual(
        senseTriple(await who.command(0, rcrCdb(0x00, 7), { readLength: 1024 })),
        [0x05, 0x24, 0x00],
        'COPY STATUS of list 7',
      );
      assert.deepEqual(
        senseTriple(await who.command(0, rcrCdb(0x04, 7), { readLength: 1024 })),
        [0x05, 0x24, 0x00],
        'FAILED SEGMENT DETAILS of list 7',
      );
    }
    const mine = await victim.command(0, rcrCdb(0x00, 7), { readLength: 1024 });
    expectGood(mine, 'the victim reads its own copy status');
    assert.equal(mine.data[4] & 0x7f, 0x01, 'completed');
    await victimIntact();
  });

  // ------------------------------------------------------------------ task management

  test('TARGET WARM RESET and TARGET COLD RESET: refused with "function authorization failed" without allowTargetReset', async () => {
    assert.equal(await hostB.taskManagement(6, 0), 6, 'TARGET WARM RESET');
    assert.equal(await hostB.taskManagement(7, 0), 6, 'TARGET COLD RESET');
    const lab = await Initiator.connect({ host: t.host, port: t.port, targetName: LAB, initiatorName: A });
    try {
      assert.equal(await lab.taskManagement(6, 0), 6, "from the open target, under A's name");
      assert.equal(await lab.taskManagement(7, 0), 6);
    } finally {
      lab.close();
    }
    expectGood(await hostB.command(0, TUR), 'B is not reset either');
    await victimIntact();
  });

  test("target resets allowed by the ACL touch only the initiator's own LUs and sessions", async () => {
    const c1 = await Initiator.connect({ host: t.host, port: t.port, targetName: SAN, initiatorName: C });
    const c2 = await Initiator.connect({ host: t.host, port: t.port, targetName: SAN, initiatorName: C });
    try {
      await c1.testUnitReady(0);
      await c2.testUnitReady(0);
      assert.equal(await c1.taskManagement(6, 0), 0, 'TARGET WARM RESET is performed');
      assert.deepEqual(senseTriple(await c1.command(0, TUR)), [0x06, 0x29, 0x00], "C's own LU reports the reset");
      await victimIntact();
      expectGood(await hostB.command(0, TUR), 'B has no unit attention');
      assert.equal(await c1.taskManagement(7, 0), 0, 'TARGET COLD RESET is performed');
      await waitUntil(() => c1.isClosed && c2.isClosed, "C's sessions end");
    } finally {
      c1.close();
      c2.close();
    }
    await victimIntact();
    expectGood(await hostB.command(0, TUR), 'B keeps its session');
  });

  test("ABORT TASK with another session's ITT finds nothing; the victim's task survives", async () => {
    // The victim announces a WRITE and holds back its data: a task in the victim's task set.
    const itt = await heldVictimWrite(0x11);
    assert.equal(await hostB.taskManagement(1, 0, itt), 1, 'ABORT TASK: task does not exist');
    const asA = await Initiator.connect({ host: t.host, port: t.port, targetName: LAB, initiatorName: A, isid: victim.isid });
    try {
      assert.equal(await asA.taskManagement(1, 0, itt), 1, "nor from A's name on the open target");
      assert.equal(await asA.taskManagement(2, 0), 0, 'ABORT TASK SET there aborts only its own (empty) task set');
    } finally {
      asA.close();
    }
    assert.ok(
      [...t.server.sessions.keys()].some((s) => s.initiatorName === A && s.tasks.get(itt)?.aborted === false),
      "the victim's task is still there, not aborted",
    );
    assert.equal(await victim.taskManagement(1, 0, itt), 0, 'the victim itself can abort it');
    await victimIntact();
  });

  test("ABORT TASK SET, CLEAR TASK SET and LOGICAL UNIT RESET: a LUN outside the map does not exist; one's own LUN reaches only one's own LU", async () => {
    for (const func of [2, 4, 5]) assert.equal(await hostB.taskManagement(func, 1), 2, `function ${func} on LUN 1: LUN does not exist`);
    const itt = await heldVictimWrite(0x22);
    for (const func of [2, 4, 5]) assert.equal(await hostB.taskManagement(func, 0), 0, `function ${func} on B's own LUN 0`);
    assert.deepEqual(senseTriple(await hostB.command(0, TUR)), [0x06, 0x29, 0x03], 'B sees its own LU reset');
    assert.ok(
      [...t.server.sessions.keys()].some((s) => s.initiatorName === A && s.tasks.get(itt)?.aborted === false),
      "the victim's task was not aborted",
    );
    assert.equal(await victim.taskManagement(1, 0, itt), 0);
    await victimIntact();
  });

  // ------------------------------------------------------------------ reservations

  test("PREEMPT AND ABORT, PREEMPT and CLEAR with the victim's key reach only the attacker's own LU", async () => {
    expectGood(await hostB.command(0, prOutCdb(PrOut.REGISTER, 0), { dataOut: prOutParams(0n, KEY_B) }), 'B registers on db-b');
    const pa = await hostB.command(0, prOutCdb(PrOut.PREEMPT_AND_ABORT, PrType.WRITE_EXCLUSIVE), { dataOut: prOutParams(KEY_B, KEY_A) });
    assert.equal(pa.status, 0x18, 'PREEMPT AND ABORT of a key unknown on db-b: RESERVATION CONFLICT');
    const pr = await hostB.command(0, prOutCdb(PrOut.PREEMPT, PrType.WRITE_EXCLUSIVE), { dataOut: prOutParams(KEY_B, KEY_A) });
    assert.equal(pr.status, 0x18);
    expectGood(await hostB.command(0, prOutCdb(PrOut.CLEAR, 0), { dataOut: prOutParams(KEY_B, 0n) }), 'CLEAR clears db-b only');
    for (const sa of [PrOut.PREEMPT_AND_ABORT, PrOut.CLEAR, PrOut.REGISTER_AND_IGNORE_EXISTING_KEY]) {
      assert.deepEqual(
        senseTriple(await hostB.command(1, prOutCdb(sa, PrType.WRITE_EXCLUSIVE), { dataOut: prOutParams(KEY_B, KEY_A) })),
        LU_NOT_SUPPORTED,
        `service action ${sa} on LUN 1`,
      );
    }
    const keys = await hostB.command(0, prInCdb(PrIn.READ_KEYS), { readLength: 0x2000 });
    expectGood(keys, 'READ KEYS on db-b');
    assert.equal(keys.data.indexOf(prOutParams(KEY_A, 0n).subarray(0, 8)), -1, "db-b's keys do not include the victim's");
    await victimIntact();
  });

  test("RESERVE and RELEASE: the victim's reservation cannot be released or broken from elsewhere", async () => {
    expectGood(await hostB.command(0, cdb([0x17, 0, 0, 0, 0, 0])), "RELEASE(6) on B's own LU is a no-op for the victim");
    assert.deepEqual(senseTriple(await hostB.command(1, cdb([0x17, 0, 0, 0, 0, 0]))), LU_NOT_SUPPORTED, 'RELEASE(6) on LUN 1');
    assert.deepEqual(senseTriple(await hostB.command(1, cdb([0x16, 0, 0, 0, 0, 0]))), LU_NOT_SUPPORTED, 'RESERVE(6) on LUN 1');
    const asA = await Initiator.connect({ host: t.host, port: t.port, targetName: LAB, initiatorName: A, isid: victim.isid });
    try {
      await asA.testUnitReady(0);
      expectGood(await asA.command(0, cdb([0x17, 0, 0, 0, 0, 0])), "RELEASE under A's name and ISID on the open target");
      assert.deepEqual(
        senseTriple(await asA.command(1, cdb([0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0]))),
        LU_NOT_SUPPORTED,
        'RESERVE(10) on LUN 1 there',
      );
    } finally {
      asA.close();
    }
    await victimIntact();
  });

  // ------------------------------------------------------------------ SANITIZE, MODE SELECT, unit attentions

  test("SANITIZE reaches only the issuer's own LU; the victim sees no unit attention and keeps its data", async () => {
    const list = Buffer.from([0x01, 0, 0, 1, 0xee]); // OVERWRITE: one pass of 0xee
    assert.deepEqual(
      senseTriple(await hostB.command(1, cdb([0x48, 0x01, 0, 0, 0, 0, 0, 0, 5, 0]), { dataOut: list })),
      LU_NOT_SUPPORTED,
      'SANITIZE on LUN 1',
    );
    assert.deepEqual(
      senseTriple(await hostB.command(1, cdb([0x48, 0x02, 0, 0, 0, 0, 0, 0, 0, 0]))),
      LU_NOT_SUPPORTED,
      'BLOCK ERASE on LUN 1',
    );
    await victimIntact();
  });

  test("MODE SELECT on one's own LU changes nothing the victim sees and queues it no unit attention", async () => {
    const sense = await hostB.command(0, cdb([0x1a, 0x08, 0x0a, 0, 255, 0]), { readLength: 255 });
    expectGood(sense, 'MODE SENSE control page');
    const page = Buffer.from(sense.data.subarray(4, 4 + 12));
    page[0] &= 0x3f;
    page[2] |= 0x04; // D_SENSE
    page[4] |= 0x08; // SWP
    const param = Buffer.concat([Buffer.alloc(4), page]);
    expectGood(await hostB.command(0, cdb([0x15, 0x10, 0, 0, param.length, 0]), { dataOut: param }), 'MODE SELECT D_SENSE + SWP on db-b');
    const before = await victim.command(0, cdb([0x1a, 0x08, 0x0a, 0, 255, 0]), { readLength: 255 });
    expectGood(before, 'victim MODE SENSE');
    assert.equal(before.data[4 + 2] & 0x04, 0, "the victim's LU still answers fixed-format sense");
    assert.equal(before.data[4 + 4] & 0x08, 0, "the victim's LU is not write protected");
    await victimIntact();
    // Undo on B's LU (SWP would fail B's later writes).
    page[2] &= ~0x04;
    page[4] &= ~0x08;
    expectGood(
      await hostB.command(0, cdb([0x15, 0x10, 0, 0, param.length, 0]), { dataOut: Buffer.concat([Buffer.alloc(4), page]) }),
      'MODE SELECT back',
    );
  });

  test("SET TARGET PORT GROUPS reaches only the issuer's own LU: the victim stays active/optimized", async () => {
    // Target port group 1 (this gateway) to standby (state 2): on B's own LU only.
    const stpg = (state: number) => Buffer.from([0, 0, 0, 0, state, 0, 0, 1]);
    const stpgCdb = (len: number) => cdb([0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, len, 0, 0]);
    assert.deepEqual(
      senseTriple(await hostB.command(1, stpgCdb(8), { dataOut: stpg(2) })),
      [0x05, 0x25, 0x00],
      'a LUN outside the map is not supported',
    );
    expectGood(await hostB.command(0, stpgCdb(8), { dataOut: stpg(2) }), "STPG standby on B's LU");
    try {
      // B's own LU now refuses I/O through this port (NOT READY, TARGET PORT IN STANDBY STATE)...
      assert.deepEqual(senseTriple(await hostB.command(0, cdb([0x00, 0, 0, 0, 0, 0]))), [0x02, 0x04, 0x0b]);
      // ...the victim's does not, and it gets no unit attention from B's change.
      await victimIntact();
    } finally {
      expectGood(await hostB.command(0, stpgCdb(8), { dataOut: stpg(0) }), 'STPG back to active/optimized');
    }
  });

  // ------------------------------------------------------------------ what a host can learn

  test('REPORT LUNS and INQUIRY: a host sees only its own LUNs, designators and serial numbers', async () => {
    const luns = async (i: Initiator) => {
      const r = await i.command(0, cdb([0xa0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0]), { readLength: 4096 });
      expectGood(r, 'REPORT LUNS');
      const n = r.data.readUInt32BE(0) / 8;
      return Array.from({ length: n }, (_, k) => r.data.readUInt16BE(8 + 8 * k) & 0x3fff);
    };
    assert.deepEqual(await luns(hostB), [0]);
    assert.deepEqual(await luns(victim), [0, 1]);
    assert.deepEqual(await luns(labReader), [0]);
    const std = await hostB.command(1, cdb([0x12, 0, 0, 0, 96, 0]), { readLength: 96 });
    expectGood(std, 'INQUIRY on LUN 1');
    assert.equal(std.data[0], 0x7f, 'LUN 1 is "not present" to B');
    assert.deepEqual(
      senseTriple(await hostB.command(1, cdb([0x12, 1, 0x83, 0, 255, 0]), { readLength: 255 })),
      [0x05, 0x25, 0x00],
      'no VPD pages of LUN 1',
    );
    const vpd = await hostB.command(0, cdb([0x12, 1, 0x83, 0x10, 0, 0]), { readLength: 4096 });
    expectGood(vpd, "VPD 0x83 of B's LUN 0");
    assert.ok(vpd.data.includes(identity('db-b').naa), "B's own designator");
    for (const other of ['db-a', 'db-a2', 'db-c', 'scratch']) assert.ok(!vpd.data.includes(identity(other).naa), `not ${other}'s`);
    const serial = await hostB.command(0, cdb([0x12, 1, 0x80, 0, 255, 0]), { readLength: 255 });
    assert.equal(
      serial.data
        .subarray(4, 4 + serial.data[3])
        .toString('latin1')
        .trim(),
      identity('db-b').serial,
    );
  });

  test('discovery lists only the targets an initiator may use; SendTargets for another target answers nothing', async () => {
    const asStranger = await Initiator.connect({ host: t.host, port: t.port, initiatorName: STRANGER });
    try {
      assert.deepEqual(
        (await asStranger.sendTargets()).map((x) => x.name),
        [LAB],
      );
    } finally {
      asStranger.close();
    }
    const asB = await Initiator.connect({ host: t.host, port: t.port, initiatorName: B });
    try {
      assert.deepEqual((await asB.sendTargets()).map((x) => x.name).sort(), [LAB, SAN].sort());
    } finally {
      asB.close();
    }
    assert.deepEqual(await labReader.sendTargets(SAN), [], 'SendTargets=<SAN> in a LAB session of an unlisted initiator');
    assert.deepEqual(await labReader.sendTargets('All'), [], 'SendTargets=All outside a Discovery session');
  });

  test('metrics name no initiator and no secret', async () => {
    const m = new TargetMetrics(t.server);
    const text = await m.registry.metrics();
    for (const s of [A, B, C, A_CHAP.secret, B_CHAP.secret, 'host-a', 'host-b'])
      assert.ok(!text.includes(s), `metrics do not contain ${s}`);
  });

  // ------------------------------------------------------------------ login, logout, reinstatement

  test("login: A's name without its secret, a second connection to A's TSIH, and A's ISID elsewhere leave A's session alone", async () => {
    const noSecret = await RawPeer.connect(t.host, t.port);
    const r1 = await noSecret.login({ initiatorName: A, targetName: SAN, isid: victim.isid });
    assert.ok(!r1.ok && r1.statusClass === 0x02, 'A without CHAP is refused (initiator error class)');
    noSecret.close();
    const join = await RawPeer.connect(t.host, t.port);
    const r2 = await join.login({ initiatorName: A, targetName: SAN, isid: victim.isid, tsih: victim.tsih });
    assert.ok(!r2.ok, "adding a connection to the victim's session is refused");
    join.close();
    // Same name and ISID on the open target: a session of its own, which ends by itself.
    const lab = await RawPeer.connect(t.host, t.port);
    const r3 = await lab.login({ initiatorName: A, targetName: LAB, isid: victim.isid });
    assert.ok(r3.ok);
    lab.send({ op: Op.LogoutRequest, immediate: true, reason: 0, itt: 9, cid: 0, cmdSN: r3.cmdSN, expStatSN: 0, data: Buffer.alloc(0) });
    assert.ok(await lab.closesWithin(3000));
    await victimIntact();
  });

  // ------------------------------------------------------------------ Data-Out

  /**
   * A 64 KiB WRITE(10) to `scratch` at `lba` whose Data-Out the attacker shapes; expects a
   * Reject (protocol error) and CHECK CONDITION for it, and nothing written there.
   */
  async function badWrite(
    name: string,
    lba: number,
    sendData: (h: RawHost, itt: number, r2t: R2T | undefined) => void,
    opts: { operational?: Array<[string, string]>; unsolicited?: boolean } = {},
  ): Promise<void> {
    await plantVictimData();
    const h = await RawHost.login(t, `${STRANGER}-${name}`, LAB, opts.operational);
    try {
      const itt = h.command(write10(lba, 128), { write: 64 * 1024, final: !opts.unsolicited });
      const r2t = opts.unsolicited ? undefined : await h.r2t(itt);
      sendData(h, itt, r2t);
      const res = await h.response(itt);
      assert.equal(res.status, 0x02, `${name}: the WRITE ends with CHECK CONDITION`);
      assert.ok(
        h.rejects().some((r) => r.reason === 0x04),
        `${name}: a Reject (protocol error) names the bad Data-Out`,
      );
    } finally {
      h.close();
    }
    const back = await scratch(lba, 64 * 1024);
    assertNoVictimBytes(back, name);
    assert.ok(back.equals(Buffer.alloc(64 * 1024)), `${name}: nothing was written`);
  }

  const piece = (n: number, fill = 0x41) => Buffer.alloc(n, fill);

  test("Data-Out: 128 PDUs that all carry offset 0 are refused; nothing (no other host's data above all) reaches the volume", async () => {
    await badWrite('offset-0', 20000, (h, itt, r2t) => {
      for (let i = 0; i < 128; i++) h.dataOut(itt, r2t!.ttt, 0, piece(512), i, i === 127);
    });
    await victimIntact();
  });

  test('Data-Out: gaps, overlaps, data past the R2T, DataSN skips and a misplaced F bit are each a protocol error, never a write', async () => {
    const cases: Array<[string, (h: RawHost, itt: number, r2t: R2T | undefined) => void]> = [
      [
        'gap',
        (h, itt, r) => {
          h.dataOut(itt, r!.ttt, 0, piece(4096), 0, false);
          h.dataOut(itt, r!.ttt, 8192, piece(57344), 1, true);
        },
      ],
      [
        'overlap',
        (h, itt, r) => {
          h.dataOut(itt, r!.ttt, 0, piece(32768), 0, false);
          h.dataOut(itt, r!.ttt, 16384, piece(49152), 1, true);
        },
      ],
      [
        'past the R2T',
        (h, itt, r) => {
          h.dataOut(itt, r!.ttt, 0, piece(61440), 0, false);
          h.dataOut(itt, r!.ttt, 61440, piece(8192), 1, true);
        },
      ],
      [
        'DataSN skip',
        (h, itt, r) => {
          h.dataOut(itt, r!.ttt, 0, piece(32768), 0, false);
          h.dataOut(itt, r!.ttt, 32768, piece(32768), 2, true);
        },
      ],
      [
        'F bit early',
        (h, itt, r) => {
          h.dataOut(itt, r!.ttt, 0, piece(32768), 0, true);
          h.dataOut(itt, r!.ttt, 32768, piece(32768), 1, true);
        },
      ],
      [
        'no F bit at the end',
        (h, itt, r) => {
          h.dataOut(itt, r!.ttt, 0, piece(65536), 0, false);
        },
      ],
      [
        'unsolicited while InitialR2T=Yes',
        (h, itt) => {
          h.dataOut(itt, RESERVED_TAG, 0, piece(65536), 0, true);
        },
      ],
    ];
    let lba = 21000;
    for (const [name, send] of cases) {
      await badWrite(name, lba, send);
      lba += 256;
    }
    await victimIntact();
  });

  test('Data-Out: unsolicited data must fill the first burst exactly, in order', async () => {
    const initialR2TNo: Array<[string, string]> = [
      ['InitialR2T', 'No'],
      ['FirstBurstLength', '65536'],
    ];
    await badWrite(
      'past the first burst',
      24000,
      (h, itt) => {
        h.dataOut(itt, RESERVED_TAG, 0, piece(32768), 0, false);
        h.dataOut(itt, RESERVED_TAG, 32768, piece(40960), 1, true);
      },
      { operational: initialR2TNo, unsolicited: true },
    );
    await badWrite(
      'unsolicited repeated offset',
      24256,
      (h, itt) => {
        for (let i = 0; i < 8; i++) h.dataOut(itt, RESERVED_TAG, 0, piece(8192), i, i === 7);
      },
      { operational: initialR2TNo, unsolicited: true },
    );
    await victimIntact();
  });

  test('Data-Out: a WRITE whose data stops half-way, then the connection drops, writes nothing', async () => {
    await plantVictimData();
    const h = await RawHost.login(t, `${STRANGER}-half`, LAB);
    const itt = h.command(write10(25000, 128), { write: 64 * 1024 });
    const r2t = await h.r2t(itt);
    h.dataOut(itt, r2t.ttt, 0, piece(32768), 0, false);
    await new Promise((r) => setTimeout(r, 50));
    h.close();
    await new Promise((r) => setTimeout(r, 100));
    const back = await scratch(25000, 64 * 1024);
    assert.ok(back.equals(Buffer.alloc(64 * 1024)), 'nothing was written');
    await victimIntact();
  });

  test("Data-Out with another command's Target Transfer Tag is rejected and lands nowhere", async () => {
    await plantVictimData();
    const h = await RawHost.login(t, `${STRANGER}-ttt`, LAB);
    try {
      const i1 = h.command(write10(26000, 16), { write: 8192 });
      const r1 = await h.r2t(i1);
      const i2 = h.command(write10(26100, 16), { write: 8192 });
      const r2 = await h.r2t(i2);
      h.dataOut(i1, r2.ttt, 0, piece(8192, 0x42), 0, true);
      await h.waitFor((p): p is Reject => p.op === Op.Reject, 'a Reject');
      h.dataOut(i2, r2.ttt, 0, piece(8192, 0x43), 0, true);
      assert.equal((await h.response(i2)).status, 0, 'the second WRITE, with its own TTT, completes');
      h.dataOut(i1, r1.ttt, 0, piece(8192, 0x44), 0, true);
      assert.equal((await h.response(i1)).status, 0, 'the first, with its own TTT, completes');
    } finally {
      h.close();
    }
    assert.ok((await scratch(26000, 8192)).equals(piece(8192, 0x44)));
    assert.ok((await scratch(26100, 8192)).equals(piece(8192, 0x43)));
    await victimIntact();
  });

  // ------------------------------------------------------------------ shared budgets

  test("write budget: a host that takes R2Ts for 20 MiB of WRITEs and sends no data is dropped; the victim's WRITE goes through", async () => {
    const h = await RawHost.login(t, `${STRANGER}-hoard-w`, LAB);
    try {
      for (let i = 0; i < 20; i++) h.command(write10(i * 2048, 2048), { write: MiB });
      await h.waitFor((p): p is R2T => p.op === Op.R2T && p.itt === 0x100 + 15 + 1, 'R2Ts for 16 MiB');
      const started = Date.now();
      const data = pattern(MiB, 7);
      await victim.write(0, 8192, data);
      const waited = Date.now() - started;
      assert.ok(await h.peer.closesWithin(1000), 'the hoarding connection was closed');
      assert.ok(waited < STALL_MS + 2500, `the victim's WRITE waited ${waited} ms, about limits.stallTimeout at most`);
      assert.ok((await victim.read(0, 8192, 2048)).equals(data));
    } finally {
      h.close();
    }
    await victimIntact();
  });

  test("read budget: a host that asks for 64 MiB of READs and never reads its socket is dropped; the victim's READ goes through", async () => {
    const h = await RawHost.login(t, `${STRANGER}-hoard-r`, LAB);
    try {
      h.peer.socket.pause();
      for (let i = 0; i < 64; i++) h.command(read10((i % 16) * 2048, 2048), { read: MiB });
      await new Promise((r) => setTimeout(r, 300));
      const started = Date.now();
      assert.ok((await victim.read(0, 0, SECRET.length / 512)).equals(SECRET));
      for (let i = 0; i < 4; i++) await victim.read(0, 0, 2048);
      const waited = Date.now() - started;
      assert.ok(waited < STALL_MS + 2500, `the victim's READs waited ${waited} ms`);
      await waitUntil(
        () => ![...t.server.sessions.keys()].some((s) => s.initiatorName === `${STRANGER}-hoard-r`),
        'the hoarding session ends',
        STALL_MS + 3000,
      );
    } finally {
      h.close();
    }
    await victimIntact();
  });

  // ------------------------------------------------------------------ buffers

  test("buffers: reads of never-written blocks and Data-In padding carry no other host's bytes", async () => {
    await plantVictimData();
    const h = await RawHost.login(t, `${STRANGER}-pad`, LAB);
    try {
      const big = h.command(read10(30000, 512), { read: 256 * 1024 });
      await h.waitFor((p): p is Pdu => p.op === Op.DataIn && p.itt === big && p.hasStatus, 'the last Data-In');
      const datas = h.peer.received.filter((p) => p.op === Op.DataIn && p.itt === big);
      const got = Buffer.concat(datas.map((p) => (p as { data: Buffer }).data));
      assert.equal(got.length, 256 * 1024);
      assert.ok(got.equals(Buffer.alloc(256 * 1024)), 'never-written blocks read as zeros');
      // INQUIRY with an allocation length of 5: 5 data bytes and 3 padding bytes on the wire.
      const before = Buffer.concat(h.peer.receivedBytes).length;
      const inq = h.command(cdb([0x12, 0, 0, 0, 5, 0]), { read: 5 });
      await h.waitFor((p): p is Pdu => (p.op === Op.DataIn || p.op === Op.ScsiResponse) && p.itt === inq, 'INQUIRY data');
      await new Promise((r) => setTimeout(r, 20));
      const wire = Buffer.concat(h.peer.receivedBytes).subarray(before);
      assert.equal(wire.length, 48 + 8, 'one Data-In: BHS, 5 bytes, 3 of padding');
      assert.deepEqual([...wire.subarray(48 + 5)], [0, 0, 0], 'padding is zeros');
      assert.equal(wire.readUIntBE(5, 3), 5);
    } finally {
      h.close();
    }
    assert.ok(dataBuffers.idleBytes >= 0);
    await victimIntact();
  });

  // ------------------------------------------------------------------ real clients

  describe('with libiscsi', { skip: requireTools(['iscsi-ls', 'iscsi-inq', 'iscsi-readcapacity16']) }, () => {
    test("a stranger discovers only the open target; A's name without its secret reads nothing", async () => {
      const portal = `${t.host}:${t.port}`;
      const ls = await runAsync('iscsi-ls', ['-i', STRANGER, `iscsi://${portal}`], 20000);
      assert.equal(ls.code, 0, ls.out);
      assert.match(ls.out, new RegExp(`Target:${LAB.replaceAll('.', '\\.')} `));
      assert.doesNotMatch(ls.out, /san1/);
      const inq = await runAsync('iscsi-inq', ['-i', A, `iscsi://${portal}/${SAN}/0`], 20000);
      assert.notEqual(inq.code, 0, inq.out);
      const wrong = await runAsync('iscsi-readcapacity16', ['-i', A, `iscsi://host-a%wrong-secret-12@${portal}/${SAN}/0`], 20000);
      assert.notEqual(wrong.code, 0, wrong.out);
      const other = await runAsync('iscsi-readcapacity16', ['-i', B, `iscsi://host-b%${B_CHAP.secret}@${portal}/${SAN}/1`], 20000);
      assert.notEqual(other.code, 0, `B's LUN 1 does not exist: ${other.out}`);
      const own = await runAsync('iscsi-readcapacity16', ['-i', B, `iscsi://host-b%${B_CHAP.secret}@${portal}/${SAN}/0`], 20000);
      assert.equal(own.code, 0, own.out);
      assert.match(own.out, /Total size:16777216\n/);
      await victimIntact();
    });
  });
});

async function waitUntil(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
