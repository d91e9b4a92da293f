// ALUA through the real daemon: one gateway with two portals on 127.0.0.1 (two ports) is
// two target ports, as multipath over two NICs needs. Each session sees its own relative
// target port id in VPD 83h, every session the same REPORT TARGET PORT GROUPS data; SET
// TARGET PORT GROUPS and a config reload change states and raise 2A/06.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { Initiator, senseOf } from '../../src/initiator/initiator';
import { freePort, startDaemon, type Daemon } from '../helpers/daemon';

const IQN = 'iqn.2026-11.io.example:alua';

const yaml = (port2: number, owner: number) => `portals: ["127.0.0.1:PORT", "127.0.0.1:${port2}"]
gateway: { group: 1, peers: [2] }
volumes:
  db: { memory: true, size: 1MiB, owner: ${owner} }
targets:
  - iqn: ${IQN}
    luns: { 0: db }
`;

const RTPG = Buffer.from([0xa3, 0x0a, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]);
const VPD83 = Buffer.from([0x12, 0x01, 0x83, 0x04, 0x00, 0]);

/** Relative target port (4h) and target port group (5h) designators of VPD 83h. */
function portIds(d: Buffer): { rtpi?: number; group?: number } {
  const out: { rtpi?: number; group?: number } = {};
  for (let p = 4; p + 4 <= d.length; p += 4 + d[p + 3]) {
    if (((d[p + 1] >> 4) & 3) !== 1) continue;
    if ((d[p + 1] & 0x0f) === 4) out.rtpi = d.readUInt16BE(p + 6);
    if ((d[p + 1] & 0x0f) === 5) out.group = d.readUInt16BE(p + 6);
  }
  return out;
}

/** RTPG length-only data as [group, state, ports]. */
function groups(d: Buffer): [number, number, number[]][] {
  const out: [number, number, number[]][] = [];
  const end = 4 + d.readUInt32BE(0);
  for (let p = 4; p < end;) {
    const n = d[p + 7];
    out.push([d.readUInt16BE(p + 2), d[p] & 0x0f, Array.from({ length: n }, (_, i) => d.readUInt16BE(p + 8 + 4 * i + 2))]);
    p += 8 + 4 * n;
  }
  return out;
}

describe('ALUA: one gateway, two portals', () => {
  let d: Daemon;
  let port2: number;
  let a: Initiator;
  let b: Initiator;

  before(async () => {
    port2 = await freePort();
    d = await startDaemon(yaml(port2, 1));
    a = await Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: IQN, initiatorName: 'iqn.2026-11.io.example:host' });
    b = await Initiator.connect({ host: '127.0.0.1', port: port2, targetName: IQN, initiatorName: 'iqn.2026-11.io.example:host' });
    await a.testUnitReady(0);
    await b.testUnitReady(0);
  });
  after(async () => {
    await a?.logout().catch(() => undefined);
    await b?.logout().catch(() => undefined);
    await d?.stop();
  });

  test('discovery lists each portal with its own tag; each login answers its portal', async () => {
    const ini = await Initiator.connect({ host: '127.0.0.1', port: d.port });
    const targets = await ini.sendTargets('All');
    await ini.logout();
    assert.deepEqual(targets, [{ name: IQN, addresses: [`127.0.0.1:${d.port},1`, `127.0.0.1:${port2},2`] }]);
    assert.equal(a.negotiated.TargetPortalGroupTag, '1');
    assert.equal(b.negotiated.TargetPortalGroupTag, '2');
  });

  test('the two sessions see different relative target ports in one group, and identical RTPG data', async () => {
    const va = await a.command(0, VPD83, { readLength: 1024 });
    const vb = await b.command(0, VPD83, { readLength: 1024 });
    assert.deepEqual(portIds(va.data), { rtpi: 1, group: 1 });
    assert.deepEqual(portIds(vb.data), { rtpi: 2, group: 1 });
    const ra = await a.command(0, RTPG, { readLength: 1024 });
    const rb = await b.command(0, RTPG, { readLength: 1024 });
    assert.equal(ra.status, 0);
    assert.deepEqual(ra.data, rb.data);
    assert.deepEqual(groups(ra.data), [
      [1, 0x0, [1, 2]], // this gateway owns db: active/optimized
      [2, 0x1, [257, 258]], // the peer: active/non-optimized
    ]);
  });

  test('STPG through one port: the other session gets 2A/06, then standby refuses READ with 04/0B', async () => {
    const list = Buffer.from([0, 0, 0, 0, 0x02, 0, 0, 1]); // group 1 -> standby
    const stpg = Buffer.from([0xa4, 0x0a, 0, 0, 0, 0, 0, 0, 0, list.length, 0, 0]);
    const r = await a.command(0, stpg, { dataOut: list });
    assert.equal(r.status, 0);
    const read = Buffer.from([0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
    const ua = await b.command(0, read, { readLength: 512 });
    assert.deepEqual(senseOf(ua.sense), { key: 6, asc: 0x2a, ascq: 0x06 });
    for (const ini of [a, b]) {
      const nr = await ini.command(0, read, { readLength: 512 });
      assert.deepEqual(senseOf(nr.sense), { key: 2, asc: 0x04, ascq: 0x0b });
    }
    const back = Buffer.from([0, 0, 0, 0, 0x00, 0, 0, 1]);
    assert.equal((await b.command(0, stpg, { dataOut: back })).status, 0);
    assert.deepEqual(senseOf((await a.command(0, read, { readLength: 512 })).sense), { key: 6, asc: 0x2a, ascq: 0x06 });
    assert.equal((await a.command(0, read, { readLength: 512 })).status, 0);
  });

  test('a config reload that moves the owner raises 2A/06 on both sessions and RTPG follows', async () => {
    fs.writeFileSync(d.configFile, yaml(port2, 2).replaceAll('PORT', String(d.port)), { mode: 0o600 });
    d.proc.kill('SIGHUP');
    const tur = Buffer.alloc(6);
    let first = await a.command(0, tur);
    for (let i = 0; i < 100 && first.status === 0; i++) {
      await new Promise((r) => setTimeout(r, 50));
      first = await a.command(0, tur);
    }
    assert.deepEqual(senseOf(first.sense), { key: 6, asc: 0x2a, ascq: 0x06 });
    assert.deepEqual(senseOf((await b.command(0, tur)).sense), { key: 6, asc: 0x2a, ascq: 0x06 });
    const ra = await a.command(0, RTPG, { readLength: 1024 });
    const rb = await b.command(0, RTPG, { readLength: 1024 });
    assert.deepEqual(ra.data, rb.data);
    assert.deepEqual(
      groups(ra.data).map(([g, s]) => [g, s]),
      [
        [1, 0x1],
        [2, 0x0],
      ],
    );
  });
});
