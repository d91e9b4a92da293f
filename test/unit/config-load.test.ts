import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  ConfigError,
  formatIssue,
  loadConfig,
  loadConfigDetailed,
  parseConfig,
  parseConfigDetailed,
  type ConfigIssue,
} from '../../src/config/load';

const GiB = 1024 ** 3;
const FILE = 'iscsi-target.yaml';

function errorsOf(text: string): ConfigIssue[] {
  try {
    parseConfigDetailed(text, FILE, { baseDir: '/srv/iscsi' });
  } catch (e) {
    assert.ok(e instanceof ConfigError, `expected ConfigError, got ${String(e)}`);
    assert.ok(e.errors.length > 0);
    for (const i of e.errors) assert.equal(i.file, FILE);
    return e.errors;
  }
  assert.fail('expected a ConfigError');
}

/** The only error: "line key" plus its message. */
function oneError(text: string): { at: string; message: string; issue: ConfigIssue } {
  const errors = errorsOf(text);
  assert.equal(errors.length, 1, `expected one error, got:\n${errors.map(formatIssue).join('\n')}`);
  const e = errors[0];
  return { at: `${e.line} ${e.key}`, message: e.message, issue: e };
}

function warningsOf(text: string): ConfigIssue[] {
  return parseConfigDetailed(text, FILE, { baseDir: '/srv/iscsi' }).warnings;
}

const VALID = `# iscsi-target config
portals: ["0.0.0.0:3260", "[::1]:3261"]   # two portals
volumes:
  scratch: { path: luns/scratch.img, size: 1GiB }    # sparse file, created if missing
  db-a:    { path: luns/db-a.img, size: 20GiB, blockSize: 4096 }
  db-b:    { path: /dev/vdb }                         # block device, size read from it
  golden:  { path: luns/golden.img, readonly: true }
  ram:
    memory: true
    size: 64M
targets:
  - iqn: iqn.2026-11.io.example:lab
    luns: { 0: scratch, 1: golden }   # no acls: every initiator may log in and sees these
  - iqn: iqn.2026-11.io.example:san1
    acls:                              # only these initiators, each with its own LUN map
      - initiator: iqn.1994-05.com.redhat:host-a
        luns: { 0: db-a }              # host A sees db-a as LUN 0
        chap: { user: host-a, secret: "at-least-12-chars" }
        mutual: { user: san1, secret: "another-secret" }
      - initiator: iqn.1994-05.com.redhat:host-b
        luns: { 0: db-b }              # host B sees only db-b, also as LUN 0
  - iqn: iqn.2026-11.io.example:scratch
    luns:
      0: ram
    acls:
      - initiator: iqn.1994-05.com.redhat:host-c   # inherits the target's luns
`;

