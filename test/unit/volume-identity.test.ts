// A volume's identity (serial, NAA designator): random and unique when created, kept beside
// the volume file, stable across restarts, renames and config edits, settable in the config,
// and the name-derived one for volumes that exist from before identity files.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { formatWwn, identityFile, parseWwn, resolveVolumeIdentity, type IdentitySource } from '../../src/scsi/identity';
import { deriveIdentifiers } from '../../src/scsi/logical-unit';
import { COMPANY_ID } from '../../src/scsi/limits';
import { parseConfig, ConfigError } from '../../src/config/load';

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-identity-'));
}

const fileVol = (name: string, p: string, extra: Partial<IdentitySource> = {}): IdentitySource => ({
  name,
  path: p,
  memory: false,
  ...extra,
});

/** The vendor-specific bits of an NAA 6 designator (after NAA and company id): 100 bits. */
function randomPart(naa: Buffer): string {
  return `${(naa[3] & 0x0f).toString(16)}${naa.subarray(4).toString('hex')}`;
}

test('two targets each creating a volume "data" give it different identities (>= 96 random bits)', async () => {
  const a = tmp();
  const b = tmp();
  try {
    const ia = await resolveVolumeIdentity(fileVol('data', 'luns/data.img'), a);
    const ib = await resolveVolumeIdentity(fileVol('data', 'luns/data.img'), b);
    assert.equal(ia.origin, 'generated');
    assert.notEqual(ia.serial, ib.serial);
    assert.ok(!ia.naa.equals(ib.naa));
    const legacy = deriveIdentifiers('data');
    assert.ok(!ia.naa.equals(legacy.naa), 'not the name-derived designator');
    for (const id of [ia, ib]) {
      assert.equal(id.naa.length, 16);
      assert.equal(id.naa[0] >> 4, 6, 'NAA IEEE Registered Extended');
      const company = ((id.naa[0] & 0x0f) << 20) | (id.naa[1] << 12) | (id.naa[2] << 4) | (id.naa[3] >> 4);
      assert.equal(company, COMPANY_ID);
      assert.equal(randomPart(id.naa).length * 4, 100);
      assert.ok(id.serial.length >= 24);
    }
    // 200 fresh identities: no two share the random part of the designator.
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const d = tmp();
      try {
        seen.add(randomPart((await resolveVolumeIdentity(fileVol('data', 'x.img'), d)).naa));
      } finally {
        fs.rmSync(d, { recursive: true, force: true });
      }
    }
    assert.equal(seen.size, 200);
    // Kept beside the volume file, written before the file exists.
    const stored = JSON.parse(fs.readFileSync(identityFile(path.join(a, 'luns/data.img')), 'utf8'));
    assert.deepEqual(stored, { serial: ia.serial, wwn: formatWwn(ia.naa), origin: 'generated' });
  } finally {
    fs.rmSync(a, { recursive: true, force: true });
    fs.rmSync(b, { recursive: true, force: true });
  }
});

