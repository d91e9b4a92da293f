import { test } from 'node:test';
import assert from 'node:assert/strict';
import { iscsiNameProblem, isIscsiName, sameIscsiName } from '../../src/config/names';
import { formatPortal, parsePortal } from '../../src/config/portal';

test('valid iSCSI names (RFC 3720 / 7143 examples and real initiators)', () => {
  for (const n of [
    'iqn.2001-04.com.example',
    'iqn.2001-04.com.example:storage:diskarrays-sn-a8675309',
    'iqn.2001-04.com.example:storage.tape1.sys1.xyz',
    'iqn.1994-05.com.redhat:host-a',
    'iqn.1993-08.org.debian:01:abcdef012345',
    'iqn.2026-11.io.iscsi-target:default',
    'eui.02004567a425678d',
    'eui.02004567A425678D',
    'naa.52004567ba64678d',
    'naa.52004567ba64678d52004567ba64678d',
  ]) {
    assert.equal(iscsiNameProblem(n), undefined, n);
  }
});

test('invalid iSCSI names say why', () => {
  assert.match(iscsiNameProblem('IQN.2001-04.com.example')!, /lowercase; write "iqn\.2001-04\.com\.example"/);
  assert.match(iscsiNameProblem('iqn.2001-04.com.Example:x')!, /lowercase/);
  assert.match(iscsiNameProblem('iqn.2001-13.com.example')!, /year-month/);
  assert.match(iscsiNameProblem('iqn.01-04.com.example')!, /not an IQN/);
  assert.match(iscsiNameProblem('iqn.2001-04')!, /not an IQN/);
  assert.match(iscsiNameProblem('iqn.2001-04.com.example:a_b')!, /contains "_"/);
  assert.match(iscsiNameProblem('iqn.2001-04.com.example:a b')!, /white space/);
  assert.match(iscsiNameProblem('eui.0200')!, /16 hex digits/);
  assert.match(iscsiNameProblem('naa.1234')!, /16 or 32 hex/);
  assert.match(iscsiNameProblem('host-a')!, /must start with "iqn\.", "eui\." or "naa\."/);
  assert.match(iscsiNameProblem('')!, /empty/);
  assert.match(iscsiNameProblem(`iqn.2001-04.com.example:${'x'.repeat(220)}`)!, /longer than 223 bytes/);
  assert.equal(isIscsiName('iqn.2001-04.com.example:ok'), true);
  assert.equal(isIscsiName('nope'), false);
});

test('names compare case-insensitively', () => {
  assert.equal(sameIscsiName('iqn.1994-05.com.redhat:Host-A', 'iqn.1994-05.com.redhat:host-a'), true);
  assert.equal(sameIscsiName('iqn.1994-05.com.redhat:host-a', 'iqn.1994-05.com.redhat:host-b'), false);
});

test('portals: host:port, [v6]:port, host alone, bare IPv6', () => {
  assert.deepEqual(parsePortal('0.0.0.0:3260'), { host: '0.0.0.0', port: 3260 });
  assert.deepEqual(parsePortal('10.1.2.3'), { host: '10.1.2.3', port: 3260 });
  assert.deepEqual(parsePortal('[::1]:3261'), { host: '::1', port: 3261 });
  assert.deepEqual(parsePortal('[::]'), { host: '::', port: 3260 });
  assert.deepEqual(parsePortal('::1'), { host: '::1', port: 3260 });
  assert.deepEqual(parsePortal('storage.example.com:3260'), { host: 'storage.example.com', port: 3260 });
  assert.deepEqual(parsePortal('localhost:0'), { host: 'localhost', port: 0 });
  assert.match((parsePortal('1.2.3.4:99999') as { error: string }).error, /"99999" is not a port/);
  assert.match((parsePortal('300.1.1.1') as { error: string }).error, /not a valid IPv4/);
  assert.match((parsePortal('[nope]:1') as { error: string }).error, /not an IPv6/);
  assert.match((parsePortal('bad_host:1') as { error: string }).error, /neither an IP address nor a host name/);
  assert.match((parsePortal('fe80::1:3260x') as { error: string }).error, /brackets|not a port/);
  assert.equal(formatPortal({ host: '::1', port: 3260 }), '[::1]:3260');
  assert.equal(formatPortal({ host: '10.0.0.1', port: 3260 }), '10.0.0.1:3260');
});
