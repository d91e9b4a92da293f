import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findTarget, resolveAccess, visibleTargets, volumeUsers } from '../../src/acl/access';
import { parseConfig } from '../../src/config/load';

const config = parseConfig(
  `volumes:
  scratch: { memory: true, size: 1M }
  db-a: { memory: true, size: 1M }
  db-b: { memory: true, size: 1M }
  common: { memory: true, size: 1M, shared: true }
targets:
  - iqn: iqn.2026-11.io.example:lab
    luns: { 0: scratch }
  - iqn: iqn.2026-11.io.example:san1
    luns: { 0: common }
    acls:
      - initiator: iqn.1994-05.com.redhat:host-a
        luns: { 0: db-a }
        chap: { user: host-a, secret: "at-least-12-chars" }
      - initiator: iqn.1994-05.com.redhat:host-b
        luns: { 0: db-b, 1: common }
      - initiator: iqn.1994-05.com.redhat:host-c
`,
  'acl.yaml',
);
const [lab, san1] = config.targets as [(typeof config.targets)[0], (typeof config.targets)[0]];
const A = 'iqn.1994-05.com.redhat:host-a';
const B = 'iqn.1994-05.com.redhat:host-b';
const C = 'iqn.1994-05.com.redhat:host-c';
const STRANGER = 'iqn.1994-05.com.redhat:stranger';

test('a target without acls admits everyone with the target luns', () => {
  const r = resolveAccess(lab, STRANGER);
  assert.equal(r.allowed, true);
  assert.deepEqual(r.luns, new Map([[0, 'scratch']]));
  assert.equal(r.acl, undefined);
});

test('an ACL with its own luns sees only those (and carries its CHAP credentials)', () => {
  const r = resolveAccess(san1, A);
  assert.equal(r.allowed, true);
  assert.deepEqual(r.luns, new Map([[0, 'db-a']]));
  assert.deepEqual(r.acl?.chap, { user: 'host-a', secret: 'at-least-12-chars' });
  assert.deepEqual(
    resolveAccess(san1, B).luns,
    new Map([
      [0, 'db-b'],
      [1, 'common'],
    ]),
  );
});

test('an ACL without luns inherits the target luns', () => {
  const r = resolveAccess(san1, C);
  assert.equal(r.allowed, true);
  assert.deepEqual(r.luns, new Map([[0, 'common']]));
  assert.equal(r.acl?.initiator, C);
});

test('an unlisted initiator is refused and sees nothing', () => {
  const r = resolveAccess(san1, STRANGER);
  assert.equal(r.allowed, false);
  assert.equal(r.luns.size, 0);
  assert.equal(r.acl, undefined);
});

test('initiator names match case-insensitively, exactly otherwise', () => {
  assert.equal(resolveAccess(san1, 'IQN.1994-05.COM.REDHAT:HOST-A').allowed, true);
  assert.equal(resolveAccess(san1, `${A}x`).allowed, false);
  assert.equal(resolveAccess(san1, 'iqn.1994-05.com.redhat:host').allowed, false);
});

test('discovery lists only the targets an initiator may use', () => {
  assert.deepEqual(
    visibleTargets(config, STRANGER).map((t) => t.iqn),
    ['iqn.2026-11.io.example:lab'],
  );
  assert.deepEqual(
    visibleTargets(config, A).map((t) => t.iqn),
    ['iqn.2026-11.io.example:lab', 'iqn.2026-11.io.example:san1'],
  );
});

test('findTarget and volumeUsers', () => {
  assert.equal(findTarget(config, 'IQN.2026-11.io.example:SAN1'), san1);
  assert.equal(findTarget(config, 'iqn.2026-11.io.example:none'), undefined);
  assert.deepEqual(volumeUsers(config, 'common'), [
    { target: 'iqn.2026-11.io.example:san1', initiator: B, lun: 1 },
    { target: 'iqn.2026-11.io.example:san1', initiator: C, lun: 0 },
  ]);
  assert.deepEqual(volumeUsers(config, 'scratch'), [{ target: 'iqn.2026-11.io.example:lab', initiator: '*', lun: 0 }]);
});
