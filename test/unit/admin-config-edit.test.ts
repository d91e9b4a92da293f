// Comment-preserving config edits (src/admin/config-edit.ts): the user's comments and layout
// survive, the result parses to the intended model, and impossible edits are refused.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  addAcl,
  addPortal,
  addTarget,
  addVolume,
  EditError,
  keepLayout,
  openDocument,
  removeAcl,
  removePortal,
  removeTarget,
  removeVolume,
  setVolumeFields,
  setVolumeSize,
} from '../../src/admin/config-edit';
import { parseConfig } from '../../src/config/load';

const SAN = 'iqn.2026-11.io.example:san1';
const A = 'iqn.1994-05.com.redhat:host-a';
const B = 'iqn.1994-05.com.redhat:host-b';

const BASE = `# Lab SAN: edited by hand and by the CLI
portals: ["127.0.0.1:3260"]   # loopback only

volumes:
  # databases
  db-a: { path: luns/db-a.img, size: 20GiB }   # host A
targets:
  - iqn: ${SAN}   # the SAN target
    acls:
      - initiator: ${A}
        luns: { 0: db-a }   # A sees db-a
`;

function edit(text: string, fn: (doc: ReturnType<typeof openDocument>) => void): string {
  const doc = openDocument(text);
  fn(doc);
  return keepLayout(text, String(doc));
}

function comments(text: string): string[] {
  return text
    .split('\n')
    .map((l) => l.slice(l.indexOf('#')))
    .filter((l) => l.startsWith('#'));
}