test('a valid config with comments parses into the model', () => {
  const { config, warnings } = parseConfigDetailed(VALID, '/srv/iscsi/iscsi-target.yaml');
  assert.equal(config.source, '/srv/iscsi/iscsi-target.yaml');
  assert.deepEqual(config.portals, [
    { host: '0.0.0.0', port: 3260 },
    { host: '::1', port: 3261 },
  ]);
  assert.deepEqual(
    config.volumes,
    new Map([
      [
        'scratch',
        { name: 'scratch', path: '/srv/iscsi/luns/scratch.img', size: GiB, readonly: false, blockSize: 512, memory: false, shared: false },
      ],
      [
        'db-a',
        { name: 'db-a', path: '/srv/iscsi/luns/db-a.img', size: 20 * GiB, readonly: false, blockSize: 4096, memory: false, shared: false },
      ],
      ['db-b', { name: 'db-b', path: '/dev/vdb', readonly: false, blockSize: 512, memory: false, shared: false }],
      ['golden', { name: 'golden', path: '/srv/iscsi/luns/golden.img', readonly: true, blockSize: 512, memory: false, shared: false }],
      ['ram', { name: 'ram', size: 64 * 1024 ** 2, readonly: false, blockSize: 512, memory: true, shared: false }],
    ]),
  );
  assert.deepEqual(config.targets, [
    {
      iqn: 'iqn.2026-11.io.example:lab',
      luns: new Map([
        [0, 'scratch'],
        [1, 'golden'],
      ]),
      acls: [],
    },
    {
      iqn: 'iqn.2026-11.io.example:san1',
      luns: new Map(),
      acls: [
        {
          initiator: 'iqn.1994-05.com.redhat:host-a',
          luns: new Map([[0, 'db-a']]),
          chap: { user: 'host-a', secret: 'at-least-12-chars' },
          mutual: { user: 'san1', secret: 'another-secret' },
        },
        { initiator: 'iqn.1994-05.com.redhat:host-b', luns: new Map([[0, 'db-b']]) },
      ],
    },
    {
      iqn: 'iqn.2026-11.io.example:scratch',
      luns: new Map([[0, 'ram']]),
      acls: [{ initiator: 'iqn.1994-05.com.redhat:host-c' }],
    },
  ]);
  // Only the long secret warns (Microsoft initiators accept 12..16 bytes).
  assert.deepEqual(
    warnings.map((w) => `${w.line} ${w.key}`),
    ['18 targets[1].acls[0].chap.secret'],
  );
  assert.match(warnings[0].message, /17 bytes long: open-iscsi accepts it, the Microsoft iSCSI initiator accepts only 12\.\.16/);
  assert.ok(!warnings[0].message.includes('at-least-12-chars'));
});

test('parseConfig returns the model; defaults: portal 0.0.0.0:3260, readonly false, blockSize 512', () => {
  const config = parseConfig(
    'volumes:\n  v: { memory: true, size: 1MiB }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n',
    'x.yaml',
  );
  assert.deepEqual(config.portals, [{ host: '0.0.0.0', port: 3260 }]);
  assert.deepEqual(config.volumes.get('v'), { name: 'v', size: 1024 ** 2, readonly: false, blockSize: 512, memory: true, shared: false });
  assert.deepEqual(config.targets[0].acls, []);
});

test('an empty file is a valid, empty config (with a warning)', () => {
  const { config, warnings } = parseConfigDetailed('# nothing yet\n', FILE);
  assert.equal(config.volumes.size, 0);
  assert.equal(config.targets.length, 0);
  assert.deepEqual(config.portals, [{ host: '0.0.0.0', port: 3260 }]);
  assert.match(warnings.map(formatIssue).join('\n'), /no targets are defined/);
});

test('the error format names file, line, column and key', () => {
  const text = [
    'portals: ["0.0.0.0:3260"]', // 1
    'volumes:', // 2
    '  scratch: { memory: true, size: 1GiB }', // 3
    '', // 4
    '  # a comment', // 5
    '  db-a:', // 6
    '    size: 20Q', // 7
    '    path: db-a.img', // 8
  ].join('\n');
  const e = oneError(text);
  assert.equal(e.at, '7 volumes.db-a.size');
  assert.equal(formatIssue(e.issue), 'iscsi-target.yaml:7:11: volumes.db-a.size: "20Q" is not a size: unknown unit "Q" (use e.g. 20GiB)');
});

