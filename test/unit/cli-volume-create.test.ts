// `volume create` makes a new file only (O_EXCL, no symlinks); an existing file or device is
// exported only with --adopt (issue 14: it used to adopt, follow symlinks and grow anything).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { cliSync } from '../helpers/daemon';

function withDir(fn: (dir: string, cli: (...args: string[]) => { code: number | null; stdout: string; stderr: string }) => void) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-vol-'));
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-run-')); // no daemon here
  const cli = (...args: string[]) =>
    cliSync([...args, '--config', path.join(dir, 'c.yaml')], { cwd: dir, env: { ...process.env, ISCSI_TARGET_RUN_DIR: run } });
  try {
    fs.writeFileSync(path.join(dir, 'c.yaml'), 'portals: ["127.0.0.1:3260"]\n', { mode: 0o600 });
    fn(dir, cli);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(run, { recursive: true, force: true });
  }
}

test('a new volume is a new sparse 0600 file', () => {
  withDir((dir, cli) => {
    const r = cli('volume', 'create', 'a', '--size', '8MiB');
    assert.equal(r.code, 0, r.stderr);
    const st = fs.statSync(path.join(dir, 'luns', 'a.img'));
    assert.equal(st.size, 8 * 1024 * 1024);
    assert.equal(st.mode & 0o777, 0o600);
    assert.ok(st.blocks * 512 < 1024 * 1024, 'not sparse');
  });
});

test('an existing file is refused and left as it was', () => {
  withDir((dir, cli) => {
    const victim = path.join(dir, 'precious.img');
    fs.writeFileSync(victim, 'data that must stay');
    const before = fs.readFileSync(path.join(dir, 'c.yaml'));
    const r = cli('volume', 'create', 'v', '--size', '8MiB', '--path', 'precious.img');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /exists already; volume create makes a new file only .*--adopt/);
    assert.equal(fs.readFileSync(victim, 'utf8'), 'data that must stay');
    assert.ok(fs.readFileSync(path.join(dir, 'c.yaml')).equals(before), 'config changed');
  });
});

test('a symlink, even a dangling one, is never followed', () => {
  withDir((dir, cli) => {
    const target = path.join(dir, 'elsewhere.img');
    fs.writeFileSync(target, 'not yours');
    fs.symlinkSync(target, path.join(dir, 'link.img'));
    const r = cli('volume', 'create', 'v', '--size', '8MiB', '--path', 'link.img');
    assert.equal(r.code, 1);
    assert.equal(fs.readFileSync(target, 'utf8'), 'not yours');
    const dangling = path.join(dir, 'would-be-created.img');
    fs.symlinkSync(dangling, path.join(dir, 'dangling.img'));
    const d = cli('volume', 'create', 'w', '--size', '8MiB', '--path', 'dangling.img');
    assert.equal(d.code, 1);
    assert.ok(!fs.existsSync(dangling), 'created a file through a dangling symlink');
    const adopt = cli('volume', 'create', 'x', '--adopt', '--path', 'link.img');
    assert.equal(adopt.code, 1);
    assert.match(adopt.stderr, /symbolic link; give the path it points to/);
  });
});

test('--adopt exports an existing file as it is', () => {
  withDir((dir, cli) => {
    const img = path.join(dir, 'old.img');
    fs.writeFileSync(img, Buffer.alloc(1024 * 1024, 7));
    const r = cli('volume', 'create', 'old', '--adopt', '--path', 'old.img');
    assert.equal(r.code, 0, r.stderr);
    // As it is, with the identity an image new to this target gets (config serial and wwn).
    assert.match(
      fs.readFileSync(path.join(dir, 'c.yaml'), 'utf8'),
      /old:\s*\{\s*path: old\.img,\s*serial: [0-9A-F]{24},\s*wwn: naa\.6[0-9a-f]{31}\s*\}/,
    );
    assert.equal(fs.statSync(img).size, 1024 * 1024);
    assert.equal(fs.readFileSync(img)[4096], 7);
    const missing = cli('volume', 'create', 'none', '--adopt', '--path', 'none.img');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /ENOENT/);
  });
});

test(
  'root creating a volume for a config another user owns gives the file to that user',
  { skip: process.getuid?.() === 0 ? false : 'needs root' },
  () => {
    withDir((dir, cli) => {
      fs.chownSync(path.join(dir, 'c.yaml'), 65534, 65534);
      const r = cli('volume', 'create', 'svc', '--size', '4MiB');
      assert.equal(r.code, 0, r.stderr);
      for (const p of [path.join(dir, 'luns'), path.join(dir, 'luns', 'svc.img')]) {
        const st = fs.statSync(p);
        assert.deepEqual([st.uid, st.gid], [65534, 65534], p);
      }
      assert.equal(fs.statSync(path.join(dir, 'c.yaml')).uid, 65534, "the config stays its owner's");
    });
  },
);

test('--rbd POOL/IMAGE writes an RBD volume (and its ceph settings) into the config, no file', () => {
  withDir((dir, cli) => {
    const r = cli(
      'volume',
      'create',
      'db',
      '--rbd',
      'rbd/db',
      '--size',
      '20GiB',
      '--ceph-conf',
      '/etc/ceph/x.conf',
      '--ceph-user',
      'iscsi',
    );
    assert.equal(r.code, 0, r.stderr);
    const text = fs.readFileSync(path.join(dir, 'c.yaml'), 'utf8');
    assert.match(text, /db: \{ rbd: rbd\/db, ceph: \{ conf: \/etc\/ceph\/x\.conf, user: iscsi \}, size: 20GiB \}/);
    assert.equal(fs.existsSync(path.join(dir, 'luns')), false);
    const check = cli('config', 'check');
    assert.equal(check.code, 0, check.stderr + check.stdout);
    const bad = cli('volume', 'create', 'x', '--rbd', 'nopool', '--size', '1GiB');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--rbd: "nopool" is not an RBD image: expected POOL\/IMAGE/);
    const mixed = cli('volume', 'create', 'y', '--rbd', 'rbd/y', '--size', '1GiB', '--path', 'y.img');
    assert.equal(mixed.code, 1);
    assert.match(mixed.stderr, /an RBD volume takes none of --path/);
    const cephOnly = cli('volume', 'create', 'z', '--size', '1GiB', '--ceph-user', 'x');
    assert.equal(cephOnly.code, 1);
    assert.match(cephOnly.stderr, /--ceph-conf and --ceph-user are for RBD volumes/);
  });
});
