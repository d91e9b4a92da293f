// ALUA (scsi/alua.ts): REPORT / SET TARGET PORT GROUPS byte by byte, the standby,
// unavailable and transitioning command gate, and ASYMMETRIC ACCESS STATE CHANGED.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../src/backstore/memory';
import { AluaState, AluaTopology, LocalAluaStates, relativePortId } from '../../src/scsi/alua';
import { COMMANDS } from '../../src/scsi/commands';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { parseSense } from '../../src/scsi/sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from '../../src/scsi/task';
import { executeOn } from '../helpers/scsi';

// Gateway 1 has two portals (ports 1, 2); gateway 2 one (port 257).
const NEXUS_A: ItNexus = { id: 'a', initiatorName: 'iqn.2026-01.test:a', isid: '400001370000', targetName: 'iqn.t', relativePortId: 1 };
const NEXUS_B: ItNexus = { ...NEXUS_A, id: 'b', isid: '400001370001', relativePortId: 2 };
const NEXUS_C: ItNexus = { ...NEXUS_A, id: 'c', initiatorName: 'iqn.2026-01.test:c', relativePortId: 1 };

function makeLu(defaults: [number, AluaState][] = []) {
  const topology = new AluaTopology([
    { id: 2, ports: [257] },
    { id: 1, ports: [2, 1] },
  ]);
  const store = new LocalAluaStates();
  store.set(new Map(defaults), 0);
  const lu = new LogicalUnit({
    name: 'v',
    backstore: new MemoryBackstore(1 << 20),
    blockSize: 512,
    readonly: false,
    alua: { topology, store },
  });
  return { lu, luns: new Map([[0, lu]]) as ReadonlyMap<number, LogicalUnit> };
}

function task(cdb: number[], nexus: ItNexus, dataOut: Buffer | null = null): ScsiTask {
  const b = Buffer.alloc(Math.max(16, cdb.length));
  Buffer.from(cdb).copy(b);
  return { cdb: b, lun: 0, nexus, expectedLength: dataOut?.length ?? 65536, dataOut, attr: 1, aborted: false, luns: new Map() };
}

const run = (luns: ReadonlyMap<number, LogicalUnit>, cdb: number[], nexus: ItNexus, data: Buffer | null = null) =>
  executeOn(luns, task(cdb, nexus, data));

/** Consume the power-on unit attention of each nexus. */
async function ready(luns: ReadonlyMap<number, LogicalUnit>, ...nexuses: ItNexus[]) {
  for (const n of nexuses) assert.equal((await run(luns, [0x00], n)).status, ScsiStatus.CheckCondition);
}

function sense(r: ScsiResult): [number, number, number] {
  assert.equal(r.status, ScsiStatus.CheckCondition);
  const s = parseSense(r.sense!);
  return [s.key, s.asc, s.ascq];
}