// Each case: YAML text, the expected "line key" of its only error, and a pattern of its message.
const CASES: [string, string, string, RegExp][] = [
  [
    'unknown top-level key',
    'portals: ["0.0.0.0:3260"]\nvolume:\n  x: { memory: true, size: 1M }\n',
    '2 volume',
    /unknown key "volume" at the top level \(did you mean "volumes"\?\)/,
  ],
  ['top level not a mapping', '- a\n- b\n', '1 ', /the config must be a mapping/],
  ['portals not a list', 'portals: "0.0.0.0:3260"\n', '1 portals', /portals must be a list/],
  ['bad portal', 'portals:\n  - 0.0.0.0:3260\n  - "10.0.0.1:70000"\n', '3 portals[1]', /"70000" is not a port/],
  ['duplicate portal', 'portals:\n  - 10.0.0.1\n  - 10.0.0.1:3260\n', '3 portals[1]', /listed twice/],
  ['wildcard overlap', 'portals:\n  - 0.0.0.0:3260\n  - 10.0.0.1:3260\n', '3 portals[1]', /overlaps 0\.0\.0\.0:3260/],
  ['volumes not a mapping', 'volumes:\n  - a\n', '2 volumes', /volumes must be a mapping/],
  ['volume not a mapping', 'volumes:\n  a: luns/a.img\n', '2 volumes.a', /volume a must be a mapping/],
  ['bad volume name', 'volumes:\n  "a/b": { memory: true, size: 1M }\n', '2 volumes.a/b', /volume name "a\/b" may use only/],
  [
    'unknown volume key',
    'volumes:\n  a:\n    path: a.img\n    size: 1G\n    blocksize: 4096\n',
    '5 volumes.a.blocksize',
    /unknown key "blocksize" in volumes\.a \(did you mean "blockSize"\?\)/,
  ],
  [
    'neither path nor memory',
    'volumes:\n  a:\n    size: 1G\n',
    '2 volumes.a',
    /needs a path \(file or block device\), rbd: POOL\/IMAGE or memory: true/,
  ],
  [
    'both path and memory',
    'volumes:\n  a:\n    path: a.img\n    memory: true\n    size: 1G\n',
    '4 volumes.a.memory',
    /both path and memory/,
  ],
  ['memory without size', 'volumes:\n  a:\n    memory: true\n', '3 volumes.a', /needs a size/],
  ['bad size', 'volumes:\n  a: { path: a.img,\n       size: -1G }\n', '3 volumes.a.size', /"-1G": a size cannot be negative/],
  ['zero size', 'volumes:\n  a: { path: a.img, size: 0 }\n', '2 volumes.a.size', /cannot be 0 bytes/],
  [
    'size not a multiple of the block size',
    'volumes:\n  a:\n    path: a.img\n    size: 1000\n',
    '4 volumes.a.size',
    /1000 bytes\) is not a multiple of the block size 512/,
  ],
  [
    'bad blockSize',
    'volumes:\n  a:\n    path: a.img\n    blockSize: 1024\n',
    '4 volumes.a.blockSize',
    /blockSize must be 512 or 4096, not 1024/,
  ],
  [
    'readonly not a boolean',
    'volumes:\n  a:\n    path: a.img\n    readonly: yes\n',
    '4 volumes.a.readonly',
    /must be true or false, not "yes"/,
  ],
  ['path not a string', 'volumes:\n  a:\n    path: [a]\n', '3 volumes.a.path', /path must be a string, not a list/],
  ['targets not a list', 'targets:\n  iqn: iqn.2026-11.io.example:t\n', '2 targets', /targets must be a list/],
  [
    'target without iqn',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - luns: { 0: v }\n',
    '3 targets[0]',
    /a target needs an iqn/,
  ],
  [
    'unknown target key',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    lun: { 0: v }\n',
    '4 targets[0].lun',
    /unknown key "lun".*did you mean "luns"/,
  ],
  ['bad target iqn', 'targets:\n  - iqn: iqn.2026-11.io.Example:t\n', '2 targets[0].iqn', /lowercase/],
  [
    'LUN number out of range',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns:\n      16384: v\n',
    '5 targets[0].luns.16384',
    /"16384" is not a LUN number \(0\.\.16383\)/,
  ],
  [
    'LUN number not a number',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { a: v }\n',
    '4 targets[0].luns.a',
    /"a" is not a LUN number/,
  ],
  [
    'LUN names an undefined volume',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns:\n      0: w\n',
    '5 targets[0].luns.0',
    /volume "w" is not defined under volumes \(did you mean "v"\?\); defined: v/,
  ],
  [
    'LUN listed twice',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns:\n      0: v\n      "0": v\n',
    '6 targets[0].luns.0',
    /LUN 0 is listed twice/,
  ],
  [
    'duplicate target iqn',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n  - iqn: iqn.2026-11.io.example:T\n    luns: { 1: v }\n',
    '5 targets[1].iqn',
    /defined twice \(also targets\[0\]\)|lowercase/,
  ],
  [
    'acls not a list',
    'targets:\n  - iqn: iqn.2026-11.io.example:t\n    acls: { initiator: x }\n',
    '3 targets[0].acls',
    /acls must be a list/,
  ],
  [
    'acl without initiator',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - chap: { user: u, secret: "123456789012" }\n',
    '6 targets[0].acls[0]',
    /an acl needs an initiator/,
  ],
  [
    'bad initiator name',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: host-a\n',
    '6 targets[0].acls[0].initiator',
    /must start with "iqn\."/,
  ],
  [
    'duplicate initiator in a target',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n      - initiator: iqn.1994-05.com.redhat:b\n      - initiator: iqn.1994-05.com.redhat:a\n',
    '8 targets[0].acls[2].initiator',
    /has two acls in this target \(also targets\[0\]\.acls\[0\]\)/,
  ],
  [
    'unknown acl key',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n        lun: { 0: v }\n',
    '6 targets[0].acls[0].lun',
    /unknown key "lun"/,
  ],
  [
    'CHAP secret too short',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n        chap:\n          user: a\n          secret: tooshort\n',
    '9 targets[0].acls[0].chap.secret',
    /the CHAP secret is 8 bytes long; it must be 12\.\.255 bytes/,
  ],
  [
    'CHAP secret too long',
    `volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n        chap: { user: a, secret: "${'s'.repeat(256)}" }\n`,
    '7 targets[0].acls[0].chap.secret',
    /256 bytes long/,
  ],
  [
    'CHAP secret not a string',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n        chap: { user: a, secret: 1234567890123 }\n',
    '7 targets[0].acls[0].chap.secret',
    /must be a string; it is a number \(put it in quotes\)/,
  ],
  [
    'CHAP without user',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n        chap: { secret: "123456789012" }\n',
    '7 targets[0].acls[0].chap',
    /chap needs a user/,
  ],
  [
    'CHAP given as text',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n        chap: "a:123456789012"\n',
    '7 targets[0].acls[0].chap',
    /^chap must be a mapping \{ user: NAME, secret: "\.\.\." \}, not a plain value$/,
  ],
  [
    'mutual without chap',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n        mutual: { user: t, secret: "123456789012" }\n',
    '7 targets[0].acls[0].mutual',
    /mutual CHAP needs chap too/,
  ],
  [
    'mutual secret equal to chap secret',
    'volumes: { v: { memory: true, size: 1M } }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n        chap: { user: a, secret: "123456789012" }\n        mutual: { user: t, secret: "123456789012" }\n',
    '8 targets[0].acls[0].mutual.secret',
    /must differ from the chap secret/,
  ],
  ['YAML syntax error', 'volumes:\n  a: { path: a.img, size: 1G\ntargets: []\n', '3 ', /YAML:/],
  [
    'YAML duplicate key',
    'volumes:\n  a: { memory: true, size: 1M }\n  a: { memory: true, size: 2M }\n',
    '3 volumes.a',
    /YAML: this key appears twice/,
  ],
  ['undefined alias', 'volumes:\n  a: *nothing\n', '2 ', /YAML:|alias/],
];

