// No secret leaves the process in a message, a log line or --json output (issue 14): a daemon
// at LOG_LEVEL=trace with CHAP, mutual CHAP and discovery CHAP, logins that succeed and fail,
// and every CLI command that touches secrets or prints state. Every byte any of them printed
// is searched for every secret.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Initiator } from '../../src/initiator/initiator';
import { cli as runCli, startDaemon } from '../helpers/daemon';

const SECRETS = [
  'DISCOVERY-SECRET-1',
  'DISCOVERY-MUTUAL-2',
  'HOST-A-SECRET-3',
  'TARGET-MUTUAL-4',
  'NEW-ACL-SECRET-5',
  'URL%SECRET-6',
  'Zq!',
];
const T = 'iqn.2026-11.io.example:sec';
const A = 'iqn.1994-05.com.redhat:host-a';

const YAML = `portals: ["127.0.0.1:PORT"]
volumes:
  v0: { memory: true, size: 16MiB }
  v1: { memory: true, size: 16MiB }
discovery:
  chap: { user: disc, secret: "DISCOVERY-SECRET-1" }
  mutual: { user: disc-t, secret: "DISCOVERY-MUTUAL-2" }
targets:
  - iqn: ${T}
    luns: { 0: v0 }
    acls:
      - initiator: ${A}
        chap: { user: host-a, secret: "HOST-A-SECRET-3" }
        mutual: { user: sec-t, secret: "TARGET-MUTUAL-4" }
`;

test('no secret in any output, log line or --json answer', async () => {
  const run = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-run-'));
  const env = { ...process.env, CI: '', LOG_LEVEL: 'trace', ISCSI_TARGET_RUN_DIR: run };
  const d = await startDaemon(YAML, { env });
  const outputs: { what: string; text: string }[] = [];
  const cli = async (...args: string[]) => {
    const r = await runCli(args, { daemon: d, env });
    outputs.push({ what: args.join(' '), text: r.stdout + r.stderr });
    return { code: r.code, text: r.stdout + r.stderr };
  };
  try {
    // Logins: right, wrong, mutual, discovery.
    const good = await Initiator.connect({
      host: '127.0.0.1',
      port: d.port,
      targetName: T,
      initiatorName: A,
      chap: { user: 'host-a', secret: 'HOST-A-SECRET-3' },
      mutual: { user: 'sec-t', secret: 'TARGET-MUTUAL-4' },
    });
    await good.logout();
    await assert.rejects(
      Initiator.connect({
        host: '127.0.0.1',
        port: d.port,
        targetName: T,
        initiatorName: A,
        chap: { user: 'host-a', secret: 'wrong-secret-0000' },
      }),
    );
    const disc = await Initiator.connect({
      host: '127.0.0.1',
      port: d.port,
      initiatorName: A,
      chap: { user: 'disc', secret: 'DISCOVERY-SECRET-1' },
      mutual: { user: 'disc-t', secret: 'DISCOVERY-MUTUAL-2' },
    });
    assert.ok((await disc.sendTargets()).length > 0);
    await disc.logout();

    // The CLI.
    const url = `iscsi://host-a%HOST-A-SECRET-3@127.0.0.1:${d.port}/${T}/0`;
    assert.equal((await cli('probe', url, '-i', A)).code, 0);
    assert.equal((await cli('probe', url, '-i', A, '--json')).code, 0);
    assert.equal((await cli('probe', `iscsi://host-a%URL%SECRET-6@127.0.0.1:${d.port}/${T}/0`, '-i', A)).code, 1);
    assert.equal((await cli('probe', 'iscsi://host-a%URL%SECRET-6@127.0.0.1:1/x', '-i', A)).code, 1, 'malformed URL');
    assert.equal((await cli('probe', `iscsi://host-a%URL%SECRET-6@127.0.0.1:1/${T}/0`, '--json')).code, 1);
    assert.equal(
      (
        await cli(
          'acl',
          'add',
          T,
          'iqn.1994-05.com.redhat:host-b',
          '--lun',
          '0=v1',
          '--chap-user',
          'host-b',
          '--chap-secret',
          'NEW-ACL-SECRET-5',
        )
      ).code,
      0,
    );
    assert.equal(
      (await cli('acl', 'add', T, 'iqn.1994-05.com.redhat:host-c', '--chap-user', 'host-c', '--chap-secret', 'Zq!')).code,
      1,
      'too short',
    );
    assert.equal(
      (await cli('acl', 'add', T, 'iqn.1994-05.com.redhat:host-c', '--chap-user', 'host-c', '--chap-secret', 'Zq!', '--json')).code,
      1,
    );
    for (const args of [
      ['acl', 'list'],
      ['acl', 'list', '--json'],
      ['status', '-v'],
      ['status', '--json'],
      ['volume', 'list', '--json'],
      ['config', 'check'],
      ['reload'],
    ]) {
      assert.equal((await cli(...args)).code, 0, args.join(' '));
    }
    // A hand edit that breaks the YAML on the secret's own line, then reload and check.
    const text = fs.readFileSync(d.configFile, 'utf8');
    fs.writeFileSync(d.configFile, text.replace('secret: "HOST-A-SECRET-3" }', 'secret: "HOST-A-SECRET-3" }}: ['));
    assert.equal((await cli('config', 'check')).code, 1);
    assert.equal((await cli('reload')).code, 1);
    fs.writeFileSync(d.configFile, text);
  } finally {
    await d.stop();
    fs.rmSync(run, { recursive: true, force: true });
  }
  outputs.push({ what: 'daemon log', text: d.output() });
  assert.match(d.output(), /login failed/, 'the daemon logged nothing useful');
  for (const o of outputs) {
    for (const s of SECRETS) {
      assert.ok(!o.text.includes(s), `${o.what} printed the secret ${s}:\n${o.text}`);
      assert.ok(!o.text.includes(encodeURIComponent(s)), `${o.what} printed the secret ${s} (URL-encoded)`);
    }
  }
  assert.ok(
    outputs.some((o) => o.text.includes('iscsi://host-a%***@')),
    'the probe URL is shown redacted',
  );
});
