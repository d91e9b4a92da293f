// Which config file a command uses: --config before or after the command,
// $ISCSI_TARGET_CONFIG, ./iscsi-target.yaml, and /etc/iscsi-target/iscsi-target.yaml for an
// installed program. Runs main() in-process with its own context (cwd, env, streams).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { chooseConfigFile, runsInstalled } from '../../src/cli/context';
import { runMain as run } from '../helpers/cli';

function config(volume: string): string {
  return `portals: ["127.0.0.1:3260"]\nvolumes:\n  ${volume}: { memory: true, size: 1MiB }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: ${volume} }\n`;
}

function fixture() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-choice-'));
  const write = (name: string, vol: string) => {
    const f = path.join(dir, name);
    fs.mkdirSync(path.dirname(f), { recursive: true });
    fs.writeFileSync(f, config(vol));
    return f;
  };
  return { dir, write, done: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

test('--config works before the command and after it (the README systemd line)', async () => {
  const f = fixture();
  try {
    const file = f.write('a.yaml', 'before');
    const before = await run(['--config', file, 'config', 'check', '--json'], { cwd: f.dir });
    assert.equal(before.code, 0, before.err);
    assert.equal(JSON.parse(before.out).file, file);
    const after = await run(['config', 'check', '--json', '--config', file], { cwd: f.dir });
    assert.equal(after.code, 0, after.err);
    assert.equal(JSON.parse(after.out).file, file);
    const short = await run(['-c', file, 'config', 'check', '--json'], { cwd: f.dir });
    assert.equal(JSON.parse(short.out).file, file);
    // status with --config before the command: no "unknown option", the daemon is looked for.
    const status = await run(['--config', file, 'status'], { cwd: f.dir, env: { ISCSI_TARGET_RUN_DIR: f.dir } });
    assert.equal(status.code, 1);
    assert.doesNotMatch(status.err, /unknown option/);
    assert.match(status.err, new RegExp(`no daemon is running for ${file.replace(/[.]/g, '\\.')}`));
  } finally {
    f.done();
  }
});

test("the command's own --config wins over one given before the command", async () => {
  const f = fixture();
  try {
    const a = f.write('a.yaml', 'a');
    const b = f.write('b.yaml', 'b');
    const r = await run(['--config', a, 'config', 'check', '--json', '--config', b], { cwd: f.dir });
    assert.equal(JSON.parse(r.out).file, b);
  } finally {
    f.done();
  }
});

test('$ISCSI_TARGET_CONFIG names the config when --config is not given', async () => {
  const f = fixture();
  try {
    f.write('iscsi-target.yaml', 'local');
    const env = f.write('env/x.yaml', 'fromenv');
    const r = await run(['config', 'check', '--json'], { cwd: f.dir, env: { ISCSI_TARGET_CONFIG: env } });
    assert.equal(JSON.parse(r.out).file, env);
    const list = await run(['volume', 'list', '--json'], { cwd: f.dir, env: { ISCSI_TARGET_CONFIG: env, ISCSI_TARGET_RUN_DIR: f.dir } });
    assert.deepEqual(
      JSON.parse(list.out).map((v: { name: string }) => v.name),
      ['fromenv'],
    );
    // --config still wins over the variable.
    const other = f.write('y.yaml', 'y');
    const r2 = await run(['volume', 'list', '--json', '--config', other], {
      cwd: f.dir,
      env: { ISCSI_TARGET_CONFIG: env, ISCSI_TARGET_RUN_DIR: f.dir },
    });
    assert.deepEqual(
      JSON.parse(r2.out).map((v: { name: string }) => v.name),
      ['y'],
    );
  } finally {
    f.done();
  }
});

test('an installed program falls back to the system config; a source checkout does not', async () => {
  const f = fixture();
  try {
    const system = f.write('etc/iscsi-target/iscsi-target.yaml', 'system');
    const work = path.join(f.dir, 'work');
    fs.mkdirSync(work);
    const env = { ISCSI_TARGET_RUN_DIR: f.dir };
    const installed = await run(['volume', 'list', '--json'], { cwd: work, env, installed: true, systemConfigFile: system });
    assert.deepEqual(
      JSON.parse(installed.out).map((v: { name: string }) => v.name),
      ['system'],
    );
    const checked = await run(['config', 'check', '--json'], { cwd: work, env, installed: true, systemConfigFile: system });
    assert.equal(JSON.parse(checked.out).file, system);
    // ./iscsi-target.yaml, when present, comes first.
    fs.writeFileSync(path.join(work, 'iscsi-target.yaml'), config('local'));
    const local = await run(['volume', 'list', '--json'], { cwd: work, env, installed: true, systemConfigFile: system });
    assert.deepEqual(
      JSON.parse(local.out).map((v: { name: string }) => v.name),
      ['local'],
    );
    fs.rmSync(path.join(work, 'iscsi-target.yaml'));
    // Run from a checkout, the system file is not used.
    const dev = chooseConfigFile(
      { stdout: process.stdout, stderr: process.stderr, cwd: work, env: {}, installed: false, systemConfigFile: system },
      undefined,
    );
    assert.equal(dev.file, undefined);
  } finally {
    f.done();
  }
});

test('a source checkout is not an installed program; a tree without tsconfig.json is', () => {
  assert.equal(runsInstalled(path.resolve(__dirname, '../../..')), false);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-inst-'));
  try {
    fs.writeFileSync(path.join(dir, 'package.json'), '{}');
    assert.equal(runsInstalled(dir), true);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('-v and --version print the version; status -v is still verbose', async () => {
  const pkg = JSON.parse(fs.readFileSync(path.resolve(__dirname, '../../../package.json'), 'utf8')) as { version: string };
  for (const flag of ['-v', '--version', '-V']) {
    const r = await run([flag], {});
    assert.equal(r.code, 0);
    assert.equal(r.out.trim(), pkg.version);
  }
  const f = fixture();
  try {
    const r = await run(['status', '-v', '--config', f.write('s.yaml', 's')], { cwd: f.dir, env: { ISCSI_TARGET_RUN_DIR: f.dir } });
    assert.match(r.err, /no daemon is running/);
    assert.doesNotMatch(r.out, new RegExp(`^${pkg.version.replace(/\./g, '\\.')}$`, 'm'));
  } finally {
    f.done();
  }
});
