import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, defaultParams, negotiateKeys, type NegotiateContext } from '../../src/iscsi/negotiation';
import { Session } from '../../src/iscsi/session';

const normal: NegotiateContext = { sessionType: 'Normal', phase: 'login', limits: DEFAULT_LIMITS };
const discovery: NegotiateContext = { ...normal, sessionType: 'Discovery' };

function negotiate(pairs: Array<[string, string]>, ctx = normal) {
  const params = defaultParams();
  const answers = negotiateKeys(pairs, params, ctx);
  return { params, answers: new Map(answers) };
}

test('numeric min keys take the lower value', () => {
  const { params, answers } = negotiate([
    ['MaxBurstLength', '262144'],
    ['FirstBurstLength', '65536'],
    ['MaxOutstandingR2T', '64'],
    ['MaxConnections', '8'],
    ['DefaultTime2Retain', '0'],
    ['ErrorRecoveryLevel', '2'],
  ]);
  assert.equal(answers.get('MaxBurstLength'), '262144');
  assert.equal(params.maxBurstLength, 262144);
  assert.equal(answers.get('FirstBurstLength'), '65536');
  assert.equal(answers.get('MaxOutstandingR2T'), String(DEFAULT_LIMITS.maxOutstandingR2T));
  assert.equal(answers.get('MaxConnections'), '1');
  assert.equal(answers.get('DefaultTime2Retain'), '0');
  assert.equal(answers.get('ErrorRecoveryLevel'), '0');
  assert.equal(params.errorRecoveryLevel, 0);
});

test('DefaultTime2Wait takes the higher value', () => {
  assert.equal(negotiate([['DefaultTime2Wait', '0']]).answers.get('DefaultTime2Wait'), '2');
  assert.equal(negotiate([['DefaultTime2Wait', '10']]).answers.get('DefaultTime2Wait'), '10');
});

test('InitialR2T is OR, ImmediateData is AND', () => {
  const a = negotiate([
    ['InitialR2T', 'No'],
    ['ImmediateData', 'Yes'],
  ]);
  assert.equal(a.answers.get('InitialR2T'), 'No');
  assert.equal(a.params.initialR2T, false);
  assert.equal(a.answers.get('ImmediateData'), 'Yes');
  const b = negotiate([
    ['InitialR2T', 'Yes'],
    ['ImmediateData', 'No'],
  ]);
  assert.equal(b.answers.get('InitialR2T'), 'Yes');
  assert.equal(b.params.initialR2T, true);
  assert.equal(b.answers.get('ImmediateData'), 'No');
  assert.equal(b.params.immediateData, false);
});

test('digests: first supported value in the initiator order', () => {
  const a = negotiate([
    ['HeaderDigest', 'CRC32C,None'],
    ['DataDigest', 'None,CRC32C'],
  ]);
  assert.equal(a.answers.get('HeaderDigest'), 'CRC32C');
  assert.equal(a.answers.get('DataDigest'), 'None');
  assert.equal(a.params.headerDigest, true);
  assert.equal(a.params.dataDigest, false);
  assert.equal(negotiate([['HeaderDigest', 'MD5']]).answers.get('HeaderDigest'), 'Reject');
});

test('MaxRecvDataSegmentLength is declarative: recorded as our send limit, not answered', () => {
  const { params, answers } = negotiate([['MaxRecvDataSegmentLength', '65536']]);
  assert.equal(params.maxSendDataSegmentLength, 65536);
  assert.equal(answers.has('MaxRecvDataSegmentLength'), false);
  assert.equal(negotiate([['MaxRecvDataSegmentLength', '100']]).answers.get('MaxRecvDataSegmentLength'), 'Reject');
});

test('out of range and malformed values are answered Reject', () => {
  const { answers } = negotiate([
    ['MaxBurstLength', '16777216'],
    ['FirstBurstLength', 'lots'],
    ['InitialR2T', 'maybe'],
    ['ErrorRecoveryLevel', '3'],
  ]);
  assert.equal(answers.get('MaxBurstLength'), 'Reject');
  assert.equal(answers.get('FirstBurstLength'), 'Reject');
  assert.equal(answers.get('InitialR2T'), 'Reject');
  assert.equal(answers.get('ErrorRecoveryLevel'), 'Reject');
});

test('unknown and X- keys are NotUnderstood', () => {
  const { answers } = negotiate([
    ['X-com.example.Foo', '1'],
    ['NoSuchKey', 'x'],
  ]);
  assert.equal(answers.get('X-com.example.Foo'), 'NotUnderstood');
  assert.equal(answers.get('NoSuchKey'), 'NotUnderstood');
});

test('session-only keys are Irrelevant in a Discovery session', () => {
  const { answers } = negotiate(
    [
      ['InitialR2T', 'No'],
      ['MaxBurstLength', '65536'],
      ['HeaderDigest', 'None'],
    ],
    discovery,
  );
  assert.equal(answers.get('InitialR2T'), 'Irrelevant');
  assert.equal(answers.get('MaxBurstLength'), 'Irrelevant');
  assert.equal(answers.get('HeaderDigest'), 'None');
});

test('obsolete marker keys are refused politely', () => {
  const { answers } = negotiate([
    ['OFMarker', 'Yes'],
    ['IFMarkInt', '2048~8192'],
  ]);
  assert.equal(answers.get('OFMarker'), 'No');
  assert.equal(answers.get('IFMarkInt'), 'Irrelevant');
});

test('FirstBurstLength never exceeds MaxBurstLength', () => {
  const { params, answers } = negotiate([
    ['MaxBurstLength', '8192'],
    ['FirstBurstLength', '65536'],
  ]);
  assert.equal(params.firstBurstLength, 8192);
  assert.equal(answers.get('FirstBurstLength'), '8192');
});

test('login-only keys are rejected in a full-feature Text request', () => {
  const { answers } = negotiate([['MaxBurstLength', '65536']], { ...normal, phase: 'full-feature' });
  assert.equal(answers.get('MaxBurstLength'), 'Reject');
});

test('CmdSN window: classify and MaxCmdSN with commands in flight, across wrap-around', () => {
  const nexus = { id: 'n', initiatorName: 'i', isid: '0', targetName: 't', relativePortId: 1 };
  const s = new Session(1, Buffer.alloc(6), 0, 'i', 'Normal', 't', defaultParams(), nexus, new Map(), 0xfffffffe, 128);
  assert.equal(s.maxCmdSN, (0xfffffffe + 127) >>> 0);
  assert.equal(s.classify(0xfffffffe), 'now');
  assert.equal(s.classify(0xffffffff), 'later');
  assert.equal(s.classify(5), 'later');
  assert.equal(s.classify((0xfffffffe + 127) >>> 0), 'later');
  assert.equal(s.classify((0xfffffffe + 128) >>> 0), 'outside');
  assert.equal(s.classify(0xfffffffd), 'outside');
  s.inFlight = 128;
  assert.equal(s.maxCmdSN, 0xfffffffd, 'window closed: MaxCmdSN = ExpCmdSN - 1');
  assert.equal(s.classify(0xfffffffe), 'outside');
});
