// Authentication edges against a real target (issue 14): the strongest CHAP algorithm is
// chosen whatever the order of the initiator's list, a config can require SHA-256 (per ACL
// and globally), mutual CHAP challenges and CHAP_I are checked, and a peer that is not
// authenticated cannot tell whether a TSIH exists.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Initiator, LoginError } from '../../src/initiator/initiator';
import { chapResponse, decodeBinary, encodeHex } from '../../src/iscsi/chap';
import { Op, type LoginRequest, type LoginResponse } from '../../src/iscsi/pdu/messages';
import { encodeTextKeys, parseTextKeys } from '../../src/iscsi/pdu/text';
import { RawPeer } from '../../tools/raw-peer';
import { memoryVolume, startTarget, type TestTarget } from '../helpers/target';
import { requireTools, runAsync } from '../helpers/daemon';

const OPEN = 'iqn.2026-11.io.example:open';
const SAN = 'iqn.2026-11.io.example:san';
const STRICT = 'iqn.2026-11.io.example:strict';
const A = 'iqn.1994-05.com.redhat:host-a';
const S = 'iqn.1994-05.com.redhat:host-s';
const CHAP_A = { user: 'host-a', secret: 'host-a-secret-1' };
const MUTUAL_A = { user: 'san', secret: 'san-target-secret' };
const CHAP_S = { user: 'host-s', secret: 'host-s-secret-1' };

/** One login step over a raw socket: the Login Response and its keys. */
async function step(
  peer: RawPeer,
  keys: Array<[string, string]>,
  over: Partial<LoginRequest> = {},
): Promise<{ res: LoginResponse; keys: Map<string, string> }> {
  const from = peer.received.length;
  peer.send({
    op: Op.LoginRequest,
    transit: false,
    cont: false,
    csg: 0,
    nsg: 1,
    versionMax: 0,
    versionMin: 0,
    isid: Buffer.from([0x80, 1, 2, 3, 4, 5]),
    tsih: 0,
    itt: 1,
    cid: 0,
    cmdSN: 1,
    expStatSN: 0,
    data: encodeTextKeys(keys),
    ...over,
  });
  const r = await peer.waitFor((p) => p.op === Op.LoginResponse, 5000, from);
  assert.ok(r && r.op === Op.LoginResponse, 'no login response');
  return { res: r, keys: new Map(parseTextKeys(r.data)) };
}