describe('config edits keep comments', () => {
  test('adding a volume and an acl keeps every comment and the old lines as written', () => {
    const out = edit(BASE, (doc) => {
      addVolume(doc, 'db-b', { path: 'luns/db-b.img', size: '10GiB' });
      addAcl(doc, SAN, B, { luns: new Map([[0, 'db-b']]), chap: { user: 'host-b', secret: '123456789012' } });
    });
    assert.deepEqual(comments(out), comments(BASE));
    assert.match(out, /^ {2}db-a: \{ path: luns\/db-a\.img, size: 20GiB \} {3}# host A$/m);
    assert.match(out, /^portals: \["127\.0\.0\.1:3260"\] {3}# loopback only$/m);
    assert.match(out, /^ {2}db-b: \{ path: luns\/db-b\.img, size: 10GiB \}$/m);
    assert.match(out, /chap: \{ user: host-b, secret: "123456789012" \}/);
    const c = parseConfig(out, '/etc/iscsi-target.yaml');
    assert.equal(c.volumes.get('db-b')!.size, 10 * 1024 ** 3);
    const acl = c.targets[0].acls.find((a) => a.initiator === B)!;
    assert.deepEqual([...acl.luns!], [[0, 'db-b']]);
    assert.deepEqual(acl.chap, { user: 'host-b', secret: '123456789012' }); // a number-looking secret stays a string
  });

  test('removing an acl, a volume and resizing keep the other comments', () => {
    let out = edit(BASE, (doc) => addAcl(doc, SAN, B, { luns: new Map([[0, 'db-b']]) }));
    out = edit(out, (doc) => addVolume(doc, 'db-b', { path: 'luns/db-b.img', size: '1GiB' }));
    out = edit(out, (doc) => {
      removeAcl(doc, SAN, B);
      removeVolume(doc, 'db-b');
      setVolumeSize(doc, 'db-a', '40GiB');
    });
    assert.deepEqual(comments(out), comments(BASE));
    // Untouched lines keep their exact spacing; only the changed line is re-spaced.
    assert.equal(out, BASE.replace('size: 20GiB }   # host A', 'size: 40GiB } # host A'));
  });

  test('an empty file grows into a full config', () => {
    const out = edit('', (doc) => {
      addVolume(doc, 'scratch', { path: 'luns/scratch.img', size: '1GiB' });
      addTarget(doc, SAN);
      addAcl(doc, SAN, A, { luns: new Map([[0, 'scratch']]) });
      addPortal(doc, '127.0.0.1:3261');
    });
    const c = parseConfig(out, '/x/iscsi-target.yaml');
    assert.deepEqual(c.portals, [
      { host: '0.0.0.0', port: 3260 },
      { host: '127.0.0.1', port: 3261 },
    ]);
    assert.equal(c.targets[0].acls[0].luns!.get(0), 'scratch');
  });

  test('the first portal added to a file without portals keeps the default, unless it takes its port', () => {
    assert.deepEqual(
      parseConfig(
        edit('', (d) => addPortal(d, '0.0.0.0:3260')),
        '/x.yaml',
      ).portals,
      [{ host: '0.0.0.0', port: 3260 }],
    );
    assert.deepEqual(
      parseConfig(
        edit('', (d) => addPortal(d, '10.0.0.1:3260')),
        '/x.yaml',
      ).portals,
      [{ host: '10.0.0.1', port: 3260 }],
    );
    assert.deepEqual(
      parseConfig(
        edit('', (d) => addPortal(d, '10.0.0.1:3261')),
        '/x.yaml',
      ).portals,
      [
        { host: '0.0.0.0', port: 3260 },
        { host: '10.0.0.1', port: 3261 },
      ],
    );
  });

  test('portals: add quotes like its siblings, remove by address', () => {
    let out = edit(BASE, (doc) => addPortal(doc, '10.0.0.1:3260'));
    assert.match(out, /"10\.0\.0\.1:3260"/);
    out = edit(out, (doc) => removePortal(doc, '127.0.0.1:3260'));
    assert.deepEqual(parseConfig(out, '/x.yaml').portals, [{ host: '10.0.0.1', port: 3260 }]);
    assert.throws(() => edit(out, (doc) => removePortal(doc, '127.0.0.1:3260')), EditError);
    assert.throws(() => edit(out, (doc) => addPortal(doc, '10.0.0.1:3260')), /already listed/);
  });

  test('acl add on an existing entry adds LUNs to it', () => {
    const out = edit(BASE.replace('db-a: {', 'db-x: { path: luns/x.img, size: 1GiB }\n  db-a: {'), (doc) =>
      addAcl(doc, SAN, A.toUpperCase().replace('IQN', 'iqn'), { luns: new Map([[1, 'db-x']]) }),
    );
    const acl = parseConfig(out, '/x.yaml').targets[0].acls;
    assert.equal(acl.length, 1);
    assert.deepEqual([...acl[0].luns!].sort(), [
      [0, 'db-a'],
      [1, 'db-x'],
    ]);
    assert.match(out, /luns: \{ 0: db-a, 1: db-x \} # A sees db-a/);
  });

  test('refusals: duplicates, unknown names, mapped volumes, the last acl', () => {
    assert.throws(() => edit(BASE, (d) => addVolume(d, 'db-a', { size: '1GiB', path: 'x' })), /already exists/);
    assert.throws(() => edit(BASE, (d) => addTarget(d, SAN)), /already exists/);
    assert.throws(() => edit(BASE, (d) => removeTarget(d, 'iqn.2026-11.io.example:nope')), /no target .*targets: iqn/);
    assert.throws(
      () => edit(BASE, (d) => removeVolume(d, 'db-a')),
      /mapped \(iqn\.2026-11\.io\.example:san1 iqn\.1994-05\.com\.redhat:host-a LUN 0\)/,
    );
    assert.throws(() => edit(BASE, (d) => removeAcl(d, SAN, A)), /last acl .* admits every initiator/);
    assert.throws(() => openDocument('volumes: {'), /not valid YAML/);
  });

  test('keepLayout restores spacing of unchanged lines only, never changing the meaning', () => {
    const original = 'a: ["x"]   # c\nb: { k: 1 }\ns: "two  spaces"\n';
    assert.equal(
      keepLayout(original, 'a: [ "x" ] # c\nb: { k: 2 }\ns: "two  spaces"\n'),
      'a: ["x"]   # c\nb: { k: 2 }\ns: "two  spaces"\n',
    );
    // A line equal but for spaces inside a string would change the value: left as edited.
    assert.equal(keepLayout('s: "a  b"\n', 's: "a b"\n'), 's: "a b"\n');
  });

  test('volume delete --force also removes its mappings', () => {
    const out = edit(BASE, (d) => removeVolume(d, 'db-a', { force: true }));
    const c = parseConfig(out, '/x.yaml');
    assert.equal(c.volumes.size, 0);
    assert.equal(c.targets[0].acls[0].luns!.size, 0);
    assert.ok(out.startsWith('# Lab SAN: edited by hand and by the CLI\n'));
  });

  test('serials that look like numbers, booleans or null read back as the same text', () => {
    const serials = ['1234', '007', '1E5', '1e5', 'true', 'False', '0x10', '0o17', 'null', '.inf', '1.5', '+12'];
    for (const header of ['', '%YAML 1.1\n---\n']) {
      for (const serial of serials) {
        const set = edit(header + BASE, (d) => setVolumeFields(d, 'db-a', { serial }));
        assert.equal(parseConfig(set, '/x.yaml').volumes.get('db-a')!.serial, serial, `${serial} set: ${set}`);
        const added = edit(header + BASE, (d) => addVolume(d, 'db-b', { path: 'luns/db-b.img', size: '1GiB', serial }));
        assert.equal(parseConfig(added, '/x.yaml').volumes.get('db-b')!.serial, serial, `${serial} added: ${added}`);
      }
    }
  });
});
