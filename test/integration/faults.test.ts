// Faults: a connection cut in the middle of Data-Out and of Data-In, then the initiator
// logs in again with the same ISID (session reinstatement) and finds its data consistent;
// a volume on a full filesystem answers DATA PROTECT / SPACE ALLOCATION FAILED and the
// target keeps serving. (EIO -> MEDIUM ERROR is covered in test/unit/scsi-sbc.test.ts
// with an injected backstore fault.)

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Initiator, ScsiError, senseOf } from '../../src/initiator/initiator';
import { Op, type R2T } from '../../src/iscsi/pdu/messages';
import { RawPeer } from '../../tools/raw-peer';
import { fileVolume, startTarget, memoryVolume, TARGET, type TestTarget } from '../helpers/target';
import { dataOut, scsiCommand } from '../helpers/pdu';

const NAME = 'iqn.2026-11.io.iscsi-target:faults';
const ISID = Buffer.from([0x80, 0x12, 0x34, 0x56, 0x78, 0x9a]);
const LBA = 4096;
const BLOCKS = 2048; // 1 MiB

function rw16(op: number, lba: number, blocks: number): Buffer {
  const cdb = Buffer.alloc(16);
  cdb[0] = op;
  cdb.writeBigUInt64BE(BigInt(lba), 2);
  cdb.writeUInt32BE(blocks, 10);
  return cdb;
}

describe('connection cuts and reinstatement', () => {
  let t: TestTarget;
  let p1: Buffer;
  before(async () => {
    t = await startTarget({ volumes: [memoryVolume('vol0', 64 * 1024 * 1024)] });
    const a = await Initiator.connect({ host: t.host, port: t.port, targetName: TARGET, initiatorName: NAME, isid: ISID });
    await a.testUnitReady(0);
    p1 = randomBytes(BLOCKS * 512);
    await a.write(0, LBA, p1);
    assert.equal(await a.logout(), 0);
  });
  after(async () => t.stop());

  const relogin = async () => {
    const ini = await Initiator.connect({ host: t.host, port: t.port, targetName: TARGET, initiatorName: NAME, isid: ISID });
    await ini.testUnitReady(0);
    return ini;
  };

  test('cut mid Data-Out: the half-received write is not applied; after re-login the old data reads back', async () => {
    const peer = await RawPeer.connect(t.host, t.port);
    const r = await peer.login({ initiatorName: NAME, targetName: TARGET, isid: ISID });
    assert.ok(r.ok);
    const p2 = randomBytes(BLOCKS * 512);
    peer.send(
      scsiCommand({
        write: true,
        itt: 0x10,
        expectedDataLength: p2.length,
        cmdSN: r.cmdSN,
        cdb: rw16(0x8a, LBA, BLOCKS),
        data: p2.subarray(0, 8192),
      }),
    );
    const r2t = (await peer.waitFor((p) => p.op === Op.R2T)) as R2T | undefined;
    assert.ok(r2t, 'the target asks for the rest');
    peer.send(
      dataOut({
        final: false,
        itt: 0x10,
        ttt: r2t.ttt,
        bufferOffset: r2t.bufferOffset,
        data: p2.subarray(r2t.bufferOffset, r2t.bufferOffset + 65536),
      }),
    );
    await new Promise((res) => setTimeout(res, 50));
    peer.close(); // the cable is pulled

    const b = await relogin();
    assert.deepEqual(await b.read(0, LBA, BLOCKS), p1, 'no torn write: the old data is intact');
    await b.write(0, LBA, p2);
    assert.deepEqual(await b.read(0, LBA, BLOCKS), p2, 'the reinstated session writes and reads');
    p1 = p2;
    assert.equal(await b.logout(), 0);
  });

  test('cut mid Data-In: the target survives, a re-login with the same ISID reads consistent data', async () => {
    const peer = await RawPeer.connect(t.host, t.port);
    const r = await peer.login({ initiatorName: NAME, targetName: TARGET, isid: ISID, extraKeys: [['MaxRecvDataSegmentLength', '8192']] });
    assert.ok(r.ok);
    // TEST UNIT READY first: a new nexus's first command gets the POWER ON unit attention.
    peer.send(scsiCommand({ itt: 0x1f, cmdSN: r.cmdSN }));
    assert.ok(await peer.waitFor((p) => p.op === Op.ScsiResponse && p.itt === 0x1f));
    peer.send(scsiCommand({ read: true, itt: 0x20, expectedDataLength: BLOCKS * 512, cmdSN: r.cmdSN + 1, cdb: rw16(0x88, LBA, BLOCKS) }));
    assert.ok(await peer.waitFor((p) => p.op === Op.DataIn), 'Data-In starts flowing');
    peer.close(); // cut with most of the 128 Data-In PDUs still to come

    // Logging in again while the old session may still be there: reinstatement.
    const b = await relogin();
    assert.deepEqual(await b.read(0, LBA, BLOCKS), p1);
    const p3 = randomBytes(BLOCKS * 512);
    await b.write(0, LBA, p3);
    assert.deepEqual(await b.read(0, LBA, BLOCKS), p3);
    const mine = [...t.server.sessions.keys()].filter((s) => s.initiatorName === NAME);
    assert.equal(mine.length, 1, 'only the new session is left');
    assert.equal(await b.logout(), 0);
  });

  test('a session reinstated while its old connection is still open: the old one is closed, data consistent', async () => {
    const old = await relogin();
    const p4 = randomBytes(BLOCKS * 512);
    await old.write(0, LBA, p4, 512, true);
    const b = await relogin(); // same ISID: reinstatement
    await new Promise((res) => setTimeout(res, 100));
    assert.equal(old.isClosed, true, 'the old connection was closed by the target');
    assert.deepEqual(await b.read(0, LBA, BLOCKS), p4);
    assert.equal(await b.logout(), 0);
  });
});

