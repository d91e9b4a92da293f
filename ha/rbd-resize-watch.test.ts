// A resize made through one gateway reaches the hosts of the others: librbd's update watch
// on the image header tells each gateway, which raises CAPACITY DATA HAS CHANGED (2A/09) and
// answers READ CAPACITY with the new size, as after a resize of its own.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startDaemon, type Daemon } from '../test/helpers/daemon';
import { Initiator, senseOf } from '../src/initiator/initiator';
import { cephConf, newImageName, removeImages, rbdTargetYaml } from './cluster';

const IQN = 'iqn.2026-11.io.iscsi-target:rbd-resize';
let conf = '';
const images: string[] = [];
const daemons: Daemon[] = [];

const yaml = (image: string) => rbdTargetYaml({ conf, image, iqn: IQN });

before(() => {
  conf = cephConf();
});

after(async () => {
  for (const d of daemons) await d.stop();
  removeImages(conf, images);
});

test("a grow through one gateway: the other gateway's host gets 2A/09 and the new capacity", async () => {
  const image = newImageName('watch');
  images.push(image);
  const a = await startDaemon(yaml(image));
  daemons.push(a);
  const b = await startDaemon(yaml(image));
  daemons.push(b);
  const ini = await Initiator.connect({ host: '127.0.0.1', port: b.port, targetName: IQN });
  try {
    // Use the LU through B until the power-on unit attention is gone.
    for (let i = 0; i < 5 && (await ini.command(0, Buffer.alloc(6))).sense; i++);
    assert.equal((await ini.readCapacity(0)).blocks, BigInt((64 * 1024 * 1024) / 512));

    fs.writeFileSync(a.configFile, fs.readFileSync(a.configFile, 'utf8').replace('size: 64MiB', 'size: 96MiB'));
    a.proc.kill('SIGHUP');
    for (const end = Date.now() + 15_000; !/config reloaded/.test(a.output()) && Date.now() < end;)
      await new Promise((r) => setTimeout(r, 100));
    assert.match(a.output(), /config reloaded/);

    // B learns it from Ceph, not from its own config (still 64MiB).
    let sense: ReturnType<typeof senseOf>;
    const t0 = Date.now();
    for (const end = t0 + 10_000; Date.now() < end;) {
      sense = senseOf((await ini.command(0, Buffer.alloc(6))).sense);
      if (sense) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(sense, { key: 6, asc: 0x2a, ascq: 0x09 }, `CAPACITY DATA HAS CHANGED through B\n${b.output()}`);
    console.log(`# B's host saw 2A/09 ${Date.now() - t0} ms after A's reload`);
    assert.equal((await ini.readCapacity(0)).blocks, BigInt((96 * 1024 * 1024) / 512));
    assert.match(b.output(), /volume size changed in Ceph/);
  } finally {
    ini.close();
  }
  assert.equal(await a.stop(), 0);
  assert.equal(await b.stop(), 0, b.output());
  daemons.length = 0;
});
