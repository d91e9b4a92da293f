// Hostile and broken peers over raw sockets: each gets a Reject or a closed connection
// (RFC 7143), within bounded memory and time, while an honest session keeps working.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { Initiator } from '../../src/initiator/initiator';
import { Op, RESERVED_TAG, type InitiatorPdu, type Reject } from '../../src/iscsi/pdu/messages';
import { encodePduToBuffer } from '../../src/iscsi/pdu/serializer';
import { RawPeer, rssMiB } from '../../tools/raw-peer';
import { startTarget, memoryVolume, TARGET, type TestTarget } from '../helpers/target';
import { scsiCommand } from '../helpers/pdu';

const INI = 'iqn.2026-11.io.iscsi-target:hostile';

function write16(lba: number, blocks: number): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = 0x8a;
  cdb.writeBigUInt64BE(BigInt(lba), 2);
  cdb.writeUInt32BE(blocks, 10);
  return cdb;
}

function nopOut(cmdSN: number, itt: number, immediate = false): InitiatorPdu {
  return { op: Op.NopOut, immediate, lun: 0n, itt, ttt: RESERVED_TAG, cmdSN, expStatSN: 0, data: Buffer.alloc(0) };
}

describe('hostile peers', () => {
  let t: TestTarget;
  /** An honest session that must keep working through every test. */
  let honest: Initiator;
  let honestRegion = 0;

  before(async () => {
    t = await startTarget({
      volumes: [memoryVolume('vol0', 64 * 1024 * 1024)],
      server: {
        bounds: {
          maxLoginConnections: 24,
          maxLoginConnectionsPerAddress: 24,
          maxSessions: 6,
          maxImmediateCommands: 4,
          connectionBufferBytes: 8 * 1024 * 1024,
        },
        timeouts: { loginMs: 600 },
      },
    });
    honest = await Initiator.connect({ host: t.host, port: t.port, targetName: TARGET, initiatorName: `${INI}:honest` });
    await honest.testUnitReady(0);
  });
  after(async () => {
    honest.close();
    await t.stop();
  });

  /** The honest session writes and reads back a fresh pattern. */
  async function honestStillWorks(): Promise<void> {
    const lba = 1000 + (honestRegion++ % 64) * 16;
    const data = randomBytes(8192);
    await honest.write(0, lba, data);
    assert.deepEqual(await honest.read(0, lba, 16), data, 'the honest session reads back what it wrote');
  }

  async function rawSession(name: string, isid?: Buffer): Promise<{ peer: RawPeer; cmdSN: number }> {
    const peer = await RawPeer.connect(t.host, t.port);
    const r = await peer.login({ initiatorName: `${INI}:${name}`, targetName: TARGET, isid });
    assert.ok(r.ok, `login of ${name} succeeds`);
    return { peer, cmdSN: r.cmdSN };
  }

  test('DataSegmentLength above MaxRecvDataSegmentLength: Reject (protocol error) with the BHS, then close', async () => {
    const { peer, cmdSN } = await rawSession('too-long');
    const pdu = encodePduToBuffer(
      scsiCommand({ cmdSN, write: true, expectedDataLength: 1 << 20, cdb: write16(0, 2048), immediate: false, final: false }),
      { headerDigest: false, dataDigest: false },
    );
    // Announce 262144 + 512 bytes (we negotiated 262144) but send only a little of it.
    pdu[5] = 0x04;
    pdu[6] = 0x02;
    pdu[7] = 0x00;
    peer.write(Buffer.concat([pdu.subarray(0, 48), Buffer.alloc(4096)]));
    const rej = (await peer.waitFor((p) => p.op === Op.Reject)) as Reject | undefined;
    assert.ok(rej, 'a Reject arrives');
    assert.equal(rej.reason, 0x04);
    assert.deepEqual(rej.data, pdu.subarray(0, 48), 'the Reject carries the offending BHS');
    assert.ok(await peer.closesWithin(3000), 'then the connection closes');
    await honestStillWorks();
  });

  test('during login a data segment above 8192 bytes closes the connection', async () => {
    const peer = await RawPeer.connect(t.host, t.port);
    const pdu = encodePduToBuffer(
      {
        op: Op.LoginRequest,
        transit: true,
        cont: false,
        csg: 0,
        nsg: 1,
        versionMax: 0,
        versionMin: 0,
        isid: Buffer.from([0x80, 0, 0, 0, 0, 9]),
        tsih: 0,
        itt: 1,
        cid: 0,
        cmdSN: 1,
        expStatSN: 0,
        data: Buffer.alloc(8196, 0x41),
      },
      { headerDigest: false, dataDigest: false },
    );
    peer.write(pdu);
    assert.ok(await peer.closesWithin(3000));
    assert.equal(peer.received.length, 0, 'nothing is answered');
    await honestStillWorks();
  });

  test('TotalAHSLength on a PDU that carries no AHS closes; an AHS running past it closes', async () => {
    const a = await rawSession('ahs-a');
    const nop = encodePduToBuffer(nopOut(a.cmdSN, 5), { headerDigest: false, dataDigest: false });
    nop[4] = 255; // 1020 bytes of AHS on a NOP-Out
    a.peer.write(Buffer.concat([nop, Buffer.alloc(1020)]));
    assert.ok(await a.peer.closesWithin(3000));

    const b = await rawSession('ahs-b');
    const cmd = encodePduToBuffer(scsiCommand({ cmdSN: b.cmdSN, itt: 7 }), { headerDigest: false, dataDigest: false });
    cmd[4] = 1; // 4 bytes of AHS whose own length says 0xffff
    b.peer.write(Buffer.concat([cmd.subarray(0, 48), Buffer.from([0xff, 0xff, 0x01, 0x00])]));
    assert.ok(await b.peer.closesWithin(3000));
    await honestStillWorks();
  });

  test('a login that never finishes is closed by the login timeout; so is a silent connection', async () => {
    const started = Date.now();
    const silent = await RawPeer.connect(t.host, t.port);
    const half = await RawPeer.connect(t.host, t.port);
    half.send({
      op: Op.LoginRequest,
      transit: false,
      cont: false,
      csg: 0,
      nsg: 0,
      versionMax: 0,
      versionMin: 0,
      isid: Buffer.from([0x80, 0, 0, 0, 0, 3]),
      tsih: 0,
      itt: 1,
      cid: 0,
      cmdSN: 1,
      expStatSN: 0,
      data: Buffer.from('InitiatorName=iqn.2026-11.x:half\0SessionType=Normal\0TargetName=' + TARGET + '\0AuthMethod=None\0'),
    });
    assert.ok(await half.waitFor((p) => p.op === Op.LoginResponse), 'the first step is answered');
    assert.ok(await silent.closesWithin(3000), 'silent connection closed');
    assert.ok(await half.closesWithin(3000), 'half-done login closed');
    assert.ok(Date.now() - started < 3000);
    await honestStillWorks();
  });

  test('a flood of idle connections: the oldest beyond the login budget are closed, the rest time out, service goes on', async () => {
    const peers: RawPeer[] = [];
    for (let i = 0; i < 40; i++) peers.push(await RawPeer.connect(t.host, t.port));
    await new Promise((r) => setTimeout(r, 200));
    // 24 connections in login at most; the honest session is logged in and does not count.
    const closed = peers.map((p) => p.closed);
    assert.deepEqual(closed, [...Array(16).fill(true), ...Array(24).fill(false)], 'the 16 oldest were closed, the 24 newest kept');
    assert.equal(t.server.loginConnections, 24);
    await honestStillWorks(); // the honest session is not disturbed by the flood
    await Promise.all(peers.map((p) => p.closesWithin(3000)));
    assert.ok(
      peers.every((p) => p.closed),
      'idle connections closed by the login timeout',
    );
    const after = await Initiator.connect({ host: t.host, port: t.port, targetName: TARGET, initiatorName: `${INI}:after-flood` });
    await after.testUnitReady(0);
    assert.equal(await after.logout(), 0);
  });

  test('maxSessions: one more login gets "out of resources" (0x0302); reinstatement is still allowed', async () => {
    const open: RawPeer[] = [];
    const isids: Buffer[] = [];
    // The honest session is one of the 6.
    for (let i = 0; i < 5; i++) {
      const isid = Buffer.from([0x80, 0, 0, 0, 1, i]);
      isids.push(isid);
      open.push((await rawSession(`many-${i}`, isid)).peer);
    }
    const extra = await RawPeer.connect(t.host, t.port);
    const r = await extra.login({ initiatorName: `${INI}:one-too-many`, targetName: TARGET });
    assert.equal(r.ok, false);
    assert.equal((r.statusClass << 8) | r.statusDetail, 0x0302);
    assert.ok(await extra.closesWithin(3000));
    // Same initiator and ISID again: reinstatement replaces a session, so it is let in.
    const again = await RawPeer.connect(t.host, t.port);
    const r2 = await again.login({ initiatorName: `${INI}:many-0`, targetName: TARGET, isid: isids[0] });
    assert.ok(r2.ok, 'reinstatement allowed at the session limit');
    assert.ok(await open[0].closesWithin(3000), 'the reinstated session is closed');
    for (const p of [...open, again]) p.close();
    await honestStillWorks();
  });

  test('a million commands outside the CmdSN window are dropped; memory stays bounded', async () => {
    const { peer, cmdSN } = await rawSession('million');
    const conn = [...t.server.sessions.values()].find((c) => c.session?.initiatorName === `${INI}:million`)!;
    const rssBefore = rssMiB();
    // 128 in-window commands after a gap (CmdSN+1 ...), then 1,000,000 far outside.
    const batch: Buffer[] = [];
    for (let i = 1; i <= 200; i++)
      batch.push(encodePduToBuffer(nopOut((cmdSN + i) >>> 0, 100 + i), { headerDigest: false, dataDigest: false }));
    peer.write(Buffer.concat(batch));
    const template = encodePduToBuffer(nopOut(0, 0), { headerDigest: false, dataDigest: false });
    const per = 10000;
    let sent = 0;
    while (sent < 1_000_000) {
      const chunk = Buffer.allocUnsafe(per * 48);
      for (let i = 0; i < per; i++) {
        template.copy(chunk, i * 48);
        chunk.writeUInt32BE(1000 + sent + i, 16); // ITT
        chunk.writeUInt32BE((cmdSN + 0x40000000 + sent + i) >>> 0, 24); // CmdSN far outside
      }
      sent += per;
      if (!peer.write(chunk)) await new Promise((r) => peer.socket.once('drain', r));
    }
    // An in-order NOP-Out (with a reply wanted) fills the gap: everything queued runs now.
    const from = peer.received.length;
    peer.send(nopOut(cmdSN, 42));
    const reply = await peer.waitFor((p) => p.op === Op.NopIn && p.itt === 42, 20000, from);
    assert.ok(reply, 'the in-window command is answered after the flood');
    const usage = conn.usage;
    assert.ok(usage.pendingPdus <= 128, `queued PDUs bounded by the window (${usage.pendingPdus})`);
    // Replies: the one in-order NOP, plus the in-window ones (at most the window); none for the million.
    await new Promise((r) => setTimeout(r, 200));
    const nopIns = peer.received.slice(from).filter((p) => p.op === Op.NopIn).length;
    assert.ok(nopIns <= 129, `only in-window commands answered (${nopIns})`);
    const grown = rssMiB() - rssBefore;
    assert.ok(grown < 100, `RSS grew ${grown} MiB`);
    peer.close();
    await honestStillWorks();
  });

  test('too many immediate commands: Reject reason 0x06', async () => {
    const { peer, cmdSN } = await rawSession('immediate');
    // Writes whose data never comes stay running; 4 may run at once (maxImmediateCommands).
    for (let i = 0; i < 8; i++) {
      peer.send(
        scsiCommand({ immediate: true, cmdSN, itt: 200 + i, write: true, final: true, expectedDataLength: 4096, cdb: write16(i * 8, 8) }),
      );
    }
    const rejects = async () => {
      await peer.waitFor(() => false, 500);
      return peer.received.filter((p): p is Reject => p.op === Op.Reject);
    };
    const r = await rejects();
    assert.equal(r.length, 4, 'the 4 beyond the bound are rejected');
    assert.ok(r.every((x) => x.reason === 0x06));
    assert.equal(peer.closed, false, 'the connection stays up');
    peer.close();
    await honestStillWorks();
  });

  test('per-connection buffer budget: a command beyond it gets TASK SET FULL', async () => {
    const { peer, cmdSN } = await rawSession('budget');
    // Two 4 MiB writes (data never sent) fill the 8 MiB budget; the third is refused.
    for (let i = 0; i < 3; i++) {
      peer.send(
        scsiCommand({
          cmdSN: cmdSN + i,
          itt: 300 + i,
          write: true,
          final: true,
          expectedDataLength: 4 << 20,
          cdb: write16(i * 8192, 8192),
        }),
      );
    }
    const resp = await peer.waitFor((p) => p.op === Op.ScsiResponse && p.itt === 302);
    assert.ok(resp && resp.op === Op.ScsiResponse);
    assert.equal(resp.status, 0x28, 'TASK SET FULL');
    assert.equal(peer.received.filter((p) => p.op === Op.ScsiResponse).length, 1, 'the first two still wait for data');
    peer.close();
    await honestStillWorks();
  });

  test('endless continued Text Request: Reject once past 64 KiB, connection kept', async () => {
    const { peer, cmdSN } = await rawSession('text');
    for (let i = 0; i < 20; i++) {
      peer.send({
        op: Op.TextRequest,
        immediate: true,
        final: false,
        cont: true,
        lun: 0n,
        itt: 400,
        ttt: RESERVED_TAG,
        cmdSN,
        expStatSN: 0,
        data: Buffer.alloc(8192, 0x41),
      });
    }
    const rej = (await peer.waitFor((p) => p.op === Op.Reject)) as Reject | undefined;
    assert.ok(rej);
    assert.equal(rej.reason, 0x04);
    peer.close();
  });

  test('endless continued Login Request: login fails with initiator error', async () => {
    const peer = await RawPeer.connect(t.host, t.port);
    for (let i = 0; i < 12; i++) {
      peer.send({
        op: Op.LoginRequest,
        transit: false,
        cont: true,
        csg: 0,
        nsg: 0,
        versionMax: 0,
        versionMin: 0,
        isid: Buffer.from([0x80, 0, 0, 0, 0, 4]),
        tsih: 0,
        itt: 1,
        cid: 0,
        cmdSN: 1,
        expStatSN: 0,
        data: Buffer.alloc(8192, 0x41),
      });
    }
    const r = await peer.waitFor((p) => p.op === Op.LoginResponse && p.statusClass !== 0);
    assert.ok(r && r.op === Op.LoginResponse);
    assert.equal((r.statusClass << 8) | r.statusDetail, 0x0200);
    assert.ok(await peer.closesWithin(3000));
  });

  test('random garbage from a fresh TCP connection closes it without an answer', async () => {
    const s = net.connect({ host: t.host, port: t.port });
    await new Promise((r) => s.once('connect', r));
    let got = 0;
    s.on('data', (c) => (got += c.length));
    s.on('error', () => undefined);
    s.write(randomBytes(4096));
    await new Promise((r) => s.once('close', r));
    assert.equal(got, 0);
    await honestStillWorks();
  });
});