describe('authentication edges', () => {
  let t: TestTarget;
  before(async () => {
    const vols = [memoryVolume('v-open', 8 << 20), memoryVolume('v-a', 8 << 20), memoryVolume('v-s', 8 << 20)];
    t = await startTarget({
      volumes: vols,
      targets: [
        { iqn: OPEN, luns: new Map([[0, 'v-open']]), acls: [] },
        { iqn: SAN, luns: new Map(), acls: [{ initiator: A, luns: new Map([[0, 'v-a']]), chap: CHAP_A, mutual: MUTUAL_A }] },
        {
          iqn: STRICT,
          luns: new Map(),
          acls: [{ initiator: S, luns: new Map([[0, 'v-s']]), chap: { ...CHAP_S, minAlgorithm: 'sha256' } }],
        },
      ],
    });
  });
  after(() => t.stop());

  test('CHAP_A=5,7 gets SHA-256 (7), not the MD5 listed first', async () => {
    const peer = await RawPeer.connect(t.host, t.port);
    const lead: Array<[string, string]> = [
      ['InitiatorName', A],
      ['SessionType', 'Normal'],
      ['TargetName', SAN],
      ['AuthMethod', 'CHAP'],
    ];
    assert.equal((await step(peer, lead)).keys.get('AuthMethod'), 'CHAP');
    const ch = await step(peer, [['CHAP_A', '5,7']]);
    assert.equal(ch.keys.get('CHAP_A'), '7');
    assert.equal(decodeBinary(ch.keys.get('CHAP_C')!)!.length, 32);
    peer.socket.destroy();
    // And the login completes with it, mutual CHAP included.
    const ini = await Initiator.connect({
      host: t.host,
      port: t.port,
      targetName: SAN,
      initiatorName: A,
      chap: CHAP_A,
      mutual: MUTUAL_A,
      chapAlgorithms: '5,7',
    });
    await ini.logout();
  });

  test('an ACL that requires SHA-256 refuses MD5 and SHA-1 only initiators (libiscsi offers MD5 only)', async () => {
    await assert.rejects(
      Initiator.connect({ host: t.host, port: t.port, targetName: STRICT, initiatorName: S, chap: CHAP_S, chapAlgorithms: '5,6' }),
      (e: unknown) => e instanceof LoginError && e.statusClass === 2 && e.statusDetail === 1,
    );
    const ok = await Initiator.connect({
      host: t.host,
      port: t.port,
      targetName: STRICT,
      initiatorName: S,
      chap: CHAP_S,
      chapAlgorithms: '5,7',
    });
    await ok.logout();
    const missing = requireTools(['iscsi-ls']);
    if (missing) return;
    // (the target runs in this process: the tools must run asynchronously)
    const r = await runAsync('iscsi-ls', ['-s', '-i', S, `iscsi://${CHAP_S.user}%${CHAP_S.secret}@${t.host}:${t.port}/${STRICT}/0`], 30000);
    assert.notEqual(r.code, 0, r.out);
    assert.match(r.out, /Authentication failure/);
    const md5Ok = await runAsync(
      'iscsi-ls',
      ['-s', '-i', A, `iscsi://${CHAP_A.user}%${CHAP_A.secret}@${t.host}:${t.port}/${SAN}/0`],
      30000,
    );
    assert.equal(md5Ok.code, 0, `an ACL without a floor still takes libiscsi's MD5: ${md5Ok.out}`);
  });

  test('security.minChapAlgorithm: sha256 is a floor for every ACL', async () => {
    const g = await startTarget({
      volumes: [memoryVolume('v', 8 << 20)],
      targets: [{ iqn: SAN, luns: new Map(), acls: [{ initiator: A, luns: new Map([[0, 'v']]), chap: CHAP_A }] }],
      config: { security: { minChapAlgorithm: 'sha256' } },
    });
    try {
      await assert.rejects(
        Initiator.connect({ host: g.host, port: g.port, targetName: SAN, initiatorName: A, chap: CHAP_A, chapAlgorithms: '5' }),
        LoginError,
      );
      const ok = await Initiator.connect({
        host: g.host,
        port: g.port,
        targetName: SAN,
        initiatorName: A,
        chap: CHAP_A,
        chapAlgorithms: '7',
      });
      await ok.logout();
    } finally {
      await g.stop();
    }
  });

  test('mutual CHAP over the wire: short, long, all-zero, repeated challenges and odd CHAP_I are refused', async () => {
    const attempt = async (id: string, challenge: Buffer) => {
      const peer = await RawPeer.connect(t.host, t.port);
      await step(peer, [
        ['InitiatorName', A],
        ['SessionType', 'Normal'],
        ['TargetName', SAN],
        ['AuthMethod', 'CHAP'],
      ]);
      const c = await step(peer, [['CHAP_A', '7']]);
      const r = chapResponse(7, Number(c.keys.get('CHAP_I')), Buffer.from(CHAP_A.secret), decodeBinary(c.keys.get('CHAP_C')!)!);
      const last = await step(
        peer,
        [
          ['CHAP_N', CHAP_A.user],
          ['CHAP_R', encodeHex(r)],
          ['CHAP_I', id],
          ['CHAP_C', encodeHex(challenge)],
        ],
        { transit: true },
      );
      peer.socket.destroy();
      return { status: (last.res.statusClass << 8) | last.res.statusDetail, ourResponse: last.keys.get('CHAP_R') };
    };
    for (const [id, ch] of [
      ['1', randomBytes(1)],
      ['1', Buffer.alloc(16)],
      ['1', randomBytes(2000)],
      ['', randomBytes(32)],
      ['1e2', randomBytes(32)],
      ['0x10', randomBytes(32)],
    ] as const) {
      const r = await attempt(id, ch);
      assert.equal(r.status, 0x0201, `CHAP_I ${JSON.stringify(id)}, ${ch.length} bytes`);
      assert.equal(r.ourResponse, undefined, 'the target answered it');
    }
    const once = randomBytes(32);
    const first = await attempt('9', once);
    assert.equal(first.status, 0);
    assert.ok(first.ourResponse);
    assert.equal((await attempt('10', once)).status, 0x0201, 'the same challenge again');
  });

  test('an unlisted peer gets the same answer for a live TSIH and an unknown one', async () => {
    const live = await Initiator.connect({ host: t.host, port: t.port, targetName: SAN, initiatorName: A, chap: CHAP_A });
    try {
      const tsih = live.tsih;
      const answer = async (value: number) => {
        const peer = await RawPeer.connect(t.host, t.port);
        const r = await step(
          peer,
          [
            ['InitiatorName', 'iqn.1994-05.com.example:intruder'],
            ['SessionType', 'Normal'],
            ['TargetName', SAN],
            ['AuthMethod', 'None'],
          ],
          { tsih: value, transit: true },
        );
        peer.socket.destroy();
        return { status: (r.res.statusClass << 8) | r.res.statusDetail, data: r.res.data.length, tsih: r.res.tsih };
      };
      const unknown = tsih === 0xffff ? 0xfffe : tsih + 1000;
      assert.deepEqual(await answer(tsih), await answer(unknown));
      assert.equal((await answer(tsih)).status, 0x0202);
      // Posing as the ACL's initiator without its CHAP secret tells nothing either.
      const impostor = async (value: number) => {
        const peer = await RawPeer.connect(t.host, t.port);
        await step(
          peer,
          [
            ['InitiatorName', A],
            ['SessionType', 'Normal'],
            ['TargetName', SAN],
            ['AuthMethod', 'CHAP'],
          ],
          { tsih: value },
        );
        await step(peer, [['CHAP_A', '7']], { tsih: value });
        const r = await step(
          peer,
          [
            ['CHAP_N', CHAP_A.user],
            ['CHAP_R', encodeHex(randomBytes(32))],
          ],
          { tsih: value, transit: true },
        );
        peer.socket.destroy();
        return (r.res.statusClass << 8) | r.res.statusDetail;
      };
      assert.deepEqual([await impostor(tsih), await impostor(unknown)], [0x0201, 0x0201]);
      // The open target: no authentication at all, so one's own session is the only one that shows.
      const r = await answer(tsih);
      assert.equal(r.status, 0x0202);
    } finally {
      await live.logout();
    }
  });
});
