// The SAM LUN field codec (src/scsi/lun.ts), byte by byte: peripheral device addressing
// below 256, flat space up to 16383, everything else refused.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeLun, encodeLun, writeLunField } from '../../src/scsi/lun';

const field = (lun: number) => {
  const b = Buffer.alloc(8);
  writeLunField(b, lun, 0);
  return [...b];
};

test('LUN numbers encode as SAM-5 single-level fields and decode back', () => {
  assert.deepEqual(field(0), [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(field(5), [0x00, 0x05, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(field(255), [0x00, 0xff, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(field(256), [0x41, 0x00, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual(field(16383), [0x7f, 0xff, 0, 0, 0, 0, 0, 0]);
  for (const n of [0, 1, 255, 256, 300, 16383]) assert.equal(decodeLun(encodeLun(n)), n);
});

test('multi-level LUNs and other addressing methods decode to -1 (no such LUN)', () => {
  assert.equal(decodeLun(0x0001_0001_0000_0000n), -1, 'a second level');
  assert.equal(decodeLun(0x8001_0000_0000_0000n), -1, 'logical unit addressing');
  assert.equal(decodeLun(0xc101_0000_0000_0000n), -1, 'extended addressing');
  assert.equal(decodeLun(0x4005_0000_0000_0000n), 5, 'flat space for a small LUN is still that LUN');
});
