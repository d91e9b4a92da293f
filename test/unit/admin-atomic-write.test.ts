// Atomic rewrites of the config keep what the file was: owner, group, mode, and a symlink
// stays a symlink (issue 14: a root CLI edit used to make the service user's file root:root).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { writeFileAtomic } from '../../src/admin/atomic-write';

const isRoot = process.getuid?.() === 0;

test('owner, group and mode are kept', { skip: isRoot ? false : 'needs root to own a file for another user' }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-aw-'));
  try {
    const f = path.join(dir, 'iscsi-target.yaml');
    fs.writeFileSync(f, 'portals: []\n');
    fs.chownSync(f, 65534, 4242);
    fs.chmodSync(f, 0o640);
    await writeFileAtomic(f, 'portals: ["127.0.0.1:3260"]\n');
    const st = fs.statSync(f);
    assert.deepEqual({ uid: st.uid, gid: st.gid, mode: st.mode & 0o7777 }, { uid: 65534, gid: 4242, mode: 0o640 });
    assert.equal(fs.readFileSync(f, 'utf8'), 'portals: ["127.0.0.1:3260"]\n');
    assert.deepEqual(fs.readdirSync(dir), ['iscsi-target.yaml'], 'no temporary file left');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a new file is 0600; a symlinked file is replaced where it lives', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-aw-'));
  try {
    const f = path.join(dir, 'new.yaml');
    await writeFileAtomic(f, 'a: 1\n');
    assert.equal(fs.statSync(f).mode & 0o777, 0o600);
    const real = path.join(dir, 'real.yaml');
    fs.writeFileSync(real, 'b: 1\n', { mode: 0o600 });
    const link = path.join(dir, 'link.yaml');
    fs.symlinkSync(real, link);
    await writeFileAtomic(link, 'b: 2\n');
    assert.ok(fs.lstatSync(link).isSymbolicLink());
    assert.equal(fs.readFileSync(real, 'utf8'), 'b: 2\n');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
