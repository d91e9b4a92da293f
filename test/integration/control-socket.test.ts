// The control socket against a hostile local user (issue 14): the socket never lives in a
// shared folder, and both ends check the other's uid (SO_PEERCRED) before trusting it.
// The "other user" is uid 65534 (nobody), run with setpriv; these tests need root.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { socketName } from '../../src/admin/socket-path';
import { cli as runCli, startDaemon } from '../helpers/daemon';

const NOBODY = 65534;
const SECRET = 'root-only-chap-secret-1';

/** `acl add` with a CHAP secret, the change both socket tests try to send. */
const aclAddArgs = (configFile: string): string[] => [
  'acl',
  'add',
  'iqn.2026-11.io.example:t1',
  'iqn.1994-05.com.redhat:host-a',
  '--lun',
  '0=v0',
  '--chap-user',
  'host-a',
  '--chap-secret',
  SECRET,
  '--config',
  configFile,
];
const isRoot = process.getuid?.() === 0;
const skip = isRoot ? false : 'needs root (to act as another local user with setpriv)';

/** Run as uid 65534; `dac` keeps CAP_DAC_OVERRIDE, so it reaches into root's 0700 folders. */
function asNobody(dac: boolean): string[] {
  const caps = dac ? ['--inh-caps=+dac_override', '--ambient-caps=+dac_override'] : [];
  return ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', ...caps];
}

