// `volume snapshot` and `volume rollback` on an RBD volume against the test cluster: the
// snapshot keeps the data as it was, rollback is refused while a daemon serves the image
// (and changes nothing), and restores the snapshot's data once none does.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RbdBackstore } from '../src/backstore/rbd';
import { startDaemon, type Daemon } from '../test/helpers/daemon';
import { runMain } from '../test/helpers/cli';
import { cephConf, newImageName, rbd, removeImages } from './cluster';

const MiB = 1024 * 1024;
let conf = '';
let image = '';
let dir = '';
let configFile = '';
const daemons: Daemon[] = [];

function yaml(): string {
  return `portals: ["127.0.0.1:PORT"]
ceph: { conf: ${conf} }
volumes:
  db: { rbd: rbd/${image}, size: 16MiB }
  plain: { path: plain.img, size: 1MiB }
targets:
  - iqn: iqn.2026-11.io.iscsi-target:snap
    luns: { 0: db, 1: plain }
`;
}

async function withImage<T>(fn: (s: RbdBackstore) => Promise<T>): Promise<T> {
  const s = await RbdBackstore.open({ pool: 'rbd', image, conf });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

const fill = (b: number) => Buffer.alloc(MiB, b);
const firstMiB = () =>
  withImage(async (s) => {
    const b = Buffer.alloc(MiB);
    await s.read(b, 0);
    return b;
  });

before(() => {
  conf = cephConf();
  image = newImageName('snap');
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-snap-'));
  configFile = path.join(dir, 'iscsi-target.yaml');
  fs.writeFileSync(configFile, yaml().replace('PORT', '3260'));
  rbd(conf, ['create', '--size', '16M', `rbd/${image}`]);
});

after(async () => {
  for (const d of daemons) await d.stop();
  purge();
  fs.rmSync(dir, { recursive: true, force: true });
});

/** The clone, then the image and its snapshots (rbd rm refuses an image that has snapshots). */
function purge(): void {
  removeImages(conf, [`${image}-clone`]);
  try {
    rbd(conf, ['snap', 'unprotect', `rbd/${image}@before`]);
  } catch {
    // not protected
  }
  try {
    rbd(conf, ['snap', 'purge', '--no-progress', `rbd/${image}`]);
    removeImages(conf, [image]);
  } catch {
    // already gone
  }
}

test('snapshot keeps the data; rollback is refused while a daemon serves the image, then restores it', async () => {
  await withImage((s) => s.write(fill(0x11), 0));
  let r = await runMain(['volume', 'snapshot', 'db', 'before', '--config', configFile]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`snapshot rbd/${image}@before created`));
  assert.match(rbd(conf, ['snap', 'ls', `rbd/${image}`]), /\bbefore\b/);
  await withImage((s) => s.write(fill(0x22), 0));

  const d = await startDaemon(yaml());
  daemons.push(d);
  r = await runMain(['volume', 'rollback', 'db', 'before', '--config', d.configFile]);
  assert.equal(r.code, 1);
  assert.match(r.err, /is open by 1 other client\(s\) .*a gateway serves it.*nothing was changed/);
  assert.ok((await firstMiB()).equals(fill(0x22)), 'a refused rollback changes nothing');
  assert.equal(await d.stop(), 0);
  daemons.pop();

  r = await runMain(['volume', 'rollback', 'db', 'before', '--config', configFile, '--json']);
  assert.equal(r.code, 0, r.err);
  assert.deepEqual(JSON.parse(r.out), { ok: true, volume: 'db', rolledBackTo: 'before', rbd: `rbd/${image}` });
  assert.ok((await firstMiB()).equals(fill(0x11)), 'the snapshot data is back');
});

test('refusals say why: unknown snapshot, bad name, a file volume, no such volume', async () => {
  let r = await runMain(['volume', 'rollback', 'db', 'nosuch', '--config', configFile]);
  assert.equal(r.code, 1);
  assert.match(r.err, /rbd_snap_rollback .*@nosuch failed: ENOENT/);
  r = await runMain(['volume', 'snapshot', 'db', 'a/b', '--config', configFile]);
  assert.equal(r.code, 1);
  assert.match(r.err, /snapshot name "a\/b": use 1-64 letters/);
  r = await runMain(['volume', 'snapshot', 'plain', 's', '--config', configFile]);
  assert.equal(r.code, 1);
  assert.match(r.err, /volume plain is not an RBD volume: snapshot works on RBD volumes only for now/);
  r = await runMain(['volume', 'snapshot', 'nope', 's', '--config', configFile]);
  assert.equal(r.code, 1);
  assert.match(r.err, /no volume nope in the config/);
});

test('clone: a new volume on a clone of the snapshot, with the snapshot data and its own identity', async () => {
  const r = await runMain(['volume', 'clone', 'db', 'before', 'copy', '--rbd', `rbd/${image}-clone`, '--config', configFile]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, new RegExp(`volume copy created \\(RBD image rbd/${image}-clone, a clone of rbd/${image}@before\\)`));
  const info = JSON.parse(rbd(conf, ['info', '--format', 'json', `rbd/${image}-clone`])) as {
    parent?: { image: string; snapshot: string };
  };
  assert.equal(info.parent?.image, image);
  assert.equal(info.parent?.snapshot, 'before');
  assert.match(fs.readFileSync(configFile, 'utf8'), new RegExp(`copy: \\{ rbd: rbd/${image}-clone`));
  const c = await RbdBackstore.open({ pool: 'rbd', image: `${image}-clone`, conf });
  try {
    const b = Buffer.alloc(MiB);
    await c.read(b, 0);
    assert.ok(b.equals(fill(0x11)), 'the clone holds the snapshot data');
    assert.equal(await c.getMetadata('iscsi-target.identity'), undefined, "the parent's identity is not copied");
  } finally {
    await c.close();
  }
  // Served: the clone gets its own identity, not the parent's.
  const d = await startDaemon(fs.readFileSync(configFile, 'utf8').replace('127.0.0.1:3260', '127.0.0.1:PORT'));
  daemons.push(d);
  const parentId = rbd(conf, ['image-meta', 'get', `rbd/${image}`, 'iscsi-target.identity']);
  const cloneId = rbd(conf, ['image-meta', 'get', `rbd/${image}-clone`, 'iscsi-target.identity']);
  assert.notEqual(cloneId, parentId);
  assert.equal(await d.stop(), 0);
  daemons.pop();
  const again = await runMain(['volume', 'clone', 'db', 'before', 'copy', '--rbd', 'rbd/x', '--config', configFile]);
  assert.equal(again.code, 1);
  assert.match(again.err, /volume copy already exists; nothing was changed/);
});
