// `gateway set|show`: the ALUA groups in the config, edited in place (comments kept).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
const BIN = path.join(ROOT, 'bin', 'iscsi-target');

test('gateway set writes group and peers; gateway show lists every group with its ports', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-gw-'));
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-run-')); // no daemon here
  const file = path.join(dir, 'c.yaml');
  const cli = (...args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args, '--config', file], {
      cwd: dir,
      encoding: 'utf8',
      env: { ...process.env, ISCSI_TARGET_RUN_DIR: run },
    });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  try {
    fs.writeFileSync(file, '# two NICs\nportals: ["127.0.0.1:3260", "127.0.0.1:3261"]\n', { mode: 0o600 });
    const set = cli('gateway', 'set', '--group', '2', '--peers', '1,3');
    assert.equal(set.code, 0, set.stderr);
    const text = fs.readFileSync(file, 'utf8');
    assert.match(text, /^# two NICs$/m, 'comments kept');
    assert.match(text, /gateway: \{ group: 2, peers: \[ 1, 3 \] \}/);
    const show = cli('gateway', 'show', '--json');
    assert.equal(show.code, 0, show.stderr);
    assert.deepEqual(JSON.parse(show.stdout), [
      { group: 2, self: true, ports: [257, 258] },
      { group: 1, self: false, ports: [1, 2] },
      { group: 3, self: false, ports: [513, 514] },
    ]);
    const bad = cli('gateway', 'set', '--peers', '2,x');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /--peers/);
    assert.equal(fs.readFileSync(file, 'utf8'), text, 'nothing written on an error');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    fs.rmSync(run, { recursive: true, force: true });
  }
});