for (const [name, text, at, message] of CASES) {
  test(`error: ${name} names its line and key`, () => {
    const e = oneError(text);
    // A YAML syntax error may name a partial key path; compare the line and (if given) the key.
    if (at.endsWith(' ')) assert.equal(String(e.issue.line), at.trim(), formatIssue(e.issue));
    else assert.equal(e.at, at, formatIssue(e.issue));
    assert.match(e.message, message);
    assert.ok(e.issue.col > 0, 'has a column');
  });
}

test('all errors are reported at once, in file order, in one ConfigError', () => {
  const text = [
    'portals: ["0.0.0.0:99999"]', // 1
    'volumes:', // 2
    '  a: { path: a.img, size: 20Q }', // 3
    '  b: { memory: true }', // 4
    'targets:', // 5
    '  - iqn: iqn.bad', // 6
    '    luns: { 0: a, 1: c }', // 7
    '  - iqn: iqn.2026-11.io.example:t2', // 8
    '    acls:', // 9
    '      - initiator: iqn.1994-05.com.redhat:x', // 10
    '        chap: { user: x, secret: "short" }', // 11
    'bogus: true', // 12
  ].join('\n');
  let error: ConfigError | undefined;
  try {
    parseConfig(text, 'multi.yaml');
  } catch (e) {
    error = e as ConfigError;
  }
  assert.ok(error instanceof ConfigError);
  assert.deepEqual(
    error.errors.map((e) => `${e.line} ${e.key}`),
    [
      '1 portals[0]',
      '3 volumes.a.size',
      '4 volumes.b',
      '6 targets[0].iqn',
      '7 targets[0].luns.1',
      '11 targets[1].acls[0].chap.secret',
      '12 bogus',
    ],
  );
  const lines = error.message.split('\n');
  assert.equal(lines[0], '7 errors in multi.yaml:');
  assert.equal(lines.length, 8);
  assert.match(lines[1], /^multi\.yaml:1:\d+: portals\[0\]: /);
  assert.match(lines[7], /^multi\.yaml:12:1: bogus: unknown key "bogus"/);
});

