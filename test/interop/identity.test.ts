// Volume identity as a real host reads it (libiscsi's iscsi-inq, VPD 0x80 and 0x83) from
// the real daemon: two targets with a volume of the same name answer different serials and
// NAA designators; one volume keeps its identity across a restart, a rename and a config
// edit; a volume file from before identity files answers the name-derived identity its
// hosts know; serial and wwn in the config take over an identity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { requireTools, startDaemon, type Daemon } from '../helpers/daemon';
import { inquireIdentity } from '../helpers/inquiry';
import { deriveIdentifiers } from '../../src/scsi/logical-unit';

const IQN = 'iqn.2026-11.io.example:ident';
const skip = requireTools(['iscsi-inq']);

function config(volume: string, extra = ''): string {
  return `portals: ["127.0.0.1:PORT"]\nvolumes:\n  ${volume}: { path: DIR/data.img, size: 16MiB${extra} }\ntargets:\n  - iqn: ${IQN}\n    luns: { 0: ${volume} }\n`;
}

function inquire(d: Daemon): { serial: string; naa: Buffer } {
  return inquireIdentity(d.port, IQN);
}

test('two targets exporting a volume of the same name give hosts two different disk identities', { skip }, async () => {
  const a = await startDaemon(config('data'));
  const b = await startDaemon(config('data'));
  try {
    const ia = inquire(a);
    const ib = inquire(b);
    assert.notEqual(ia.serial, ib.serial);
    assert.ok(!ia.naa.equals(ib.naa), `both answer NAA ${ia.naa.toString('hex')}`);
    assert.equal(ia.naa[0] >> 4, 6);
  } finally {
    await a.stop();
    await b.stop();
  }
});

test('a volume keeps its identity across a restart, a rename and a config edit', { skip }, async () => {
  let d = await startDaemon(config('data'));
  const dir = d.dir;
  try {
    const first = inquire(d);
    const port = d.port;
    await d.stop({ keepDir: true });
    d = await startDaemon(config('data'), { dir, port });
    assert.deepEqual(inquire(d), first, 'after a restart');
    await d.stop({ keepDir: true });
    d = await startDaemon(config('renamed', ', readonly: true'), { dir, port });
    assert.deepEqual(inquire(d), first, 'after renaming the volume and editing its entry');
  } finally {
    await d.stop();
  }
});

test('a volume file from before identity files answers the name-derived identity', { skip }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-ident-old-'));
  fs.writeFileSync(path.join(dir, 'data.img'), Buffer.alloc(16 * 1024 * 1024));
  const d = await startDaemon(config('legacy'), { dir });
  try {
    const id = inquire(d);
    const legacy = deriveIdentifiers('legacy');
    assert.equal(id.serial, legacy.serial);
    assert.ok(id.naa.equals(legacy.naa));
    assert.match(d.output(), /volume legacy: kept the name-derived identity its hosts know/);
  } finally {
    await d.stop();
  }
});

test('serial and wwn in the config are what hosts see (taking over a volume)', { skip }, async () => {
  const wwn = 'naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4';
  const d = await startDaemon(config('data', `, serial: "LIO-3f9c1e", wwn: ${wwn}`));
  try {
    const id = inquire(d);
    assert.equal(id.serial, 'LIO-3f9c1e');
    assert.equal(`naa.${id.naa.toString('hex')}`, wwn);
  } finally {
    await d.stop();
  }
});
