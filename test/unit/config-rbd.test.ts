// RBD volumes in the config: rbd: POOL/IMAGE, ceph: { conf, user } at the top and per volume
// (the volume's wins key by key), and errors that name file, line and key. No Ceph needed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, formatIssue, parseConfig, parseConfigDetailed } from '../../src/config/load';

const FILE = 'iscsi-target.yaml';
const opts = { baseDir: '/srv/iscsi' };

function errors(text: string): string[] {
  try {
    parseConfigDetailed(text, FILE, opts);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    return e.errors.map(formatIssue);
  }
  assert.fail('expected a ConfigError');
}

test('rbd volumes reach the model with the top-level ceph settings, a volume overriding some', () => {
  const c = parseConfig(
    [
      'ceph: { conf: ceph/ceph.conf, user: iscsi }',
      'volumes:',
      '  db: { rbd: rbd/db, size: 20GiB }',
      '  logs: { rbd: "rbd:fast/logs", ceph: { user: logs } }',
      '  file: { path: luns/f.img, size: 1GiB }',
      '',
    ].join('\n'),
    FILE,
    opts,
  );
  assert.deepEqual(c.ceph, { conf: '/srv/iscsi/ceph/ceph.conf', user: 'iscsi' });
  const db = c.volumes.get('db')!;
  assert.deepEqual(db.rbd, { pool: 'rbd', image: 'db' });
  assert.equal(db.size, 20 * 1024 ** 3);
  assert.equal(db.path, undefined);
  assert.deepEqual(db.ceph, { conf: '/srv/iscsi/ceph/ceph.conf', user: 'iscsi' });
  const logs = c.volumes.get('logs')!;
  assert.deepEqual(logs.rbd, { pool: 'fast', image: 'logs' });
  assert.deepEqual(logs.ceph, { conf: '/srv/iscsi/ceph/ceph.conf', user: 'logs' });
  assert.equal(c.volumes.get('file')!.ceph, undefined);
});

test('without a ceph section an rbd volume gets the library defaults (empty settings)', () => {
  const c = parseConfig('volumes:\n  db: { rbd: rbd/db }\n', FILE, opts);
  assert.deepEqual(c.volumes.get('db')!.ceph, {});
  assert.equal(c.volumes.get('db')!.size, undefined);
});

test('bad rbd and ceph values are named by file, line and key', () => {
  assert.deepEqual(errors('volumes:\n  db: { rbd: just-a-name }\n'), [
    `${FILE}:2:14: volumes.db.rbd: "just-a-name" is not an RBD image: expected POOL/IMAGE, e.g. rbd/db`,
  ]);
  const both = errors('volumes:\n  db: { rbd: rbd/db, path: x.img }\n');
  assert.equal(both.length, 1);
  assert.match(both[0], /^iscsi-target\.yaml:2:\d+: volumes\.db\.rbd: volume db has rbd and path; give exactly one$/);
  const enc = errors('volumes:\n  db: { rbd: rbd/db, encryption: true }\n');
  assert.match(enc[0], /volumes\.db\.encryption: volume db: encryption is not supported on RBD volumes yet/);
  const user = errors('ceph:\n  user: client.admin\nvolumes:\n  db: { rbd: rbd/db }\n');
  assert.match(user[0], /^iscsi-target\.yaml:2:9: ceph\.user: user is a cephx name without "client\."/);
  const key = errors('ceph: { conf: /etc/ceph/ceph.conf, keyring: x }\nvolumes:\n  db: { rbd: rbd/db }\n');
  assert.match(key[0], /^iscsi-target\.yaml:1:\d+: ceph\.keyring: /);
  const fileCeph = errors('volumes:\n  f: { path: f.img, size: 1MiB, ceph: { user: x } }\n');
  assert.match(fileCeph[0], /volumes\.f\.ceph: volume f sets ceph but is not an RBD volume/);
});