const rtpg = (format: number, alloc: number) => [0xa3, (format << 5) | 0x0a, 0, 0, 0, 0, ...u32(alloc), 0, 0];
const stpg = (len: number) => [0xa4, 0x0a, 0, 0, 0, 0, ...u32(len), 0, 0];
const u32 = (n: number) => [(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];

function stpgList(...d: [number, number][]): Buffer {
  const b = Buffer.alloc(4 + 4 * d.length);
  d.forEach(([state, group], i) => {
    b[4 + 4 * i] = state;
    b.writeUInt16BE(group, 4 + 4 * i + 2);
  });
  return b;
}

test('relative target port identifiers: (group - 1) * 256 + portal index + 1', () => {
  assert.equal(relativePortId(1, 0), 1);
  assert.equal(relativePortId(1, 1), 2);
  assert.equal(relativePortId(2, 0), 257);
  assert.equal(relativePortId(255, 255), 65280);
  assert.throws(() => relativePortId(0, 0));
  assert.throws(() => relativePortId(256, 0));
  assert.throws(() => relativePortId(1, 256));
});

test('RTPG length-only format, byte by byte', async () => {
  const { luns } = makeLu([[2, AluaState.ActiveNonOptimized]]);
  await ready(luns, NEXUS_A);
  const r = await run(luns, rtpg(0, 1024), NEXUS_A);
  assert.equal(r.status, ScsiStatus.Good);
  const expected = Buffer.from([
    0,
    0,
    0,
    28, // RETURN DATA LENGTH: 32 - 4
    // group 1: active/optimized, T_SUP U_SUP S_SUP AN_SUP AO_SUP, no status, 2 ports
    0x00,
    0x8f,
    0,
    1,
    0,
    0x00,
    0,
    2,
    0,
    0,
    0,
    1,
    0,
    0,
    0,
    2,
    // group 2: active/non-optimized, no status (a default), port 257
    0x01,
    0x8f,
    0,
    2,
    0,
    0x00,
    0,
    1,
    0,
    0,
    1,
    1,
  ]);
  assert.deepEqual(r.data, expected);
});

test('RTPG extended header format and ALLOCATION LENGTH truncation', async () => {
  const { luns } = makeLu();
  await ready(luns, NEXUS_A);
  const full = (await run(luns, rtpg(1, 1024), NEXUS_A)).data!;
  assert.equal(full.length, 8 + 16 + 12);
  assert.equal(full.readUInt32BE(0), full.length - 4);
  assert.equal(full[4], 0x10, 'FORMAT TYPE 001b');
  assert.equal(full[5], 0, 'IMPLICIT TRANSITION TIME');
  assert.equal(full.readUInt16BE(8 + 2), 1);
  for (const alloc of [0, 3, 4, 10, 35]) {
    const r = await run(luns, rtpg(1, alloc), NEXUS_A);
    assert.equal(r.status, ScsiStatus.Good);
    assert.deepEqual(r.data, full.subarray(0, alloc), `alloc ${alloc}`);
  }
  // Formats 010b..111b are reserved.
  assert.deepEqual(sense(await run(luns, rtpg(2, 1024), NEXUS_A)), [0x05, 0x24, 0x00]);
});

test('RTPG answers identically through every port', async () => {
  const { luns } = makeLu([[1, AluaState.ActiveNonOptimized]]);
  await ready(luns, NEXUS_A, NEXUS_B);
  const a = await run(luns, rtpg(0, 1024), NEXUS_A);
  const b = await run(luns, rtpg(0, 1024), NEXUS_B);
  assert.deepEqual(a.data, b.data);
  assert.equal(a.data![4] & 0x0f, AluaState.ActiveNonOptimized);
});

test('STPG applies the states, RTPG shows status 01h, and only the other nexuses get 2A/06', async () => {
  const { luns } = makeLu();
  await ready(luns, NEXUS_A, NEXUS_B, NEXUS_C);
  const list = stpgList([AluaState.ActiveNonOptimized, 1], [AluaState.ActiveOptimized, 2]);
  const r = await run(luns, stpg(list.length), NEXUS_A, list);
  assert.equal(r.status, ScsiStatus.Good);
  const d = (await run(luns, rtpg(0, 1024), NEXUS_A)).data!;
  assert.equal(d[4], AluaState.ActiveNonOptimized);
  assert.equal(d[4 + 5], 0x01, 'altered by SET TARGET PORT GROUPS');
  assert.equal(d[4 + 16], AluaState.ActiveOptimized);
  // The issuer has nothing pending; B (other port) and C (other initiator) have 2A/06.
  assert.equal((await run(luns, [0x00], NEXUS_A)).status, ScsiStatus.Good);
  assert.deepEqual(sense(await run(luns, [0x00], NEXUS_B)), [0x06, 0x2a, 0x06]);
  assert.deepEqual(sense(await run(luns, [0x00], NEXUS_C)), [0x06, 0x2a, 0x06]);
  assert.equal((await run(luns, [0x00], NEXUS_C)).status, ScsiStatus.Good);
});

test('STPG refuses unknown groups, unsupported states and bad lengths, and changes nothing', async () => {
  const { luns } = makeLu();
  await ready(luns, NEXUS_A, NEXUS_B);
  const unknown = stpgList([AluaState.Standby, 1], [AluaState.Standby, 7]);
  const r = await run(luns, stpg(unknown.length), NEXUS_A, unknown);
  assert.deepEqual(sense(r), [0x05, 0x26, 0x00]);
  assert.equal(r.sense!.readUInt16BE(16), 10, 'field pointer: the group of the second descriptor');
  const transitioning = stpgList([AluaState.Transitioning, 1]);
  assert.deepEqual(sense(await run(luns, stpg(transitioning.length), NEXUS_A, transitioning)), [0x05, 0x26, 0x00]);
  const offline = stpgList([0x0e, 1]);
  assert.deepEqual(sense(await run(luns, stpg(offline.length), NEXUS_A, offline)), [0x05, 0x26, 0x00]);
  const twice = stpgList([AluaState.Standby, 1], [AluaState.ActiveOptimized, 1]);
  assert.deepEqual(sense(await run(luns, stpg(twice.length), NEXUS_A, twice)), [0x05, 0x26, 0x00]);
  const odd = Buffer.alloc(6);
  assert.deepEqual(sense(await run(luns, stpg(6), NEXUS_A, odd)), [0x05, 0x1a, 0x00]);
  // Nothing changed: group 1 still active/optimized, no unit attention for B.
  assert.equal((await run(luns, rtpg(0, 1024), NEXUS_A)).data![4], AluaState.ActiveOptimized);
  assert.equal((await run(luns, [0x00], NEXUS_B)).status, ScsiStatus.Good);
});

test('standby: INQUIRY, REPORT LUNS, RTPG, STPG, REQUEST SENSE, MODE SENSE, PR IN run; the rest is 04/0B', async () => {
  const { luns } = makeLu([[1, AluaState.Standby]]);
  await ready(luns, NEXUS_A);
  const ok = [
    [0x12, 0, 0, 0, 96, 0],
    [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0],
    rtpg(0, 1024),
    [0x03, 0, 0, 0, 18, 0],
    [0x1a, 0x08, 0x3f, 0, 255, 0],
    [0x5e, 0x00, 0, 0, 0, 0, 0, 0x10, 0, 0],
  ];
  for (const cdb of ok) assert.equal((await run(luns, cdb, NEXUS_A)).status, ScsiStatus.Good, `0x${cdb[0].toString(16)}`);
  for (const cdb of [[0x00], [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]]) {
    assert.deepEqual(sense(await run(luns, cdb, NEXUS_A)), [0x02, 0x04, 0x0b], `0x${cdb[0].toString(16)}`);
  }
  // A write too: NOT READY before anything reaches the medium.
  const w = await run(luns, [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], NEXUS_A, Buffer.alloc(512, 1));
  assert.deepEqual(sense(w), [0x02, 0x04, 0x0b]);
  // STPG through the standby port brings it back.
  const list = stpgList([AluaState.ActiveOptimized, 1]);
  assert.equal((await run(luns, stpg(list.length), NEXUS_A, list)).status, ScsiStatus.Good);
  assert.equal((await run(luns, [0x00], NEXUS_A)).status, ScsiStatus.Good);
});

test('transitioning: INQUIRY, REPORT LUNS, RTPG, REQUEST SENSE only; the rest (STPG too) is 04/0A', async () => {
  const { luns } = makeLu([[1, AluaState.Transitioning]]);
  await ready(luns, NEXUS_A);
  for (const cdb of [[0x12, 0, 0, 0, 96, 0], rtpg(0, 1024), [0x03, 0, 0, 0, 18, 0]]) {
    assert.equal((await run(luns, cdb, NEXUS_A)).status, ScsiStatus.Good);
  }
  for (const cdb of [[0x00], [0x1a, 0x08, 0x3f, 0, 255, 0]]) assert.deepEqual(sense(await run(luns, cdb, NEXUS_A)), [0x02, 0x04, 0x0a]);
  const list = stpgList([AluaState.ActiveOptimized, 1]);
  assert.deepEqual(sense(await run(luns, stpg(list.length), NEXUS_A, list)), [0x02, 0x04, 0x0a]);
});

test('unavailable: STPG still runs, MODE SENSE does not (04/0C)', async () => {
  const { luns } = makeLu([[1, AluaState.Unavailable]]);
  await ready(luns, NEXUS_A);
  assert.deepEqual(sense(await run(luns, [0x1a, 0x08, 0x3f, 0, 255, 0], NEXUS_A)), [0x02, 0x04, 0x0c]);
  const list = stpgList([AluaState.Standby, 1]);
  assert.equal((await run(luns, stpg(list.length), NEXUS_A, list)).status, ScsiStatus.Good);
});

test('active/non-optimized allows every command', async () => {
  const { luns } = makeLu([[1, AluaState.ActiveNonOptimized]]);
  await ready(luns, NEXUS_A);
  const w = await run(luns, [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], NEXUS_A, Buffer.alloc(512, 7));
  assert.equal(w.status, ScsiStatus.Good);
  const r = await run(luns, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], NEXUS_A);
  assert.equal(r.data![0], 7);
});

