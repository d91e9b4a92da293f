// Where the control socket lives: one name per config file, short enough for a unix socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clientSocketPaths, privateDirProblem, runDirCandidates, serverSocketPath, socketName } from '../../src/admin/socket-path';

test('the name depends on the absolute config path only, and stays short', () => {
  const deep = path.join('/', ...Array.from({ length: 30 }, (_, i) => `folder-${i}`), 'iscsi-target.yaml');
  assert.match(socketName(deep), /^iscsi-target-[0-9a-f]{16}\.sock$/);
  assert.equal(socketName('/etc/a.yaml'), socketName('/etc/./a.yaml'));
  assert.notEqual(socketName('/etc/a.yaml'), socketName('/etc/b.yaml'));
  const rel = path.relative(process.cwd(), '/etc/a.yaml');
  assert.equal(socketName(rel), socketName('/etc/a.yaml'));
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-run-'));
  try {
    assert.ok(Buffer.byteLength(serverSocketPath(deep, { ISCSI_TARGET_RUN_DIR: run })) < 108);
  } finally {
    fs.rmSync(run, { recursive: true, force: true });
  }
});

test('a symlink to the config finds the same socket', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-sock-'));
  try {
    fs.writeFileSync(path.join(dir, 'real.yaml'), '');
    fs.symlinkSync(path.join(dir, 'real.yaml'), path.join(dir, 'link.yaml'));
    assert.equal(socketName(path.join(dir, 'link.yaml')), socketName(path.join(dir, 'real.yaml')));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('never a shared folder: the candidates are the explicit one, /run/iscsi-target and $XDG_RUNTIME_DIR/iscsi-target', () => {
  const env = { ISCSI_TARGET_RUN_DIR: '/srv/run', XDG_RUNTIME_DIR: '/run/user/1000', TMPDIR: '/tmp' };
  const dirs = clientSocketPaths('/etc/a.yaml', env).map((p) => path.dirname(p));
  assert.deepEqual(dirs, ['/srv/run', '/run/iscsi-target', '/run/user/1000/iscsi-target']);
  for (const c of runDirCandidates({})) assert.notEqual(c.dir, os.tmpdir());
  assert.ok(!clientSocketPaths('/etc/a.yaml', {}).some((p) => p.startsWith(os.tmpdir() + '/')));
});

test('the daemon creates its folder 0700 and uses it', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-run-'));
  try {
    const dir = path.join(base, 'nested', 'run');
    const p = serverSocketPath('/etc/a.yaml', { ISCSI_TARGET_RUN_DIR: dir });
    assert.equal(path.dirname(p), dir);
    const st = fs.lstatSync(dir);
    assert.equal(st.mode & 0o777, 0o700);
    assert.equal(st.uid, process.getuid!());
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});

test('a folder others may enter, one of another user, or a symlink is refused', () => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-run-'));
  try {
    const open = path.join(base, 'open');
    fs.mkdirSync(open);
    fs.chmodSync(open, 0o1777);
    assert.throws(() => serverSocketPath('/etc/a.yaml', { ISCSI_TARGET_RUN_DIR: open }), /mode 1777; it must be 0700/);
    const link = path.join(base, 'link');
    const real = path.join(base, 'real');
    fs.mkdirSync(real, { mode: 0o700 });
    fs.symlinkSync(real, link);
    assert.throws(() => serverSocketPath('/etc/a.yaml', { ISCSI_TARGET_RUN_DIR: link }), /symbolic link/);
    assert.match(privateDirProblem(link, [process.getuid!()]) ?? '', /symbolic link/);
    if (process.getuid!() === 0) {
      const other = path.join(base, 'other');
      fs.mkdirSync(other, { mode: 0o700 });
      fs.chownSync(other, 65534, 65534);
      assert.throws(() => serverSocketPath('/etc/a.yaml', { ISCSI_TARGET_RUN_DIR: other }), /belongs to uid 65534/);
      // Not named explicitly: another user's folder is skipped for the next candidate.
      const xdg = path.join(base, 'xdg');
      fs.mkdirSync(xdg, { mode: 0o700 });
      const p = serverSocketPath('/etc/a.yaml', { XDG_RUNTIME_DIR: xdg });
      assert.ok(p.startsWith('/run/iscsi-target/') || p.startsWith(`${xdg}/iscsi-target/`));
    }
    assert.equal(privateDirProblem(real, [process.getuid!()]), undefined);
  } finally {
    fs.rmSync(base, { recursive: true, force: true });
  }
});
