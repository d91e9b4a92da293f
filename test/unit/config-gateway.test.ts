// `gateway:` and volume `owner:` / `others:` (ALUA): parsing, errors with file, line and
// key, and the groups and states every gateway derives from them (config/alua.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { aluaStatesFor, gatewayGroups } from '../../src/config/alua';
import { ConfigError, parseConfig } from '../../src/config/load';
import { diffConfig, diffIsEmpty } from '../../src/admin/diff';
import { AluaState } from '../../src/scsi/alua';

const FILE = '/etc/iscsi-target/iscsi-target.yaml';

function errorsOf(text: string) {
  try {
    parseConfig(text, FILE);
  } catch (e) {
    if (e instanceof ConfigError) return e.errors;
    throw e;
  }
  assert.fail('expected a config error');
}

const BASE = `portals: ["127.0.0.1:3260", "127.0.0.1:3261"]
volumes:
  db: { memory: true, size: 1MiB, owner: 2 }
  logs: { memory: true, size: 1MiB, owner: 1, others: standby }
  scratch: { memory: true, size: 1MiB }
targets:
  - iqn: iqn.2026-11.io.example:san
    luns: { 0: db, 1: logs, 2: scratch }
`;

test('gateway: group and peers; groups and ports follow the numbering rule', () => {
  const c = parseConfig(`${BASE}gateway: { group: 1, peers: [2, { group: 3, portals: 1 }] }\n`, FILE);
  assert.deepEqual(c.gateway, { group: 1, peers: [{ group: 2 }, { group: 3, portals: 1 }] });
  assert.deepEqual(gatewayGroups(c), [
    { id: 1, ports: [1, 2] },
    { id: 2, ports: [257, 258] }, // as many portals as this gateway
    { id: 3, ports: [513] },
  ]);
  const groups = gatewayGroups(c);
  const st = (v: string) => [...aluaStatesFor(c.volumes.get(v)!, groups)];
  assert.deepEqual(st('db'), [
    [1, AluaState.ActiveNonOptimized],
    [2, AluaState.ActiveOptimized],
    [3, AluaState.ActiveNonOptimized],
  ]);
  assert.deepEqual(st('logs'), [
    [1, AluaState.ActiveOptimized],
    [2, AluaState.Standby],
    [3, AluaState.Standby],
  ]);
  assert.deepEqual(st('scratch'), [
    [1, AluaState.ActiveOptimized],
    [2, AluaState.ActiveOptimized],
    [3, AluaState.ActiveOptimized],
  ]);
});

test('no gateway: group 1, no peers, every path active/optimized', () => {
  const c = parseConfig(BASE.replace(', owner: 2', '').replace(', owner: 1, others: standby', ''), FILE);
  assert.equal(c.gateway, undefined);
  assert.deepEqual(gatewayGroups(c), [{ id: 1, ports: [1, 2] }]);
});

test('gateway and owner errors name file, line and key', () => {
  const byKey = (errors: ReturnType<typeof errorsOf>, key: string) => {
    const e = errors.find((x) => x.key === key);
    assert.ok(e, `an error at ${key}: ${JSON.stringify(errors)}`);
    return e;
  };
  const e1 = byKey(errorsOf(`${BASE}gateway: { group: 300, peers: [2] }\n`), 'gateway.group');
  assert.equal(e1.file, FILE);
  assert.equal(e1.line, 9);
  assert.match(e1.message, /1 to 255/);
  const e2 = byKey(errorsOf(`${BASE}gateway: { group: 2, peers: [2] }\n`), 'gateway.peers[0]');
  assert.match(e2.message, /listed twice/);
  // db's owner 2 is no known group without peers.
  const e3 = errorsOf(BASE);
  assert.equal(e3[0].key, 'volumes.db.owner');
  assert.equal(e3[0].line, 3);
  const e4 = errorsOf(`${BASE}gateway: { peers: [2] }\n`.replace('others: standby', 'others: passive'));
  assert.equal(e4[0].key, 'volumes.logs.others');
  assert.match(e4[0].message, /non-optimized, standby, unavailable/);
  const e5 = byKey(errorsOf(`${BASE}gateway: { group: 1, peer: [2] }\n`), 'gateway.peer');
  assert.match(e5.message, /did you mean "peers"/);
});

test('reload: owner changes are ALUA changes; a new gateway.group is refused', () => {
  const a = parseConfig(`${BASE}gateway: { peers: [2] }\n`, FILE);
  const b = parseConfig(`${BASE.replace('owner: 2', 'owner: 1')}gateway: { peers: [2] }\n`, FILE);
  const d = diffConfig(a, b);
  assert.equal(d.aluaChanged, true);
  assert.equal(diffIsEmpty(d), false);
  assert.equal(diffConfig(a, a).aluaChanged, false);
  const c = parseConfig(`${BASE}gateway: { group: 2, peers: [1] }\n`, FILE);
  assert.match(diffConfig(a, c).refused.join('\n'), /gateway\.group/);
});