/** A process of another user listening on `sockPath`: it prints what it receives. */
async function impostor(sockPath: string, dac: boolean): Promise<{ proc: ChildProcess; received(): string; stop(): void }> {
  const code = `
    const net = require('net');
    const srv = net.createServer((s) => {
      s.on('data', (d) => process.stdout.write('RECEIVED ' + d.toString('base64') + '\\n'));
      s.on('error', () => {});
      s.write(JSON.stringify({ ok: true, changed: true, report: { opened: [], closed: [], resized: [], listening: [], stoppedListening: [], endedSessions: [], lunsAdded: [] }, ms: 1, warnings: [] }) + '\\n');
    });
    srv.listen(${JSON.stringify(sockPath)}, () => process.stdout.write('LISTENING\\n'));`;
  const argv = [...asNobody(dac), process.execPath, '-e', code];
  const proc = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  proc.stdout.on('data', (c) => (out += c));
  proc.stderr.on('data', (c) => (out += c));
  const end = Date.now() + 10000;
  while (!out.includes('LISTENING')) {
    if (Date.now() > end || proc.exitCode !== null) throw new Error(`impostor did not listen: ${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    proc,
    received: () =>
      out
        .split('\n')
        .filter((l) => l.startsWith('RECEIVED '))
        .map((l) => Buffer.from(l.slice(9), 'base64').toString('utf8'))
        .join(''),
    stop: () => {
      proc.kill('SIGKILL');
      fs.rmSync(sockPath, { force: true });
    },
  };
}

const cli = (args: string[], env: NodeJS.ProcessEnv, cwd: string) => runCli(args, { env, cwd });

/** The test's environment without the variables that choose the socket's folder. */
function plainEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, CI: '', LOG_LEVEL: 'info' };
  delete env.ISCSI_TARGET_RUN_DIR;
  delete env.XDG_RUNTIME_DIR;
  return env;
}

const YAML = `portals: ["127.0.0.1:PORT"]
volumes:
  v0: { memory: true, size: 16MiB }
targets:
  - iqn: iqn.2026-11.io.example:t1
    luns: { 0: v0 }
`;

describe('control socket and local users', { skip }, () => {
  test('a user who binds the socket name in /tmp first gets nothing, and serve still starts', async (t) => {
    // Before: a root shell without /run/iscsi-target or $XDG_RUNTIME_DIR used the shared
    // temporary folder, so this impostor got the whole config and serve refused to start.
    const env = plainEnv();
    let fake: Awaited<ReturnType<typeof impostor>> | undefined;
    const start = startDaemon(YAML, {
      env,
      beforeStart: async (cfg) => {
        fake = await impostor(path.join(os.tmpdir(), socketName(cfg)), false);
      },
    });
    // This machine's /run/iscsi-target may belong to another user (a packaged daemon's, or
    // another test's): then the only right outcome is a refusal saying what to do, never /tmp.
    const started = await start.catch((e: Error) => e);
    if (started instanceof Error) {
      fake?.stop(); // or it holds the test process open
      assert.match(
        started.message,
        /no private folder for the control socket \(\/run\/iscsi-target belongs to uid \d+, not uid 0\); set ISCSI_TARGET_RUN_DIR/,
      );
      assert.equal(fake!.received(), '');
      return;
    }
    const d = started;
    try {
      const sock = /"socket":"(\/run\/iscsi-target\/iscsi-target-[0-9a-f]{16}\.sock)"/.exec(d.output());
      assert.ok(sock, `the socket is not in /run/iscsi-target: ${d.output()}`);
      const r = await cli(aclAddArgs(d.configFile), env, d.dir);
      assert.equal(fake!.received(), '', 'the impostor received something');
      if (fs.existsSync(sock[1])) {
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, /applied by the running daemon/);
      } else {
        // Something else on this machine replaced /run/iscsi-target meanwhile (it is shared):
        // the CLI then finds no daemon, and still sends nothing to /tmp.
        t.diagnostic(`${sock[1]} vanished during the test: ${r.stdout}${r.stderr}`);
      }
    } finally {
      fake?.stop();
      await d.stop();
    }
  });

  test('the CLI sends nothing to a socket served by another user', async () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-run-'));
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-cfg-'));
    const cfg = path.join(work, 'iscsi-target.yaml');
    fs.writeFileSync(cfg, YAML.replace('PORT', '3260'), { mode: 0o600 });
    // A root-owned 0700 folder, yet the process on the socket is uid 65534: only SO_PEERCRED tells.
    const fake = await impostor(path.join(run, socketName(cfg)), true);
    try {
      const env = { ...plainEnv(), ISCSI_TARGET_RUN_DIR: run };
      const r = await cli(aclAddArgs(cfg), env, work);
      assert.equal(r.code, 1, r.stdout);
      assert.match(r.stderr, /runs as uid 65534, not root, you or the config's owner.*nothing was sent/);
      await new Promise((res) => setTimeout(res, 200));
      assert.equal(fake.received(), '');
      assert.ok(!fs.readFileSync(cfg, 'utf8').includes(SECRET), 'the file changed');
    } finally {
      fake.stop();
      fs.rmSync(run, { recursive: true, force: true });
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  test('a socket in a folder another user owns is not used', async () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-run-'));
    fs.chownSync(run, NOBODY, NOBODY);
    const work = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-cfg-'));
    const cfg = path.join(work, 'iscsi-target.yaml');
    fs.writeFileSync(cfg, YAML.replace('PORT', '3260'), { mode: 0o600 });
    const fake = await impostor(path.join(run, socketName(cfg)), false);
    try {
      const r = await cli(['status', '--config', cfg], { ...plainEnv(), ISCSI_TARGET_RUN_DIR: run }, work);
      assert.equal(r.code, 1);
      assert.match(r.stderr, /not private to a trusted user.*belongs to uid 65534/);
      assert.equal(fake.received(), '');
    } finally {
      fake.stop();
      fs.rmSync(run, { recursive: true, force: true });
      fs.rmSync(work, { recursive: true, force: true });
    }
  });

  test('the daemon answers only root and its own user', async () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-run-'));
    const d = await startDaemon(YAML, { env: { ...plainEnv(), ISCSI_TARGET_RUN_DIR: run } });
    try {
      const sock = path.join(run, socketName(d.configFile));
      const code = `
        const s = require('net').connect(${JSON.stringify(sock)}, () => s.write(JSON.stringify({ op: 'status' }) + '\\n'));
        let b = ''; s.on('data', (c) => (b += c)); s.on('close', () => process.stdout.write(b)); s.on('error', (e) => process.stdout.write('ERR ' + e.code));`;
      const argv = [...asNobody(true), process.execPath, '-e', code];
      const answer = await new Promise<string>((resolve) => execFile(argv[0], argv.slice(1), (_e, stdout) => resolve(stdout)));
      const reply = JSON.parse(answer) as { ok: boolean; message: string };
      assert.equal(reply.ok, false);
      assert.match(reply.message, /uid 65534 may not use this control socket/);
      assert.match(d.output(), /refused a process that is neither root nor our user/);
      // Root is answered.
      const ok = await cli(['status', '--json', '--config', d.configFile], { ...plainEnv(), ISCSI_TARGET_RUN_DIR: run }, d.dir);
      assert.equal(ok.code, 0, ok.stderr);
    } finally {
      await d.stop();
      fs.rmSync(run, { recursive: true, force: true });
    }
  });

  test("root's CLI talks to a daemon run by the config file's owner (a service user)", async () => {
    const run = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-run-'));
    fs.chownSync(run, NOBODY, NOBODY);
    const env = { ...plainEnv(), ISCSI_TARGET_RUN_DIR: run };
    const d = await startDaemon(YAML, { env, owner: NOBODY, prefix: asNobody(false) });
    try {
      const r = await cli(['target', 'create', 'iqn.2026-11.io.example:t2', '--config', d.configFile], env, d.dir);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /applied by the running daemon/);
      const st = fs.statSync(d.configFile);
      assert.equal(st.uid, NOBODY, 'the daemon kept the file its own');
      assert.match(fs.readFileSync(d.configFile, 'utf8'), /t2/);
    } finally {
      await d.stop();
      fs.rmSync(run, { recursive: true, force: true });
    }
  });
});
