#!/usr/bin/env node
// man/iscsi-target.1 from the built program (`iscsi-target man`), for npm pack and the .deb.
'use strict';
const fs = require('node:fs');
const path = require('node:path');
const { execFileSync } = require('node:child_process');

const root = path.resolve(__dirname, '..');
const page = execFileSync(process.execPath, [path.join(root, 'bin', 'iscsi-target'), 'man'], { encoding: 'utf8' });
fs.mkdirSync(path.join(root, 'man'), { recursive: true });
fs.writeFileSync(path.join(root, 'man', 'iscsi-target.1'), page);
