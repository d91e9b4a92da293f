// The daemon serving RBD volumes: data written with qemu-io (libiscsi) lands in the image
// (read back through the target and with `rbd export`), and two daemons — two gateways —
// serve one image at once: the same LU identity on both, and what one writes the other reads.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { requireTools, run, runAsync, startDaemon, type Daemon } from '../test/helpers/daemon';
import { inquireIdentity } from '../test/helpers/inquiry';
import { cephConf, newImageName, rbd, removeImages, rbdTargetYaml } from './cluster';

const IQN = 'iqn.2026-11.io.iscsi-target:rbd';
let conf = '';
const images: string[] = [];
const daemons: Daemon[] = [];

function yaml(image: string): string {
  return rbdTargetYaml({ conf, image, iqn: IQN });
}

function qemuIo(d: Daemon, cmd: string): string {
  const r = run('qemu-io', ['-f', 'raw', '-c', cmd, `iscsi://127.0.0.1:${d.port}/${IQN}/0`], 120_000);
  assert.equal(r.status, 0, `qemu-io -c '${cmd}' failed:\n${r.out}`);
  assert.doesNotMatch(r.out, /Pattern verification failed|error|failed/i, `qemu-io -c '${cmd}':\n${r.out}`);
  return r.out;
}

/** VPD 0x80 serial and the NAA designator of VPD 0x83, as iscsi-inq reads them. */
function identity(d: Daemon): { serial: string; naa: string } {
  const id = inquireIdentity(d.port, IQN);
  return { serial: id.serial, naa: id.naa.toString('hex') };
}

before(() => {
  assert.equal(requireTools(['qemu-io', 'iscsi-inq']), undefined);
  conf = cephConf();
});

after(async () => {
  for (const d of daemons) await d.stop();
  removeImages(conf, images);
});

test('a daemon creates the image, serves it to qemu-io, and the data is in the image', async () => {
  const image = newImageName('gw');
  images.push(image);
  const d = await startDaemon(yaml(image));
  daemons.push(d);
  assert.match(d.output(), /created RBD image/);
  qemuIo(d, 'write -P 0x5a 0 1M');
  qemuIo(d, 'write -P 0xa5 3M 512k');
  const out = qemuIo(d, 'read -P 0x5a 0 1M');
  assert.match(out, /read 1048576\/1048576 bytes at offset 0/);
  qemuIo(d, 'read -P 0xa5 3M 512k');
  qemuIo(d, 'read -P 0 1M 2M'); // never written: zeros
  // Independently of the target: what librbd's own tool reads from the image.
  const r = run('bash', [
    '-c',
    `rbd --conf ${conf} export --no-progress rbd/${image} - | head -c 4194304 | od -An -tx1 -v | sort | uniq -c`,
  ]);
  assert.equal(r.status, 0, r.out);
  const counts = new Map(
    r.out
      .trim()
      .split('\n')
      .map((l) => l.trim().split(/\s+/))
      .map(([n, ...bytes]) => [bytes.join(' '), Number(n)]),
  );
  // 16 bytes per od line: 1 MiB of 5a, 512 KiB of a5, the rest zeros.
  assert.equal(counts.get(Array(16).fill('5a').join(' ')), 65536);
  assert.equal(counts.get(Array(16).fill('a5').join(' ')), 32768);
  assert.equal(counts.get(Array(16).fill('00').join(' ')), 262144 - 65536 - 32768);
  // The identity is kept in the image, for every gateway.
  const meta = rbd(conf, ['image-meta', 'get', `rbd/${image}`, 'iscsi-target.identity']);
  const id = identity(d);
  const stored = JSON.parse(meta) as { serial: string; wwn: string };
  assert.equal(stored.serial, id.serial);
  assert.equal(stored.wwn, `naa.${id.naa.toLowerCase()}`);
  assert.equal(await d.stop(), 0);
  daemons.pop();
});

test('two gateways serve one image: one identity, and each reads what the other wrote', async () => {
  const image = newImageName('gw2');
  images.push(image);
  const a = await startDaemon(yaml(image));
  daemons.push(a);
  const b = await startDaemon(yaml(image));
  daemons.push(b);
  assert.match(a.output(), /generated its identity/);
  assert.doesNotMatch(b.output(), /generated its identity/, 'the second gateway must take the identity from the image');
  assert.deepEqual(identity(a), identity(b));
  // Alternate writers: librbd's exclusive lock moves between the gateways each time.
  for (let i = 0; i < 4; i++) {
    const [w, r] = i % 2 === 0 ? [a, b] : [b, a];
    const p = `0x${(0x11 * (i + 1)).toString(16)}`;
    qemuIo(w, `write -P ${p} ${i}M 256k`);
    qemuIo(r, `read -P ${p} ${i}M 256k`);
  }
  // Both at once: each its own range, then each checks the other's.
  const both = await Promise.all(
    [
      [a, 'write -P 0x61 8M 1M'],
      [b, 'write -P 0x62 9M 1M'],
    ].map(([d, cmd]) =>
      runAsync('qemu-io', ['-f', 'raw', '-c', cmd as string, `iscsi://127.0.0.1:${(d as Daemon).port}/${IQN}/0`], 120_000),
    ),
  );
  for (const w of both) {
    assert.equal(w.code, 0, w.out);
    assert.match(w.out, /wrote 1048576\/1048576/);
  }
  qemuIo(a, 'read -P 0x62 9M 1M');
  qemuIo(b, 'read -P 0x61 8M 1M');
  assert.equal(await a.stop(), 0);
  assert.equal(await b.stop(), 0);
  daemons.length = 0;
});

test('a larger size in the config grows the image on reload (SIGHUP); hosts see the new capacity', async () => {
  const image = newImageName('grow');
  images.push(image);
  const d = await startDaemon(yaml(image));
  daemons.push(d);
  const url = `iscsi://127.0.0.1:${d.port}/${IQN}/0`;
  const capacity = () => Number(/Total size:(\d+)/.exec(run('iscsi-readcapacity16', [url]).out)?.[1]);
  assert.equal(capacity(), 64 * 1024 * 1024);
  fs.writeFileSync(d.configFile, fs.readFileSync(d.configFile, 'utf8').replace('size: 64MiB', 'size: 96MiB'));
  d.proc.kill('SIGHUP');
  for (const end = Date.now() + 15_000; !/config reloaded/.test(d.output()) && Date.now() < end;)
    await new Promise((r) => setTimeout(r, 100));
  assert.match(d.output(), /config reloaded/);
  assert.equal(capacity(), 96 * 1024 * 1024);
  const info = JSON.parse(rbd(conf, ['info', '--format', 'json', `rbd/${image}`])) as { size: number };
  assert.equal(info.size, 96 * 1024 * 1024);
  assert.equal(await d.stop(), 0);
  daemons.pop();
});
