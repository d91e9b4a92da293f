#!/usr/bin/env node
// Build (tsc -p .) only when the compiled code is missing or older than its sources, so
// that `npm start` starts at once on an up-to-date tree and still builds on a fresh clone.
// An installed package (no tsconfig.json: npm pack, the .deb) is never rebuilt.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { spawnSync } = require('node:child_process');

const ROOT = path.resolve(__dirname, '..');
/** Written after every successful build: its time is the build's. */
const STAMP = path.join('dist', '.build-stamp');
const SOURCES = ['src', 'test', 'tools', 'e2e', 'bench'];

/** Newest modification time (ms) of the build's inputs under root. */
function newestInput(root) {
  let newest = 0;
  const visit = (p) => {
    let st;
    try {
      st = fs.statSync(p);
    } catch {
      return;
    }
    if (st.isDirectory()) {
      for (const e of fs.readdirSync(p)) visit(path.join(p, e));
    } else if (p.endsWith('.ts') || p.endsWith('tsconfig.json') || p.endsWith('package-lock.json')) {
      newest = Math.max(newest, st.mtimeMs);
    }
  };
  for (const s of SOURCES) visit(path.join(root, s));
  visit(path.join(root, 'tsconfig.json'));
  visit(path.join(root, 'package-lock.json'));
  return newest;
}

/** Why the tree needs a build, or null when dist is up to date (or there is nothing to build from). */
function staleReason(root = ROOT) {
  if (!fs.existsSync(path.join(root, 'tsconfig.json'))) return null; // an installed package
  const entry = path.join(root, 'dist', 'src', 'cli', 'index.js');
  if (!fs.existsSync(entry)) return 'not built yet';
  let built;
  try {
    built = fs.statSync(path.join(root, STAMP)).mtimeMs;
  } catch {
    return 'no record of the last build';
  }
  return newestInput(root) > built ? 'sources changed since the last build' : null;
}

/** Run tsc; write the stamp on success. Returns the exit code. */
function build(root = ROOT) {
  const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  if (!fs.existsSync(tsc)) {
    process.stderr.write('iscsi-target: cannot build: TypeScript is not installed (run `npm ci`, with the dev dependencies)\n');
    return 1;
  }
  // Taken before tsc starts: a source saved during the build makes the next start rebuild.
  const started = new Date();
  const r = spawnSync(process.execPath, [tsc, '-p', root], { stdio: 'inherit' });
  if (r.status !== 0) return r.status ?? 1;
  fs.mkdirSync(path.join(root, 'dist'), { recursive: true });
  fs.writeFileSync(path.join(root, STAMP), `${started.toISOString()}\n`);
  fs.utimesSync(path.join(root, STAMP), started, started);
  return 0;
}

module.exports = { staleReason, build, newestInput };

if (require.main === module) {
  const force = process.argv.includes('--force');
  const why = force ? 'asked to' : staleReason();
  if (why === null) {
    process.stderr.write('iscsi-target: build up to date\n');
  } else {
    process.stderr.write(`iscsi-target: building (${why})\n`);
    process.exitCode = build();
  }
}
