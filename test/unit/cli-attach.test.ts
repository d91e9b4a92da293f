import { test } from 'node:test';
import assert from 'node:assert/strict';
import { attachInstructions, dialAddress } from '../../src/cli/attach';
import { parseConfig } from '../../src/config/load';

test('dial addresses for wildcard portals', () => {
  assert.deepEqual(dialAddress({ host: '0.0.0.0', port: 3260 }), { host: '127.0.0.1', port: 3260 });
  assert.deepEqual(dialAddress({ host: '::', port: 3261 }), { host: '::1', port: 3261 });
  assert.deepEqual(dialAddress({ host: '10.0.0.5', port: 3260 }), { host: '10.0.0.5', port: 3260 });
});

test('attach text lists portals, targets, LUNs, commands; CHAP shown without secrets', () => {
  const config = parseConfig(
    `portals: ["10.0.0.5:3260"]
volumes:
  db-a: { path: /srv/db-a.img, size: 20GiB }
  gold: { path: /srv/gold.img, size: 1GiB, readonly: true }
targets:
  - iqn: iqn.2026-11.io.example:san1
    luns: { 1: gold }
    acls:
      - initiator: iqn.1994-05.com.redhat:host-a
        luns: { 0: db-a }
        chap: { user: host-a, secret: "very-secret-123" }
        mutual: { user: san1, secret: "other-secret-456" }
      - initiator: iqn.1994-05.com.redhat:host-b
`,
    '/etc/iscsi-target.yaml',
  );
  const text = attachInstructions(config, [{ host: '10.0.0.5', port: 3260 }]);
  assert.ok(!text.includes('very-secret-123') && !text.includes('other-secret-456'));
  assert.match(text, /Portals:\n {2}10\.0\.0\.5:3260\n/);
  assert.match(
    text,
    /initiator iqn\.1994-05\.com\.redhat:host-a \(CHAP user host-a, mutual CHAP user san1\)\n +LUN 0: db-a, 20 GiB, \/srv\/db-a\.img/,
  );
  assert.match(text, /initiator iqn\.1994-05\.com\.redhat:host-b\n +LUN 1: gold, 1 GiB, read-only, \/srv\/gold\.img/);
  assert.match(text, /iscsiadm -m discovery -t st -p 10\.0\.0\.5:3260/);
  assert.match(text, /iscsiadm -m node -T iqn\.2026-11\.io\.example:san1 -p 10\.0\.0\.5:3260 --login/);
  assert.match(text, /-n node\.session\.auth\.authmethod -v CHAP/);
  assert.match(text, /-n node\.session\.auth\.username -v host-a/);
  assert.match(text, /-n node\.session\.auth\.password -v '<the secret from the config>'/);
  assert.match(text, /-n node\.session\.auth\.username_in -v san1/);
  assert.match(text, /initiatorname\.iscsi/);
  assert.match(text, /iscsi-ls -s iscsi:\/\/10\.0\.0\.5:3260 .*-i INITIATOR-IQN/);
  assert.doesNotMatch(text, /other machines/);
});

test('attach text uses the bound port (port 0 in the config) and IPv6 brackets', () => {
  const config = parseConfig(
    'portals: ["[::]:0"]\nvolumes:\n  m: { memory: true, size: 1M }\ntargets:\n  - iqn: iqn.2026-11.io.example:t\n    luns: { 0: m }\n',
    'c.yaml',
  );
  const text = attachInstructions(config, [{ host: '::', port: 40123 }]);
  assert.match(text, /\[::\]:40123 +\(every address; use \[::1\]:40123 here/);
  assert.match(text, /iscsiadm -m discovery -t st -p \[::1\]:40123/);
  assert.match(text, /iscsi-inq iscsi:\/\/\[::1\]:40123\/iqn\.2026-11\.io\.example:t\/0/);
  assert.match(text, /LUN 0: m, 1 MiB, memory/);
  assert.match(text, /From other machines, replace \[::1\] with this host's address/);
});
