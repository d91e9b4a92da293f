// Volume keys physicalBlockSize and encryption: parsed into the model, bad values named by
// file, line and key.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, formatIssue, parseConfig, parseConfigDetailed } from '../../src/config/load';

const FILE = 'iscsi-target.yaml';
const opts = { baseDir: '/srv/iscsi' };

function oneError(text: string): string {
  try {
    parseConfigDetailed(text, FILE, opts);
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.errors.length, 1, e.errors.map(formatIssue).join('\n'));
    return formatIssue(e.errors[0]);
  }
  assert.fail('expected a ConfigError');
}

test('physicalBlockSize and encryption reach the model; keyFile resolves against the config folder', () => {
  const c = parseConfig(
    [
      'volumes:',
      '  a: { path: luns/a.img, size: 1GiB, physicalBlockSize: 4096 }',
      '  b: { path: luns/b.img, size: 1GiB, encryption: true }',
      '  c: { path: luns/c.img, size: 1GiB, encryption: { keyFile: keys/c.key } }',
      '  d: { memory: true, size: 1MiB, encryption: true }',
      '  e: { path: luns/e.img, size: 1GiB, encryption: false }',
      '',
    ].join('\n'),
    FILE,
    opts,
  );
  assert.equal(c.volumes.get('a')!.physicalBlockSize, 4096);
  assert.equal(c.volumes.get('a')!.encryption, undefined);
  assert.equal(c.volumes.get('b')!.physicalBlockSize, undefined);
  assert.deepEqual(c.volumes.get('b')!.encryption, {});
  assert.deepEqual(c.volumes.get('c')!.encryption, { keyFile: '/srv/iscsi/keys/c.key' });
  assert.deepEqual(c.volumes.get('d')!.encryption, {});
  assert.equal(c.volumes.get('e')!.encryption, undefined);
});

const CASES: Array<[string, string, RegExp]> = [
  [
    'physicalBlockSize not 512/4096',
    'volumes:\n  a:\n    path: a.img\n    physicalBlockSize: 2048\n',
    /:4:\d+: volumes\.a\.physicalBlockSize: physicalBlockSize must be 512 or 4096, not 2048/,
  ],
  [
    'physicalBlockSize below blockSize',
    'volumes:\n  a:\n    path: a.img\n    blockSize: 4096\n    physicalBlockSize: 512\n',
    /:5:\d+: volumes\.a\.physicalBlockSize: physicalBlockSize 512 is smaller than the block size 4096/,
  ],
  [
    'encryption not true or a mapping',
    'volumes:\n  a:\n    path: a.img\n    encryption: yes\n',
    /:4:\d+: volumes\.a\.encryption: encryption \(true, or \{ keyFile: PATH \}\) must be a mapping/,
  ],
  [
    'unknown encryption key',
    'volumes:\n  a:\n    path: a.img\n    encryption: { keyfile: k }\n',
    /volumes\.a\.encryption\.keyfile: unknown key "keyfile".*did you mean "keyFile"/,
  ],
  [
    'empty keyFile',
    'volumes:\n  a:\n    path: a.img\n    encryption: { keyFile: "" }\n',
    /volumes\.a\.encryption\.keyFile: keyFile cannot be empty/,
  ],
  [
    'keyFile on a memory volume',
    'volumes:\n  a:\n    memory: true\n    size: 1M\n    encryption: { keyFile: k }\n',
    /volumes\.a\.encryption: memory volume a keeps its key in memory/,
  ],
];

for (const [name, text, re] of CASES) {
  test(`error: ${name}`, () => {
    assert.match(oneError(text), re);
  });
}
