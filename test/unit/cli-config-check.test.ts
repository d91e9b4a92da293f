// Runs the real entry point: node bin/iscsi-target config check ... (after `tsc -p .`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BIN, ROOT } from '../helpers/daemon';

function run(args: string[], cwd = ROOT) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'info' } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function withDir(fn: (dir: string) => void) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-cli-'));
  try {
    fn(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const GOOD = `# a lab
portals: ["127.0.0.1:3260"]
volumes:
  scratch: { path: scratch.img, size: 1GiB }
  ram: { memory: true, size: 64MiB }
targets:
  - iqn: iqn.2026-11.io.example:lab
    luns: { 0: scratch, 1: ram }
`;

const BROKEN = `portals: ["127.0.0.1:3260"]
volumes:
  scratch: { path: scratch.img, size: 20Q }
targets:
  - iqn: iqn.2026-11.io.example:lab
    luns: { 0: scratch, 1: nothing }
    acls:
      - initiator: iqn.1994-05.com.redhat:a
        chap: { user: a, secret: "sh0rt-secret" , secret2: x }
      - initiator: iqn.1994-05.com.redhat:b
        chap: { user: b, secret: "tiny" }
`;

test('config check on a good file: OK with counts, exit 0', () => {
  withDir((dir) => {
    const file = path.join(dir, 'good.yaml');
    fs.writeFileSync(file, GOOD);
    const r = run(['config', 'check', '--config', file]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `OK: 2 volumes, 1 target (${file})\n`);
    assert.equal(r.stderr, '');
  });
});

test('config check on a broken file: every error with file:line and key, exit 1, no secret', () => {
  withDir((dir) => {
    const file = path.join(dir, 'broken.yaml');
    fs.writeFileSync(file, BROKEN, { mode: 0o600 });
    fs.chmodSync(file, 0o600);
    const r = run(['config', 'check', '--config', file]);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    const lines = r.stderr.trimEnd().split('\n');
    assert.deepEqual(lines, [
      `error: ${file}:3:39: volumes.scratch.size: "20Q" is not a size: unknown unit "Q" (use e.g. 20GiB)`,
      `error: ${file}:6:28: targets[0].luns.1: volume "nothing" is not defined under volumes; defined: scratch`,
      `error: ${file}:9:51: targets[0].acls[0].chap.secret2: unknown key "secret2" in targets[0].acls[0].chap (did you mean "secret"?); known keys: user, secret, minAlgorithm`,
      `error: ${file}:11:34: targets[0].acls[1].chap.secret: the CHAP secret is 4 bytes long; it must be 12..255 bytes (RFC 7143 §12.1.3 asks for at least 12)`,
      `${file}: 4 errors; nothing was applied`,
    ]);
    assert.ok(!r.stderr.includes('tiny') && !r.stderr.includes('sh0rt-secret'));
  });
});

test('config check --json reports errors and warnings as data', () => {
  withDir((dir) => {
    const bad = path.join(dir, 'broken.yaml');
    fs.writeFileSync(bad, BROKEN);
    const r = run(['config', 'check', '--json', '--config', bad]);
    assert.equal(r.code, 1);
    const j = JSON.parse(r.stdout);
    assert.equal(j.ok, false);
    assert.equal(j.errors.length, 4);
    assert.deepEqual(j.errors[0], {
      file: bad,
      line: 3,
      col: 39,
      key: 'volumes.scratch.size',
      message: '"20Q" is not a size: unknown unit "Q" (use e.g. 20GiB)',
    });

    const good = path.join(dir, 'good.yaml');
    fs.writeFileSync(good, GOOD.replace('luns: { 0: scratch, 1: ram }', 'luns: { 0: scratch }'));
    const g = run(['config', 'check', '--config', good, '--json']);
    assert.equal(g.code, 0, g.stderr);
    const k = JSON.parse(g.stdout);
    assert.equal(k.ok, true);
    assert.equal(k.volumes, 2);
    assert.equal(k.targets, 1);
    assert.equal(k.warnings.length, 1);
    assert.equal(k.warnings[0].key, 'volumes.ram');
    assert.match(k.warnings[0].message, /not mapped to any target/);
  });
});

test('config check prints warnings after OK (shared volume, readable secrets)', () => {
  withDir((dir) => {
    const file = path.join(dir, 'iscsi-target.yaml');
    fs.writeFileSync(
      file,
      `volumes:
  shared: { memory: true, size: 1M, shared: true }
targets:
  - iqn: iqn.2026-11.io.example:cluster
    luns: { 0: shared }
    acls:
      - initiator: iqn.1994-05.com.redhat:a
        chap: { user: a, secret: "0123456789ab" }
      - initiator: iqn.1994-05.com.redhat:b
`,
    );
    fs.chmodSync(file, 0o644);
    // No --config: ./iscsi-target.yaml in the working directory.
    const r = run(['config', 'check'], dir);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines[0], 'OK: 1 volume, 1 target (iscsi-target.yaml)');
    assert.match(
      lines[1],
      /^warning: iscsi-target\.yaml: holds CHAP secrets but is readable by other users \(mode 0644\); run: chmod 600 iscsi-target\.yaml$/,
    );
    assert.match(
      lines[2],
      /^warning: iscsi-target\.yaml:2:3: volumes\.shared: volume shared is shared between iqn\.1994-05\.com\.redhat:a and iqn\.1994-05\.com\.redhat:b/,
    );
    assert.equal(lines.length, 3);
  });
});

test('config check without a file says so and exits 1', () => {
  withDir((dir) => {
    const r = run(['config', 'check'], dir);
    assert.equal(r.code, 1);
    assert.match(
      r.stderr,
      /no config file: \.\/iscsi-target\.yaml does not exist \(give one with --config FILE or \$ISCSI_TARGET_CONFIG\)/,
    );
    const m = run(['config', 'check', '--config', path.join(dir, 'missing.yaml')]);
    assert.equal(m.code, 1);
    assert.match(m.stderr, /missing\.yaml: cannot read the config: no such file/);
  });
});

test('usage errors and help', () => {
  const h = run(['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /serve/);
  assert.match(h.stdout, /config/);
  const u = run(['nonsense']);
  assert.notEqual(u.code, 0);
  assert.match(u.stderr, /unknown command 'nonsense'/);
  const v = run(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^\d+\.\d+\.\d+/);
});
