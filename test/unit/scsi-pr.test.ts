// Persistent reservations through executeScsi with several I_T nexuses: registration, the
// six reservation types' access rules, RESERVE/RELEASE, CLEAR, PREEMPT (AND ABORT),
// REGISTER AND MOVE, the unit attentions other nexuses get, READ FULL STATUS, the interplay
// with RESERVE(6)/RELEASE(6), nexus loss and resets, and APTPL state saved and restored.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { MemoryBackstore } from '../../src/backstore/memory';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { iscsiTransportId, parseIscsiTransportId, PrIn, PrOut, PrType } from '../../src/scsi/persistent-reservations';
import { parseSense, SenseKey } from '../../src/scsi/sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from '../../src/scsi/task';
import { executeOn, prOutParams } from '../helpers/scsi';

// ---- helpers (kept local: each test file stands alone)

function nexus(n: number, targetName = 'iqn.2026-01.test:target'): ItNexus {
  const initiatorName = `iqn.2026-01.test:i${n}`;
  const isid = `40000137000${n}`;
  return {
    id: `${initiatorName},i,0x${isid}|${targetName},t,0x0001`,
    initiatorName,
    isid,
    targetName,
    relativePortId: 1,
  };
}
const A = nexus(1);
const B = nexus(2);
const C = nexus(3);

function task(cdb: number[], n: ItNexus, dataOut?: Buffer): ScsiTask {
  const b = Buffer.alloc(16);
  Buffer.from(cdb).copy(b);
  return {
    cdb: b,
    lun: 0,
    nexus: n,
    expectedLength: dataOut?.length ?? 65536,
    dataOut: dataOut ?? null,
    attr: 1,
    aborted: false,
    luns: new Map(),
  };
}

function makeLu(extra: Partial<ConstructorParameters<typeof LogicalUnit>[0]> = {}) {
  const lu = new LogicalUnit({
    name: 'vol',
    backstore: new MemoryBackstore(1024 * 512),
    blockSize: 512,
    readonly: false,
    ...extra,
  });
  return { lu, luns: new Map([[0, lu]]) as ReadonlyMap<number, LogicalUnit> };
}

type Luns = ReadonlyMap<number, LogicalUnit>;

const TUR = [0x00];
const READ10 = [0x28, 0, 0, 0, 0, 1, 0, 0, 1, 0];
const WRITE10 = [0x2a, 0, 0, 0, 0, 1, 0, 0, 1, 0];

function run(luns: Luns, cdb: number[], n: ItNexus, dataOut?: Buffer): Promise<ScsiResult> {
  return executeOn(luns, task(cdb, n, dataOut));
}

/** TEST UNIT READY until GOOD; returns the unit attentions seen, as "2a/04" strings. */
async function uas(luns: Luns, n: ItNexus): Promise<string[]> {
  const seen: string[] = [];
  for (let i = 0; i < 20; i++) {
    const r = await run(luns, TUR, n);
    if (r.status === ScsiStatus.Good) return seen;
    assert.equal(r.status, ScsiStatus.CheckCondition);
    const s = parseSense(r.sense!);
    assert.equal(s.key, SenseKey.UnitAttention);
    seen.push(`${hex(s.asc)}/${hex(s.ascq)}`);
  }
  assert.fail('unit attention did not clear');
}
const hex = (n: number) => n.toString(16).padStart(2, '0');

async function ready(luns: Luns, ...ns: ItNexus[]): Promise<void> {
  for (const n of ns) await uas(luns, n);
}

function expectSense(r: ScsiResult, key: number, asc: number, ascq: number): void {
  assert.equal(r.status, ScsiStatus.CheckCondition, 'expected CHECK CONDITION');
  const s = parseSense(r.sense!);
  assert.deepEqual([s.key, s.asc, s.ascq], [key, asc, ascq]);
}

const expectConflict = (r: ScsiResult) => assert.equal(r.status, ScsiStatus.ReservationConflict);
const expectGood = (r: ScsiResult) => assert.equal(r.status, ScsiStatus.Good, `status 0x${r.status.toString(16)}`);

/** PERSISTENT RESERVE OUT with the basic 24-byte parameter list. */
function prOut(
  luns: Luns,
  n: ItNexus,
  sa: number,
  o: {
    key?: bigint;
    sark?: bigint;
    type?: number;
    scope?: number;
    aptpl?: boolean;
    allTgPt?: boolean;
    specIPt?: boolean;
    len?: number;
  } = {},
): Promise<ScsiResult> {
  const p = prOutParams(o.key ?? 0n, o.sark ?? 0n, o);
  const len = o.len ?? 24;
  const cdb = [
    0x5f,
    sa,
    ((o.scope ?? 0) << 4) | (o.type ?? 0),
    0,
    0,
    (len >> 24) & 0xff,
    (len >> 16) & 0xff,
    (len >> 8) & 0xff,
    len & 0xff,
    0,
  ];
  return run(luns, cdb, n, len <= 24 ? p.subarray(0, len) : Buffer.concat([p, Buffer.alloc(len - 24)]));
}

