// The install path: `npm ci --omit=dev` installs without building (no prepare step that
// needs tsc); `npm start` builds only when dist/ is missing or older than the sources; the
// packed program installs with npm install -g and runs with no dev dependencies. (The README
// sections themselves run verbatim in CI: scripts/readme-check.sh.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
// eslint-disable-next-line @typescript-eslint/no-require-imports
const stale = require(path.join(ROOT, 'scripts', 'build-if-stale.cjs')) as { staleReason(root: string): string | null };

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-install-'));
}

test('npm ci --omit=dev installs the production dependencies without building', () => {
  const dir = tmp();
  try {
    for (const f of ['package.json', 'package-lock.json']) fs.copyFileSync(path.join(ROOT, f), path.join(dir, f));
    const r = spawnSync('npm', ['ci', '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], {
      cwd: dir,
      encoding: 'utf8',
      timeout: 300000,
    });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.doesNotMatch(r.stderr, /tsc: not found/);
    assert.ok(fs.existsSync(path.join(dir, 'node_modules', 'commander')));
    assert.ok(fs.existsSync(path.join(dir, 'node_modules', 'bitfield')));
    assert.ok(!fs.existsSync(path.join(dir, 'node_modules', 'typescript')), 'a dev dependency was installed');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('build-if-stale: builds a fresh clone, skips an up-to-date tree, rebuilds after a source change, never an installed package', () => {
  const dir = tmp();
  try {
    const write = (p: string, text = '', when?: number) => {
      fs.mkdirSync(path.dirname(path.join(dir, p)), { recursive: true });
      fs.writeFileSync(path.join(dir, p), text);
      if (when !== undefined) fs.utimesSync(path.join(dir, p), when / 1000, when / 1000);
    };
    // An installed package: no tsconfig.json, nothing to build from.
    write('package.json', '{}');
    assert.equal(stale.staleReason(dir), null);
    const t = Date.now() - 60000;
    write('tsconfig.json', '{}', t);
    write('src/a.ts', 'export {};', t);
    assert.equal(stale.staleReason(dir), 'not built yet');
    write('dist/src/cli/index.js', '', t + 1000);
    assert.equal(stale.staleReason(dir), 'no record of the last build');
    write('dist/.build-stamp', '', t + 2000);
    assert.equal(stale.staleReason(dir), null);
    write('src/cli/b.ts', 'export {};', t + 3000);
    assert.equal(stale.staleReason(dir), 'sources changed since the last build');
    write('dist/.build-stamp', '', t + 4000);
    assert.equal(stale.staleReason(dir), null);
    write('tsconfig.json', '{}', t + 5000);
    assert.equal(stale.staleReason(dir), 'sources changed since the last build');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('npm start on an up-to-date tree does not build again', () => {
  const run = () =>
    spawnSync(process.execPath, [path.join(ROOT, 'scripts', 'build-if-stale.cjs')], { encoding: 'utf8', cwd: ROOT, timeout: 300000 });
  assert.equal(run().status, 0); // builds if this checkout was built some other way
  const stamp = fs.statSync(path.join(ROOT, 'dist', '.build-stamp')).mtimeMs;
  const again = run();
  assert.equal(again.status, 0);
  assert.match(again.stderr, /build up to date/);
  assert.equal(fs.statSync(path.join(ROOT, 'dist', '.build-stamp')).mtimeMs, stamp);
  assert.equal(stale.staleReason(ROOT), null);
});

test('npm pack + npm install -g: iscsi-target on the PATH, built code only, no dev dependencies', () => {
  const dir = tmp();
  try {
    const pack = spawnSync('npm', ['pack', '--pack-destination', dir], { cwd: ROOT, encoding: 'utf8', timeout: 300000 });
    assert.equal(pack.status, 0, pack.stderr);
    const tgz = path.join(dir, pack.stdout.trim().split('\n').pop()!);
    const list = spawnSync('tar', ['-tzf', tgz], { encoding: 'utf8' }).stdout.split('\n');
    assert.ok(list.includes('package/dist/src/cli/index.js'));
    assert.ok(list.includes('package/man/iscsi-target.1'));
    assert.ok(
      !list.some((f) => f.startsWith('package/src/') || f.startsWith('package/dist/test/') || f === 'package/tsconfig.json'),
      'sources or tests in the package',
    );
    const prefix = path.join(dir, 'prefix');
    const inst = spawnSync('npm', ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tgz], {
      encoding: 'utf8',
      timeout: 300000,
    });
    assert.equal(inst.status, 0, inst.stderr);
    const pkg = path.join(prefix, 'lib', 'node_modules', 'iscsi-target');
    assert.ok(!fs.existsSync(path.join(pkg, 'node_modules', 'typescript')));
    const bin = path.join(prefix, 'bin', 'iscsi-target');
    const v = spawnSync(bin, ['--version'], { encoding: 'utf8' });
    assert.equal(v.stdout.trim(), JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
    // It works from there: a config check through $ISCSI_TARGET_CONFIG.
    fs.writeFileSync(
      path.join(dir, 'c.yaml'),
      'volumes:\n  v: { memory: true, size: 1MiB }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n',
    );
    const check = spawnSync(bin, ['config', 'check'], {
      encoding: 'utf8',
      cwd: dir,
      env: { ...process.env, ISCSI_TARGET_CONFIG: path.join(dir, 'c.yaml') },
    });
    assert.equal(check.status, 0, check.stderr);
    assert.match(check.stdout, /^OK: 1 volume, 1 target/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