test('secrets never appear in errors or warnings', () => {
  const secrets = ['tiny-s3', 'Sup3rS3cretValue!!', '12345678901234567', 'same-secret-1234', 'unterminated-secret-xyz'];
  const text = [
    'volumes: { v: { memory: true, size: 1M } }',
    'targets:',
    '  - iqn: iqn.2026-11.io.example:t',
    '    luns: { 0: v }',
    '    acls:',
    `      - initiator: iqn.1994-05.com.redhat:a`,
    `        chap: { user: a, secret: "${secrets[0]}" }`, // too short
    `      - initiator: iqn.1994-05.com.redhat:b`,
    `        chap: { user: b, secret: "${secrets[1]}", extra: 1 }`, // long (warning) + unknown key
    `      - initiator: iqn.1994-05.com.redhat:c`,
    `        chap: { user: c, secret: ${secrets[2]} }`, // a number
    `      - initiator: iqn.1994-05.com.redhat:d`,
    `        chap: { user: d, secret: "${secrets[3]}" }`,
    `        mutual: { user: t, secret: "${secrets[3]}" }`, // same as chap
  ].join('\n');
  let error: ConfigError | undefined;
  try {
    parseConfigDetailed(text, FILE, { fileMode: 0o100644 });
  } catch (e) {
    error = e as ConfigError;
  }
  assert.ok(error instanceof ConfigError);
  assert.equal(error.errors.length, 4, error.message);
  const everything = [error.message, ...error.errors.map(formatIssue), ...error.warnings.map(formatIssue)].join('\n');
  for (const s of secrets.slice(0, 4)) assert.ok(!everything.includes(s), `secret ${s} leaked:\n${everything}`);

  // A YAML syntax error on a secret's line does not quote the line.
  const broken = `targets:\n  - iqn: iqn.2026-11.io.example:t\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n        chap: { user: a, secret: "${secrets[4]} }\n`;
  try {
    parseConfig(broken, FILE);
    assert.fail('expected an error');
  } catch (e) {
    assert.ok(e instanceof ConfigError);
    assert.ok(!e.message.includes(secrets[4]), e.message);
  }
});

test('error: a volume mapped to two different initiators without shared: true', () => {
  const text = [
    'volumes:', // 1
    '  db: { memory: true, size: 1M }', // 2
    'targets:', // 3
    '  - iqn: iqn.2026-11.io.example:t', // 4
    '    acls:', // 5
    '      - initiator: iqn.1994-05.com.redhat:a', // 6
    '        luns: { 0: db }', // 7
    '      - initiator: iqn.1994-05.com.redhat:b', // 8
    '        luns: { 0: db }', // 9
  ].join('\n');
  const errs = errorsOf(text);
  assert.equal(errs.length, 1, errs.map(formatIssue).join('\n'));
  assert.equal(`${errs[0].line} ${errs[0].key}`, '2 volumes.db');
  assert.match(errs[0].message, /mapped to iqn\.1994-05\.com\.redhat:a and iqn\.1994-05\.com\.redhat:b; .*shared: true/);
});