const register = (luns: Luns, n: ItNexus, sark: bigint, extra: { aptpl?: boolean; allTgPt?: boolean } = {}) =>
  prOut(luns, n, PrOut.REGISTER_AND_IGNORE_EXISTING_KEY, { sark, ...extra });
const reserve = (luns: Luns, n: ItNexus, key: bigint, type: number) => prOut(luns, n, PrOut.RESERVE, { key, type });
const release = (luns: Luns, n: ItNexus, key: bigint, type: number) => prOut(luns, n, PrOut.RELEASE, { key, type });

function prIn(luns: Luns, n: ItNexus, sa: number, alloc = 8192): Promise<ScsiResult> {
  return run(luns, [0x5e, sa, 0, 0, 0, 0, 0, (alloc >> 8) & 0xff, alloc & 0xff, 0], n);
}

async function readKeys(luns: Luns, n: ItNexus = A): Promise<{ generation: number; keys: bigint[] }> {
  const r = await prIn(luns, n, PrIn.READ_KEYS);
  expectGood(r);
  const d = r.data!;
  const len = d.readUInt32BE(4);
  const keys: bigint[] = [];
  for (let i = 0; i < len / 8; i++) keys.push(d.readBigUInt64BE(8 + 8 * i));
  return { generation: d.readUInt32BE(0), keys };
}

async function readReservation(luns: Luns, n: ItNexus = A): Promise<{ key: bigint; type: number } | null> {
  const r = await prIn(luns, n, PrIn.READ_RESERVATION);
  expectGood(r);
  const d = r.data!;
  if (d.readUInt32BE(4) === 0) return null;
  assert.equal(d.readUInt32BE(4), 16);
  assert.equal(d[21] >> 4, 0, 'LU scope');
  return { key: d.readBigUInt64BE(8), type: d[21] & 0x0f };
}

const K1 = 0x1111n;
const K2 = 0x2222n;
const K3 = 0x3333n;

// ---- PERSISTENT RESERVE IN basics

test('READ KEYS: empty, then registered keys, PRgeneration counting registrations', async () => {
  const { luns } = makeLu();
  await ready(luns, A, B);
  assert.deepEqual(await readKeys(luns), { generation: 0, keys: [] });
  expectGood(await register(luns, A, K1));
  expectGood(await register(luns, B, K2));
  assert.deepEqual(await readKeys(luns), { generation: 2, keys: [K1, K2] });
  // READ KEYS with allocation length 8: header only, ADDITIONAL LENGTH still names both keys.
  const r = await prIn(luns, A, PrIn.READ_KEYS, 8);
  expectGood(r);
  assert.equal(r.data!.length, 8);
  assert.equal(r.data!.readUInt32BE(4), 16);
});

test('PERSISTENT RESERVE IN/OUT: service actions out of range are INVALID FIELD IN CDB', async () => {
  const { luns } = makeLu();
  await ready(luns, A);
  for (let sa = 0; sa < 4; sa++) expectGood(await prIn(luns, A, sa));
  for (let sa = 4; sa < 0x20; sa++) expectSense(await prIn(luns, A, sa), SenseKey.IllegalRequest, 0x24, 0);
  expectSense(await prOut(luns, A, 0x08), SenseKey.IllegalRequest, 0x24, 0);
});

