import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chapResponse, decodeBinary, encodeHex } from '../../src/iscsi/chap';
import { LoginPhase, LoginStatus, type LoginHost } from '../../src/iscsi/login';
import { DEFAULT_LIMITS } from '../../src/iscsi/negotiation';
import { Op, type LoginRequest } from '../../src/iscsi/pdu/messages';
import { encodeTextKeys, parseTextKeys } from '../../src/iscsi/pdu/text';

const TARGET = 'iqn.2026-11.io.example:disk';
const INITIATOR = 'iqn.1994-05.com.redhat:host-a';

function host(over: Partial<LoginHost> = {}): LoginHost {
  return {
    limits: DEFAULT_LIMITS,
    tpgt: 1,
    targetExists: (n) => (n.toLowerCase() === TARGET ? TARGET : undefined),
    mayAccess: (_t, i) => i === INITIATOR,
    chapFor: () => undefined,
    sessionExists: () => false,
    ...over,
  };
}

function req(csg: number, nsg: number, transit: boolean, keys: Array<[string, string]>, over: Partial<LoginRequest> = {}): LoginRequest {
  return {
    op: Op.LoginRequest,
    transit,
    cont: false,
    csg,
    nsg,
    versionMax: 0,
    versionMin: 0,
    isid: Buffer.from('80123456789a', 'hex'),
    tsih: 0,
    itt: 7,
    cid: 0,
    cmdSN: 100,
    expStatSN: 0,
    data: encodeTextKeys(keys),
    ...over,
  };
}

const leading: Array<[string, string]> = [
  ['InitiatorName', INITIATOR],
  ['SessionType', 'Normal'],
  ['TargetName', TARGET],
  ['AuthMethod', 'None'],
];

test('security then operational stage to full feature, with TSIH and our declarations', () => {
  const login = new LoginPhase(host(), () => 42);
  const s1 = login.handle(req(0, 1, true, leading));
  assert.equal(s1.failed, undefined);
  const r1 = s1.responses[0];
  assert.equal(r1.transit, true);
  assert.equal(r1.csg, 0);
  assert.equal(r1.nsg, 1);
  assert.equal(r1.tsih, 0);
  assert.equal(r1.statusClass, 0);
  const k1 = new Map(parseTextKeys(r1.data));
  assert.equal(k1.get('AuthMethod'), 'None');
  assert.equal(k1.get('TargetPortalGroupTag'), '1');

  const s2 = login.handle(
    req(1, 3, true, [
      ['HeaderDigest', 'CRC32C,None'],
      ['MaxRecvDataSegmentLength', '131072'],
      ['ImmediateData', 'Yes'],
    ]),
  );
  const r2 = s2.responses[0];
  assert.equal(r2.transit, true);
  assert.equal(r2.nsg, 3);
  assert.equal(r2.tsih, 42);
  assert.equal(r2.statSN, r1.statSN + 1);
  assert.equal(r2.expCmdSN, 100);
  assert.equal(r2.maxCmdSN, 100 + DEFAULT_LIMITS.queueDepth - 1);
  const k2 = new Map(parseTextKeys(r2.data));
  assert.equal(k2.get('HeaderDigest'), 'CRC32C');
  assert.equal(k2.get('MaxRecvDataSegmentLength'), String(DEFAULT_LIMITS.maxRecvDataSegmentLength));
  assert.ok(s2.outcome);
  assert.equal(s2.outcome.initiatorName, INITIATOR);
  assert.equal(s2.outcome.targetName, TARGET);
  assert.equal(s2.outcome.tsih, 42);
  assert.equal(s2.outcome.params.headerDigest, true);
  assert.equal(s2.outcome.params.maxSendDataSegmentLength, 131072);
});

function failsWith(keys: Array<[string, string]>, status: number, over: Partial<LoginRequest> = {}, h = host()) {
  const step = new LoginPhase(h, () => 1).handle(req(0, 1, true, keys, over));
  assert.ok(step.failed, 'login must fail');
  const r = step.responses[0];
  assert.equal((r.statusClass << 8) | r.statusDetail, status);
  assert.equal(r.transit, false);
}