/** Mount a 2 MiB tmpfs (needs root / CAP_SYS_ADMIN); undefined when this system does not let us. */
function mountSmallTmpfs(): string | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-full-'));
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', dir], { encoding: 'utf8' });
  if (r.status !== 0) {
    fs.rmdirSync(dir);
    return undefined;
  }
  return dir;
}

const fullFs = mountSmallTmpfs();

test(
  'a volume on a full filesystem: DATA PROTECT / SPACE ALLOCATION FAILED WRITE PROTECT (27/07), and service goes on',
  { skip: fullFs ? false : 'cannot mount a tmpfs here (needs root); ENOSPC mapping is unit-tested with an injected fault' },
  async () => {
    const dir = fullFs!;
    let t: TestTarget | undefined;
    try {
      // 8 MiB sparse volume on a 2 MiB filesystem.
      t = await startTarget({ volumes: [fileVolume('thin', path.join(dir, 'thin.img'), 8 * 1024 * 1024)] });
      const ini = await Initiator.connect({ host: t.host, port: t.port, targetName: TARGET });
      await ini.testUnitReady(0);
      const chunk = 256 * 1024;
      const written: Buffer[] = [];
      let failure: ScsiError | undefined;
      for (let i = 0; i < 32; i++) {
        const d = randomBytes(chunk);
        try {
          await ini.write(0, (i * chunk) / 512, d);
          written.push(d);
        } catch (e) {
          failure = e as ScsiError;
          break;
        }
      }
      assert.ok(failure instanceof ScsiError, 'a write fails once the filesystem is full');
      assert.equal(failure.result.status, 0x02);
      assert.deepEqual(senseOf(failure.result.sense), { key: 0x7, asc: 0x27, ascq: 0x07 });
      assert.ok(written.length >= 4 && written.length <= 8, `${written.length} of 32 chunks fit on 2 MiB`);
      // Still serving: what was written reads back, TEST UNIT READY is good, overwrites work.
      assert.equal((await ini.testUnitReady(0, 1)).status, 0);
      for (let i = 0; i < written.length; i++) assert.deepEqual(await ini.read(0, (i * chunk) / 512, chunk / 512), written[i]);
      const again = randomBytes(chunk);
      await ini.write(0, 0, again);
      assert.deepEqual(await ini.read(0, 0, chunk / 512), again);
      // UNMAP gives space back; the write that failed now succeeds.
      const unmap = Buffer.alloc(24);
      unmap.writeUInt16BE(22, 0);
      unmap.writeUInt16BE(16, 2);
      unmap.writeBigUInt64BE(BigInt(chunk / 512), 8);
      unmap.writeUInt32BE((2 * chunk) / 512, 16);
      const u = await ini.command(0, Buffer.from([0x42, 0, 0, 0, 0, 0, 0, 0, 24, 0]), { dataOut: unmap });
      assert.equal(u.status, 0);
      const late = randomBytes(chunk);
      await ini.write(0, (written.length * chunk) / 512, late);
      assert.deepEqual(await ini.read(0, (written.length * chunk) / 512, chunk / 512), late);
      assert.equal(await ini.logout(), 0);
    } finally {
      await t?.stop();
      spawnSync('umount', [dir]);
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);
