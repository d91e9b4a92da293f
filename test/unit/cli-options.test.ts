// The CLI sets what the config can: target-level LUNs, mutual CHAP, discovery CHAP,
// readonly, encryption, physical block size, serial/WWN (no daemon: the file is written).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadConfig } from '../../src/config/load';
import { runMain } from '../helpers/cli';

const cli = (dir: string, args: string[], env: NodeJS.ProcessEnv = {}) =>
  runMain([...args, '--config', path.join(dir, 'iscsi-target.yaml')], { cwd: dir, env: { ISCSI_TARGET_RUN_DIR: dir, ...env } });

function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-cliopts-'));
  return fn(dir).finally(() => fs.rmSync(dir, { recursive: true, force: true }));
}

const T = 'iqn.2026-11.io.example:lab';
const H = 'iqn.1994-05.com.redhat:host-a';

test('volume create sets readonly, shared, encryption, physical block size, serial and wwn', () =>
  withDir(async (dir) => {
    const ok = async (args: string[]) => {
      const r = await cli(dir, args);
      assert.equal(r.code, 0, r.err);
    };
    await ok([
      'volume',
      'create',
      'a',
      '--size',
      '1MiB',
      '--readonly',
      '--physical-block-size',
      '4096',
      '--serial',
      'SER-A',
      '--wwn',
      'naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4',
    ]);
    await ok(['volume', 'create', 'b', '--size', '1MiB', '--encrypt', '--shared']);
    await ok(['volume', 'create', 'c', '--size', '1MiB', '--key-file', 'keys/c.key']);
    await ok(['volume', 'create', 'd', '--size', '1MiB', '--new-identity']);
    const cfg = await loadConfig(path.join(dir, 'iscsi-target.yaml'));
    const a = cfg.volumes.get('a')!;
    assert.equal(a.readonly, true);
    assert.equal(a.physicalBlockSize, 4096);
    assert.equal(a.serial, 'SER-A');
    assert.equal(a.wwn, 'naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4');
    const b = cfg.volumes.get('b')!;
    assert.deepEqual(b.encryption, {});
    assert.equal(b.shared, true);
    assert.equal(cfg.volumes.get('c')!.encryption?.keyFile, path.join(dir, 'keys/c.key'));
    const d = cfg.volumes.get('d')!;
    assert.match(d.serial!, /^[0-9A-F]{24}$/);
    assert.match(d.wwn!, /^naa\.6[0-9a-f]{31}$/);
    // Wrong values are refused before anything is written.
    const bad = await cli(dir, ['volume', 'create', 'e', '--size', '1MiB', '--wwn', 'naa.1234']);
    assert.equal(bad.code, 1);
    assert.match(bad.err, /--wwn: .*only NAA 6/);
    assert.equal((await loadConfig(path.join(dir, 'iscsi-target.yaml'))).volumes.has('e'), false);
  }));

test('volume set changes readonly, serial/wwn; a volume adopted from an existing file gets its identity in the config', () =>
  withDir(async (dir) => {
    assert.equal((await cli(dir, ['volume', 'create', 'a', '--size', '1MiB'])).code, 0);
    let r = await cli(dir, ['volume', 'set', 'a', '--readonly', '--serial', 'NEW-1']);
    assert.equal(r.code, 0, r.err);
    let a = (await loadConfig(path.join(dir, 'iscsi-target.yaml'))).volumes.get('a')!;
    assert.equal(a.readonly, true);
    assert.equal(a.serial, 'NEW-1');
    r = await cli(dir, ['volume', 'set', 'a', '--no-readonly']);
    assert.equal(r.code, 0, r.err);
    a = (await loadConfig(path.join(dir, 'iscsi-target.yaml'))).volumes.get('a')!;
    assert.equal(a.readonly, false);
    assert.doesNotMatch(fs.readFileSync(path.join(dir, 'iscsi-target.yaml'), 'utf8'), /readonly/);
    // An image that exists before the daemon ever opened it (no identity file): the CLI
    // gives it a new identity in the config, not the name-derived one.
    fs.writeFileSync(path.join(dir, 'old.img'), Buffer.alloc(1024 * 1024));
    r = await cli(dir, ['volume', 'create', 'adopted', '--adopt', '--path', 'old.img']);
    assert.equal(r.code, 0, r.err);
    const adopted = (await loadConfig(path.join(dir, 'iscsi-target.yaml'))).volumes.get('adopted')!;
    assert.match(adopted.wwn!, /^naa\.6/);
    assert.match(adopted.serial!, /^[0-9A-F]{24}$/);
    r = await cli(dir, ['volume', 'create', 'thick', '--size', '1MiB', '--thick', '--no-progress']);
    assert.equal(r.code, 0, r.err);
    // A new volume file gets its new identity beside it, not in the config.
    assert.equal((await loadConfig(path.join(dir, 'iscsi-target.yaml'))).volumes.get('thick')!.wwn, undefined);
    const ids = ['a', 'thick'].map(
      (v) => JSON.parse(fs.readFileSync(path.join(dir, 'luns', `${v}.img.identity.json`), 'utf8')) as { wwn: string; serial: string },
    );
    for (const id of ids) assert.match(id.wwn, /^naa\.6[0-9a-f]{31}$/);
    assert.notEqual(ids[0].wwn, ids[1].wwn, 'each volume its own');
  }));

