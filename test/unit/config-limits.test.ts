// The `limits:` config key: defaults, units, ranges, and errors located by line and key.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfig } from '../../src/config/load';
import { LIMIT_DEFAULTS } from '../../src/config/model';

const base = 'volumes:\n  v: { memory: true, size: 1MiB }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n';

test('no limits key: the model leaves limits out (defaults apply)', () => {
  assert.equal(parseConfig(base, 'c.yaml').limits, undefined);
});

test('limits: given keys override defaults, seconds become milliseconds, sizes parse', () => {
  const c = parseConfig(
    base +
      'limits:\n  maxSessions: 4\n  loginTimeout: 2.5\n  nopInterval: 0\n  connectionBuffer: 64MiB\n  dropIdlePeers: true\n  shutdownGrace: 0.5\n',
    'c.yaml',
  );
  assert.deepEqual(c.limits, {
    ...LIMIT_DEFAULTS,
    maxSessions: 4,
    loginTimeoutMs: 2500,
    nopIntervalMs: 0,
    connectionBufferBytes: 64 * 1024 * 1024,
    dropIdlePeers: true,
    shutdownGraceMs: 500,
  });
});

test('limits: bad values and unknown keys are errors with file:line and key', () => {
  const text = base + 'limits:\n  maxSessions: 0\n  loginTimeout: soon\n  connectionBuffer: 10KiB\n  maxSesions: 3\n  dropIdlePeers: 1\n';
  try {
    parseConfig(text, 'c.yaml');
    assert.fail('should throw');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    const msgs = e.errors.map((i) => `${i.line}:${i.key}: ${i.message}`);
    assert.equal(e.errors.length, 5, msgs.join('\n'));
    assert.match(msgs[0], /^7:limits\.maxSessions: must be between 1 and 65535/);
    assert.match(msgs[1], /^8:limits\.loginTimeout: must be a number of seconds/);
    assert.match(msgs[2], /^9:limits\.connectionBuffer: must be between 1 MiB/);
    assert.match(msgs[3], /^10:limits\.maxSesions: unknown key .*did you mean "maxSessions"/);
    assert.match(msgs[4], /^11:limits\.dropIdlePeers: must be true or false/);
  }
});

test('limits.busyPoll: whole microseconds from 0 (off) to 1000, default 50', () => {
  assert.equal(LIMIT_DEFAULTS.busyPollUs, 50);
  assert.equal(parseConfig(base + 'limits:\n  busyPoll: 0\n', 'c.yaml').limits?.busyPollUs, 0);
  assert.equal(parseConfig(base + 'limits:\n  busyPoll: 200\n', 'c.yaml').limits?.busyPollUs, 200);
  for (const [bad, why] of [
    ['1001', /^7:limits\.busyPoll: must be between 0 and 1000 microseconds, not 1001/],
    ['2.5', /^7:limits\.busyPoll: must be a whole number of microseconds/],
    ['fast', /^7:limits\.busyPoll: must be a whole number of microseconds/],
  ] as const) {
    try {
      parseConfig(base + `limits:\n  busyPoll: ${bad}\n`, 'c.yaml');
      assert.fail(`busyPoll: ${bad} should be refused`);
    } catch (e) {
      assert.ok(e instanceof ConfigError, String(e));
      assert.match(`${e.errors[0].line}:${e.errors[0].key}: ${e.errors[0].message}`, why);
    }
  }
});