test('failures carry the right status class and detail', () => {
  failsWith([['TargetName', TARGET]], LoginStatus.MissingParameter);
  failsWith([['InitiatorName', INITIATOR]], LoginStatus.MissingParameter);
  failsWith(
    [
      ['InitiatorName', INITIATOR],
      ['TargetName', 'iqn.2026-11.io.example:nothing'],
    ],
    LoginStatus.NotFound,
  );
  failsWith(
    [
      ['InitiatorName', 'iqn.1994-05.com.redhat:intruder'],
      ['TargetName', TARGET],
    ],
    LoginStatus.AuthorizationFailure,
  );
  failsWith(leading, LoginStatus.UnsupportedVersion, { versionMin: 1, versionMax: 2 });
  failsWith(
    [
      ['InitiatorName', INITIATOR],
      ['SessionType', 'Sideways'],
    ],
    LoginStatus.SessionTypeNotSupported,
  );
  failsWith(leading, LoginStatus.SessionDoesNotExist, { tsih: 9 });
  failsWith(leading, LoginStatus.InitiatorError, { nsg: 0 });
});

test('a target that requires CHAP refuses a login that skips the security stage', () => {
  failsWith(leading, LoginStatus.AuthFailure, { csg: 1, nsg: 3 }, host({ chapFor: () => ({ chap: { user: 'u', secret: 'twelve-chars!' } }) }));
});

test('discovery session needs no TargetName', () => {
  const login = new LoginPhase(host(), () => 5);
  const s = login.handle(
    req(0, 3, true, [
      ['InitiatorName', INITIATOR],
      ['SessionType', 'Discovery'],
      ['AuthMethod', 'None'],
      ['InitialR2T', 'No'],
    ]),
  );
  assert.equal(s.failed, undefined);
  assert.equal(s.outcome?.sessionType, 'Discovery');
  const k = new Map(parseTextKeys(s.responses[0].data));
  assert.equal(k.get('InitialR2T'), 'Irrelevant');
  assert.equal(k.has('TargetPortalGroupTag'), false);
});

test('initiator text split across PDUs with the C bit is reassembled', () => {
  const login = new LoginPhase(host(), () => 1);
  const whole = encodeTextKeys(leading);
  const a = login.handle(req(0, 1, false, [], { cont: true, data: whole.subarray(0, 20) }));
  assert.equal(a.responses[0].data.length, 0);
  assert.equal(a.responses[0].transit, false);
  const b = login.handle(req(0, 1, true, [], { data: whole.subarray(20) }));
  assert.equal(b.failed, undefined);
  assert.equal(new Map(parseTextKeys(b.responses[0].data)).get('AuthMethod'), 'None');
});

test('a long answer is split with the C bit and continued on empty requests', () => {
  const login = new LoginPhase(host(), () => 1);
  login.handle(req(0, 1, true, leading));
  // 600 unknown keys: the NotUnderstood answers exceed 8192 bytes.
  const many = Array.from({ length: 600 }, (_, i) => [`X-com.example.key${i}`, 'v'] as [string, string]);
  const first = login.handle(req(1, 3, true, many));
  const r1 = first.responses[0];
  assert.equal(r1.cont, true);
  assert.equal(r1.transit, false);
  assert.equal(r1.data.length, 8192);
  const parts = [r1.data];
  let step = login.handle(req(1, 3, true, []));
  while (step.responses[0].cont) {
    parts.push(step.responses[0].data);
    step = login.handle(req(1, 3, true, []));
  }
  parts.push(step.responses[0].data);
  assert.ok(step.outcome, 'login completes after the last piece');
  const keys = parseTextKeys(Buffer.concat(parts));
  assert.equal(keys.filter(([, v]) => v === 'NotUnderstood').length, 600);
});

// ---------------------------------------------------------------- CHAP


const CREDS = { chap: { user: 'host-a', secret: 'host-a-secret-1' }, mutual: { user: 'san1', secret: 'target-secret-16' } };

