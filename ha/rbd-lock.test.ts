// One writer at a time (rbd-lock.ts): two gateways (groups 1 and 2) serve one image owned by
// gateway 1. The owner holds librbd's exclusive lock; a write through the other gateway still
// succeeds; killing the owner with -9 while the other writes hands the lock over once the
// OSD drops the dead owner's watch (5 s on the test cluster), with the dead owner
// blocklisted; the restarted owner takes the lock back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { requireTools, run, runAsync, startDaemon, type Daemon } from '../test/helpers/daemon';
import { cephConf, newImageName, rbd, removeImages, rbdTargetYaml } from './cluster';

const IQN = 'iqn.2026-11.io.iscsi-target:rbd-lock';
/** osd client watch timeout of the test cluster (5 s) plus librbd's retries and the blocklist. */
const TAKEOVER_LIMIT_MS = 20_000;
let conf = '';
let image = '';
const daemons: Daemon[] = [];
const blocklisted: string[] = [];

function yaml(group: number, peer: number): string {
  return rbdTargetYaml({ conf, image, iqn: IQN, top: `gateway: { group: ${group}, peers: [${peer}] }`, volume: 'owner: 1' });
}

const url = (d: Daemon) => `iscsi://127.0.0.1:${d.port}/${IQN}/0`;

function qemuIo(d: Daemon, cmd: string): string {
  const r = run('qemu-io', ['-f', 'raw', '-c', cmd, url(d)], 120_000);
  assert.equal(r.status, 0, `qemu-io -c '${cmd}' failed:\n${r.out}`);
  assert.doesNotMatch(r.out, /Pattern verification failed|error|failed/i, `qemu-io -c '${cmd}':\n${r.out}`);
  return r.out;
}

/** Client addresses holding the image's exclusive lock, as `rbd lock ls` prints them. */
function lockHolders(): string[] {
  return (JSON.parse(rbd(conf, ['lock', 'ls', '--format', 'json', `rbd/${image}`])) as { address: string }[]).map((l) => l.address);
}

function blocklist(): string[] {
  const r = spawnSync('ceph', ['--conf', conf, 'osd', 'blocklist', 'ls', '--format', 'json'], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  // Not JSON.parse: this ceph prints the list, then an empty one.
  return [...r.stdout.matchAll(/"addr":"([^"]+)"/g)].map((m) => m[1]);
}

/** The RADOS client address a daemon logged when it opened the volume. */
function clientOf(d: Daemon): string {
  const m = /"client":"([^"]+)"/.exec(d.output());
  assert.ok(m, `no client address in the log:\n${d.output()}`);
  return m[1];
}

before(() => {
  assert.equal(requireTools(['qemu-io', 'ceph', 'rbd']), undefined);
  conf = cephConf();
  image = newImageName('lock');
});

after(async () => {
  for (const d of daemons) await d.stop();
  removeImages(conf, [image]);
  for (const addr of blocklisted) spawnSync('ceph', ['--conf', conf, 'osd', 'blocklist', 'rm', addr], { timeout: 30_000 });
});

test('owner holds the lock, the non-owner writes anyway, a killed owner is fenced and fails back', async (t) => {
  const a = await startDaemon(yaml(1, 2));
  daemons.push(a);
  assert.match(a.output(), /took the RBD exclusive lock as the volume's owner \(gateway 1\)/);
  const addrA = clientOf(a);
  assert.deepEqual(lockHolders(), [addrA], 'the owner (gateway 1) holds the lock');

  const b = await startDaemon(yaml(2, 1));
  daemons.push(b);
  assert.doesNotMatch(b.output(), /took the RBD exclusive lock/);
  const addrB = clientOf(b);
  assert.notEqual(addrB, addrA);
  assert.deepEqual(lockHolders(), [addrA], 'opening the volume on the non-owner leaves the lock where it is');

  // Active/non-optimized still takes writes: librbd moves the lock, A's data stays readable.
  let t0 = Date.now();
  qemuIo(b, 'write -P 0x42 0 1M');
  t.diagnostic(`write through the non-owner (lock moves): ${Date.now() - t0} ms`);
  qemuIo(a, 'read -P 0x42 0 1M');
  qemuIo(b, 'read -P 0x42 0 1M');
  qemuIo(a, 'write -P 0x43 1M 64k'); // the owner's write takes the lock back
  assert.deepEqual(lockHolders(), [addrA]);
  qemuIo(b, 'read -P 0x43 1M 64k');

  // Kill the owner (holding the lock) while B writes: B's write waits for the takeover.
  a.proc.kill('SIGKILL');
  await new Promise((r) => a.proc.once('exit', r));
  daemons.splice(daemons.indexOf(a), 1);
  t0 = Date.now();
  // One qemu-io session of 8 writes: the first waits for the takeover, the rest follow.
  const stream = Array.from({ length: 8 }, (_, i) => ['-c', `write -P 0x${(0x60 + i).toString(16)} ${16 + i}M 128k`]).flat();
  const w = await runAsync('qemu-io', ['-f', 'raw', '-c', 'write -P 0x44 2M 1M', ...stream, url(b)], 120_000);
  const takeover = Date.now() - t0;
  t.diagnostic(`takeover: the non-owner's write completed ${takeover} ms after the owner was killed`);
  assert.equal(w.code, 0, w.out);
  assert.match(w.out, /wrote 1048576\/1048576/);
  assert.equal(w.out.match(/wrote 131072\/131072/g)?.length, 8, w.out);
  assert.ok(takeover < TAKEOVER_LIMIT_MS, `takeover took ${takeover} ms`);
  assert.ok(blocklist().includes(addrA), `the dead owner ${addrA} is blocklisted: ${blocklist().join(', ')}`);
  blocklisted.push(addrA);
  assert.deepEqual(lockHolders(), [addrB]);
  for (let i = 0; i < 4; i++) qemuIo(b, `write -P 0x${(0x50 + i).toString(16)} ${4 + i}M 256k`);
  for (let i = 0; i < 4; i++) qemuIo(b, `read -P 0x${(0x50 + i).toString(16)} ${4 + i}M 256k`);
  qemuIo(b, 'read -P 0x44 2M 1M');
  for (let i = 0; i < 8; i++) qemuIo(b, `read -P 0x${(0x60 + i).toString(16)} ${16 + i}M 128k`);

  // Failback: the owner comes back with a new RADOS client (not blocklisted) and takes the lock.
  t0 = Date.now();
  const a2 = await startDaemon(yaml(1, 2));
  daemons.push(a2);
  t.diagnostic(`failback: restarted owner serving with the lock after ${Date.now() - t0} ms`);
  assert.match(a2.output(), /took the RBD exclusive lock as the volume's owner \(gateway 1\)/);
  const addrA2 = clientOf(a2);
  assert.notEqual(addrA2, addrA);
  assert.deepEqual(lockHolders(), [addrA2]);
  assert.ok(!blocklist().includes(addrB), 'a cooperative failback blocklists nobody');
  qemuIo(a2, 'read -P 0x44 2M 1M');
  for (let i = 0; i < 8; i++) qemuIo(a2, `read -P 0x${(0x60 + i).toString(16)} ${16 + i}M 128k`);
  for (let i = 0; i < 4; i++) qemuIo(a2, `read -P 0x${(0x50 + i).toString(16)} ${4 + i}M 256k`);
  qemuIo(a2, 'write -P 0x45 8M 1M');
  qemuIo(b, 'read -P 0x45 8M 1M');
  qemuIo(a2, 'read -P 0x42 0 1M');
});
