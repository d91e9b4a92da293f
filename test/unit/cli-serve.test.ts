// `serve`: config errors stop everything (exit 2); start failures exit 1; signals drain.
// The real TargetServer is replaced by a fake through runServe's `start` parameter, in a
// child process (signals and process.exit must not reach the test runner).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { BIN, ROOT } from '../helpers/daemon';

function tmpdir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-serve-'));
}

const FAKE = `
const { runServe } = require(${JSON.stringify(path.join(ROOT, 'dist/src/cli/serve.js'))});
const { defaultContext } = require(${JSON.stringify(path.join(ROOT, 'dist/src/cli/context.js'))});
const mode = process.env.FAKE_MODE;
const start = async ({ config, logger }) => {
  if (mode === 'fail') throw Object.assign(new Error('cannot listen on 127.0.0.1:3260: EADDRINUSE'), { code: 'EADDRINUSE' });
  const keepAlive = setInterval(() => {}, 1000);
  return {
    addresses: config.portals.map((p) => ({ host: p.host, port: p.port })),
    stop: () => new Promise((r) => {
      logger.info('fake stop called');
      if (mode === 'hang') return; // never finishes
      setTimeout(() => { clearInterval(keepAlive); r(); }, 50);
    }),
  };
};
runServe(defaultContext(), { config: process.argv[2] }, start).then((c) => { process.exitCode = c; });
`;

function startFake(dir: string, config: string | undefined, mode: string) {
  const script = path.join(dir, 'fake-serve.js');
  fs.writeFileSync(script, FAKE);
  const child = spawn(process.execPath, [script, ...(config ? [config] : [])], {
    cwd: dir,
    env: { ...process.env, FAKE_MODE: mode, LOG_LEVEL: 'info' },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code))); // close: after the last output
  const waitFor = async (re: RegExp) => {
    for (let i = 0; i < 500 && !re.test(stdout); i++) await new Promise((r) => setTimeout(r, 10));
    assert.match(stdout, re);
  };
  return { child, exited, waitFor, out: () => stdout, err: () => stderr };
}

test('serve with an invalid config prints every error, exits 2 and starts nothing', () => {
  const dir = tmpdir();
  try {
    const file = path.join(dir, 'bad.yaml');
    fs.writeFileSync(file, 'volumes:\n  a: { path: a.img, size: 1Q }\ntargets:\n  - iqn: iqn.nope\n    luns: { 0: a }\n');
    const r = spawnSync(process.execPath, [BIN, 'serve', '--config', file], { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.equal(r.stdout, '', 'nothing logged: nothing started');
    assert.match(r.stderr, new RegExp(`error: ${file.replace(/[.]/g, '\\.')}:2:\\d+: volumes\\.a\\.size: "1Q" is not a size`));
    assert.match(r.stderr, /:4:\d+: targets\[0\]\.iqn: "iqn\.nope" is not an IQN/);
    assert.match(r.stderr, /2 errors; not starting/);
    assert.equal(fs.existsSync(path.join(dir, 'a.img')), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('serve on the built-in default prints how to attach; SIGTERM stops and exits 0', async () => {
  const dir = tmpdir();
  try {
    const s = startFake(dir, undefined, 'ok');
    await s.waitFor(/iscsi-ls/);
    const out = s.out();
    assert.match(out, /built-in default/);
    assert.ok(fs.statSync(path.join(dir, 'luns')).isDirectory(), 'luns/ created for the default volume');
    assert.match(out, /0\.0\.0\.0:3260 +\(every address; use 127\.0\.0\.1:3260 here/);
    assert.match(out, /iqn\.2026-11\.io\.iscsi-target:default\n +open to every initiator\n +LUN 0: default, 1 GiB, .*luns\/default\.img/);
    assert.match(out, /iscsiadm -m discovery -t st -p 127\.0\.0\.1:3260/);
    assert.match(out, /iscsiadm -m node -T iqn\.2026-11\.io\.iscsi-target:default -p 127\.0\.0\.1:3260 --login/);
    assert.match(out, /iscsi-ls -s iscsi:\/\/127\.0\.0\.1:3260/);
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 0, s.err());
    assert.match(s.out(), /SIGTERM: stopping/);
    assert.match(s.out(), /fake stop called/);
    assert.match(s.out(), /"msg":"stopped"/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a second signal exits at once with 1', async () => {
  const dir = tmpdir();
  try {
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(
      file,
      'portals: ["127.0.0.1:3260"]\nvolumes:\n  m: { memory: true, size: 1M }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: m }\n',
    );
    const s = startFake(dir, file, 'hang');
    await s.waitFor(/iscsiadm -m discovery -t st -p 127\.0\.0\.1:3260/);
    s.child.kill('SIGINT');
    await s.waitFor(/fake stop called/);
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 1);
    assert.match(s.out(), /SIGTERM again: exiting now/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a start failure (port in use) is logged clearly and exits 1', async () => {
  const dir = tmpdir();
  try {
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(
      file,
      'portals: ["127.0.0.1:3260"]\nvolumes:\n  m: { memory: true, size: 1M }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: m }\n',
    );
    const s = startFake(dir, file, 'fail');
    assert.equal(await s.exited, 1);
    assert.match(s.out(), /could not start: cannot listen on 127\.0\.0\.1:3260: EADDRINUSE \(another process/);
    assert.doesNotMatch(s.out(), /iscsiadm/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
