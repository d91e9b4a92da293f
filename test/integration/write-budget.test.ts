// WRITEs beyond the process-wide write budget wait for their R2Ts and still land intact;
// the budget is whole again afterwards, also when sessions go away mid-write.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Initiator } from '../../src/initiator/initiator';
import { writeBudget } from '../../src/iscsi/data-budget';
import { startTarget, TARGET, type TestTarget } from '../helpers/target';

let t: TestTarget;
const savedLimit = writeBudget.limit;

before(async () => {
  t = await startTarget();
  writeBudget.limit = 512 * 1024; // room for two 256 KiB WRITEs at a time
});
after(async () => {
  writeBudget.limit = savedLimit;
  await t.stop();
});

// InitialR2T=Yes and no immediate data: every byte of these WRITEs waits for an R2T.
const connect = () =>
  Initiator.connect({
    host: t.host,
    port: t.port,
    targetName: TARGET,
    loginKeys: [
      ['InitialR2T', 'Yes'],
      ['ImmediateData', 'No'],
    ],
  });

test('many large WRITEs over a small write budget wait their turn and land intact', async () => {
  const sessions = await Promise.all(Array.from({ length: 4 }, () => connect()));
  const waitedBefore = writeBudget.waited;
  const blocks = 512; // 256 KiB
  await Promise.all(
    sessions.map(async (ini, s) => {
      await ini.testUnitReady(0);
      const writes = Array.from({ length: 8 }, (_, i) => ({ lba: (s * 8 + i) * blocks, data: randomBytes(blocks * 512) }));
      await Promise.all(writes.map((w) => ini.write(0, w.lba, w.data)));
      const back = await Promise.all(writes.map((w) => ini.read(0, w.lba, blocks)));
      back.forEach((b, i) => assert.ok(b.equals(writes[i].data), `session ${s} write ${i}`));
    }),
  );
  assert.ok(writeBudget.waited > waitedBefore, 'some WRITEs had to wait for room');
  assert.equal(writeBudget.inUse, 0, 'everything given back');
  assert.equal(writeBudget.waiting, 0);
  await Promise.all(sessions.map((i) => i.logout()));
});

test('a session that drops with WRITEs queued gives their room back', async () => {
  const a = await connect();
  await a.testUnitReady(0);
  const blocks = 512;
  // Fire WRITEs without waiting for them (their answers never come), then drop the
  // connection while some still queue.
  for (let i = 0; i < 16; i++) a.write(0, 100000 + i * blocks, randomBytes(blocks * 512)).catch(() => undefined);
  const deadline = Date.now() + 2000;
  while (writeBudget.waiting === 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
  assert.ok(writeBudget.waiting > 0, 'WRITEs queue for room before the drop');
  a.close();
  for (let i = 0; i < 100 && (writeBudget.inUse !== 0 || writeBudget.waiting !== 0); i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(writeBudget.inUse, 0, 'room given back after the connection closed');
  // And the budget still admits new work.
  const b = await connect();
  await b.testUnitReady(0); // the new nexus first hears its unit attention
  const data = randomBytes(blocks * 512);
  await b.write(0, 0, data);
  assert.ok((await b.read(0, 0, blocks)).equals(data));
  await b.logout();
});
