import { test } from 'node:test';
import assert from 'node:assert/strict';
import { encodeTextKeys, parseTextKeys, TextKeyError } from '../../src/iscsi/pdu';

test('text keys: encode writes key=value\\0 for each pair, in order', () => {
  const b = encodeTextKeys([
    ['InitiatorName', 'iqn.1993-08.org.debian:01:abc'],
    ['SessionType', 'Normal'],
  ]);
  assert.equal(b.toString('latin1'), 'InitiatorName=iqn.1993-08.org.debian:01:abc\0SessionType=Normal\0');
});

test('text keys: parse with and without a trailing NUL', () => {
  const want = [
    ['HeaderDigest', 'None'],
    ['MaxRecvDataSegmentLength', '262144'],
  ];
  assert.deepEqual(parseTextKeys(Buffer.from('HeaderDigest=None\0MaxRecvDataSegmentLength=262144\0')), want);
  assert.deepEqual(parseTextKeys(Buffer.from('HeaderDigest=None\0MaxRecvDataSegmentLength=262144')), want);
});

test('text keys: empty data segment gives no pairs; stray NULs are skipped', () => {
  assert.deepEqual(parseTextKeys(Buffer.alloc(0)), []);
  assert.deepEqual(parseTextKeys(Buffer.from('A=1\0\0\0')), [['A', '1']]);
});

test('text keys: empty value and a value containing "="', () => {
  const pairs: Array<[string, string]> = [
    ['TargetAlias', ''],
    ['CHAP_C', '0xabc=='],
    ['X-com.example.Key', 'a=b=c'],
  ];
  const enc = encodeTextKeys(pairs);
  assert.equal(enc.toString(), 'TargetAlias=\0CHAP_C=0xabc==\0X-com.example.Key=a=b=c\0');
  assert.deepEqual(parseTextKeys(enc), pairs);
});

test('text keys: duplicates and order are preserved; UTF-8 round-trips', () => {
  const pairs: Array<[string, string]> = [
    ['TargetName', 'iqn.2026-11.io.example:lab'],
    ['TargetAddress', '10.0.0.1:3260,1'],
    ['TargetName', 'iqn.2026-11.io.example:san1'],
    ['InitiatorAlias', 'hôte-ü'],
  ];
  assert.deepEqual(parseTextKeys(encodeTextKeys(pairs)), pairs);
  assert.deepEqual(parseTextKeys(encodeTextKeys(new Map([['A', '1']]))), [['A', '1']]);
});

test('text keys: malformed input throws TextKeyError', () => {
  assert.throws(() => parseTextKeys(Buffer.from('NoEquals\0')), TextKeyError);
  assert.throws(() => parseTextKeys(Buffer.from('A=1\0=value\0')), TextKeyError);
  assert.throws(() => parseTextKeys(Buffer.from([0x41, 0x3d, 0xff, 0xfe, 0])), TextKeyError);
  assert.throws(() => encodeTextKeys([['', 'x']]), TextKeyError);
  assert.throws(() => encodeTextKeys([['A=B', 'x']]), TextKeyError);
  assert.throws(() => encodeTextKeys([['A', 'x\0y']]), TextKeyError);
});
