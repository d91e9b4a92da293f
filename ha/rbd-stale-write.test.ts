// A gateway stopped (SIGSTOP) while a host's WRITE is on its way lands nothing once it runs
// again past limits.writeAgeLimit: the write ends ABORTED COMMAND and the image keeps what
// it held. The write waits in the kernel's socket buffer during the stop, so it is parsed
// only after SIGCONT: the loop clock (src/iscsi/loop-clock.ts) dates it back.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { startDaemon, type Daemon } from '../test/helpers/daemon';
import { CDB } from '../test/helpers/scsi';
import { Initiator, senseOf } from '../src/initiator/initiator';
import { cephConf, newImageName, removeImages, rbdTargetYaml } from './cluster';

const IQN = 'iqn.2026-11.io.iscsi-target:rbd-stale';
let conf = '';
const images: string[] = [];
const daemons: Daemon[] = [];

const yaml = (image: string) => rbdTargetYaml({ conf, image, iqn: IQN, top: 'limits: { writeAgeLimit: 1 }' });

before(() => {
  conf = cephConf();
});

after(async () => {
  for (const d of daemons) {
    d.proc.kill('SIGCONT');
    await d.stop();
  }
  removeImages(conf, images);
});

test('a write sent while the gateway is stopped longer than the bound is refused and never lands', async () => {
  const image = newImageName('stale');
  images.push(image);
  const d = await startDaemon(yaml(image));
  daemons.push(d);
  const ini = await Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: IQN });
  try {
    for (let i = 0; i < 5 && (await ini.command(0, Buffer.alloc(6))).sense; i++);
    const old = Buffer.alloc(4096, 'O');
    await ini.write(0, 8, old);

    d.proc.kill('SIGSTOP');
    const stale = ini.command(0, Buffer.from(CDB.write16(8, 8)), { dataOut: Buffer.alloc(4096, 'S') });
    await new Promise((r) => setTimeout(r, 3000));
    d.proc.kill('SIGCONT');
    const r = await stale;
    assert.deepEqual(senseOf(r.sense), { key: 0x0b, asc: 0, ascq: 0 }, 'ABORTED COMMAND');

    // Nothing landed: through the gateway and straight from the image.
    assert.ok((await ini.read(0, 8, 8)).equals(old));
    const dump = spawnSync('bash', ['-c', `rbd --conf ${conf} export --no-progress rbd/${image} - | head -c 8192`], {
      encoding: 'latin1',
      timeout: 60_000,
    });
    assert.equal(dump.stdout.slice(4096, 8192), old.toString('latin1'));

    // A fresh write after the stall goes through.
    const fresh = Buffer.alloc(4096, 'F');
    await ini.write(0, 8, fresh);
    assert.ok((await ini.read(0, 8, 8)).equals(fresh));
  } finally {
    ini.close();
  }
  assert.equal(await d.stop(), 0);
  daemons.length = 0;
});
