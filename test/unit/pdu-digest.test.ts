import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32c, crc32cOf, digestBytes, readDigest, verifyDigest, writeDigest } from '../../src/iscsi/pdu';
import { RFC_B4_READ10_HEADER_HEX } from './pdu-fixtures';

// RFC 7143 Appendix B.4 (also RFC 3720 B.4). Each CRC is given both as the
// numeric value and as the bytes that travel on the wire (little-endian).
const vectors: Array<[string, Buffer, number, string]> = [
  ['32 bytes of zeroes', Buffer.alloc(32, 0x00), 0x8a9136aa, 'aa36918a'],
  ['32 bytes of ones', Buffer.alloc(32, 0xff), 0x62a8ab43, '43aba862'],
  ['32 bytes of incrementing 00..1f', Buffer.from(Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e, '4e79dd46'],
  ['32 bytes of decrementing 1f..00', Buffer.from(Array.from({ length: 32 }, (_, i) => 31 - i)), 0x113fdb5c, '5cdb3f11'],
  ['an iSCSI SCSI Read (10) command PDU', Buffer.from(RFC_B4_READ10_HEADER_HEX, 'hex'), 0xd9963a56, '563a96d9'],
];

for (const [name, input, crc, wire] of vectors) {
  test(`crc32c RFC 7143 B.4: ${name}`, () => {
    assert.equal(crc32c(input), crc);
    assert.equal(digestBytes(crc32c(input)).toString('hex'), wire);
  });
}

test('crc32c of an empty buffer is 0', () => {
  assert.equal(crc32c(Buffer.alloc(0)), 0);
});

test('crc32c is incremental: crc32c(b, crc32c(a)) == crc32c(a ++ b)', () => {
  const all = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 7 + 3) & 0xff));
  const whole = crc32c(all);
  for (const cut of [0, 1, 3, 4, 48, 500, 999, 1000]) {
    assert.equal(crc32c(all.subarray(cut), crc32c(all.subarray(0, cut))), whole, `cut at ${cut}`);
  }
  assert.equal(crc32cOf([all.subarray(0, 10), all.subarray(10, 11), all.subarray(11)]), whole);
  assert.equal(crc32cOf([]), 0);
});

test('crc32c always returns an unsigned 32-bit number', () => {
  const v = crc32c(Buffer.alloc(32, 0x00));
  assert.ok(v > 0x7fffffff && Number.isInteger(v));
});

test('digests are written and read little-endian', () => {
  const b = Buffer.alloc(8);
  assert.equal(writeDigest(b, 2, 0x8a9136aa), 6);
  assert.equal(b.toString('hex'), '0000aa36918a0000');
  assert.equal(readDigest(b, 2), 0x8a9136aa);
  const zeros = Buffer.alloc(32);
  const withDigest = Buffer.concat([zeros, digestBytes(crc32c(zeros))]);
  assert.ok(verifyDigest(zeros, withDigest, 32));
  withDigest[33] ^= 1;
  assert.ok(!verifyDigest(zeros, withDigest, 32));
});
