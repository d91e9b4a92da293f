// The live-config diff (src/admin/diff.ts): what changes, what is refused, and what each
// live session becomes.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { diffConfig, diffIsEmpty, sessionVerdict } from '../../src/admin/diff';
import { parseConfig } from '../../src/config/load';

const SAN = 'iqn.2026-11.io.example:san1';
const LAB = 'iqn.2026-11.io.example:lab';
const A = 'iqn.1994-05.com.redhat:host-a';
const B = 'iqn.1994-05.com.redhat:host-b';

const cfg = (body: string) => parseConfig(body, '/srv/iscsi-target.yaml');
const BASE = `portals: ["127.0.0.1:3260"]
volumes:
  db-a: { path: a.img, size: 1GiB }
  db-b: { path: b.img, size: 1GiB }
  scratch: { memory: true, size: 64MiB }
targets:
  - iqn: ${SAN}
    acls:
      - initiator: ${A}
        luns: { 0: db-a }
      - initiator: ${B}
        luns: { 0: db-b }
  - iqn: ${LAB}
    luns: { 0: scratch }
`;

describe('diffConfig', () => {
  test('the same config is an empty diff', () => {
    const d = diffConfig(cfg(BASE), cfg(BASE));
    assert.ok(diffIsEmpty(d));
    assert.deepEqual(d.refused, []);
  });

  test('physicalBlockSize and encryption of a live volume are refused; limits wait for a restart', () => {
    const phys = diffConfig(
      cfg(BASE),
      cfg(BASE.replace('db-a: { path: a.img, size: 1GiB }', 'db-a: { path: a.img, size: 1GiB, physicalBlockSize: 4096 }')),
    );
    assert.equal(phys.refused.length, 1);
    assert.match(phys.refused[0], /volume db-a: physicalBlockSize/);
    const enc = diffConfig(
      cfg(BASE),
      cfg(BASE.replace('db-b: { path: b.img, size: 1GiB }', 'db-b: { path: b.img, size: 1GiB, encryption: true }')),
    );
    assert.equal(enc.refused.length, 1);
    assert.match(enc.refused[0], /volume db-b: encryption/);
    const lim = diffConfig(cfg(BASE), cfg(BASE + 'limits: { maxSessions: 4 }\n'));
    assert.deepEqual(lim.refused, []);
    assert.equal(lim.limitsChanged, true);
    assert.equal(diffConfig(cfg(BASE), cfg(BASE)).limitsChanged, false);
  });

  test('added and removed volumes, portals, targets; a changed target', () => {
    const next = BASE.replace('127.0.0.1:3260"]', '127.0.0.1:3261"]')
      .replace('  scratch:', '  db-c: { path: c.img, size: 2GiB }\n  scratch:')
      .replace(`      - initiator: ${B}\n        luns: { 0: db-b }\n`, `      - initiator: ${B}\n        luns: { 0: db-c }\n`)
      .replace('  db-b: { path: b.img, size: 1GiB }\n', '')
      .replace(`  - iqn: ${LAB}\n    luns: { 0: scratch }\n`, '')
      .replace('  scratch: { memory: true, size: 64MiB }\n', '');
    const d = diffConfig(cfg(BASE), cfg(next));
    assert.deepEqual(d.volumes, { added: ['db-c'], removed: ['db-b', 'scratch'], resized: [] });
    assert.deepEqual(d.portals, { added: [{ host: '127.0.0.1', port: 3261 }], removed: [{ host: '127.0.0.1', port: 3260 }] });
    assert.deepEqual(d.targets, { added: [], removed: [LAB], changed: [SAN] });
    assert.ok(!diffIsEmpty(d));
  });

  test('growing is a resize; shrinking, moving a volume or resizing a memory volume are refused', () => {
    assert.deepEqual(diffConfig(cfg(BASE), cfg(BASE.replace('a.img, size: 1GiB', 'a.img, size: 2GiB'))).volumes.resized, [
      { name: 'db-a', size: 2 * 1024 ** 3 },
    ]);
    assert.match(diffConfig(cfg(BASE.replace('a.img, size: 1GiB', 'a.img, size: 2GiB')), cfg(BASE)).refused[0], /db-a: shrinking/);
    assert.match(diffConfig(cfg(BASE), cfg(BASE.replace('path: a.img', 'path: other.img'))).refused[0], /db-a: path/);
    assert.match(diffConfig(cfg(BASE), cfg(BASE.replace('size: 64MiB', 'size: 128MiB'))).refused[0], /memory volume/);
  });

  test('metrics and discovery changes are seen', () => {
    const d = diffConfig(
      cfg(BASE),
      cfg(`${BASE}metrics: { listen: "127.0.0.1:9287" }\ndiscovery:\n  chap: { user: d, secret: "discovery-secret" }\n`),
    );
    assert.ok(d.metricsChanged);
    assert.ok(d.discoveryChanged);
  });

  test('allowTargetReset of a target or of one of its acls changes the target', () => {
    const onTarget = diffConfig(cfg(BASE), cfg(BASE.replace(`  - iqn: ${LAB}\n`, `  - iqn: ${LAB}\n    allowTargetReset: true\n`)));
    assert.deepEqual(onTarget.targets.changed, [LAB]);
    assert.ok(!diffIsEmpty(onTarget));
    const onAcl = diffConfig(cfg(BASE), cfg(BASE.replace('luns: { 0: db-a }', 'luns: { 0: db-a }\n        allowTargetReset: true')));
    assert.deepEqual(onAcl.targets.changed, [SAN]);
    assert.ok(!diffIsEmpty(onAcl));
    // an explicit false where the target allows it is a change too (the acl no longer inherits)
    const allowed = BASE.replace(`  - iqn: ${SAN}\n`, `  - iqn: ${SAN}\n    allowTargetReset: true\n`);
    const denied = allowed.replace('luns: { 0: db-a }', 'luns: { 0: db-a }\n        allowTargetReset: false');
    assert.deepEqual(diffConfig(cfg(allowed), cfg(denied)).targets.changed, [SAN]);
  });
});

