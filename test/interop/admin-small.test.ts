// The smaller operations items of issue 17, against the real daemon: a reload after a
// `limits` change says it needs a restart; a command shows the warnings its change brought,
// not every old one again; a second `serve` on a taken port names the process holding it
// (our own daemon with its pid and config, or another program).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { BIN, cliSync, startDaemon, type Daemon } from '../helpers/daemon';

const T = 'iqn.2026-11.io.example:small';

const cli = (d: Daemon, ...args: string[]) => cliSync(args, { daemon: d });

const CONFIG = `portals: ["127.0.0.1:PORT"]
volumes:
  a: { memory: true, size: 1MiB }
  lonely: { memory: true, size: 1MiB }
targets:
  - iqn: ${T}
    luns: { 0: a }
`;

test('reload after a limits change says it takes effect at restart, not "nothing changed"', async () => {
  const d = await startDaemon(CONFIG);
  try {
    fs.appendFileSync(d.configFile, 'limits: { maxSessions: 7 }\n');
    const r = cli(d, 'reload');
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /nothing changed/);
    assert.match(r.stdout, /limits changed: that takes effect when the target restarts/);
    const j = JSON.parse(cli(d, 'reload', '--json').stdout);
    assert.deepEqual(j.restartNeeded, ['limits']);
  } finally {
    await d.stop();
  }
});

test("an edit shows only the warnings it brought, not the config's old ones again", async () => {
  const d = await startDaemon(CONFIG);
  try {
    // The config already warns that "lonely" is mapped nowhere.
    const check = cli(d, 'config', 'check');
    assert.match(check.stdout, /volume lonely is not mapped to any target/);
    const r = cli(d, 'volume', 'create', 'b', '--memory', '--size', '1MiB');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /volume b is not mapped to any target/);
    assert.doesNotMatch(r.stderr, /lonely/);
    const again = cli(d, 'target', 'map', T, '1=b');
    assert.equal(again.code, 0, again.stderr);
    assert.doesNotMatch(again.stderr, /warning/);
  } finally {
    await d.stop();
  }
});

test('the same edits without a daemon show only the new warnings too', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-warn-'));
  try {
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(file, CONFIG.replace('PORT', '3260'));
    const run = (...args: string[]) =>
      cliSync([...args, '--config', file], { cwd: dir, env: { ...process.env, ISCSI_TARGET_RUN_DIR: dir } });
    const r = run('volume', 'create', 'b', '--memory', '--size', '1MiB');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /volume b is not mapped/);
    assert.doesNotMatch(r.stderr, /lonely/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a second serve on a taken port names our own daemon and its pid; another program by name and pid', async () => {
  const d = await startDaemon(CONFIG);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-second-'));
  try {
    const other = path.join(dir, 'other.yaml');
    fs.writeFileSync(other, CONFIG.replace('PORT', String(d.port)));
    const r = spawnSync(process.execPath, [BIN, 'serve', '--config', other], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 30000,
      env: { ...process.env, LOG_FORMAT: 'json' },
    });
    assert.equal(r.status, 1, r.stdout + r.stderr);
    assert.match(
      r.stdout,
      new RegExp(
        `our own iscsi-target daemon \\(pid ${d.proc.pid}, config ${d.configFile.replace(/[.]/g, '\\.')}\\) already listens there`,
      ),
    );
    assert.doesNotMatch(r.stdout, /perhaps/);

    // Someone else's listener: this test process.
    const srv = net.createServer();
    await new Promise<void>((res) => srv.listen(0, '127.0.0.1', () => res()));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      fs.writeFileSync(other, CONFIG.replace('PORT', String(port)));
      const r2 = spawnSync(process.execPath, [BIN, 'serve', '--config', other], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 30000,
        env: { ...process.env, LOG_FORMAT: 'json' },
      });
      assert.equal(r2.status, 1);
      assert.match(r2.stdout, new RegExp(`node \\(pid ${process.pid}\\) already listens there`));
    } finally {
      srv.close();
    }
  } finally {
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('status: readable columns, "1 volume", unit attentions under --verbose', async () => {
  const { Initiator } = await import('../../src/initiator/initiator');
  const d = await startDaemon(CONFIG.replace('  lonely: { memory: true, size: 1MiB }\n', ''));
  const host = await Initiator.connect({ host: '127.0.0.1', port: d.port, initiatorName: 'iqn.1994-05.com.example:h', targetName: T });
  try {
    await host.testUnitReady(0);
    const r = cli(d, 'status');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /; 1 volume open/);
    const header = r.stdout.split('\n').find((l) => l.startsWith('INITIATOR'))!;
    assert.deepEqual(header.split(/\s+/), ['INITIATOR', 'ADDRESS', 'TARGET', 'LUNS', 'UPTIME', 'COMMANDS', 'READ', 'WRITTEN', 'ERRORS']);
    const v = cli(d, 'status', '-v');
    assert.match(v.stdout, /unit attentions reported: \d+/);
  } finally {
    await host.logout().catch(() => undefined);
    await d.stop();
  }
});
