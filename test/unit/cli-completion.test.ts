// Shell completion and the man page come from the command tree: every command and option
// is in them; bash completes commands, options and the config's volume names; the man page
// renders without a groff warning.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Command } from 'commander';
import { buildProgram } from '../../src/cli/index';
import { defaultContext } from '../../src/cli/context';
import { bashCompletion, fishCompletion, manPage } from '../../src/cli/completion';
import { BIN } from '../helpers/daemon';

function commands(c: Command, parents: string[] = []): { path: string[]; longs: string[] }[] {
  const out: { path: string[]; longs: string[] }[] = [];
  for (const s of c.commands) {
    if ((s as unknown as { _hidden?: boolean })._hidden || s.name() === 'help') continue;
    const p = [...parents, s.name()];
    out.push({ path: p, longs: s.options.filter((o) => !o.hidden && o.long).map((o) => o.long!) });
    out.push(...commands(s, p));
  }
  return out;
}

const program = buildProgram(defaultContext(), () => undefined);
const bash = bashCompletion(program);

/** Run the bash completion for a command line (the last word is being completed). */
function complete(words: string[], env: NodeJS.ProcessEnv = {}, cwd = os.tmpdir()): string[] {
  const script = `${bash}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _iscsi_target; printf '%s\\n' "\${COMPREPLY[@]}"`;
  const r = spawnSync('bash', ['-c', script], { encoding: 'utf8', env: { ...process.env, ...env }, cwd });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.split('\n').filter(Boolean);
}

test('bash completion knows every command and option', () => {
  for (const c of commands(program)) {
    assert.ok(bash.includes(`"/${c.path.join('/')}"`), `missing command ${c.path.join(' ')}`);
    for (const l of c.longs)
      assert.match(bash, new RegExp(`"/${c.path.join('/')}"\\) words="[^"]*${l}[ "]`), `missing ${c.path.join(' ')} ${l}`);
  }
  assert.deepEqual(complete(['iscsi-target', 'vol']), ['volume']);
  assert.deepEqual(complete(['iscsi-target', 'volume', 'cr']), ['create']);
  assert.deepEqual(complete(['iscsi-target', '--config', 'x.yaml', 'volume', 'create', 'v', '--phys']), ['--physical-block-size']);
  assert.deepEqual(complete(['iscsi-target', 'lo']), ['log-level']);
});

test("bash completion offers the config's volume names (through the iscsi-target on the PATH)", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-compl-'));
  try {
    fs.mkdirSync(path.join(dir, 'bin'));
    fs.writeFileSync(
      path.join(dir, 'bin', 'iscsi-target'),
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`,
      { mode: 0o755 },
    );
    fs.writeFileSync(
      path.join(dir, 'iscsi-target.yaml'),
      'volumes:\n  alpha: { memory: true, size: 1MiB }\n  beta: { memory: true, size: 1MiB }\n',
    );
    const env = { PATH: `${path.join(dir, 'bin')}:${process.env.PATH}` };
    assert.deepEqual(
      complete(['iscsi-target', 'volume', 'resize', ''], env, dir).sort(),
      ['--config', '--help', '--json', '--size', '-c', 'alpha', 'beta'].sort(),
    );
    assert.deepEqual(complete(['iscsi-target', 'volume', 'delete', 'a'], env, dir), ['alpha']);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the completion command prints bash, zsh and fish scripts; fish knows the commands', () => {
  for (const shell of ['bash', 'zsh', 'fish']) {
    const r = spawnSync(process.execPath, [BIN, 'completion', shell], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /iscsi-target/);
  }
  const fish = fishCompletion(program);
  for (const c of commands(program).filter((x) => x.path.length === 1)) assert.match(fish, new RegExp(` -a ${c.path[0]} `));
  const bad = spawnSync(process.execPath, [BIN, 'completion', 'tcsh'], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
});

test('the man page documents every command and option and renders without warnings', () => {
  const page = manPage(program, '1.2.3', new Date('2026-11-01'));
  const text = page.replace(/\\-/g, '-').replace(/\\f[BIR]/g, '');
  for (const c of commands(program)) {
    if (c.path.length === 1 && program.commands.find((x) => x.name() === c.path[0])!.commands.length > 0) continue; // groups
    assert.ok(text.includes(`iscsi-target ${c.path.join(' ')}`), `man page lacks ${c.path.join(' ')}`);
    for (const l of c.longs)
      if (!['--config', '--json', '--help'].includes(l)) assert.ok(text.includes(l), `man page lacks ${c.path.join(' ')} ${l}`);
  }
  assert.match(page, /^\.TH ISCSI\\-TARGET 1 "2026-11-01" "iscsi-target 1\.2\.3"/);
  const groff = spawnSync('groff', ['-man', '-Tutf8', '-ww', '-z'], { input: page, encoding: 'utf8' });
  if (groff.error) return; // groff not installed
  assert.equal(groff.status, 0);
  assert.equal(groff.stderr, '', groff.stderr);
});

test('--help shows examples for the program and its main commands', () => {
  for (const args of [
    [],
    ['serve'],
    ['status'],
    ['config', 'check'],
    ['volume', 'create'],
    ['volume', 'resize'],
    ['target', 'create'],
    ['acl', 'add'],
    ['discovery', 'chap'],
    ['log-level'],
    ['top'],
    ['probe'],
    ['completion'],
  ]) {
    const r = spawnSync(process.execPath, [BIN, ...args, '--help'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /\nExamples?:\n {2}\$ .*iscsi-target /, `no examples in ${args.join(' ')} --help`);
  }
});
