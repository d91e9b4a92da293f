// The fault boundary per connection (issue 14): a handler that throws while handling one
// peer's PDU closes only that connection, with the error and its stack logged and counted in
// the metrics; the daemon and every other session carry on. The throwing handlers are
// injected into the real daemon with test/helpers/inject-fault.ts (node --require).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Initiator } from '../../src/initiator/initiator';
import { freePort, httpGet, startDaemon } from '../helpers/daemon';

const T = 'iqn.2026-11.io.example:faults';

const metrics = (port: number) => httpGet(`http://127.0.0.1:${port}/metrics`);

test('a throwing PDU handler closes only its own connection; the other sessions carry on', async () => {
  const mport = await freePort();
  const inject = path.join(__dirname, '..', 'helpers', 'inject-fault.js');
  const d = await startDaemon(
    `portals: ["127.0.0.1:PORT"]
volumes:
  a: { memory: true, size: 16MiB }
  b: { memory: true, size: 16MiB }
  c: { memory: true, size: 16MiB }
targets:
  - iqn: ${T}
    acls:
      - { initiator: iqn.1994-05.com.example:a, luns: { 0: a } }
      - { initiator: iqn.1994-05.com.example:b, luns: { 0: b } }
      - { initiator: iqn.1994-05.com.example:c, luns: { 0: c } }
metrics: { listen: "127.0.0.1:${mport}" }
`,
    { env: { ...process.env, LOG_LEVEL: 'info', NODE_OPTIONS: `--require ${inject}` } },
  );
  try {
    const login = async (n: string) => {
      const ini = await Initiator.connect({
        host: '127.0.0.1',
        port: d.port,
        targetName: T,
        initiatorName: `iqn.1994-05.com.example:${n}`,
      });
      await ini.testUnitReady(0);
      return ini;
    };
    const [a, b] = [await login('a'), await login('b')];
    const io = async (ini: Initiator, lba: number) => {
      const data = randomBytes(8192);
      await ini.write(0, lba, data);
      assert.deepEqual(await ini.read(0, lba, 16), data);
    };
    await io(a, 0);
    await io(b, 0);
    // A steady load on A while C's handlers throw.
    let stop = false;
    let ios = 0;
    const load = (async () => {
      for (let lba = 16; !stop; lba = (lba + 16) % 4096) {
        await io(a, lba);
        ios++;
      }
    })();

    for (const how of ['sync', 'async'] as const) {
      const c = await login('c');
      const sock = (c as unknown as { socket: import('node:net').Socket }).socket;
      const closed = new Promise<void>((r) => (sock.destroyed ? r() : sock.once('close', () => r())));
      if (how === 'sync') await assert.rejects(c.nop(Buffer.from('throw-sync')));
      else await assert.rejects(c.taskManagement(1, 0, 0xdeadbeef));
      await closed;
      await io(b, 64);
    }
    stop = true;
    await load;
    assert.ok(ios > 0);
    assert.equal(d.proc.exitCode, null, 'the daemon is still running');
    await io(a, 128);
    const c2 = await login('c'); // the faulty peer may come back
    await io(c2, 0);

    const m = await metrics(mport);
    assert.match(m, /^iscsi_target_connection_faults_total 2$/m);
    const lines = d
      .output()
      .split('\n')
      .filter((l) => l.includes('internal error handling this peer'));
    assert.equal(lines.length, 2, d.output());
    for (const l of lines) {
      const rec = JSON.parse(l) as { level: number; err: { stack: string; message: string } };
      assert.equal(rec.level, 50, 'logged as an error');
      assert.match(rec.err.stack, /injected fault in the (NOP-Out|TMF) handler\n\s+at /);
    }
    for (const ini of [a, b, c2]) assert.equal(await ini.logout(), 0);
  } finally {
    await d.stop();
  }
});
