import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SizeError, formatSize, formatSizeForConfig, parseSize, tryParseSize } from '../../src/config/size';

const GiB = 1024 ** 3;

test('plain byte counts, as numbers and strings', () => {
  assert.equal(parseSize(1048576), 1048576);
  assert.equal(parseSize('1048576'), 1048576);
  assert.equal(parseSize(0), 0);
  assert.equal(parseSize('512B'), 512);
});

test('binary units, long and short forms, any case, optional space', () => {
  assert.equal(parseSize('512KiB'), 512 * 1024);
  assert.equal(parseSize('256MiB'), 256 * 1024 ** 2);
  assert.equal(parseSize('20GiB'), 20 * GiB);
  assert.equal(parseSize('1TiB'), 1024 ** 4);
  assert.equal(parseSize('20G'), 20 * GiB);
  assert.equal(parseSize('512M'), 512 * 1024 ** 2);
  assert.equal(parseSize('1T'), 1024 ** 4);
  assert.equal(parseSize('4K'), 4096);
  assert.equal(parseSize('20gib'), 20 * GiB);
  assert.equal(parseSize('20 GiB'), 20 * GiB);
  assert.equal(parseSize('4k'), 4096);
  assert.equal(parseSize(' 1 g '), GiB);
  assert.equal(parseSize('1.5GiB'), 1.5 * GiB);
});

test('rejects negative, fractional bytes, unknown and ambiguous units, naming the value', () => {
  assert.throws(
    () => parseSize('20Q'),
    (e: Error) => e instanceof SizeError && e.message === '"20Q" is not a size: unknown unit "Q" (use e.g. 20GiB)',
  );
  assert.throws(() => parseSize('-1G'), /"-1G".*negative/);
  assert.throws(() => parseSize(-512), /-512.*negative/);
  assert.throws(() => parseSize(1.5), /1\.5 is not a whole number of bytes/);
  assert.throws(() => parseSize('0.1K'), /"0\.1K" is not a whole number of bytes/);
  assert.throws(() => parseSize('20GB'), /"20GB".*ambiguous.*20GiB/);
  assert.throws(() => parseSize('lots'), /"lots" is not a size/);
  assert.throws(() => parseSize(''), /"" is not a size/);
  assert.throws(() => parseSize('1 2G'), /"1 2G" is not a size/);
  assert.throws(() => parseSize(Infinity), /Infinity is not a size/);
  assert.throws(() => parseSize('9000PiB'), /too large/);
  assert.deepEqual(tryParseSize(true), { ok: false, error: 'true is not a size (use e.g. 20GiB)' });
  assert.deepEqual(tryParseSize('1G'), { ok: true, bytes: GiB });
});

test('formats sizes for humans', () => {
  assert.equal(formatSize(0), '0 B');
  assert.equal(formatSize(512), '512 B');
  assert.equal(formatSize(4096), '4 KiB');
  assert.equal(formatSize(GiB), '1 GiB');
  assert.equal(formatSize(1.5 * GiB), '1.5 GiB');
  assert.equal(formatSize(20 * GiB), '20 GiB');
  assert.equal(formatSize(1024 ** 4), '1 TiB');
  assert.equal(formatSize(1000), '1000 B');
  assert.equal(formatSize(1024 * 1024 - 1), '1 MiB');
  assert.equal(formatSize(123456789), '117.74 MiB');
});

test('formats sizes for config files exactly', () => {
  assert.equal(formatSizeForConfig(20 * GiB), '20GiB');
  assert.equal(formatSizeForConfig(1536 * 1024 ** 2), '1536MiB');
  assert.equal(formatSizeForConfig(4096), '4KiB');
  assert.equal(formatSizeForConfig(1000), 1000);
  for (const v of [20 * GiB, 1536 * 1024 ** 2, 4096, 1000, 512]) assert.equal(parseSize(formatSizeForConfig(v)), v);
});