test('warning: a volume mapped to two different initiators with shared: true is reported as shared', () => {
  const text = [
    'volumes:', // 1
    '  shared: { memory: true, size: 1M, shared: true }', // 2
    '  own: { memory: true, size: 1M }', // 3
    'targets:', // 4
    '  - iqn: iqn.2026-11.io.example:t', // 5
    '    acls:', // 6
    '      - initiator: iqn.1994-05.com.redhat:a', // 7
    '        luns: { 0: shared, 1: own }', // 8
    '      - initiator: iqn.1994-05.com.redhat:b', // 9
    '        luns: { 0: shared }', // 10
  ].join('\n');
  const w = warningsOf(text);
  assert.equal(w.length, 1, w.map(formatIssue).join('\n'));
  assert.equal(`${w[0].line} ${w[0].key}`, '2 volumes.shared');
  assert.match(w[0].message, /shared between iqn\.1994-05\.com\.redhat:a and iqn\.1994-05\.com\.redhat:b/);
});

test('warning: ACLs inheriting the target luns share them; one initiator in two targets does not', () => {
  const inherit =
    'volumes:\n  v: { memory: true, size: 1M, shared: true }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: v }\n    acls:\n      - initiator: iqn.1994-05.com.redhat:a\n      - initiator: iqn.1994-05.com.redhat:b\n';
  assert.match(
    warningsOf(inherit)
      .map((w) => w.message)
      .join('\n'),
    /shared between/,
  );
  const same =
    'volumes:\n  v: { memory: true, size: 1M }\ntargets:\n  - iqn: iqn.2026-11.io.example:t1\n    acls: [{ initiator: iqn.1994-05.com.redhat:a, luns: { 0: v } }]\n  - iqn: iqn.2026-11.io.example:t2\n    acls: [{ initiator: iqn.1994-05.com.redhat:a, luns: { 3: v } }]\n';
  assert.deepEqual(warningsOf(same), []);
});

test('warnings: unmapped volume, target exporting nothing, ACL seeing nothing', () => {
  const text = [
    'volumes:', // 1
    '  v: { memory: true, size: 1M }', // 2
    'targets:', // 3
    '  - iqn: iqn.2026-11.io.example:empty', // 4
    '  - iqn: iqn.2026-11.io.example:t', // 5
    '    acls:', // 6
    '      - initiator: iqn.1994-05.com.redhat:a', // 7
  ].join('\n');
  const w = warningsOf(text).map((i) => `${i.line} ${i.key}: ${i.message}`);
  assert.equal(w.length, 3, w.join('\n'));
  assert.match(w[0], /^2 volumes\.v: volume v is not mapped to any target/);
  assert.match(w[1], /^4 targets\[0\]: target iqn\.2026-11\.io\.example:empty exports nothing/);
  assert.match(w[2], /^7 targets\[1\]\.acls\[0\]: iqn\.1994-05\.com\.redhat:a is admitted but sees no LUNs/);
});

