// Where the control socket lives: one name per config file, short enough for a unix socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { clientSocketPaths, serverSocketPath, socketName } from '../../src/admin/socket-path';

test('the name depends on the absolute config path only, and stays short', () => {
  const deep = path.join('/', ...Array.from({ length: 30 }, (_, i) => `folder-${i}`), 'iscsi-target.yaml');
  assert.match(socketName(deep), /^iscsi-target-[0-9a-f]{16}\.sock$/);
  assert.equal(socketName('/etc/a.yaml'), socketName('/etc/./a.yaml'));
  assert.notEqual(socketName('/etc/a.yaml'), socketName('/etc/b.yaml'));
  const rel = path.relative(process.cwd(), '/etc/a.yaml');
  assert.equal(socketName(rel), socketName('/etc/a.yaml'));
  assert.ok(Buffer.byteLength(serverSocketPath(deep, { ISCSI_TARGET_RUN_DIR: os.tmpdir() })) < 108);
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

test('the daemon uses the first writable folder; clients try every candidate in the same order', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-run-'));
  try {
    const env = { ISCSI_TARGET_RUN_DIR: dir, XDG_RUNTIME_DIR: '/nonexistent-run' };
    assert.equal(path.dirname(serverSocketPath('/etc/a.yaml', env)), dir);
    const candidates = clientSocketPaths('/etc/a.yaml', env).map((p) => path.dirname(p));
    assert.deepEqual(candidates, [dir, '/run/iscsi-target', '/nonexistent-run', os.tmpdir()]);
    assert.equal(path.dirname(serverSocketPath('/etc/a.yaml', { XDG_RUNTIME_DIR: '/nonexistent-run' })), fs.existsSync('/run/iscsi-target') ? '/run/iscsi-target' : os.tmpdir());
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