test('the identity survives restarts, renames of the volume and config edits', async () => {
  const dir = tmp();
  try {
    const first = await resolveVolumeIdentity(fileVol('data', 'data.img'), dir);
    fs.writeFileSync(path.join(dir, 'data.img'), Buffer.alloc(4096)); // the store creates the file
    const again = await resolveVolumeIdentity(fileVol('data', 'data.img'), dir);
    assert.equal(again.serial, first.serial);
    assert.ok(again.naa.equals(first.naa));
    const renamed = await resolveVolumeIdentity(fileVol('database', 'data.img'), dir);
    assert.equal(renamed.serial, first.serial);
    assert.ok(renamed.naa.equals(first.naa));
    // A path written differently (absolute) is the same file.
    const abs = await resolveVolumeIdentity(fileVol('database', path.join(dir, 'data.img')), os.tmpdir());
    assert.ok(abs.naa.equals(first.naa));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a volume file from before identity files keeps the name-derived identity its hosts know, then keeps it across a rename', async () => {
  const dir = tmp();
  try {
    fs.writeFileSync(path.join(dir, 'old.img'), Buffer.alloc(8192));
    const legacy = deriveIdentifiers('old');
    const id = await resolveVolumeIdentity(fileVol('old', 'old.img'), dir);
    assert.equal(id.origin, 'name-derived');
    assert.equal(id.serial, legacy.serial);
    assert.ok(id.naa.equals(legacy.naa));
    assert.ok(fs.existsSync(identityFile(path.join(dir, 'old.img'))), 'pinned in the identity file');
    const renamed = await resolveVolumeIdentity(fileVol('renamed', 'old.img'), dir);
    assert.equal(renamed.serial, legacy.serial, 'a rename does not change it');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('serial and wwn in the config take over an identity, and it stays when the keys are removed again', async () => {
  const dir = tmp();
  try {
    fs.writeFileSync(path.join(dir, 'v.img'), Buffer.alloc(4096));
    const wwn = 'naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4';
    const id = await resolveVolumeIdentity(fileVol('v', 'v.img', { serial: 'LIO-0001', wwn }), dir);
    assert.equal(id.origin, 'config');
    assert.equal(id.serial, 'LIO-0001');
    assert.equal(formatWwn(id.naa), wwn);
    const later = await resolveVolumeIdentity(fileVol('v', 'v.img'), dir);
    assert.equal(later.serial, 'LIO-0001');
    assert.equal(formatWwn(later.naa), wwn);
    // Only one of the two: the other stays.
    const onlySerial = await resolveVolumeIdentity(fileVol('v', 'v.img', { serial: 'OTHER' }), dir);
    assert.equal(onlySerial.serial, 'OTHER');
    assert.equal(formatWwn(onlySerial.naa), wwn);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('memory volumes get a new identity each start unless configured', async () => {
  const mem: IdentitySource = { name: 'ram', memory: true };
  const a = await resolveVolumeIdentity(mem, os.tmpdir());
  const b = await resolveVolumeIdentity(mem, os.tmpdir());
  assert.ok(!a.naa.equals(b.naa));
  const wwn = 'naa.5001405f3a8c2e4b';
  const c = await resolveVolumeIdentity({ ...mem, serial: 'RAM1', wwn }, os.tmpdir());
  assert.equal(c.serial, 'RAM1');
  assert.equal(formatWwn(c.naa), wwn);
  assert.equal(c.naa.length, 8);
});

test('a damaged identity file is never replaced silently; a copied identity is refused', async () => {
  const dir = tmp();
  try {
    fs.writeFileSync(path.join(dir, 'v.img'), Buffer.alloc(4096));
    fs.writeFileSync(identityFile(path.join(dir, 'v.img')), '{"serial": 12');
    await assert.rejects(resolveVolumeIdentity(fileVol('v', 'v.img'), dir), /identity file .*v\.img\.identity\.json is damaged/);
    fs.rmSync(identityFile(path.join(dir, 'v.img')));
    const a = await resolveVolumeIdentity(fileVol('a', 'v.img'), dir);
    fs.copyFileSync(path.join(dir, 'v.img'), path.join(dir, 'copy.img'));
    fs.copyFileSync(identityFile(path.join(dir, 'v.img')), identityFile(path.join(dir, 'copy.img')));
    await assert.rejects(
      resolveVolumeIdentity(fileVol('b', 'copy.img'), dir, { taken: (id) => (id.naa.equals(a.naa) ? 'a' : undefined) }),
      /volume b: its identity .* is already volume a's .*copy\.img\.identity\.json copied/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a new volume whose identity cannot be saved is refused before its file is created', async () => {
  // /proc refuses new files, to root too.
  await assert.rejects(
    resolveVolumeIdentity(fileVol('v', 'v.img'), '/proc/self'),
    /volume v: cannot write its identity file \/proc\/self\/v\.img\.identity\.json: E[A-Z]+/,
  );
  assert.equal(fs.existsSync('/proc/self/v.img'), false);
  // A path that cannot be a file is named, not thrown raw.
  const dir = tmp();
  try {
    fs.writeFileSync(path.join(dir, 'blocked'), '');
    await assert.rejects(
      resolveVolumeIdentity(fileVol('w', 'blocked/w.img'), dir),
      /^Error: volume w: cannot use .*blocked\/w\.img: ENOTDIR$/,
    );
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('config: serial and wwn are checked, normalized, and unique across volumes', () => {
  const cfg = parseConfig(
    'volumes:\n  a: { memory: true, size: 1MiB, serial: "00123", wwn: "0x6001405F3A8C2E4B9D7A61C0E5F2B3A4" }\n  b: { memory: true, size: 1MiB, serial: 4567 }\n' +
      'targets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: a, 1: b }\n',
    'x.yaml',
  );
  assert.equal(cfg.volumes.get('a')!.wwn, 'naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4');
  assert.equal(cfg.volumes.get('a')!.serial, '00123');
  assert.equal(cfg.volumes.get('b')!.serial, '4567');
  const bad = () =>
    parseConfig(
      'volumes:\n  a: { memory: true, size: 1MiB, wwn: naa.7001405f3a8c2e4b9d7a61c0e5f2b3a4, serial: "has space" }\n' +
        '  b: { memory: true, size: 1MiB, wwn: naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4, serial: S1 }\n' +
        '  c: { memory: true, size: 1MiB, wwn: naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4, serial: S1 }\n' +
        'targets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: a, 1: b, 2: c }\n',
      'x.yaml',
    );
  assert.throws(bad, (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    const text = e.errors.map((i) => `${i.line}:${i.key}: ${i.message}`).join('\n');
    assert.match(text, /2:volumes\.a\.wwn: .*only NAA 6 .* NAA 5 .* this one is NAA 7/);
    assert.match(text, /2:volumes\.a\.serial: the serial may hold only printable ASCII without spaces/);
    assert.match(text, /4:volumes\.c\.serial: volume c has the serial of volume b/);
    assert.match(text, /4:volumes\.c\.wwn: volume c has the wwn of volume b/);
    return true;
  });
  assert.ok(!Buffer.isBuffer(parseWwn('naa.6001')));
});