test('REPORT CAPABILITIES: CRH, ATP_C, TMV, ALLOW COMMANDS 011b, all six types; PTPL_C only with a state path', async () => {
  const { luns } = makeLu();
  await ready(luns, A);
  const r = await prIn(luns, A, PrIn.REPORT_CAPABILITIES);
  expectGood(r);
  const d = r.data!;
  assert.equal(d.readUInt16BE(0), 8);
  assert.equal(d[2], 0x14, 'CRH | ATP_C, no SIP_C, no PTPL_C');
  assert.equal(d[3], 0x80 | 0x30, 'TMV, ALLOW COMMANDS 011b, PTPL_A 0');
  assert.equal(d.readUInt16BE(4), 0xea01, 'type mask: all six types');

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pr-'));
  try {
    const { luns: l2 } = makeLu({ statePath: path.join(dir, 'v.pr.json') });
    await ready(l2, A);
    const r2 = await prIn(l2, A, PrIn.REPORT_CAPABILITIES);
    assert.equal(r2.data![2], 0x15, 'PTPL_C');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

// ---- REGISTER

test('REGISTER: unregistered nexus needs RESERVATION KEY 0; re-register needs the current key; SARK 0 unregisters', async () => {
  const { luns } = makeLu();
  await ready(luns, A);
  expectConflict(await prOut(luns, A, PrOut.REGISTER, { key: 5n, sark: K1 }));
  expectGood(await prOut(luns, A, PrOut.REGISTER, { key: 0n, sark: 0n })); // no-op
  assert.equal((await readKeys(luns)).generation, 0);
  expectGood(await prOut(luns, A, PrOut.REGISTER, { sark: K1 }));
  // libiscsi prout_reregister_key_fails: REGISTER with RESERVATION KEY 0 while registered.
  expectConflict(await prOut(luns, A, PrOut.REGISTER, { sark: K1 + 1n }));
  expectGood(await prOut(luns, A, PrOut.REGISTER, { key: K1, sark: K2 }));
  assert.deepEqual(await readKeys(luns), { generation: 2, keys: [K2] });
  // REGISTER AND IGNORE EXISTING KEY replaces whatever key is there.
  expectGood(await prOut(luns, A, PrOut.REGISTER_AND_IGNORE_EXISTING_KEY, { key: 999n, sark: K3 }));
  assert.deepEqual((await readKeys(luns)).keys, [K3]);
  expectGood(await prOut(luns, A, PrOut.REGISTER, { key: K3, sark: 0n }));
  assert.deepEqual(await readKeys(luns), { generation: 4, keys: [] });
});

test('PERSISTENT RESERVE OUT: parameter list length must be 24; SPEC_I_PT is refused', async () => {
  const { luns } = makeLu();
  await ready(luns, A);
  expectSense(await prOut(luns, A, PrOut.REGISTER, { sark: K1, len: 20 }), SenseKey.IllegalRequest, 0x1a, 0);
  expectSense(await prOut(luns, A, PrOut.REGISTER, { sark: K1, len: 28 }), SenseKey.IllegalRequest, 0x1a, 0);
  expectSense(await prOut(luns, A, PrOut.REGISTER, { sark: K1, len: 0 }), SenseKey.IllegalRequest, 0x1a, 0);
  expectSense(await prOut(luns, A, PrOut.REGISTER, { sark: K1, specIPt: true }), SenseKey.IllegalRequest, 0x26, 0);
  // A CDB naming more data than was sent.
  const cdb = [0x5f, PrOut.REGISTER, 0, 0, 0, 0, 0, 0, 24, 0];
  expectSense(await run(luns, cdb, A, Buffer.alloc(16)), SenseKey.IllegalRequest, 0x1a, 0);
  assert.deepEqual((await readKeys(luns)).keys, []);
});

// ---- the six reservation types

const ACCESS: [string, number, [boolean, boolean, boolean, boolean]][] = [
  // type, [registered non-holder read, write, unregistered read, write] (libiscsi ProutReserve.Access*)
  ['WE', PrType.WRITE_EXCLUSIVE, [true, false, true, false]],
  ['EA', PrType.EXCLUSIVE_ACCESS, [false, false, false, false]],
  ['WERO', PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY, [true, true, true, false]],
  ['EARO', PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, [true, true, false, false]],
  ['WEAR', PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS, [true, true, true, false]],
  ['EAAR', PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS, [true, true, false, false]],
];

for (const [label, type, [regRead, regWrite, unregRead, unregWrite]] of ACCESS) {
  test(`${label}: the holder reads and writes; registered and unregistered nexuses as SPC-4 says`, async () => {
    const { luns } = makeLu();
    await ready(luns, A, B, C);
    expectGood(await register(luns, A, K1));
    expectGood(await register(luns, B, K2));
    expectGood(await reserve(luns, A, K1, type));
    const allRegistrants = type === PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS || type === PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS;
    assert.deepEqual(await readReservation(luns, C), { key: allRegistrants ? 0n : K1, type });
    const data = Buffer.alloc(512, 7);
    expectGood(await run(luns, READ10, A));
    expectGood(await run(luns, WRITE10, A, data));
    const check = async (n: ItNexus, cdb: number[], allowed: boolean, out?: Buffer) => {
      const r = await run(luns, cdb, n, out);
      assert.equal(r.status, allowed ? ScsiStatus.Good : ScsiStatus.ReservationConflict, `${label} ${n.isid} ${cdb[0]}`);
    };
    await check(B, READ10, regRead);
    await check(B, WRITE10, regWrite, data);
    await check(C, READ10, unregRead);
    await check(C, WRITE10, unregWrite, data);
    // Everyone may send TEST UNIT READY, INQUIRY, READ CAPACITY and PERSISTENT RESERVE IN.
    for (const n of [B, C]) {
      expectGood(await run(luns, TUR, n));
      expectGood(await run(luns, [0x12, 0, 0, 0, 96, 0], n));
      expectGood(await run(luns, [0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0], n));
      expectGood(await prIn(luns, n, PrIn.READ_KEYS));
    }
    // Unregistering B (allowed even under EA) makes it an unregistered nexus.
    expectGood(await prOut(luns, B, PrOut.REGISTER, { key: K2, sark: 0n }));
    await check(B, READ10, unregRead);
    await check(B, WRITE10, unregWrite, data);
    expectGood(await release(luns, A, K1, type));
    assert.equal(await readReservation(luns), null);
    expectGood(await run(luns, WRITE10, C, data));
  });
}

test('command table rules: MODE SENSE through WE not EA, SYNCHRONIZE CACHE and MODE SELECT never, START STOP by its fields', async () => {
  const { luns } = makeLu();
  await ready(luns, A, C);
  expectGood(await register(luns, A, K1));
  const modeSense = [0x1a, 0x08, 0x3f, 0, 255, 0];
  const syncCache = [0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0];
  const startUnit = [0x1b, 0, 0, 0, 0x01, 0];
  const stopUnit = [0x1b, 0, 0, 0, 0x00, 0];
  expectGood(await reserve(luns, A, K1, PrType.WRITE_EXCLUSIVE));
  expectGood(await run(luns, modeSense, C));
  expectConflict(await run(luns, syncCache, C));
  expectGood(await run(luns, startUnit, C));
  expectConflict(await run(luns, stopUnit, C));
  expectGood(await run(luns, syncCache, A));
  expectGood(await release(luns, A, K1, PrType.WRITE_EXCLUSIVE));
  expectGood(await reserve(luns, A, K1, PrType.EXCLUSIVE_ACCESS));
  expectConflict(await run(luns, modeSense, C));
  expectGood(await run(luns, TUR, C));
  expectGood(await run(luns, startUnit, C));
  expectGood(await run(luns, modeSense, A));
});

// ---- RESERVE / RELEASE

test('RESERVE: needs a registration and its key; one holder; the holder may repeat it with the same type only', async () => {
  const { luns } = makeLu();
  await ready(luns, A, B, C);
  expectConflict(await reserve(luns, C, 0n, PrType.WRITE_EXCLUSIVE)); // not registered
  expectGood(await register(luns, A, K1));
  expectGood(await register(luns, B, K2));
  expectConflict(await reserve(luns, A, K2, PrType.WRITE_EXCLUSIVE)); // wrong key
  expectSense(await reserve(luns, A, K1, 2), SenseKey.IllegalRequest, 0x24, 0); // no type 2
  expectSense(await prOut(luns, A, PrOut.RESERVE, { key: K1, type: 1, scope: 1 }), SenseKey.IllegalRequest, 0x24, 0);
  const gen = (await readKeys(luns)).generation;
  expectGood(await reserve(luns, A, K1, PrType.WRITE_EXCLUSIVE));
  expectGood(await reserve(luns, A, K1, PrType.WRITE_EXCLUSIVE));
  expectConflict(await reserve(luns, A, K1, PrType.EXCLUSIVE_ACCESS));
  expectConflict(await reserve(luns, B, K2, PrType.WRITE_EXCLUSIVE));
  assert.equal((await readKeys(luns)).generation, gen, 'RESERVE does not bump PRgeneration');
  // RELEASE by a registered non-holder: GOOD, nothing happens.
  expectGood(await release(luns, B, K2, PrType.WRITE_EXCLUSIVE));
  assert.deepEqual(await readReservation(luns), { key: K1, type: PrType.WRITE_EXCLUSIVE });
  // RELEASE by the holder with another type: INVALID RELEASE OF PERSISTENT RESERVATION.
  expectSense(await release(luns, A, K1, PrType.EXCLUSIVE_ACCESS), SenseKey.IllegalRequest, 0x26, 0x04);
  expectConflict(await release(luns, C, 0n, PrType.WRITE_EXCLUSIVE)); // not registered
  expectGood(await release(luns, A, K1, PrType.WRITE_EXCLUSIVE));
  assert.equal(await readReservation(luns), null);
  expectGood(await release(luns, A, K1, PrType.WRITE_EXCLUSIVE)); // nothing to release: GOOD
});

test('RELEASE of a registrants-only or all-registrants reservation: RESERVATIONS RELEASED to the other registrants', async () => {
  for (const type of [PrType.WRITE_EXCLUSIVE, PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS]) {
    const { luns } = makeLu();
    await ready(luns, A, B, C);
    expectGood(await register(luns, A, K1));
    expectGood(await register(luns, B, K2));
    expectGood(await reserve(luns, A, K1, type));
    expectGood(await release(luns, A, K1, type));
    assert.deepEqual(await uas(luns, B), type === PrType.WRITE_EXCLUSIVE ? [] : ['2a/04'], `type ${type}`);
    assert.deepEqual(await uas(luns, A), []);
    assert.deepEqual(await uas(luns, C), [], 'unregistered nexus hears nothing');
  }
});

test('the holder unregistering releases the reservation (RESERVATIONS RELEASED after registrants-only); all-registrants lives on', async () => {
  {
    const { luns } = makeLu();
    await ready(luns, A, B);
    expectGood(await register(luns, A, K1));
    expectGood(await register(luns, B, K2));
    expectGood(await reserve(luns, A, K1, PrType.EXCLUSIVE_ACCESS));
    expectGood(await prOut(luns, A, PrOut.REGISTER, { key: K1, sark: 0n }));
    assert.equal(await readReservation(luns), null);
    assert.deepEqual(await uas(luns, B), []);
  }
  {
    const { luns } = makeLu();
    await ready(luns, A, B);
    expectGood(await register(luns, A, K1));
    expectGood(await register(luns, B, K2));
    expectGood(await reserve(luns, A, K1, PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY));
    expectGood(await prOut(luns, A, PrOut.REGISTER, { key: K1, sark: 0n }));
    assert.equal(await readReservation(luns), null);
    assert.deepEqual(await uas(luns, B), ['2a/04']);
  }
  {
    const { luns } = makeLu();
    await ready(luns, A, B);
    expectGood(await register(luns, A, K1));
    expectGood(await register(luns, B, K2));
    expectGood(await reserve(luns, A, K1, PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS));
    expectGood(await prOut(luns, A, PrOut.REGISTER, { key: K1, sark: 0n }));
    assert.deepEqual(await readReservation(luns), { key: 0n, type: PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS });
    expectConflict(await run(luns, READ10, A)); // A is no longer registered
    expectGood(await release(luns, B, K2, PrType.EXCLUSIVE_ACCESS_ALL_REGISTRANTS));
    assert.equal(await readReservation(luns), null);
    // The last registrant leaving ends an all-registrants reservation too.
    expectGood(await reserve(luns, B, K2, PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS));
    expectGood(await prOut(luns, B, PrOut.REGISTER, { key: K2, sark: 0n }));
    assert.equal(await readReservation(luns), null);
  }
});

// ---- CLEAR

test('CLEAR: removes every registration and the reservation, RESERVATIONS PREEMPTED to the others, PRgeneration + 1', async () => {
  const { luns } = makeLu();
  await ready(luns, A, B, C);
  expectGood(await register(luns, A, K1));
  expectGood(await register(luns, B, K2));
  expectGood(await reserve(luns, A, K1, PrType.EXCLUSIVE_ACCESS));
  const gen = (await readKeys(luns)).generation;
  expectConflict(await prOut(luns, C, PrOut.CLEAR, { key: 0n })); // unregistered
  expectConflict(await prOut(luns, B, PrOut.CLEAR, { key: K1 })); // wrong key
  expectGood(await prOut(luns, B, PrOut.CLEAR, { key: K2 }));
  assert.deepEqual(await readKeys(luns, B), { generation: gen + 1, keys: [] });
  assert.equal(await readReservation(luns, B), null);
  assert.deepEqual(await uas(luns, A), ['2a/03']);
  assert.deepEqual(await uas(luns, B), []);
  assert.deepEqual(await uas(luns, C), []);
});

// ---- PREEMPT

test('PREEMPT without a reservation removes the registrations with that key (REGISTRATIONS PREEMPTED)', async () => {
  const { luns } = makeLu();
  await ready(luns, A, B);
  expectGood(await register(luns, A, K1));
  expectGood(await register(luns, B, K2));
  const gen = (await readKeys(luns)).generation;
  expectGood(await prOut(luns, B, PrOut.PREEMPT, { key: K2, sark: K1, type: PrType.EXCLUSIVE_ACCESS }));
  assert.deepEqual(await uas(luns, A), ['2a/05']);
  assert.deepEqual(await uas(luns, B), []);
  assert.deepEqual(await readKeys(luns), { generation: gen + 1, keys: [K2] });
  assert.equal(await readReservation(luns), null, 'no reservation is created');
  expectConflict(await prOut(luns, B, PrOut.PREEMPT, { key: K2, sark: 0x9999n })); // no such key
  expectConflict(await prOut(luns, A, PrOut.PREEMPT, { key: K1, sark: K2 })); // A is gone
});

test('PREEMPT of the holder: takes the reservation with the new type, preempted lose registration, others hear RESERVATIONS RELEASED', async () => {
  const { luns } = makeLu();
  await ready(luns, A, B, C);
  expectGood(await register(luns, A, K1));
  expectGood(await register(luns, B, K2));
  expectGood(await register(luns, C, K3));
  expectGood(await reserve(luns, A, K1, PrType.WRITE_EXCLUSIVE));
  // SARK 0 while a non-all-registrants reservation exists: INVALID FIELD IN PARAMETER LIST.
  expectSense(await prOut(luns, B, PrOut.PREEMPT, { key: K2, sark: 0n, type: PrType.EXCLUSIVE_ACCESS }), SenseKey.IllegalRequest, 0x26, 0);
  expectGood(await prOut(luns, B, PrOut.PREEMPT, { key: K2, sark: K1, type: PrType.EXCLUSIVE_ACCESS }));
  assert.deepEqual(await readReservation(luns, B), { key: K2, type: PrType.EXCLUSIVE_ACCESS });
  assert.deepEqual((await readKeys(luns, B)).keys, [K2, K3]);
  assert.deepEqual(await uas(luns, A), ['2a/05']);
  assert.deepEqual(await uas(luns, C), ['2a/04']);
  assert.deepEqual(await uas(luns, B), []);
  expectConflict(await run(luns, READ10, A));
  expectGood(await run(luns, READ10, B));
});

test('PREEMPT of an all-registrants reservation with SARK 0: everyone else goes', async () => {
  const { luns } = makeLu();
  await ready(luns, A, B, C);
  expectGood(await register(luns, A, K1));
  expectGood(await register(luns, B, K2));
  expectGood(await register(luns, C, K3));
  expectGood(await reserve(luns, A, K1, PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS));
  expectGood(await prOut(luns, B, PrOut.PREEMPT, { key: K2, sark: 0n, type: PrType.WRITE_EXCLUSIVE }));
  assert.deepEqual((await readKeys(luns, B)).keys, [K2]);
  assert.deepEqual(await readReservation(luns, B), { key: K2, type: PrType.WRITE_EXCLUSIVE });
  assert.deepEqual(await uas(luns, A), ['2a/05']);
  assert.deepEqual(await uas(luns, C), ['2a/05']);
});

test('PREEMPT AND ABORT calls onPreemptAbort with the preempted I_T nexuses', async () => {
  const { lu, luns } = makeLu();
  const calls: (readonly string[])[] = [];
  lu.onPreemptAbort = (ids, which) => {
    assert.equal(which, lu);
    calls.push(ids);
  };
  await ready(luns, A, B, C);
  expectGood(await register(luns, A, K1));
  expectGood(await register(luns, B, K2));
  expectGood(await register(luns, C, K3));
  expectGood(await reserve(luns, A, K1, PrType.EXCLUSIVE_ACCESS));
  expectGood(await prOut(luns, B, PrOut.PREEMPT, { key: K2, sark: K3, type: PrType.EXCLUSIVE_ACCESS }));
  assert.equal(calls.length, 0, 'plain PREEMPT aborts nothing');
  expectGood(await prOut(luns, B, PrOut.PREEMPT_AND_ABORT, { key: K2, sark: K1, type: PrType.EXCLUSIVE_ACCESS }));
  assert.deepEqual(calls, [[A.id]]);
  assert.deepEqual(await readReservation(luns, B), { key: K2, type: PrType.EXCLUSIVE_ACCESS });
});

// ---- REGISTER AND MOVE

function moveList(key: bigint, sark: bigint, to: ItNexus, o: { unreg?: boolean; rel?: number } = {}): Buffer {
  const tid = iscsiTransportId(to.initiatorName, to.isid);
  const p = Buffer.alloc(24 + tid.length);
  p.writeBigUInt64BE(key, 0);
  p.writeBigUInt64BE(sark, 8);
  p[17] = o.unreg ? 0x02 : 0;
  p.writeUInt16BE(o.rel ?? 1, 18);
  p.writeUInt32BE(tid.length, 20);
  tid.copy(p, 24);
  return p;
}

function registerAndMove(luns: Luns, n: ItNexus, p: Buffer, type = PrType.WRITE_EXCLUSIVE): Promise<ScsiResult> {
  const len = p.length;
  return run(luns, [0x5f, PrOut.REGISTER_AND_MOVE, type, 0, 0, 0, 0, (len >> 8) & 0xff, len & 0xff, 0], n, p);
}

test('REGISTER AND MOVE hands the reservation to another I_T nexus, registering it; UNREG drops the mover', async () => {
  const { luns } = makeLu();
  await ready(luns, A, B, C);
  expectGood(await register(luns, A, K1));
  expectConflict(await registerAndMove(luns, A, moveList(K1, K2, B))); // no reservation yet
  expectGood(await reserve(luns, A, K1, PrType.WRITE_EXCLUSIVE));
  expectConflict(await registerAndMove(luns, A, moveList(K3, K2, B))); // wrong key
  expectSense(await registerAndMove(luns, A, moveList(K1, K2, A)), SenseKey.IllegalRequest, 0x26, 0); // to itself
  expectSense(await registerAndMove(luns, A, moveList(K1, 0n, B)), SenseKey.IllegalRequest, 0x26, 0); // SARK 0
  expectSense(await registerAndMove(luns, A, moveList(K1, K2, B, { rel: 7 })), SenseKey.IllegalRequest, 0x26, 0);
  const gen = (await readKeys(luns)).generation;
  expectGood(await registerAndMove(luns, A, moveList(K1, K2, B)));
  assert.deepEqual(await readReservation(luns), { key: K2, type: PrType.WRITE_EXCLUSIVE });
  assert.deepEqual(await readKeys(luns), { generation: gen + 1, keys: [K1, K2] });
  expectConflict(await run(luns, WRITE10, A, Buffer.alloc(512)));
  expectGood(await run(luns, WRITE10, B, Buffer.alloc(512)));
  // B moves it on to C and leaves.
  expectGood(await registerAndMove(luns, B, moveList(K2, K3, C, { unreg: true })));
  assert.deepEqual(await readReservation(luns), { key: K3, type: PrType.WRITE_EXCLUSIVE });
  assert.deepEqual((await readKeys(luns)).keys, [K1, K3]);
  // Not for all-registrants reservations.
  expectGood(await release(luns, C, K3, PrType.WRITE_EXCLUSIVE));
  expectGood(await reserve(luns, C, K3, PrType.WRITE_EXCLUSIVE_ALL_REGISTRANTS));
  expectConflict(await registerAndMove(luns, C, moveList(K3, K2, B)));
});

test('TransportIDs: iSCSI format 01b round trip', () => {
  const tid = iscsiTransportId('iqn.2026-01.test:i1', '40000137000A');
  assert.equal(tid[0], 0x45);
  assert.equal(tid.readUInt16BE(2) % 4, 0);
  assert.ok(tid.toString('utf8', 4).startsWith('iqn.2026-01.test:i1,i,0x40000137000a\0'));
  assert.deepEqual(parseIscsiTransportId(tid, 24), { initiatorName: 'iqn.2026-01.test:i1', isid: '40000137000a' });
  const fmt0 = Buffer.from(tid);
  fmt0[0] = 0x05;
  assert.throws(() => parseIscsiTransportId(fmt0, 24));
});

// ---- READ FULL STATUS

test('READ FULL STATUS: one descriptor per registration with R_HOLDER, type, relative port and iSCSI TransportID', async () => {
  const { luns } = makeLu();
  await ready(luns, A, B);
  expectGood(await register(luns, A, K1));
  expectGood(await register(luns, B, K2));
  expectGood(await reserve(luns, B, K2, PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY));
  const r = await prIn(luns, A, PrIn.READ_FULL_STATUS);
  expectGood(r);
  const d = r.data!;
  assert.equal(d.readUInt32BE(0), 2, 'PRgeneration');
  const total = d.readUInt32BE(4);
  assert.equal(d.length, 8 + total);
  const seen: { key: bigint; holder: boolean; type: number; rel: number; tid: string }[] = [];
  for (let off = 8; off < d.length;) {
    const tidLen = d.readUInt32BE(off + 20);
    const tid = d.subarray(off + 24, off + 24 + tidLen);
    assert.equal(tid[0], 0x45, 'format 01b, iSCSI');
    seen.push({
      key: d.readBigUInt64BE(off),
      holder: (d[off + 12] & 0x01) !== 0,
      type: d[off + 13] & 0x0f,
      rel: d.readUInt16BE(off + 18),
      tid: tid.toString('utf8', 4, 4 + tid.readUInt16BE(2)).replace(/\0+$/, ''),
    });
    off += 24 + tidLen;
  }
  assert.deepEqual(seen, [
    { key: K1, holder: false, type: 0, rel: 1, tid: `${A.initiatorName},i,0x${A.isid}` },
    { key: K2, holder: true, type: PrType.EXCLUSIVE_ACCESS_REGISTRANTS_ONLY, rel: 1, tid: `${B.initiatorName},i,0x${B.isid}` },
  ]);
  // Truncated to the allocation length.
  const t = await prIn(luns, A, PrIn.READ_FULL_STATUS, 10);
  assert.equal(t.data!.length, 10);
});

// ---- ALL_TG_PT

test('ALL_TG_PT: one registration covers the initiator port through every target port', async () => {
  const { luns } = makeLu();
  const A2 = nexus(1, 'iqn.2026-01.test:other-target'); // same initiator port, other target port
  await ready(luns, A, A2, B);
  expectGood(await register(luns, A, K1, { allTgPt: true }));
  expectConflict(await prOut(luns, A2, PrOut.REGISTER, { sark: K2 })); // already registered: key needed
  expectGood(await reserve(luns, A2, K1, PrType.EXCLUSIVE_ACCESS));
  expectGood(await run(luns, READ10, A));
  expectGood(await run(luns, READ10, A2));
  expectConflict(await run(luns, READ10, B));
  const r = await prIn(luns, B, PrIn.READ_FULL_STATUS);
  assert.equal(r.data![8 + 12], 0x03, 'ALL_TG_PT | R_HOLDER');
  // Without ALL_TG_PT each target port's nexus registers separately; ALL_TG_PT then conflicts.
  expectGood(await register(luns, B, K2));
  const B2 = nexus(2, 'iqn.2026-01.test:other-target');
  await ready(luns, B2);
  expectConflict(await register(luns, B2, K3, { allTgPt: true }));
});

// ---- RESERVE(6) / RELEASE(6) interplay

const RESERVE6 = [0x16, 0, 0, 0, 0, 0];
const RELEASE6 = [0x17, 0, 0, 0, 0, 0];

test('RESERVE(6)/RELEASE(6) conflict while registrations exist, except for the reservation holder (GOOD, no effect)', async () => {
  const { lu, luns } = makeLu();
  await ready(luns, A, B, C);
  expectGood(await register(luns, A, K1));
  expectConflict(await run(luns, RESERVE6, A)); // registered, but no reservation
  expectConflict(await run(luns, RESERVE6, C));
  expectConflict(await run(luns, RELEASE6, C));
  expectGood(await reserve(luns, A, K1, PrType.WRITE_EXCLUSIVE));
  expectGood(await run(luns, RESERVE6, A));
  assert.equal(lu.reservationHolder, null, 'no SPC-2 reservation was made');
  expectGood(await run(luns, RELEASE6, A));
  assert.deepEqual(await readReservation(luns), { key: K1, type: PrType.WRITE_EXCLUSIVE });
  expectConflict(await run(luns, RESERVE6, C));
  // Registrants of a registrants-only reservation get GOOD as well.
  expectGood(await register(luns, B, K2));
  expectGood(await release(luns, A, K1, PrType.WRITE_EXCLUSIVE));
  expectGood(await reserve(luns, A, K1, PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY));
  expectGood(await run(luns, RESERVE6, B));
  expectConflict(await run(luns, RESERVE6, C));
  // Once every registration is gone, SPC-2 rules again.
  expectGood(await prOut(luns, A, PrOut.CLEAR, { key: K1 }));
  expectGood(await run(luns, RESERVE6, C));
  assert.equal(lu.reservationHolder, C.id);
  expectGood(await run(luns, RELEASE6, C));
});

test('while an SPC-2 RESERVE is held, PERSISTENT RESERVE IN and OUT conflict for everyone, the holder included', async () => {
  const { luns } = makeLu();
  await ready(luns, A, B);
  expectGood(await run(luns, RESERVE6, A));
  expectConflict(await prIn(luns, A, PrIn.READ_KEYS));
  expectConflict(await prIn(luns, B, PrIn.READ_KEYS));
  expectConflict(await register(luns, A, K1));
  expectConflict(await register(luns, B, K2));
  expectGood(await run(luns, RELEASE6, A));
  expectGood(await register(luns, A, K1));
});

// ---- nexus loss, resets

test('registrations and the persistent reservation survive nexus loss and LUN reset; RESERVE(6) does not', async () => {
  const { lu, luns } = makeLu();
  await ready(luns, A, B, C);
  expectGood(await run(luns, RESERVE6, C));
  lu.nexusLost(C);
  assert.equal(lu.reservationHolder, null);
  await ready(luns, C);
  expectGood(await register(luns, A, K1));
  expectGood(await reserve(luns, A, K1, PrType.EXCLUSIVE_ACCESS));
  lu.nexusLost(A);
  lu.reset('lun', B);
  await ready(luns, A, B);
  assert.deepEqual(await readReservation(luns, B), { key: K1, type: PrType.EXCLUSIVE_ACCESS });
  expectConflict(await run(luns, READ10, B));
  expectGood(await run(luns, READ10, A)); // the same I_T nexus, logged in again
});

// ---- APTPL

test('APTPL: state saved next to the volume and restored by a new LU; APTPL 0 removes it; memory volumes refuse APTPL', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pr-'));
  const statePath = path.join(dir, 'disk.img.pr.json');
  try {
    const one = makeLu({ statePath });
    await ready(one.luns, A, B);
    expectGood(await register(one.luns, A, K1, { aptpl: true }));
    assert.ok(fs.existsSync(statePath));
    // The last valid APTPL bit received counts, from whichever I_T nexus.
    expectGood(await register(one.luns, B, K2));
    assert.equal(fs.existsSync(statePath), false);
    expectGood(await register(one.luns, B, K2, { aptpl: true }));
    expectGood(await reserve(one.luns, B, K2, PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY));
    await one.lu.close();
    assert.deepEqual(
      fs.readdirSync(dir).filter((f) => f !== 'disk.img.pr.json'),
      [],
      'no temporary files left behind',
    );

    const two = makeLu({ statePath });
    await ready(two.luns, A, C);
    const before = await readKeys(two.luns);
    assert.deepEqual(before.keys, [K1, K2]);
    assert.deepEqual(await readReservation(two.luns), { key: K2, type: PrType.WRITE_EXCLUSIVE_REGISTRANTS_ONLY });
    const caps = await prIn(two.luns, A, PrIn.REPORT_CAPABILITIES);
    assert.equal(caps.data![3] & 0x01, 1, 'PTPL_A');
    expectGood(await run(two.luns, WRITE10, A, Buffer.alloc(512))); // registered under WERO
    expectConflict(await run(two.luns, WRITE10, C, Buffer.alloc(512)));
    // The last valid APTPL is 0: nothing persists any more.
    expectGood(await prOut(two.luns, A, PrOut.REGISTER, { key: K1, sark: K3 }));
    assert.equal(fs.existsSync(statePath), false);
    await two.lu.close();
    const three = makeLu({ statePath });
    await ready(three.luns, A);
    assert.deepEqual(await readKeys(three.luns), { generation: 0, keys: [] });

    // A damaged state file is ignored (and logged), not fatal.
    fs.writeFileSync(statePath, '{ not json');
    const four = makeLu({ statePath });
    await ready(four.luns, A);
    assert.deepEqual((await readKeys(four.luns)).keys, []);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const mem = makeLu();
  await ready(mem.luns, A);
  expectSense(await register(mem.luns, A, K1, { aptpl: true }), SenseKey.IllegalRequest, 0x26, 0);
  assert.deepEqual((await readKeys(mem.luns)).keys, []);
});

test('APTPL: concurrent PERSISTENT RESERVE OUT commands leave the newest state on disk', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pr-'));
  const statePath = path.join(dir, 'v.pr.json');
  try {
    const { lu, luns } = makeLu({ statePath });
    await ready(luns, A, B, C);
    const results = await Promise.all([
      register(luns, A, K1, { aptpl: true }),
      register(luns, B, K2, { aptpl: true }),
      register(luns, C, K3, { aptpl: true }),
    ]);
    results.forEach(expectGood);
    await lu.close();
    const saved = JSON.parse(fs.readFileSync(statePath, 'utf8')) as { generation: number; registrations: unknown[] };
    assert.equal(saved.generation, 3);
    assert.equal(saved.registrations.length, 3);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