test('loadConfig: relative paths resolve against the file folder; file mode warnings', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-config-'));
  try {
    fs.mkdirSync(path.join(dir, 'luns'));
    fs.writeFileSync(path.join(dir, 'luns', 'existing.img'), Buffer.alloc(4096));
    const file = path.join(dir, 'iscsi-target.yaml');
    fs.writeFileSync(
      file,
      [
        'volumes:',
        '  new: { path: luns/new.img, size: 1GiB }',
        '  old: { path: luns/existing.img }',
        'targets:',
        '  - iqn: iqn.2026-11.io.example:t',
        '    acls:',
        '      - initiator: iqn.1994-05.com.redhat:a',
        '        luns: { 0: new }',
        '        chap: { user: a, secret: "0123456789ab" }',
        '      - initiator: iqn.1994-05.com.redhat:b',
        '        luns: { 0: old }',
      ].join('\n'),
    );
    fs.chmodSync(file, 0o644);
    const r = await loadConfigDetailed(file);
    assert.equal(r.config.volumes.get('new')!.path, path.join(dir, 'luns', 'new.img'));
    assert.equal(r.config.volumes.get('old')!.path, path.join(dir, 'luns', 'existing.img'));
    assert.deepEqual(
      r.warnings.map((w) => w.message),
      [`holds CHAP secrets but is readable by other users (mode 0644); run: chmod 600 ${file}`],
    );
    fs.chmodSync(file, 0o600);
    assert.deepEqual((await loadConfigDetailed(file)).warnings, []);
    assert.equal((await loadConfig(file)).targets.length, 1);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('loadConfig: missing files and paths are errors with lines', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-config-'));
  try {
    await assert.rejects(loadConfig(path.join(dir, 'none.yaml')), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.equal(e.message, `${path.join(dir, 'none.yaml')}: cannot read the config: no such file`);
      return true;
    });
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(
      file,
      [
        'volumes:',
        '  a: { path: missing.img }', // 2: no size, does not exist
        '  b: { path: nodir/b.img, size: 1G }', // 3: folder missing
        `  c: { path: ${JSON.stringify(dir)} }`, // 4: a directory
        'targets:',
        '  - iqn: iqn.2026-11.io.example:t',
        '    luns: { 0: a, 1: b, 2: c }',
      ].join('\n'),
    );
    await assert.rejects(loadConfig(file), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      assert.deepEqual(
        e.errors.map((i) => `${i.line} ${i.key}`),
        ['2 volumes.a.path', '3 volumes.b.path', '4 volumes.c.path'],
      );
      assert.match(e.errors[0].message, /does not exist; give a size/);
      assert.match(e.errors[1].message, /folder .*nodir does not exist/);
      assert.match(e.errors[2].message, /is a directory/);
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the parsed document keeps comments for later edits', () => {
  const { document } = parseConfigDetailed(VALID, FILE);
  assert.match(String(document), /# sparse file, created if missing/);
});

test('YAML duplicates, schema, file and shared-volume errors all come in one pass', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-config-'));
  try {
    const file = path.join(dir, 'c.yaml');
    fs.writeFileSync(
      file,
      [
        'portals: ["127.0.0.1:3260"]', // 1
        'volumes:', // 2
        '  a: { path: a.img, size: 1GiB }', // 3
        '  bad: { path: bad.img, size: 20Q }', // 4: schema
        '  gone: { path: gone.img }', // 5: file: no size, does not exist
        'targets:', // 6
        '  - iqn: iqn.2026-11.io.example:t', // 7
        '    iqn: iqn.2026-11.io.example:t2', // 8: YAML duplicate key
        '    acls:', // 9
        '      - initiator: iqn.1994-05.com.redhat:host-a', // 10
        '        luns: { 0: a }', // 11
        '      - initiator: iqn.1994-05.com.redhat:host-b', // 12
        '        luns: { 0: a }', // 13
        '  - iqn: iqn.2026-11.io.example:u', // 14
        '    luns: { 0: gone }', // 15
      ].join('\n'),
    );
    await assert.rejects(loadConfigDetailed(file), (e: unknown) => {
      assert.ok(e instanceof ConfigError);
      const got = e.errors.map((i) => `${i.file === file ? 'FILE' : i.file}:${i.line} ${i.key}: ${i.message}`);
      assert.equal(got.length, 4, got.join('\n'));
      assert.match(
        got[0],
        /^FILE:3 volumes\.a: volume a is mapped to iqn\.1994-05\.com\.redhat:host-a and iqn\.1994-05\.com\.redhat:host-b/,
      );
      assert.match(got[1], /^FILE:4 volumes\.bad\.size: .*20Q/);
      assert.match(got[2], /^FILE:5 volumes\.gone\.path: .*does not exist; give a size/);
      assert.match(got[3], /^FILE:8 targets\[0\]\.iqn: YAML: this key appears twice/);
      return true;
    });
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
