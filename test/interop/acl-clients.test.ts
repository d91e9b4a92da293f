// ACLs and CHAP as libiscsi's tools see them: initiator names with -i, CHAP
// credentials in the URL, and discovery that only shows what one may use.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { requireTools, run, startDaemon, type Daemon } from '../helpers/daemon';

const SAN = 'iqn.2026-11.io.example:san1';
const A = 'iqn.1994-05.com.redhat:host-a';
const B = 'iqn.1994-05.com.redhat:host-b';
const STRANGER = 'iqn.1994-05.com.redhat:stranger';
const skip = requireTools(['iscsi-ls', 'iscsi-inq', 'iscsi-readcapacity16']);

describe('ACLs and CHAP with libiscsi clients', { skip }, () => {
  let d: Daemon;
  let portal: string;
  before(async () => {
    d = await startDaemon(`portals: ["127.0.0.1:PORT"]
volumes:
  db-a: { path: DIR/db-a.img, size: 32MiB }
  db-b: { path: DIR/db-b.img, size: 64MiB }
discovery:
  chap: { user: discover, secret: "discovery-secret" }
targets:
  - iqn: ${SAN}
    acls:
      - initiator: ${A}
        luns: { 0: db-a }
        chap: { user: host-a, secret: "host-a-secret-1" }
      - initiator: ${B}
        luns: { 0: db-b }
`);
    portal = `127.0.0.1:${d.port}`;
  });
  after(async () => {
    assert.equal(await d.stop(), 0);
  });

  test('host A with its CHAP secret sees its 32 MiB volume as LUN 0', () => {
    const r = run('iscsi-readcapacity16', ['-i', A, `iscsi://host-a%host-a-secret-1@${portal}/${SAN}/0`]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /Total size:33554432\n/);
  });

  test('host B (no CHAP) sees its own 64 MiB volume as LUN 0', () => {
    const r = run('iscsi-readcapacity16', ['-i', B, `iscsi://${portal}/${SAN}/0`]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, /Total size:67108864\n/);
  });

  test('host A without CHAP, with a wrong secret, and a stranger are refused', () => {
    for (const url of [`iscsi://${portal}/${SAN}/0`, `iscsi://host-a%wrong-secret-12@${portal}/${SAN}/0`]) {
      const r = run('iscsi-inq', ['-i', A, url]);
      assert.notEqual(r.status, 0, r.out);
    }
    const s = run('iscsi-inq', ['-i', STRANGER, `iscsi://${portal}/${SAN}/0`]);
    assert.notEqual(s.status, 0, s.out);
  });

  test('discovery needs its CHAP, and shows the target only to listed initiators', () => {
    const none = run('iscsi-ls', ['-i', A, `iscsi://${portal}`]);
    assert.notEqual(none.status, 0, none.out);
    const a = run('iscsi-ls', ['-i', A, `iscsi://discover%discovery-secret@${portal}`]);
    assert.equal(a.status, 0, a.out);
    assert.match(a.out, new RegExp(`Target:${SAN.replaceAll('.', '\\.')} Portal:`));
    const s = run('iscsi-ls', ['-i', STRANGER, `iscsi://discover%discovery-secret@${portal}`]);
    assert.equal(s.status, 0, s.out);
    assert.doesNotMatch(s.out, /Target:/);
  });
});