describe('sessionVerdict', () => {
  const prev = cfg(BASE);
  test('an unrelated change keeps the session', () => {
    const next = cfg(BASE.replace('  scratch:', '  db-c: { path: c.img, size: 2GiB }\n  scratch:'));
    assert.deepEqual(sessionVerdict(prev, next, SAN, A), { action: 'keep' });
    assert.deepEqual(sessionVerdict(prev, next, LAB, 'iqn.1994-05.com.redhat:anyone'), { action: 'keep' });
  });

  test('a removed acl or target ends the session; other hosts keep theirs', () => {
    const noB = cfg(
      BASE.replace(`      - initiator: ${B}\n        luns: { 0: db-b }\n`, '').replace('  db-b: { path: b.img, size: 1GiB }\n', ''),
    );
    assert.equal(sessionVerdict(prev, noB, SAN, B).action, 'end');
    assert.deepEqual(sessionVerdict(prev, noB, SAN, A), { action: 'keep' });
    const noLab = cfg(BASE.replace(`  - iqn: ${LAB}\n    luns: { 0: scratch }\n`, ''));
    assert.deepEqual(sessionVerdict(prev, noLab, LAB, A), { action: 'end', why: `target ${LAB} was removed` });
  });

  test('a new LUN is added; an unmapped or remapped LUN, or new CHAP, ends the session', () => {
    const more = cfg(
      BASE.replace('luns: { 0: db-a }', 'luns: { 0: db-a, 1: db-b }').replace(
        '  db-b: { path: b.img, size: 1GiB }',
        '  db-b: { path: b.img, size: 1GiB, shared: true }',
      ),
    );
    assert.deepEqual(sessionVerdict(prev, more, SAN, A), { action: 'add', luns: new Map([[1, 'db-b']]) });
    const remap = cfg(
      BASE.replace('luns: { 0: db-a }', 'luns: { 0: db-b }').replace(
        '  db-b: { path: b.img, size: 1GiB }',
        '  db-b: { path: b.img, size: 1GiB, shared: true }',
      ),
    );
    assert.match((sessionVerdict(prev, remap, SAN, A) as { why: string }).why, /LUN 0 now maps db-b instead of db-a/);
    const chap = cfg(BASE.replace('luns: { 0: db-a }', 'luns: { 0: db-a }\n        chap: { user: a, secret: "a-secret-12345" }'));
    assert.deepEqual(sessionVerdict(prev, chap, SAN, A), { action: 'end', why: 'its CHAP credentials changed' });
  });
});
