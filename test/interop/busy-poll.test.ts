// Busy polling (limits.busyPoll, busy-poll.ts) against a real initiator: libiscsi's
// iscsi-perf at queue depth 1 has its commands picked up by polling (status --json counts
// them per session), and `busyPoll: 0` turns it off.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { BIN, requireTools, startDaemon, type Daemon } from '../helpers/daemon';

const IQN = 'iqn.2026-11.io.iscsi-target:poll';
const skip = requireTools(['iscsi-perf']);

function config(busyPoll: number | null): string {
  return [
    'portals: ["127.0.0.1:PORT"]',
    ...(busyPoll === null ? [] : [`limits: { busyPoll: ${busyPoll} }`]),
    'volumes:',
    '  v: { memory: true, size: 64MiB }',
    'targets:',
    `  - iqn: ${IQN}`,
    '    luns: { 0: v }',
    '',
  ].join('\n');
}

interface Session {
  initiator: string;
  commands: number;
  polledReads: number;
}

function status(d: Daemon): Promise<Session[]> {
  return new Promise((resolve, reject) => {
    execFile(process.execPath, [BIN, 'status', '--json', '--config', d.configFile], { cwd: d.dir }, (err, stdout) => {
      if (err) reject(new Error(`status --json failed: ${err.message}`));
      else resolve((JSON.parse(stdout) as { sessions: Session[] }).sessions);
    });
  });
}

/** Run iscsi-perf at QD1 for 3 s and read the daemon's status while it runs. */
async function qd1Session(d: Daemon): Promise<Session> {
  const perf = spawn('iscsi-perf', ['-t', '3', '-m', '1', '-b', '8', `iscsi://127.0.0.1:${d.port}/${IQN}/0`], { stdio: 'ignore' });
  const exited = new Promise<number | null>((r) => perf.on('exit', (code) => r(code)));
  await new Promise((r) => setTimeout(r, 2000));
  const sessions = await status(d);
  assert.equal(await exited, 0, 'iscsi-perf ran');
  const s = sessions.find((x) => x.initiator.includes('iscsi-perf'));
  assert.ok(s, `iscsi-perf's session in status: ${JSON.stringify(sessions)}`);
  return s;
}

test('at QD1, commands are picked up by busy polling (default 50 µs)', { skip }, async () => {
  const d = await startDaemon(config(null));
  try {
    const s = await qd1Session(d);
    assert.ok(s.commands > 1000, `commands ${s.commands}`);
    assert.ok(s.polledReads > s.commands / 4, `polled ${s.polledReads} of ${s.commands} commands`);
  } finally {
    await d.stop();
  }
});

test('busyPoll: 0 turns polling off', { skip }, async () => {
  const d = await startDaemon(config(0));
  try {
    const s = await qd1Session(d);
    assert.ok(s.commands > 1000, `commands ${s.commands}`);
    assert.equal(s.polledReads, 0);
  } finally {
    await d.stop();
  }
});
