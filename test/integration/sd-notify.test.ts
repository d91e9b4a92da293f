// Type=notify (issue 14): `serve` tells systemd READY=1 once its portals listen, RELOADING=1
// and READY=1 around a SIGHUP reload, STOPPING=1 when it drains; an invalid config exits 2
// (the unit's RestartPreventExitStatus) and never says READY. systemd's end is played by a
// unix datagram socket (test/helpers/notify-socket.ts), at a path and in the abstract namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, canConnect, startDaemon } from '../helpers/daemon';
import { NotifySocket } from '../helpers/notify-socket';

const YAML = `portals: ["127.0.0.1:PORT"]
volumes:
  v: { memory: true, size: 8MiB }
targets:
  - iqn: iqn.2026-11.io.example:n
    luns: { 0: v }
`;

for (const kind of ['path', 'abstract'] as const) {
  test(`READY=1 after the portals listen, RELOADING=1 / READY=1 on SIGHUP, STOPPING=1 on SIGTERM (${kind} socket)`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-notify-'));
    const where = kind === 'path' ? path.join(dir, 'notify') : `@iscsi-target-test-${process.pid}-${Date.now()}`;
    const sd = new NotifySocket(where);
    const d = await startDaemon(YAML, { env: { ...process.env, LOG_LEVEL: 'info', NOTIFY_SOCKET: where } });
    try {
      const ready = await sd.waitFor('READY=1');
      assert.ok(ready >= 0, `no READY=1: ${JSON.stringify(sd.messages)}`);
      assert.ok(await canConnect(d.port), 'the portal listens');
      const msg = sd.messages[ready];
      assert.match(msg, /^STATUS=serving 1 target on 127\.0\.0\.1:\d+$/m);
      assert.match(msg, new RegExp(`^MAINPID=${d.proc.pid}$`, 'm'));
      assert.match(d.output(), /control socket listening/, 'READY came after the control socket');

      d.proc.kill('SIGHUP');
      const reloading = await sd.waitFor('RELOADING=1', 10000, ready + 1);
      assert.ok(reloading > ready);
      assert.match(sd.messages[reloading], /^MONOTONIC_USEC=\d+$/m);
      assert.ok((await sd.waitFor('READY=1', 10000, reloading + 1)) > reloading, 'READY=1 again after the reload');
    } finally {
      const code = await d.stop();
      assert.equal(code, 0);
      assert.ok((await sd.waitFor('STOPPING=1', 2000)) >= 0, `no STOPPING=1: ${JSON.stringify(sd.messages)}`);
      sd.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}

test('an invalid config exits 2 without READY=1', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-notify-'));
  const where = path.join(dir, 'notify');
  const sd = new NotifySocket(where);
  try {
    fs.writeFileSync(path.join(dir, 'bad.yaml'), 'portals: ["127.0.0.1:1"]\nvolumes: { v: { memory: true } }\n');
    const r = spawnSync(process.execPath, [BIN, 'serve', '--config', path.join(dir, 'bad.yaml')], {
      env: { ...process.env, NOTIFY_SOCKET: where },
      encoding: 'utf8',
      timeout: 30000,
    });
    assert.equal(r.status, 2, r.stderr);
    assert.deepEqual(
      sd.poll().filter((m) => m.includes('READY=1')),
      [],
    );
  } finally {
    sd.close();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