describe('NOP-In ping timeout', () => {
  test('default: an idle peer that never answers pings stays connected (data is not owed)', async () => {
    const t = await startTarget({ server: { timeouts: { nopIntervalMs: 100, nopTimeoutMs: 200 } } });
    try {
      const peer = await RawPeer.connect(t.host, t.port);
      assert.ok((await peer.login({ initiatorName: `${INI}:idle`, targetName: TARGET })).ok);
      assert.ok(await peer.waitFor((p) => p.op === Op.NopIn && p.itt === RESERVED_TAG, 3000), 'pinged');
      assert.equal(await peer.closesWithin(1500), false, 'still connected');
      peer.close();
    } finally {
      await t.stop();
    }
  });

  test('a peer that owes Data-Out and never answers is dropped', async () => {
    const t = await startTarget({ server: { timeouts: { nopIntervalMs: 100, nopTimeoutMs: 200 } } });
    try {
      const peer = await RawPeer.connect(t.host, t.port);
      const r = await peer.login({ initiatorName: `${INI}:owes`, targetName: TARGET });
      peer.send(scsiCommand({ cmdSN: r.cmdSN, itt: 9, write: true, final: true, expectedDataLength: 4096, cdb: write16(0, 8) }));
      assert.ok(await peer.closesWithin(3000), 'dropped');
    } finally {
      await t.stop();
    }
  });

  test('limits.dropIdlePeers: an idle peer that never answers is dropped too', async () => {
    const t = await startTarget({ server: { timeouts: { nopIntervalMs: 100, nopTimeoutMs: 200 }, bounds: { dropIdlePeers: true } } });
    try {
      const peer = await RawPeer.connect(t.host, t.port);
      assert.ok((await peer.login({ initiatorName: `${INI}:idle2`, targetName: TARGET })).ok);
      assert.ok(await peer.closesWithin(3000), 'dropped');
      // An initiator that answers pings (ours does) is kept.
      const ini = await Initiator.connect({ host: t.host, port: t.port, targetName: TARGET });
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(ini.isClosed, false);
      await ini.testUnitReady(0);
      ini.close();
    } finally {
      await t.stop();
    }
  });
});
