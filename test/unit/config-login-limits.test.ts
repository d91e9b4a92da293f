// limits.maxLoginConnections / maxLoginConnectionsPerAddress; the old maxConnections is
// accepted with a warning (issue 14), and the per-address key of IPv6 peers is their /64.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseConfigDetailed } from '../../src/config/load';
import { LIMIT_DEFAULTS } from '../../src/config/model';
import { addressKey } from '../../src/iscsi/login-guard';

test('login budgets are read; maxConnections warns that it is no longer used', () => {
  const { config, warnings } = parseConfigDetailed(
    'limits: { maxLoginConnections: 32, maxLoginConnectionsPerAddress: 4, maxConnections: 256 }\n',
    'c.yaml',
  );
  assert.equal(config.limits!.maxLoginConnections, 32);
  assert.equal(config.limits!.maxLoginConnectionsPerAddress, 4);
  assert.ok(warnings.some((w) => w.key === 'limits.maxConnections' && /no longer used/.test(w.message)));
  assert.equal(LIMIT_DEFAULTS.maxLoginConnections, 256);
  assert.equal(LIMIT_DEFAULTS.maxLoginConnectionsPerAddress, 64);
});

test('per-address key: IPv4 as is (also IPv4-mapped), IPv6 by /64', () => {
  assert.equal(addressKey('10.1.2.3'), '10.1.2.3');
  assert.equal(addressKey('::ffff:10.1.2.3'), '10.1.2.3');
  assert.equal(addressKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  assert.equal(addressKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(addressKey('::1'), '0:0:0:0::/64');
});
