// End to end through the built-in initiator: login, discovery, data round trips,
// R2T paths, digests, many sessions, reinstatement, TMF, NOP and logout.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Initiator, LoginError, senseOf } from '../../src/initiator/initiator';
import { startTarget, memoryVolume, TARGET, type TestTarget } from '../helpers/target';

describe('target over TCP', () => {
  let t: TestTarget;
  before(async () => {
    t = await startTarget({
      volumes: [memoryVolume('vol0', 64 * 1024 * 1024), memoryVolume('vol1', 8 * 1024 * 1024)],
      targets: [
        {
          iqn: TARGET,
          luns: new Map([
            [0, 'vol0'],
            [1, 'vol1'],
          ]),
          acls: [],
        },
      ],
    });
  });
  after(async () => t.stop());

  const connect = (extra: Partial<Parameters<typeof Initiator.connect>[0]> = {}) =>
    Initiator.connect({ host: t.host, port: t.port, targetName: TARGET, ...extra });

  test('discovery lists the target with its portal and TPGT', async () => {
    const ini = await Initiator.connect({ host: t.host, port: t.port });
    const targets = await ini.sendTargets('All');
    assert.deepEqual(targets, [{ name: TARGET, addresses: [`127.0.0.1:${t.port},1`] }]);
    assert.equal(await ini.logout(), 0);
  });

  test('login negotiates the offered limits', async () => {
    const ini = await connect();
    assert.equal(ini.negotiated.TargetPortalGroupTag, '1');
    assert.equal(ini.negotiated.MaxRecvDataSegmentLength, '262144');
    assert.equal(ini.negotiated.ImmediateData, 'Yes');
    assert.equal(ini.negotiated.InitialR2T, 'No');
    assert.equal(ini.negotiated.MaxBurstLength, '16776192');
    assert.ok(ini.tsih > 0);
    assert.ok(((ini.maxCmdSN - ini.expCmdSN) >>> 0) + 1 >= 128, 'queue depth at least 128');
    await ini.logout();
  });

  test('unknown target is refused with 0x0203', async () => {
    await assert.rejects(
      Initiator.connect({ host: t.host, port: t.port, targetName: 'iqn.2026-11.io.nowhere:none' }),
      (e: unknown) => e instanceof LoginError && e.statusClass === 2 && e.statusDetail === 3,
    );
  });

  test('first command sees POWER ON unit attention, then GOOD', async () => {
    const ini = await connect();
    const first = await ini.command(0, Buffer.alloc(6));
    assert.equal(first.status, 2);
    assert.deepEqual(senseOf(first.sense), { key: 6, asc: 0x29, ascq: 0 });
    const second = await ini.command(0, Buffer.alloc(6));
    assert.equal(second.status, 0);
    await ini.logout();
  });

  test('read capacity reports both LUNs', async () => {
    const ini = await connect();
    await ini.testUnitReady(0);
    await ini.testUnitReady(1);
    assert.deepEqual(await ini.readCapacity(0), { blocks: 131072n, blockSize: 512 });
    assert.deepEqual(await ini.readCapacity(1), { blocks: 16384n, blockSize: 512 });
    await ini.logout();
  });

  for (const variant of [
    { name: 'immediate + unsolicited', keys: [] as Array<[string, string]> },
    {
      name: 'InitialR2T=Yes, no immediate data, small bursts',
      keys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'No'],
        ['MaxBurstLength', '16384'],
        ['FirstBurstLength', '8192'],
      ] as Array<[string, string]>,
    },
    { name: 'CRC32C digests', keys: [] as Array<[string, string]>, digests: true },
    { name: 'small MaxRecvDataSegmentLength', keys: [] as Array<[string, string]>, mrdsl: 4096 },
  ]) {
    test(`write/read round trip: ${variant.name}`, async () => {
      const ini = await connect({
        loginKeys: variant.keys,
        headerDigest: variant.digests,
        dataDigest: variant.digests,
        maxRecvDataSegmentLength: variant.mrdsl,
      });
      await ini.testUnitReady(0);
      for (const blocks of [1, 7, 8, 128, 513, 2048, 4096]) {
        const data = randomBytes(blocks * 512);
        const lba = blocks * 3;
        await ini.write(0, lba, data);
        const back = await ini.read(0, lba, blocks);
        assert.ok(back.equals(data), `${blocks} blocks round trip`);
      }
      await ini.logout();
    });
  }

  test('reads are split by the initiator MaxRecvDataSegmentLength with status in the last Data-In', async () => {
    const ini = await connect({ maxRecvDataSegmentLength: 8192 });
    await ini.testUnitReady(0);
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x28;
    cdb.writeUInt16BE(64, 7); // 32 KiB
    const r = await ini.command(0, cdb, { readLength: 32768 });
    assert.equal(r.status, 0);
    assert.equal(r.dataInPdus, 4);
    assert.equal(r.statusInDataIn, true);
    assert.equal(r.data.length, 32768);
    await ini.logout();
  });

  test('residual underflow and overflow on READ(10)', async () => {
    const ini = await connect();
    await ini.testUnitReady(0);
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x28;
    cdb.writeUInt16BE(1, 7);
    const under = await ini.command(0, cdb, { readLength: 1024 });
    assert.equal(under.status, 0);
    assert.equal(under.underflow, true);
    assert.equal(under.residual, 512);
    const over = await ini.command(0, cdb, { readLength: 200 });
    assert.equal(over.status, 0);
    assert.equal(over.overflow, true);
    assert.equal(over.residual, 312);
    assert.equal(over.data.length, 200);
    await ini.logout();
  });

  test('an unimplemented opcode gets ILLEGAL REQUEST / INVALID COMMAND OPERATION CODE', async () => {
    const ini = await connect();
    await ini.testUnitReady(0);
    const cdb = Buffer.alloc(10);
    cdb[0] = 0xd7; // vendor specific, never implemented
    const r = await ini.command(0, cdb);
    assert.equal(r.status, 2);
    assert.deepEqual(senseOf(r.sense), { key: 5, asc: 0x20, ascq: 0 });
    await ini.logout();
  });

  test('a LUN not mapped gets LOGICAL UNIT NOT SUPPORTED', async () => {
    const ini = await connect();
    const r = await ini.command(7, Buffer.alloc(6));
    assert.equal(r.status, 2);
    assert.deepEqual(senseOf(r.sense), { key: 5, asc: 0x25, ascq: 0 });
    await ini.logout();
  });

  test('many commands in flight at once on one session', async () => {
    const ini = await connect();
    await ini.testUnitReady(0);
    const blocks = 16;
    const writes = Array.from({ length: 200 }, (_, i) => ({ lba: 100000 + i * blocks, data: randomBytes(blocks * 512) }));
    await Promise.all(writes.map((w) => ini.write(0, w.lba, w.data)));
    const reads = await Promise.all(writes.map((w) => ini.read(0, w.lba, blocks)));
    reads.forEach((r, i) => assert.ok(r.equals(writes[i].data), `write ${i}`));
    await ini.logout();
  });

  test('many sessions at once, each verifying its own region', async () => {
    const inis = await Promise.all(Array.from({ length: 16 }, () => connect()));
    await Promise.all(
      inis.map(async (ini, i) => {
        await ini.testUnitReady(0);
        const data = randomBytes(64 * 1024);
        await ini.write(0, 50000 + i * 128, data);
        assert.ok((await ini.read(0, 50000 + i * 128, 128)).equals(data));
      }),
    );
    await Promise.all(inis.map((i) => i.logout()));
  });

  test('same ISID logging in again reinstates: the old session is closed', async () => {
    const a = await connect();
    const b = await connect({ isid: a.isid });
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(a.isClosed, true);
    await b.testUnitReady(0);
    assert.equal((await b.command(0, Buffer.alloc(6))).status, 0);
    await b.logout();
  });

  test('NOP-Out is echoed', async () => {
    const ini = await connect();
    const ping = randomBytes(100);
    assert.ok((await ini.nop(ping)).equals(ping));
    await ini.logout();
  });

  test('ABORT TASK of a write waiting for data, then the session still works', async () => {
    const ini = await connect({
      loginKeys: [
        ['InitialR2T', 'Yes'],
        ['ImmediateData', 'No'],
      ],
    });
    await ini.testUnitReady(0);
    // Send a WRITE(10) by hand and never answer its R2T.
    const cdb = Buffer.alloc(10);
    cdb[0] = 0x2a;
    cdb.writeUInt16BE(8, 7);
    const pendingWrite = ini.command(0, cdb, { dataOut: Buffer.alloc(4096), holdData: true });
    pendingWrite.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
    const itt = ini.lastCommandItt;
    assert.equal(await ini.taskManagement(1, 0, itt), 0);
    assert.equal(await ini.taskManagement(1, 0, 0x7000), 1, 'unknown task');
    assert.equal((await ini.command(0, Buffer.alloc(6))).status, 0);
    await ini.logout();
  });

  test('LUN RESET gives other sessions a unit attention', async () => {
    const a = await connect();
    const b = await connect();
    await a.testUnitReady(0);
    await b.testUnitReady(0);
    assert.equal(await a.taskManagement(5, 0), 0);
    const r = await b.command(0, Buffer.alloc(6));
    assert.equal(r.status, 2);
    assert.equal(senseOf(r.sense)?.key, 6);
    assert.equal(senseOf(r.sense)?.asc, 0x29);
    await a.logout();
    await b.logout();
  });

  test('text request in full-feature phase: SendTargets of this session', async () => {
    const ini = await connect();
    const pairs = await ini.text([['SendTargets', '']]);
    assert.deepEqual(pairs[0], ['TargetName', TARGET]);
    await ini.logout();
  });
});

test('stopping the server with a session still logged in ends it and returns', { timeout: 20000 }, async () => {
  const t = await startTarget();
  const ini = await Initiator.connect({ host: t.host, port: t.port, targetName: TARGET });
  await ini.testUnitReady(0);
  await t.stop();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(ini.isClosed, true);
});