test('target create --lun, target map and unmap edit the target-level LUN map', () =>
  withDir(async (dir) => {
    for (const args of [
      ['volume', 'create', 'a', '--size', '1MiB'],
      ['volume', 'create', 'b', '--size', '1MiB'],
      ['target', 'create', T, '--lun', '0=a'],
      ['target', 'map', T, '1=b'],
    ]) {
      const r = await cli(dir, args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    }
    let t = (await loadConfig(path.join(dir, 'iscsi-target.yaml'))).targets[0];
    assert.deepEqual(
      [...t.luns],
      [
        [0, 'a'],
        [1, 'b'],
      ],
    );
    const r = await cli(dir, ['target', 'unmap', T, '0']);
    assert.equal(r.code, 0, r.err);
    t = (await loadConfig(path.join(dir, 'iscsi-target.yaml'))).targets[0]!;
    assert.deepEqual([...t.luns], [[1, 'b']]);
    const missing = await cli(dir, ['target', 'unmap', T, '7']);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /has no LUN 7/);
  }));

test('acl add sets mutual CHAP; discovery chap/open set discovery CHAP; secrets never printed', () =>
  withDir(async (dir) => {
    for (const args of [
      ['volume', 'create', 'a', '--size', '1MiB'],
      ['target', 'create', T],
      [
        'acl',
        'add',
        T,
        H,
        '--lun',
        '0=a',
        '--chap-user',
        'host-a',
        '--chap-secret',
        'host-a-secret1',
        '--mutual-user',
        'lab',
        '--mutual-secret',
        'target-secret-1',
      ],
    ]) {
      const r = await cli(dir, args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.err}`);
    }
    let r = await cli(dir, ['discovery', 'chap', '--user', 'disco'], {
      ISCSI_CHAP_SECRET: 'discovery-sec1',
      ISCSI_MUTUAL_SECRET: 'discovery-mut1',
    });
    assert.equal(r.code, 1, 'mutual needs its user too');
    r = await cli(dir, ['discovery', 'chap', '--user', 'disco', '--mutual-user', 'tgt'], {
      ISCSI_CHAP_SECRET: 'discovery-sec1',
      ISCSI_MUTUAL_SECRET: 'discovery-mut1',
    });
    assert.equal(r.code, 0, r.err);
    let cfg = await loadConfig(path.join(dir, 'iscsi-target.yaml'));
    const acl = cfg.targets[0].acls[0];
    assert.deepEqual(acl.mutual, { user: 'lab', secret: 'target-secret-1' });
    assert.deepEqual(cfg.discovery, {
      chap: { user: 'disco', secret: 'discovery-sec1' },
      mutual: { user: 'tgt', secret: 'discovery-mut1' },
    });
    const shown = await cli(dir, ['discovery', 'show', '--json']);
    assert.deepEqual(JSON.parse(shown.out), { chap: { user: 'disco' }, mutual: { user: 'tgt' } });
    const listed = await cli(dir, ['acl', 'list', '--json']);
    for (const text of [shown.out, listed.out]) assert.doesNotMatch(text, /secret1|sec1|mut1/);
    r = await cli(dir, ['discovery', 'open']);
    assert.equal(r.code, 0, r.err);
    cfg = await loadConfig(path.join(dir, 'iscsi-target.yaml'));
    assert.equal(cfg.discovery, undefined);
  }));

test('--json: every refusal is JSON on stdout (argument checks, config errors, usage errors)', () =>
  withDir(async (dir) => {
    fs.writeFileSync(path.join(dir, 'iscsi-target.yaml'), 'volumes:\n  a: { size: 1Q }\n');
    const cases: [string[], RegExp][] = [
      [['volume', 'create', 'x', '--json', '--wwn', 'nope'], /--wwn: /],
      [['acl', 'add', T, 'not-a-name', '--json'], /not an iSCSI name/],
      [['volume', 'list', '--json'], /config error/],
      [['target', 'list', '--json', '--bogus'], /unknown option '--bogus'/],
      [['status', '--json'], /no daemon is running/],
    ];
    for (const [args, re] of cases) {
      const r = await cli(dir, args);
      assert.equal(r.code, 1, args.join(' '));
      const j = JSON.parse(r.out) as { ok: boolean; message: string; errors: { line: number; key: string }[] };
      assert.equal(j.ok, false);
      assert.match(j.message, re, args.join(' '));
      if (args[1] === 'list' && args[0] === 'volume')
        assert.ok(
          j.errors.some((e) => e.line === 2 && e.key === 'volumes.a.size'),
          JSON.stringify(j),
        );
    }
  }));
