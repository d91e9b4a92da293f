// Access control end to end: each host its own volume as LUN 0, CHAP and mutual
// CHAP, refusals, and discovery that hides what an initiator may not use.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Initiator, LoginError } from '../../src/initiator/initiator';
import { startTarget, memoryVolume, type TestTarget } from '../helpers/target';

const SAN = 'iqn.2026-11.io.example:san1';
const A = 'iqn.1994-05.com.redhat:host-a';
const B = 'iqn.1994-05.com.redhat:host-b';
const C = 'iqn.1994-05.com.redhat:host-c';
const STRANGER = 'iqn.1994-05.com.redhat:stranger';
const B_CHAP = { user: 'host-b', secret: 'b-secret-0123' };
const C_CHAP = { user: 'host-c', secret: 'c-secret-4567' };
const C_MUTUAL = { user: 'san1', secret: 'target-secret-89' };

describe('ACLs and CHAP', () => {
  let t: TestTarget;
  before(async () => {
    t = await startTarget({
      volumes: [memoryVolume('db-a', 4 << 20), memoryVolume('db-b', 8 << 20), memoryVolume('db-c', 2 << 20)],
      targets: [
        {
          iqn: SAN,
          luns: new Map(),
          acls: [
            { initiator: A, luns: new Map([[0, 'db-a']]) },
            { initiator: B, luns: new Map([[0, 'db-b']]), chap: B_CHAP },
            { initiator: C, luns: new Map([[0, 'db-c']]), chap: C_CHAP, mutual: C_MUTUAL },
          ],
        },
      ],
    });
  });
  after(async () => t.stop());

  const login = (initiatorName: string, extra: Partial<Parameters<typeof Initiator.connect>[0]> = {}) =>
    Initiator.connect({ host: t.host, port: t.port, targetName: SAN, initiatorName, ...extra });

  const refused = (p: Promise<unknown>, detail: number) =>
    assert.rejects(p, (e: unknown) => e instanceof LoginError && e.statusClass === 2 && e.statusDetail === detail);

  async function reportLuns(ini: Initiator): Promise<number[]> {
    const cdb = Buffer.alloc(12);
    cdb[0] = 0xa0;
    cdb.writeUInt32BE(4096, 6);
    const r = await ini.command(0, cdb, { readLength: 4096 });
    assert.equal(r.status, 0);
    const n = r.data.readUInt32BE(0) / 8;
    return Array.from({ length: n }, (_, i) => r.data.readUInt16BE(8 + i * 8) & 0x3fff);
  }

  test('each host sees only its own volume as LUN 0, and data stays apart', async () => {
    const a = await login(A);
    const b = await login(B, { chap: B_CHAP });
    await a.testUnitReady(0);
    await b.testUnitReady(0);
    assert.deepEqual(await reportLuns(a), [0]);
    assert.deepEqual(await reportLuns(b), [0]);
    assert.deepEqual(await a.readCapacity(0), { blocks: 8192n, blockSize: 512 });
    assert.deepEqual(await b.readCapacity(0), { blocks: 16384n, blockSize: 512 });
    const da = randomBytes(4096);
    const db = randomBytes(4096);
    await a.write(0, 0, da);
    await b.write(0, 0, db);
    assert.ok((await a.read(0, 0, 8)).equals(da));
    assert.ok((await b.read(0, 0, 8)).equals(db));
    // A LUN number outside the host's map is not there.
    const other = await a.command(1, Buffer.alloc(6));
    assert.equal(other.status, 2);
    await a.logout();
    await b.logout();
  });

  test('CHAP with SHA-256 and with MD5 only', async () => {
    const sha = await login(B, { chap: B_CHAP });
    await sha.logout();
    const md5 = await login(B, { chap: B_CHAP, chapAlgorithms: '5' });
    await md5.logout();
  });

  test('B without CHAP, with a wrong secret or a wrong user is refused', async () => {
    await refused(login(B), 1);
    await refused(login(B, { chap: { user: B_CHAP.user, secret: 'wrong-secret-0' } }), 1);
    await refused(login(B, { chap: { user: 'someone', secret: B_CHAP.secret } }), 1);
  });

  test('an unlisted initiator is refused, even with a valid CHAP secret of another host', async () => {
    await refused(login(STRANGER), 2);
    await refused(login(STRANGER, { chap: B_CHAP }), 2);
  });

  test('discovery hides the target from an unlisted initiator', async () => {
    const stranger = await Initiator.connect({ host: t.host, port: t.port, initiatorName: STRANGER });
    assert.deepEqual(await stranger.sendTargets(), []);
    await stranger.logout();
    const a = await Initiator.connect({ host: t.host, port: t.port, initiatorName: A });
    assert.deepEqual(
      (await a.sendTargets()).map((x) => x.name),
      [SAN],
    );
    await a.logout();
  });

  test('mutual CHAP succeeds, and fails when the target secret is not the expected one', async () => {
    const ok = await login(C, { chap: C_CHAP, mutual: C_MUTUAL });
    await ok.testUnitReady(0);
    await ok.logout();
    await assert.rejects(
      login(C, { chap: C_CHAP, mutual: { user: C_MUTUAL.user, secret: 'not-the-target-1' } }),
      /did not prove its identity/,
    );
  });

  test('mutual CHAP asked of a target with no secret for that host is refused', async () => {
    await refused(login(B, { chap: B_CHAP, mutual: C_MUTUAL }), 1);
  });

  test('repeated login failures from one address are answered ever more slowly, a success forgives', () => {
    const delays = Array.from({ length: 9 }, () => t.server.loginFailed('192.0.2.7'));
    assert.deepEqual(delays, [0, 0, 0, 0, 0, 500, 1000, 2000, 4000]);
    assert.equal(t.server.loginFailed('192.0.2.8'), 0, 'other addresses are not affected');
    t.server.loginSucceeded('192.0.2.7');
    assert.equal(t.server.loginFailed('192.0.2.7'), 0);
  });
});