test('an implicit change (config) raises 2A/06 on every nexus; the same states again raise nothing', async () => {
  const { lu, luns } = makeLu();
  await ready(luns, NEXUS_A, NEXUS_B);
  assert.equal(lu.alua.applyImplicit(new Map([[1, AluaState.ActiveOptimized]])), false);
  assert.equal((await run(luns, [0x00], NEXUS_A)).status, ScsiStatus.Good);
  assert.equal(lu.alua.applyImplicit(new Map([[1, AluaState.Standby]])), true);
  for (const n of [NEXUS_A, NEXUS_B]) assert.deepEqual(sense(await run(luns, [0x00], n)), [0x06, 0x2a, 0x06]);
  assert.equal((await run(luns, rtpg(0, 1024), NEXUS_A)).data![4 + 5], 0x02, 'altered implicitly');
});

test('REPORT SUPPORTED OPERATION CODES lists RTPG and STPG', async () => {
  const { luns } = makeLu();
  await ready(luns, NEXUS_A);
  for (const [op, name] of [
    [0xa3, 'REPORT TARGET PORT GROUPS'],
    [0xa4, 'SET TARGET PORT GROUPS'],
  ] as const) {
    assert.ok(COMMANDS.some((c) => c.opcode === op && c.sa === 0x0a && c.name === name));
    const r = await run(luns, [0xa3, 0x0c, 0x02, op, 0, 0x0a, 0, 0, 1, 0, 0, 0], NEXUS_A);
    assert.equal(r.status, ScsiStatus.Good);
    assert.equal(r.data![1] & 0x07, 0x03, `${name} supported`);
    assert.equal(r.data![5] & 0x1f, 0x0a);
  }
});

