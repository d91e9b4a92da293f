import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { ChallengeHistory, chapResponse, chooseAlgorithm, decodeBinary, encodeHex, peerChallengeProblem } from '../../src/iscsi/chap';
import { LoginPhase, LoginStatus, type LoginHost } from '../../src/iscsi/login';
import { DEFAULT_LIMITS } from '../../src/iscsi/negotiation';
import { Op, type LoginRequest } from '../../src/iscsi/pdu/messages';
import { encodeTextKeys, parseTextKeys } from '../../src/iscsi/pdu/text';

const TARGET = 'iqn.2026-11.io.example:disk';
const INITIATOR = 'iqn.1994-05.com.redhat:host-a';

function host(over: Partial<LoginHost> = {}): LoginHost {
  return {
    limits: DEFAULT_LIMITS,
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
  const login = new LoginPhase(host(), () => 42, 1);
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
  const step = new LoginPhase(h, () => 1, 1).handle(req(0, 1, true, keys, over));
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
  failsWith(
    leading,
    LoginStatus.AuthFailure,
    { csg: 1, nsg: 3 },
    host({ chapFor: () => ({ chap: { user: 'u', secret: 'twelve-chars!' } }) }),
  );
});

test('discovery session needs no TargetName', () => {
  const login = new LoginPhase(host(), () => 5, 1);
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
  const login = new LoginPhase(host(), () => 1, 1);
  const whole = encodeTextKeys(leading);
  const a = login.handle(req(0, 1, false, [], { cont: true, data: whole.subarray(0, 20) }));
  assert.equal(a.responses[0].data.length, 0);
  assert.equal(a.responses[0].transit, false);
  const b = login.handle(req(0, 1, true, [], { data: whole.subarray(20) }));
  assert.equal(b.failed, undefined);
  assert.equal(new Map(parseTextKeys(b.responses[0].data)).get('AuthMethod'), 'None');
});

