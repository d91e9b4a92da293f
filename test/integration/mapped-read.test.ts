// Large READs from a tmpfs volume are sent from views of its pages. While a READ's bytes
// still wait in a socket that is not being read, a WRITE to those blocks (from another
// session) waits, so the READ returns the data as it was when it completed; the WRITE
// lands once the bytes are out, or at once when the reader's connection drops.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Socket } from 'node:net';
import { randomBytes } from 'node:crypto';
import { Initiator } from '../../src/initiator/initiator';
import { fileVolume, startTarget, TARGET, type TestTarget } from '../helpers/target';

const SHM = '/dev/shm';
const haveShm = fs.existsSync(SHM);
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const BLOCKS = 256; // 128 KiB READs
const READS = 128; // 16 MiB: more than the socket buffers on both ends hold

let t: TestTarget;
let dir = '';
let original: Buffer;

before(async () => {
  if (!haveShm) return;
  dir = fs.mkdtempSync(path.join(SHM, 'mapped-read-it-'));
  const file = path.join(dir, 'vol.img');
  original = randomBytes(SIZE);
  fs.writeFileSync(file, original); // all data, no holes: large READs are mapped
  t = await startTarget({ volumes: [fileVolume('shm', file, SIZE)] });
});
after(async () => {
  await t?.stop();
  if (dir) fs.rmSync(dir, { recursive: true, force: true });
});

const connect = () => Initiator.connect({ host: t.host, port: t.port, targetName: TARGET });
const socketOf = (ini: Initiator) => (ini as unknown as { socket: Socket }).socket;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function watch(p: Promise<unknown>): { done: () => boolean } {
  let done = false;
  p.then(
    () => (done = true),
    () => (done = true),
  );
  return { done: () => done };
}

test(
  'a WRITE to blocks a READ is still sending waits for it; the READ returns the old data',
  { skip: !haveShm && 'no /dev/shm' },
  async () => {
    const a = await connect();
    const b = await connect();
    await a.testUnitReady(0);
    await b.testUnitReady(0);
    socketOf(a).pause(); // A stops reading: the target's sends to A back up
    const reads = Array.from({ length: READS }, (_, i) => a.read(0, i * BLOCKS, BLOCKS));
    await sleep(300);
    const lba = (READS - 1) * BLOCKS; // the last READ: certainly still queued
    const fresh = randomBytes(4096);
    const write = b.write(0, lba, fresh);
    const w = watch(write);
    const elsewhere = b.write(0, SIZE / 512 - 8, randomBytes(4096));
    await elsewhere; // blocks no READ covers: no wait
    await sleep(300);
    assert.equal(w.done(), false, 'the WRITE waits while the READ of its blocks is unsent');
    socketOf(a).resume();
    const got = await Promise.all(reads);
    got.forEach((d, i) => assert.ok(d.equals(original.subarray(i * BLOCKS * 512, (i + 1) * BLOCKS * 512)), `READ ${i}`));
    await write;
    assert.ok((await b.read(0, lba, 8)).equals(fresh), 'the WRITE landed');
    fresh.copy(original, lba * 512);
    await a.logout();
    await b.logout();
  },
);

test('when the reader drops its connection, the waiting WRITE goes through', { skip: !haveShm && 'no /dev/shm' }, async () => {
  const a = await connect();
  const b = await connect();
  await a.testUnitReady(0);
  await b.testUnitReady(0);
  socketOf(a).pause();
  for (let i = 0; i < READS; i++) a.read(0, i * BLOCKS, BLOCKS).catch(() => undefined);
  await sleep(300);
  const fresh = randomBytes(4096);
  const w = watch(b.write(0, (READS - 1) * BLOCKS, fresh));
  await sleep(200);
  assert.equal(w.done(), false, 'waiting on the unsent READ');
  a.close();
  for (let i = 0; i < 50 && !w.done(); i++) await sleep(20);
  assert.equal(w.done(), true, 'the WRITE went through once the connection was gone');
  assert.ok((await b.read(0, (READS - 1) * BLOCKS, 8)).equals(fresh));
  await b.logout();
});