/** Run the security stage up to the target's challenge; returns the phase and the challenge. */
function challenged(algorithms = '7,5') {
  const login = new LoginPhase(host({ chapFor: () => CREDS }), () => 9);
  const a = login.handle(req(0, 1, false, [...leading.slice(0, 3), ['AuthMethod', 'CHAP,None']]));
  assert.equal(a.failed, undefined);
  assert.equal(new Map(parseTextKeys(a.responses[0].data)).get('AuthMethod'), 'CHAP');
  const b = login.handle(req(0, 1, false, [['CHAP_A', algorithms]]));
  const k = new Map(parseTextKeys(b.responses[0].data));
  return {
    login,
    alg: Number(k.get('CHAP_A')),
    id: Number(k.get('CHAP_I')),
    challenge: decodeBinary(k.get('CHAP_C')!)!,
  };
}

test('CHAP: the first algorithm offered that we support; challenges are random and sized to the hash', () => {
  const sha = challenged('7,5');
  assert.equal(sha.alg, 7);
  assert.equal(sha.challenge.length, 32);
  const md5 = challenged('5');
  assert.equal(md5.alg, 5);
  assert.equal(md5.challenge.length, 16);
  assert.notDeepEqual(challenged('5').challenge, md5.challenge);
});

test('CHAP: a right answer lets the login transit; a wrong one is an authentication failure', () => {
  const ok = challenged();
  const r = chapResponse(ok.alg, ok.id, Buffer.from(CREDS.chap.secret), ok.challenge);
  const step = ok.login.handle(req(0, 1, true, [['CHAP_N', 'host-a'], ['CHAP_R', encodeHex(r)]]));
  assert.equal(step.failed, undefined);
  assert.equal(step.responses[0].transit, true);

  const bad = challenged();
  const wrong = chapResponse(bad.alg, bad.id, Buffer.from('not-the-secret'), bad.challenge);
  const f = bad.login.handle(req(0, 1, true, [['CHAP_N', 'host-a'], ['CHAP_R', encodeHex(wrong)]]));
  assert.equal(f.failed?.status, LoginStatus.AuthFailure);
});

test('CHAP: no algorithm in common, or the response missing, fails authentication', () => {
  const login = new LoginPhase(host({ chapFor: () => CREDS }), () => 9);
  login.handle(req(0, 1, false, [...leading.slice(0, 3), ['AuthMethod', 'CHAP']]));
  assert.equal(login.handle(req(0, 1, false, [['CHAP_A', '6,99']])).failed?.status, LoginStatus.AuthFailure);
  const c = challenged();
  assert.equal(c.login.handle(req(0, 1, true, [['CHAP_N', 'host-a']])).failed?.status, LoginStatus.AuthFailure);
});

test('mutual CHAP: the target answers the initiator challenge with its own secret; a reflected challenge is refused', () => {
  const m = challenged();
  const r = chapResponse(m.alg, m.id, Buffer.from(CREDS.chap.secret), m.challenge);
  const mine = Buffer.alloc(32, 0x42);
  const step = m.login.handle(
    req(0, 1, true, [['CHAP_N', 'host-a'], ['CHAP_R', encodeHex(r)], ['CHAP_I', '17'], ['CHAP_C', encodeHex(mine)]]),
  );
  assert.equal(step.failed, undefined);
  const k = new Map(parseTextKeys(step.responses[0].data));
  assert.equal(k.get('CHAP_N'), 'san1');
  assert.deepEqual(decodeBinary(k.get('CHAP_R')!), chapResponse(m.alg, 17, Buffer.from(CREDS.mutual.secret), mine));

  const refl = challenged();
  const rr = chapResponse(refl.alg, refl.id, Buffer.from(CREDS.chap.secret), refl.challenge);
  const f = refl.login.handle(
    req(0, 1, true, [['CHAP_N', 'host-a'], ['CHAP_R', encodeHex(rr)], ['CHAP_I', '3'], ['CHAP_C', encodeHex(refl.challenge)]]),
  );
  assert.equal(f.failed?.status, LoginStatus.AuthFailure);
  assert.match(f.failed!.reason, /reflected/);
});
