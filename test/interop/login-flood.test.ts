// 1,000 idle TCP connections held open against the real daemon (issue 14): real initiators
// (ours and libiscsi's iscsi-ls) still log in, and a session logged in before the flood keeps
// working. Before, `maxConnections` counted connections that never logged in, and newcomers
// were closed at accept: one client could keep every host from reconnecting.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { randomBytes } from 'node:crypto';
import { Initiator } from '../../src/initiator/initiator';
import { requireTools, runAsync, startDaemon } from '../helpers/daemon';

const T = 'iqn.2026-11.io.example:flood';
const IDLE = 1000;

/** Open `n` idle TCP connections from `from(i)`; they send nothing and are never closed by us. */
async function idleSockets(port: number, n: number, from: (i: number) => string): Promise<net.Socket[]> {
  const out: net.Socket[] = [];
  for (let i = 0; i < n; i += 50) {
    const batch = await Promise.all(
      Array.from(
        { length: Math.min(50, n - i) },
        (_, j) =>
          new Promise<net.Socket>((resolve, reject) => {
            const s = net.connect({ host: '127.0.0.1', port, localAddress: from(i + j) }, () => resolve(s));
            s.on('error', (e) => (s.connecting ? reject(e) : undefined));
          }),
      ),
    );
    out.push(...batch);
  }
  return out;
}

test(
  `${IDLE} idle sockets held open: real initiators still log in; logged-in sessions are never evicted`,
  { timeout: 120000 },
  async (t) => {
    const d = await startDaemon(`portals: ["127.0.0.1:PORT"]
volumes:
  v0: { memory: true, size: 16MiB }
  v1: { memory: true, size: 16MiB }
targets:
  - iqn: ${T}
    luns: { 0: v0 }
  - iqn: ${T}-2
    luns: { 0: v1 }
limits: { loginTimeout: 60 }
`);
    const held: net.Socket[] = [];
    try {
      const before = await Initiator.connect({
        host: '127.0.0.1',
        port: d.port,
        targetName: `${T}-2`,
        initiatorName: 'iqn.1994-05.com.example:before',
      });
      await before.testUnitReady(0);
      const pattern = randomBytes(4096);
      await before.write(0, 8, pattern);

      // From the initiators' own address, then from 100 others (127.0.0.2 ... 127.0.0.101).
      for (const [what, from] of [
        ['the same address as the initiators', () => '127.0.0.1'],
        ['100 other addresses', (i: number) => `127.0.0.${2 + (i % 100)}`],
      ] as const) {
        const socks = await idleSockets(d.port, IDLE, from);
        held.push(...socks);
        await new Promise((r) => setTimeout(r, 300));
        const stillOpen = socks.filter((s) => !s.destroyed && s.readyState === 'open').length;

        const t0 = Date.now();
        const ini = await Initiator.connect({
          host: '127.0.0.1',
          port: d.port,
          targetName: T,
          initiatorName: 'iqn.1994-05.com.example:during',
          timeoutMs: 10000,
        });
        await ini.testUnitReady(0);
        await ini.write(0, 0, pattern);
        assert.deepEqual(await ini.read(0, 0, 8), pattern);
        assert.equal(await ini.logout(), 0);
        const loginMs = Date.now() - t0;

        const missing = requireTools(['iscsi-ls']);
        if (!missing) {
          const r = await runAsync('iscsi-ls', ['-s', '-i', 'iqn.1994-05.com.example:iscsi-ls', `iscsi://127.0.0.1:${d.port}`], 30000);
          assert.equal(r.code, 0, r.out);
          assert.match(r.out, new RegExp(T.replaceAll('.', '\\.')));
        }
        assert.deepEqual(await before.read(0, 8, 8), pattern, 'the session from before the flood still works');
        t.diagnostic(
          `${IDLE} idle sockets from ${what}: ${stillOpen} still open at the target (the rest, the oldest, closed to make room); our initiator logged in, wrote and read back in ${loginMs} ms${missing ? '' : '; iscsi-ls listed the targets'}`,
        );
      }
      assert.match(d.output(), /closed the oldest connection still in login to make room/);
      assert.equal(await before.logout(), 0);
    } finally {
      for (const s of held) s.destroy();
      await d.stop();
    }
  },
);