/** The target-port designators (association 01b) of VPD 83h, as [type, whole descriptor]. */
function portDesignators(d: Buffer): Map<number, Buffer> {
  const out = new Map<number, Buffer>();
  for (let p = 4; p < d.length; p += 4 + d[p + 3]) {
    if (((d[p + 1] >> 4) & 3) === 1) out.set(d[p + 1] & 0x0f, d.subarray(p, p + 4 + d[p + 3]));
  }
  return out;
}

test('VPD 83h: relative target port (4h) and target port group (5h) designators of the port used', async () => {
  const { luns } = makeLu();
  const far: ItNexus = { ...NEXUS_A, id: 'far', relativePortId: 257 };
  await ready(luns, NEXUS_A, NEXUS_B, far);
  const page = async (n: ItNexus) => portDesignators((await run(luns, [0x12, 1, 0x83, 1, 0, 0], n)).data!);
  const a = await page(NEXUS_A);
  // PROTOCOL IDENTIFIER 5 (iSCSI), CODE SET 1 (binary), PIV=1, ASSOCIATION 01b, TYPE, length 4.
  assert.deepEqual(a.get(4), Buffer.from([0x51, 0x94, 0, 4, 0, 0, 0, 1]));
  assert.deepEqual(a.get(5), Buffer.from([0x51, 0x95, 0, 4, 0, 0, 0, 1]));
  const b = await page(NEXUS_B);
  assert.deepEqual(b.get(4), Buffer.from([0x51, 0x94, 0, 4, 0, 0, 0, 2]), 'the second portal is port 2');
  assert.deepEqual(b.get(5), Buffer.from([0x51, 0x95, 0, 4, 0, 0, 0, 1]), 'same group');
  const c = await page(far);
  assert.deepEqual(c.get(4), Buffer.from([0x51, 0x94, 0, 4, 0, 0, 0x01, 0x01]));
  assert.deepEqual(c.get(5), Buffer.from([0x51, 0x95, 0, 4, 0, 0, 0, 2]), "the peer gateway's group");
  // The SCSI target port name (type 8h) names the port too.
  assert.match(b.get(8)!.subarray(4).toString('utf8'), /^iqn\.t,t,0x0002\0/);
});