test('a long answer is split with the C bit and continued on empty requests', () => {
  const login = new LoginPhase(host(), () => 1, 1);
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
  const login = new LoginPhase(host({ chapFor: () => CREDS }), () => 9, 1);
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

test('CHAP: the strongest algorithm offered; challenges are random and sized to the hash', () => {
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
  const step = ok.login.handle(
    req(0, 1, true, [
      ['CHAP_N', 'host-a'],
      ['CHAP_R', encodeHex(r)],
    ]),
  );
  assert.equal(step.failed, undefined);
  assert.equal(step.responses[0].transit, true);

  const bad = challenged();
  const wrong = chapResponse(bad.alg, bad.id, Buffer.from('not-the-secret'), bad.challenge);
  const f = bad.login.handle(
    req(0, 1, true, [
      ['CHAP_N', 'host-a'],
      ['CHAP_R', encodeHex(wrong)],
    ]),
  );
  assert.equal(f.failed?.status, LoginStatus.AuthFailure);
});

test('CHAP: no algorithm in common, or the response missing, fails authentication', () => {
  const login = new LoginPhase(host({ chapFor: () => CREDS }), () => 9, 1);
  login.handle(req(0, 1, false, [...leading.slice(0, 3), ['AuthMethod', 'CHAP']]));
  assert.equal(login.handle(req(0, 1, false, [['CHAP_A', '4,99']])).failed?.status, LoginStatus.AuthFailure);
  const c = challenged();
  assert.equal(c.login.handle(req(0, 1, true, [['CHAP_N', 'host-a']])).failed?.status, LoginStatus.AuthFailure);
});

test('mutual CHAP: the target answers the initiator challenge with its own secret; a reflected challenge is refused', () => {
  const m = challenged();
  const r = chapResponse(m.alg, m.id, Buffer.from(CREDS.chap.secret), m.challenge);
  const mine = randomBytes(32);
  const step = m.login.handle(
    req(0, 1, true, [
      ['CHAP_N', 'host-a'],
      ['CHAP_R', encodeHex(r)],
      ['CHAP_I', '17'],
      ['CHAP_C', encodeHex(mine)],
    ]),
  );
  assert.equal(step.failed, undefined);
  const k = new Map(parseTextKeys(step.responses[0].data));
  assert.equal(k.get('CHAP_N'), 'san1');
  assert.deepEqual(decodeBinary(k.get('CHAP_R')!), chapResponse(m.alg, 17, Buffer.from(CREDS.mutual.secret), mine));

  const refl = challenged();
  const rr = chapResponse(refl.alg, refl.id, Buffer.from(CREDS.chap.secret), refl.challenge);
  const f = refl.login.handle(
    req(0, 1, true, [
      ['CHAP_N', 'host-a'],
      ['CHAP_R', encodeHex(rr)],
      ['CHAP_I', '3'],
      ['CHAP_C', encodeHex(refl.challenge)],
    ]),
  );
  assert.equal(f.failed?.status, LoginStatus.AuthFailure);
  assert.match(f.failed.reason, /reflected/);
});

// ---------------------------------------------------------------- CHAP edges (issue 14)

/** The mutual CHAP step with the initiator's CHAP_I and CHAP_C as given. */
function mutualWith(id: string, challenge: string) {
  const m = challenged();
  const r = chapResponse(m.alg, m.id, Buffer.from(CREDS.chap.secret), m.challenge);
  return m.login.handle(
    req(0, 1, true, [
      ['CHAP_N', 'host-a'],
      ['CHAP_R', encodeHex(r)],
      ['CHAP_I', id],
      ['CHAP_C', challenge],
    ]),
  );
}

test('mutual CHAP: challenges under 16 or over 1024 bytes, of one repeated byte, or sent before are refused', () => {
  for (const [len, fill] of [
    [1, -1],
    [15, -1],
    [1025, -1],
    [2000, -1],
    [16, 0],
    [64, 0xff],
  ] as const) {
    const ch = fill < 0 ? randomBytes(len) : Buffer.alloc(len, fill);
    const f = mutualWith('17', encodeHex(ch));
    assert.equal(f.failed?.status, LoginStatus.AuthFailure, `${len} bytes`);
    assert.equal(f.responses[0].data.length, 0, 'nothing of ours is computed over it');
  }
  for (const len of [16, 1024]) assert.equal(mutualWith('17', encodeHex(randomBytes(len))).failed, undefined, `${len} bytes`);
  const once = randomBytes(32);
  assert.equal(mutualWith('17', encodeHex(once)).failed, undefined);
  const again = mutualWith('18', encodeHex(once));
  assert.equal(again.failed?.status, LoginStatus.AuthFailure);
  assert.match(again.failed.reason, /used before/);
  // base64 is the same challenge
  const b64 = randomBytes(32);
  assert.equal(mutualWith('1', '0b' + b64.toString('base64')).failed, undefined);
  assert.match(mutualWith('1', encodeHex(b64)).failed?.reason ?? '', /used before/);
});

test('mutual CHAP: CHAP_I must be decimal 0..255', () => {
  for (const id of ['', '1e2', '0x10', '-1', '256', '1.0', ' 7', '+3', '99999']) {
    const f = mutualWith(id, encodeHex(randomBytes(32)));
    assert.equal(f.failed?.status, LoginStatus.AuthFailure, JSON.stringify(id));
    assert.match(f.failed.reason, /CHAP_I must be decimal/);
  }
  for (const id of ['0', '255', '42', '007']) assert.equal(mutualWith(id, encodeHex(randomBytes(32))).failed, undefined, id);
});

test('CHAP: the strongest algorithm offered wins, whatever the order; a floor refuses weaker ones', () => {
  assert.equal(chooseAlgorithm('5,7'), 7);
  assert.equal(chooseAlgorithm('5,6'), 6);
  assert.equal(chooseAlgorithm('6,5,7'), 7);
  assert.equal(chooseAlgorithm('5'), 5);
  assert.equal(chooseAlgorithm('5,6', 7), undefined);
  assert.equal(chooseAlgorithm('0x07,5'), 5, 'CHAP_A values are decimal');
  assert.equal(challenged('5,7').alg, 7);
  assert.equal(challenged('5,6').alg, 6);
  assert.equal(challenged('5,6').challenge.length, 20);
  // A login whose ACL requires SHA-256 and an initiator offering MD5 and SHA-1 only.
  const strict = new LoginPhase(host({ chapFor: () => ({ ...CREDS, minAlgorithm: 7 }) }), () => 9, 1);
  strict.handle(req(0, 1, false, [...leading.slice(0, 3), ['AuthMethod', 'CHAP']]));
  const f = strict.handle(req(0, 1, false, [['CHAP_A', '5,6']]));
  assert.equal(f.failed?.status, LoginStatus.AuthFailure);
  assert.match(f.failed.reason, /at least sha256/);
});

test('a TSIH is looked at only after authentication; an unauthenticated peer gets the same answer either way', () => {
  const chapHost = (exists: boolean) => host({ chapFor: () => CREDS, sessionExists: () => exists, mayAccess: () => true });
  const answers = [true, false].map((exists) => {
    const login = new LoginPhase(chapHost(exists), () => 9, 1);
    const a = login.handle(req(0, 1, true, [...leading.slice(0, 3), ['AuthMethod', 'CHAP']], { tsih: 77 }));
    const b = a.failed ? a : login.handle(req(0, 1, false, [['CHAP_A', '7']], { tsih: 77 }));
    const bad = b.failed
      ? b
      : login.handle(
          req(
            0,
            1,
            true,
            [
              ['CHAP_N', 'host-a'],
              ['CHAP_R', '0x' + '00'.repeat(32)],
            ],
            { tsih: 77 },
          ),
        );
    return bad.failed?.status;
  });
  assert.deepEqual(answers, [LoginStatus.AuthFailure, LoginStatus.AuthFailure]);
  // Authenticated: one's own session says "too many connections", anything else "does not exist".
  const own = host({ sessionExists: (_t, i) => i === INITIATOR });
  assert.equal(
    new LoginPhase(own, () => 9, 1).handle(req(0, 1, true, leading, { tsih: 77 })).failed?.status,
    LoginStatus.TooManyConnections,
  );
  const other = host({ sessionExists: (_t, i) => i === undefined });
  assert.equal(
    new LoginPhase(other, () => 9, 1).handle(req(0, 1, true, leading, { tsih: 77 })).failed?.status,
    LoginStatus.SessionDoesNotExist,
  );
});

test('the challenge history forgets the oldest beyond its size', () => {
  const h = new ChallengeHistory(2);
  const [a, b, c] = [randomBytes(16), randomBytes(16), randomBytes(16)];
  assert.ok(h.remember(a) && h.remember(b) && !h.remember(a));
  assert.ok(h.remember(c)); // a is forgotten now
  assert.ok(h.remember(a));
  assert.match(peerChallengeProblem(Buffer.alloc(16), randomBytes(16), h) ?? '', /one byte repeated/);
});
