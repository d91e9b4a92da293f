// src/log.ts (used by the CLI): redaction and output modes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/log';

function capture() {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  return { stream, text: () => chunks.join('') };
}

test('JSON logs redact CHAP secrets wherever they sit', () => {
  const c = capture();
  const log = createLogger({ pretty: false, destination: c.stream, level: 'debug' });
  log.info(
    {
      chap: { user: 'u', secret: 'S1-secret' },
      acl: { initiator: 'iqn.x', chap: { user: 'u', secret: 'S2-secret' }, mutual: { user: 't', secret: 'S3-secret' } },
      config: { targets: [{ acls: [{ chap: { secret: 'S4-secret' } }] }] },
      secret: 'S5-secret',
    },
    'login',
  );
  const line = JSON.parse(c.text().trim());
  assert.equal(line.msg, 'login');
  assert.equal(line.chap.user, 'u');
  for (const s of ['S1', 'S2', 'S3', 'S4', 'S5']) assert.ok(!c.text().includes(`${s}-secret`), c.text());
  assert.equal(line.chap.secret, '[redacted]');
});

test('pretty logs on request; level from LOG_LEVEL; bad level falls back to info', () => {
  const c = capture();
  const log = createLogger({ pretty: true, destination: c.stream, level: 'warn' });
  log.info('hidden');
  log.warn({ chap: { secret: 'P-secret' } }, 'shown');
  assert.match(c.text(), /WARN.*shown/);
  assert.doesNotMatch(c.text(), /hidden|P-secret/);

  const saved = process.env.LOG_LEVEL;
  try {
    process.env.LOG_LEVEL = 'debug';
    assert.equal(createLogger({ pretty: false, destination: capture().stream }).level, 'debug');
    process.env.LOG_LEVEL = 'loud';
    const d = capture();
    const l = createLogger({ pretty: false, destination: d.stream });
    assert.equal(l.level, 'info');
    assert.match(d.text(), /LOG_LEVEL \\"loud\\" is not one of/);
  } finally {
    if (saved === undefined) delete process.env.LOG_LEVEL;
    else process.env.LOG_LEVEL = saved;
  }
});

test('setLogLevel reaches child loggers made before the change, and logFlags follow it', async () => {
  const { setLogLevel, getLogLevel, logFlags } = await import('../../src/log');
  const c = capture();
  const log = createLogger({ format: 'json', destination: c.stream, level: 'info' });
  const child = log.child({ conn: 1 });
  const grandchild = child.child({ tsih: 2 });
  assert.equal(logFlags.debug, false);
  grandchild.debug('hidden');
  setLogLevel('trace');
  assert.equal(getLogLevel(), 'trace');
  assert.equal(logFlags.trace, true);
  grandchild.trace('deep');
  child.debug('shown');
  setLogLevel('warn');
  assert.equal(logFlags.debug, false);
  grandchild.info('hidden again');
  const msgs = c
    .text()
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l).msg);
  assert.deepEqual(msgs, ['deep', 'shown']);
  assert.throws(() => setLogLevel('loud'), /unknown log level/);
});

test('journal format: "<N>" syslog priority per level, fields as key=value, errors on one line', async () => {
  const { journalLine } = await import('../../src/log');
  const c = capture();
  const log = createLogger({ format: 'journal', destination: c.stream, level: 'trace' });
  log.fatal('f');
  log.error({ err: new Error('boom\nsecond line') }, 'e');
  log.warn({ volume: 'db a' }, 'w');
  log.info({ n: 3 }, 'i');
  log.debug('d');
  log.trace('t');
  const lines = c.text().trim().split('\n');
  assert.deepEqual(
    lines.map((l) => l.slice(0, 4)),
    ['<2>f', '<3>e', '<4>w', '<6>i', '<7>d', '<7>t'],
  );
  assert.match(lines[1], /^<3>e err="Error: boom \| second line \| at /);
  assert.equal(lines[2], '<4>w volume="db a"');
  assert.equal(lines[3], '<6>i n=3');
  assert.equal(journalLine('not json'), '<6>not json\n');
});
