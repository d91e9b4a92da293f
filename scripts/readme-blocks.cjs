#!/usr/bin/env node
// Print the README code block marked `<!-- readme-test: NAME -->`, so that tests and CI run
// the README's commands verbatim: node scripts/readme-blocks.cjs NAME | bash -e
'use strict';
const fs = require('node:fs');
const path = require('node:path');

function block(name, text = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8')) {
  const marker = `<!-- readme-test: ${name} -->`;
  const at = text.indexOf(marker);
  if (at < 0) throw new Error(`README.md has no block marked ${marker}`);
  const m = /^```\w*\n([\s\S]*?)^```/m.exec(text.slice(at + marker.length));
  if (!m) throw new Error(`no code block after ${marker}`);
  return m[1];
}

module.exports = { block };
if (require.main === module) process.stdout.write(block(process.argv[2]));
