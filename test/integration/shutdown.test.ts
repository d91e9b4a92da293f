// Graceful shutdown: stop accepting, ask each initiator to log out (Async Message,
// AsyncEvent 1 with Parameter3 = seconds to do it), let in-flight commands finish, drop
// those that stay (AsyncEvent 2), flush and close the volumes; SIGTERM exits 0.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Initiator } from '../../src/initiator/initiator';
import { Op, type AsyncMessage } from '../../src/iscsi/pdu/messages';
import { fileVolume, startTarget, TARGET } from '../helpers/target';
import { startDaemon } from '../helpers/daemon';

const asyncEvents = (ini: Initiator) =>
  ini.unsolicited.filter((p): p is AsyncMessage => p.op === Op.AsyncMessage).map((p) => [p.asyncEvent, p.parameter3]);

test(
  'stop(): initiators are asked to log out, in-flight writes finish and reach the file, stragglers are dropped',
  { timeout: 30000 },
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-shutdown-'));
    const file = path.join(dir, 'vol.img');
    const t = await startTarget({
      volumes: [fileVolume('vol', file, 16 * 1024 * 1024)],
      server: { bounds: { shutdownGraceMs: 1500 } },
    });
    try {
      const polite = await Initiator.connect({
        host: t.host,
        port: t.port,
        targetName: TARGET,
        initiatorName: 'iqn.2026-11.io.iscsi-target:polite',
      });
      const stubborn = await Initiator.connect({
        host: t.host,
        port: t.port,
        targetName: TARGET,
        initiatorName: 'iqn.2026-11.io.iscsi-target:stubborn',
        honorLogoutRequest: false,
      });
      await polite.testUnitReady(0);
      await stubborn.testUnitReady(0);
      // Writes in flight when the stop begins.
      const data = randomBytes(1024 * 1024);
      const writes = [polite.write(0, 0, data), stubborn.write(0, 4096, data)];
      const started = Date.now();
      const stopping = t.server.stop();
      await Promise.all(writes); // both complete with GOOD
      // A new connection is not accepted any more.
      const refused = await new Promise<boolean>((r) => {
        const s = net.connect({ host: t.host, port: t.port });
        s.on('error', () => r(true));
        s.on('connect', () => s.once('close', () => r(true)));
        setTimeout(() => r(false), 2000).unref();
      });
      assert.ok(refused, 'no new connections while stopping');
      await stopping;
      const took = Date.now() - started;
      assert.deepEqual(asyncEvents(polite), [[1, 2]], 'polite: asked to log out within 2 s (1.5 s rounded up)');
      assert.ok(polite.isClosed, 'polite logged out');
      assert.deepEqual(asyncEvents(stubborn)[0], [1, 2]);
      assert.equal(asyncEvents(stubborn)[1]?.[0], 2, 'stubborn: told its connection is dropped');
      assert.ok(took >= 1400 && took < 8000, `stop took ${took} ms (grace 1.5 s)`);
      // The volume was flushed and closed: the file holds both writes.
      const fd = fs.openSync(file, 'r');
      const back = Buffer.alloc(data.length);
      fs.readSync(fd, back, 0, back.length, 0);
      assert.deepEqual(back, data);
      fs.readSync(fd, back, 0, back.length, 4096 * 512);
      assert.deepEqual(back, data);
      fs.closeSync(fd);
      polite.close();
      stubborn.close();
    } finally {
      fs.rmSync(t.dir, { recursive: true, force: true });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('SIGTERM: the daemon asks the initiator to log out, it does, and the daemon exits 0', { timeout: 30000 }, async () => {
  const d = await startDaemon(
    `portals: ["127.0.0.1:PORT"]\nvolumes:\n  v: { path: DIR/v.img, size: 8MiB }\ntargets:\n  - iqn: ${TARGET}\n    luns: { 0: v }\nlimits:\n  shutdownGrace: 3\n`,
  );
  const ini = await Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: TARGET });
  await ini.testUnitReady(0);
  const data = randomBytes(65536);
  await ini.write(0, 0, data);
  const started = Date.now();
  const code = await d.stop();
  assert.equal(code, 0);
  assert.deepEqual(asyncEvents(ini), [[1, 3]]);
  assert.ok(ini.isClosed);
  assert.ok(Date.now() - started < 3000, 'the initiator logged out well before the grace ran out');
  assert.match(d.output(), /asking the initiator to log out/);
  assert.match(d.output(), /"msg":"stopped"/);
});
