// The identity of volumes that keep it in their own metadata (RBD images): derived from the
// image's unique name (the same on every gateway), stored on first use, read back after, and
// the config's serial/wwn win. A fake store stands in for librbd.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { seededIdentity } from '../../src/config/identity';
import { formatWwn, IDENTITY_METADATA_KEY, parseWwn, resolveStoredIdentity } from '../../src/scsi/identity';

function fakeStore(id: string) {
  const meta = new Map<string, string>();
  let sets = 0;
  return {
    meta,
    sets: () => sets,
    store: {
      path: `rbd:rbd/${id}`,
      getMetadata: (k: string) => Promise.resolve(meta.get(k)),
      setMetadata: (k: string, v: string) => {
        sets++;
        meta.set(k, v);
        return Promise.resolve();
      },
      uniqueId: () => `fsid-1/3/${id}`,
    },
  };
}

test('seeded identities: the same seed gives the same identity, another seed another; NAA 6 of our company', () => {
  const a = seededIdentity('fsid-1/3/abc');
  assert.deepEqual(seededIdentity('fsid-1/3/abc'), a);
  const b = seededIdentity('fsid-1/3/abd');
  assert.notEqual(a.serial, b.serial);
  assert.ok(!a.naa.equals(b.naa));
  assert.equal(a.naa.length, 16);
  assert.equal(a.naa[0] >> 4, 6);
  assert.ok(Buffer.isBuffer(parseWwn(formatWwn(a.naa))));
  assert.match(a.serial, /^[0-9A-F]{24}$/);
});

test('two gateways opening one new image store and show the same identity', async () => {
  const first = fakeStore('img1');
  const vol = { name: 'db', memory: false };
  const x = await resolveStoredIdentity(vol, first.store);
  assert.equal(x.origin, 'generated');
  assert.equal(first.sets(), 1);
  // A second gateway that had not seen the stored value yet computes the same one.
  const second = fakeStore('img1');
  const y = await resolveStoredIdentity(vol, second.store);
  assert.equal(y.serial, x.serial);
  assert.ok(y.naa.equals(x.naa));
  // Once stored, it is read back, not written again.
  const again = await resolveStoredIdentity(vol, first.store);
  assert.equal(again.serial, x.serial);
  assert.equal(first.sets(), 1);
  const stored = JSON.parse(first.meta.get(IDENTITY_METADATA_KEY)!) as { serial: string; wwn: string };
  assert.deepEqual(stored, { serial: x.serial, wwn: formatWwn(x.naa), origin: 'generated' });
});

test("the config's serial and wwn win and are stored; a damaged value is an error, never replaced", async () => {
  const f = fakeStore('img2');
  const wwn = 'naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4';
  const r = await resolveStoredIdentity({ name: 'db', memory: false, serial: 'SER1', wwn }, f.store);
  assert.equal(r.origin, 'config');
  assert.equal(r.serial, 'SER1');
  assert.equal(formatWwn(r.naa), wwn);
  assert.equal((JSON.parse(f.meta.get(IDENTITY_METADATA_KEY)!) as { serial: string }).serial, 'SER1');
  f.meta.set(IDENTITY_METADATA_KEY, '{"serial": 5}');
  await assert.rejects(resolveStoredIdentity({ name: 'db', memory: false }, f.store), /identity in rbd:rbd\/img2 metadata .* is damaged/);
  assert.equal(f.meta.get(IDENTITY_METADATA_KEY), '{"serial": 5}');
});
