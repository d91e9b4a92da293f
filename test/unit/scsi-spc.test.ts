// SPC-4 handlers fed CDBs byte by byte through executeScsi, with a MemoryBackstore LU.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../src/backstore/memory';
import { COMMANDS } from '../../src/scsi/commands';
import { LogicalUnit, deriveIdentifiers } from '../../src/scsi/logical-unit';
import { parseSense } from '../../src/scsi/sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from '../../src/scsi/task';
import { executeOn } from '../helpers/scsi';

// ---- helpers (kept local: each test file stands alone)

const NEXUS: ItNexus = {
  id: 'iqn.2026-01.test:init,i,0x400001370000',
  initiatorName: 'iqn.2026-01.test:init',
  isid: '400001370000',
  targetName: 'iqn.2026-01.test:target',
  relativePortId: 1,
};
const OTHER: ItNexus = {
  ...NEXUS,
  id: 'iqn.2026-01.test:other,i,0x400001370001',
  initiatorName: 'iqn.2026-01.test:other',
  isid: '400001370001',
};

function makeLu(opts: { blocks?: number; blockSize?: 512 | 4096; readonly?: boolean; name?: string } = {}) {
  const bs = opts.blockSize ?? 512;
  const store = new MemoryBackstore((opts.blocks ?? 2048) * bs);
  const lu = new LogicalUnit({ name: opts.name ?? 'vol0', backstore: store, blockSize: bs, readonly: opts.readonly ?? false });
  return { lu, store, luns: new Map([[0, lu]]) as ReadonlyMap<number, LogicalUnit> };
}

function task(cdb: number[], opts: { lun?: number; expected?: number; dataOut?: Buffer; nexus?: ItNexus; attr?: number } = {}): ScsiTask {
  const b = Buffer.alloc(Math.max(16, cdb.length));
  Buffer.from(cdb).copy(b);
  return {
    cdb: b,
    lun: opts.lun ?? 0,
    nexus: opts.nexus ?? NEXUS,
    expectedLength: opts.expected ?? opts.dataOut?.length ?? 65536,
    dataOut: opts.dataOut ?? null,
    attr: opts.attr ?? 1,
    aborted: false,
    luns: new Map(),
  };
}

async function run(luns: ReadonlyMap<number, LogicalUnit>, cdb: number[], opts: Parameters<typeof task>[1] = {}): Promise<ScsiResult> {
  return executeOn(luns, task(cdb, opts));
}

/** A fresh LU with the power-on unit attention already consumed. */
async function ready(opts: Parameters<typeof makeLu>[0] = {}) {
  const x = makeLu(opts);
  const r = await run(x.luns, [0x00]);
  assert.equal(r.status, ScsiStatus.CheckCondition);
  return x;
}

function expectSense(r: ScsiResult, key: number, asc: number, ascq: number): void {
  assert.equal(r.status, ScsiStatus.CheckCondition, 'expected CHECK CONDITION');
  assert.ok(r.sense);
  const s = parseSense(r.sense);
  assert.deepEqual([s.key, s.asc, s.ascq], [key, asc, ascq]);
}

function be16(n: number): number[] {
  return [(n >> 8) & 0xff, n & 0xff];
}

// ---- INQUIRY

test('INQUIRY standard data', async () => {
  const { luns } = await ready();
  const r = await run(luns, [0x12, 0, 0, ...be16(255), 0]);
  assert.equal(r.status, ScsiStatus.Good);
  const d = r.data!;
  assert.equal(d.length, 96);
  assert.equal(d[0], 0x00); // qualifier 0, direct access
  assert.equal(d[1] & 0x80, 0); // not removable
  assert.equal(d[2], 0x06); // SPC-4
  assert.equal(d[3] & 0x0f, 2); // response data format
  assert.equal(d[3] & 0x10, 0x10); // HiSup
  assert.equal(d[4], d.length - 5); // additional length
  // Byte 5: TPGS 11b (implicit and explicit ALUA), 3PC (EXTENDED COPY); no SCCS, ACC, PROTECT.
  assert.equal((d[5] >> 4) & 0x03, 0x03, 'TPGS');
  assert.equal(d[5] & 0x08, 0x08, '3PC');
  assert.equal(d[5] & 0xc7, 0, 'SCCS, ACC, PROTECT');
  assert.equal(d[7] & 0x02, 0x02); // CmdQue
  assert.equal(d.subarray(8, 16).toString('ascii'), 'ISCSI-TS');
  assert.equal(d.subarray(16, 32).toString('ascii'), 'VIRTUAL-DISK    ');
  assert.equal(d.subarray(32, 36).toString('ascii'), '0001');
  const versions = [0, 1, 2, 3].map((i) => d.readUInt16BE(58 + 2 * i));
  assert.deepEqual(versions, [0x00a0, 0x0960, 0x0460, 0x04c0]);
});

test('INQUIRY honours the allocation length and 16-bit allocation lengths', async () => {
  const { luns } = await ready();
  for (const alloc of [0, 1, 5, 36, 95, 96, 255, 256, 1000]) {
    const r = await run(luns, [0x12, 0, 0, ...be16(alloc), 0]);
    assert.equal(r.status, ScsiStatus.Good);
    assert.equal(r.data!.length, Math.min(alloc, 96), `alloc ${alloc}`);
  }
});

test('INQUIRY field checks: page code without EVPD, CmdDt, unknown VPD page', async () => {
  const { luns } = await ready();
  const r1 = await run(luns, [0x12, 0, 0x80, 0, 255, 0]);
  expectSense(r1, 0x05, 0x24, 0x00);
  // Sense-key specific field pointer: C/D = 1, byte 2.
  assert.equal(r1.sense![15] & 0xc0, 0xc0);
  assert.equal(r1.sense!.readUInt16BE(16), 2);
  expectSense(await run(luns, [0x12, 0x02, 0, 0, 255, 0]), 0x05, 0x24, 0x00);
  expectSense(await run(luns, [0x12, 0x01, 0xc7, 0, 255, 0]), 0x05, 0x24, 0x00);
});

test('INQUIRY VPD 0x00 lists the pages, and every listed page can be read', async () => {
  const { luns } = await ready();
  const r = await run(luns, [0x12, 1, 0x00, 0, 255, 0]);
  assert.equal(r.status, ScsiStatus.Good);
  const d = r.data!;
  assert.equal(d[1], 0x00);
  const pages = [...d.subarray(4, 4 + d[3])];
  assert.deepEqual(pages, [0x00, 0x80, 0x83, 0xb0, 0xb1, 0xb2]);
  for (const p of pages) {
    const rp = await run(luns, [0x12, 1, p, 0, 255, 0]);
    assert.equal(rp.status, ScsiStatus.Good, `page 0x${p.toString(16)}`);
    assert.equal(rp.data![1], p);
  }
});

test('INQUIRY VPD 0x80 serial number is stable per volume name', async () => {
  const a = await ready({ name: 'alpha' });
  const b = await ready({ name: 'alpha' });
  const c = await ready({ name: 'beta' });
  const sn = async (luns: ReadonlyMap<number, LogicalUnit>) => {
    const d = (await run(luns, [0x12, 1, 0x80, 0, 255, 0])).data!;
    return d.subarray(4, 4 + d[3]).toString('ascii');
  };
  assert.equal(await sn(a.luns), await sn(b.luns));
  assert.notEqual(await sn(a.luns), await sn(c.luns));
  assert.match(await sn(a.luns), /^[0-9A-F]{16}$/);
});

test('INQUIRY VPD 0x83 device identification designators', async () => {
  const { luns, lu } = await ready({ name: 'alpha' });
  const d = (await run(luns, [0x12, 1, 0x83, 1, 0, 0])).data!;
  assert.equal(d[1], 0x83);
  assert.equal(d.readUInt16BE(2), d.length - 4);
  const des: { proto: number; code: number; piv: boolean; assoc: number; type: number; value: Buffer }[] = [];
  for (let p = 4; p < d.length;) {
    const len = d[p + 3];
    des.push({
      proto: d[p] >> 4,
      code: d[p] & 0x0f,
      piv: (d[p + 1] & 0x80) !== 0,
      assoc: (d[p + 1] >> 4) & 3,
      type: d[p + 1] & 0x0f,
      value: d.subarray(p + 4, p + 4 + len),
    });
    p += 4 + len;
  }
  const naa = des.find((x) => x.type === 3 && x.assoc === 0)!;
  assert.ok(naa);
  assert.equal(naa.code, 1);
  assert.equal(naa.value.length, 16);
  assert.equal(naa.value[0] >> 4, 6); // NAA IEEE Registered Extended
  assert.deepEqual(naa.value, deriveIdentifiers('alpha').naa);
  assert.deepEqual(naa.value, lu.naa);

  const rel = des.find((x) => x.type === 4 && x.assoc === 1)!;
  assert.ok(rel && rel.piv && rel.proto === 5);
  assert.equal(rel.value.readUInt16BE(2), 1);
  const tpg = des.find((x) => x.type === 5 && x.assoc === 1)!;
  assert.equal(tpg.value.readUInt16BE(2), 1);
  const portName = des.find((x) => x.type === 8 && x.assoc === 1)!;
  assert.equal(portName.code, 3);
  assert.equal(portName.value.length % 4, 0);
  assert.equal(portName.value.toString('utf8').replace(/\0+$/, ''), 'iqn.2026-01.test:target,t,0x0001');
  const devName = des.find((x) => x.type === 8 && x.assoc === 2)!;
  assert.equal(devName.value.toString('utf8').replace(/\0+$/, ''), 'iqn.2026-01.test:target');

  // The same volume on another LU object (another target) has the same LU designator.
  const again = await ready({ name: 'alpha' });
  const d2 = (await run(again.luns, [0x12, 1, 0x83, 1, 0, 0])).data!;
  assert.deepEqual(d2.subarray(4, 24), d.subarray(4, 24));
});

test('INQUIRY VPD 0xB0 block limits, 0xB1 characteristics, 0xB2 provisioning', async () => {
  const { luns } = await ready();
  const bl = (await run(luns, [0x12, 1, 0xb0, 0, 255, 0])).data!;
  assert.equal(bl.length, 64);
  assert.equal(bl.readUInt16BE(2), 0x3c);
  assert.equal(bl[4] & 1, 0); // WSNZ = 0: WRITE SAME 0 blocks writes to the end
  assert.equal(Number(bl.readBigUInt64BE(36)), 0xffff); // MAXIMUM WRITE SAME LENGTH (WRITE SAME(10)'s most)
  assert.equal(bl[5], 255); // MAXIMUM COMPARE AND WRITE LENGTH
  assert.equal(bl.readUInt32BE(8), (16 * 1024 * 1024) / 512); // MAXIMUM TRANSFER LENGTH
  assert.equal(bl.readUInt32BE(12), (1024 * 1024) / 512); // OPTIMAL TRANSFER LENGTH
  assert.equal(bl.readUInt32BE(20), 1024 * 1024); // MAXIMUM UNMAP LBA COUNT
  assert.equal(bl.readUInt32BE(24), 1024); // MAXIMUM UNMAP BLOCK DESCRIPTOR COUNT
  assert.equal(bl.readUInt32BE(28), 8); // OPTIMAL UNMAP GRANULARITY: 4 KiB
  assert.equal(bl.readUInt32BE(32), 0x80000000); // UGAVALID, alignment 0
  assert.equal(bl.readUInt32BE(44), (16 * 1024 * 1024) / 512); // MAXIMUM ATOMIC TRANSFER LENGTH
  assert.ok(bl.readUInt32BE(44) <= bl.readUInt32BE(8));
  assert.equal(bl.readUInt32BE(48), 0); // ATOMIC ALIGNMENT
  assert.equal(bl.readUInt32BE(52), 0); // ATOMIC TRANSFER LENGTH GRANULARITY
  assert.equal(bl.readUInt32BE(56), 0); // no atomic boundaries
  assert.equal(bl.readUInt32BE(60), 0);

  const bc = (await run(luns, [0x12, 1, 0xb1, 0, 255, 0])).data!;
  assert.equal(bc.readUInt16BE(2), 0x3c);
  assert.equal(bc.readUInt16BE(4), 1); // non-rotating
  assert.equal(bc[7] & 0xf0, 0x40); // WABEREQ 01b (BLOCK ERASE: reads succeed), WACEREQ 00b

  const lbp = (await run(luns, [0x12, 1, 0xb2, 0, 255, 0])).data!;
  assert.equal(lbp.readUInt16BE(2), 4);
  assert.equal(lbp[5] & 0xe0, 0xe0); // LBPU / LBPWS / LBPWS10
  assert.equal(lbp[5] & 0x04, 0x04); // LBPRZ
  assert.equal(lbp[5] & 0x02, 0); // ANC_SUP
  assert.equal(lbp[6] & 0x07, 2); // PROVISIONING TYPE: thin
});

// ---- REPORT LUNS and unmapped LUNs

test('REPORT LUNS encodes peripheral and flat addressing, sorted', async () => {
  const a = makeLu();
  const b = makeLu();
  const c = makeLu();
  const luns = new Map<number, LogicalUnit>([
    [300, c.lu],
    [0, a.lu],
    [5, b.lu],
  ]);
  const r = await run(luns, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], { lun: 0 });
  assert.equal(r.status, ScsiStatus.Good);
  const d = r.data!;
  assert.equal(d.readUInt32BE(0), 24);
  assert.deepEqual([...d.subarray(8, 16)], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...d.subarray(16, 24)], [0, 5, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...d.subarray(24, 32)], [0x41, 0x2c, 0, 0, 0, 0, 0, 0]); // 300 = 0x12c, flat space
  // SELECT REPORT 1: well-known LUs only -> empty list; 2: all.
  const r1 = await run(luns, [0xa0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(r1.data!.readUInt32BE(0), 0);
  const r2 = await run(luns, [0xa0, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(r2.data!.readUInt32BE(0), 24);
  expectSense(await run(luns, [0xa0, 0, 7, 0, 0, 0, 0, 0, 1, 0, 0, 0]), 0x05, 0x24, 0x00);
  // Allocation length 12: truncated, full list length still reported.
  const rt = await run(luns, [0xa0, 0, 0, 0, 0, 0, 0, 0, 0, 12, 0, 0]);
  assert.equal(rt.data!.length, 12);
  assert.equal(rt.data!.readUInt32BE(0), 24);
  // Addressed to a LUN that does not exist: still answered (and no unit attention).
  const rx = await run(luns, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0], { lun: 77 });
  assert.equal(rx.status, ScsiStatus.Good);
});

test('an unmapped LUN: INQUIRY qualifier 3, REQUEST SENSE and others LOGICAL UNIT NOT SUPPORTED', async () => {
  const { luns } = await ready();
  const inq = await run(luns, [0x12, 0, 0, 0, 96, 0], { lun: 9 });
  assert.equal(inq.status, ScsiStatus.Good);
  assert.equal(inq.data![0], 0x7f);
  const rs = await run(luns, [0x03, 0, 0, 0, 252, 0], { lun: 9 });
  assert.equal(rs.status, ScsiStatus.Good);
  const s = parseSense(rs.data!);
  assert.deepEqual([s.key, s.asc, s.ascq], [0x05, 0x25, 0x00]);
  expectSense(await run(luns, [0x00], { lun: 9 }), 0x05, 0x25, 0x00);
  expectSense(await run(luns, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { lun: 9 }), 0x05, 0x25, 0x00);
});

// ---- opcodes and the command table

test('unknown opcode -> ILLEGAL REQUEST, INVALID COMMAND OPERATION CODE; bad service action -> INVALID FIELD IN CDB', async () => {
  const { luns } = await ready();
  for (const op of [0x02, 0xc0, 0xff]) {
    expectSense(await run(luns, [op]), 0x05, 0x20, 0x00);
  }
  const r = await run(luns, [0x9e, 0x1f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 24]); // unknown SERVICE ACTION IN(16)
  expectSense(r, 0x05, 0x24, 0x00);
  assert.equal(r.sense!.readUInt16BE(16), 1); // field pointer: byte 1 (service action)
});

test('NACA in the control byte is refused (NormACA = 0)', async () => {
  const { luns } = await ready();
  expectSense(await run(luns, [0x00, 0, 0, 0, 0, 0x04]), 0x05, 0x24, 0x00);
});

test('REPORT SUPPORTED OPERATION CODES: all commands, with and without timeouts', async () => {
  const { luns } = await ready();
  const r = await run(luns, [0xa3, 0x0c, 0x00, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
  assert.equal(r.status, ScsiStatus.Good);
  const d = r.data!;
  assert.equal(d.readUInt32BE(0), d.length - 4);
  // Every command this unit offers: all but CRYPTOGRAPHIC ERASE (no encryption here).
  const offered = COMMANDS.filter((c) => !c.supported || c.supported(luns.get(0)!));
  assert.equal(offered.length, COMMANDS.length - 1);
  assert.equal((d.length - 4) / 8, offered.length);
  const seen: string[] = [];
  for (let p = 4; p < d.length; p += 8) {
    const servactv = (d[p + 5] & 1) !== 0;
    const sa = d.readUInt16BE(p + 2);
    if (!servactv) assert.equal(sa, 0);
    assert.equal(d[p + 5] & 0x02, 0); // no CTDP without RCTD
    seen.push(`${d[p].toString(16)}/${sa}`);
    const spec = COMMANDS.find((c) => c.opcode === d[p] && (c.sa ?? 0) === sa)!;
    assert.equal(d.readUInt16BE(p + 6), spec.cdbLength);
  }
  assert.ok(seen.includes('8a/0')); // WRITE(16)
  assert.ok(seen.includes('9e/16')); // READ CAPACITY(16)

  const rt = await run(luns, [0xa3, 0x0c, 0x80, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
  const dt = rt.data!;
  assert.equal((dt.length - 4) / 20, offered.length);
  for (let p = 4; p < dt.length; p += 20) {
    assert.equal(dt[p + 5] & 0x02, 0x02); // CTDP
    assert.equal(dt.readUInt16BE(p + 8), 0x0a); // timeouts descriptor length
  }
});

test('REPORT SUPPORTED OPERATION CODES: one command', async () => {
  const { luns } = await ready();
  // WRITE(10), option 1: CDB usage data with DPO/FUA.
  const r = await run(luns, [0xa3, 0x0c, 0x01, 0x2a, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
  assert.equal(r.status, ScsiStatus.Good);
  const d = r.data!;
  assert.equal(d[1] & 0x07, 0x03); // supported
  assert.equal(d.readUInt16BE(2), 10);
  assert.equal(d[4], 0x2a);
  assert.equal(d[5] & 0x18, 0x18);
  // Option 1 for an opcode with service actions, option 2 for one without: INVALID FIELD IN CDB.
  expectSense(await run(luns, [0xa3, 0x0c, 0x01, 0x9e, 0, 0x10, 0, 0, 0xff, 0xff, 0, 0]), 0x05, 0x24, 0x00);
  expectSense(await run(luns, [0xa3, 0x0c, 0x02, 0x2a, 0, 0, 0, 0, 0xff, 0xff, 0, 0]), 0x05, 0x24, 0x00);
  // Option 2 for READ CAPACITY(16).
  const r2 = await run(luns, [0xa3, 0x0c, 0x02, 0x9e, 0, 0x10, 0, 0, 0xff, 0xff, 0, 0]);
  assert.equal(r2.data![1] & 7, 3);
  assert.equal(r2.data![4], 0x9e);
  assert.equal(r2.data![5], 0x10);
  // An opcode we do not support: SUPPORT 001b, GOOD.
  const r3 = await run(luns, [0xa3, 0x0c, 0x01, 0xc0, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
  assert.equal(r3.status, ScsiStatus.Good);
  assert.equal(r3.data![1] & 7, 1);
  // With RCTD: the timeouts descriptor follows the usage data.
  const r4 = await run(luns, [0xa3, 0x0c, 0x81, 0x28, 0, 0, 0, 0, 0xff, 0xff, 0, 0]);
  assert.equal(r4.data![1] & 0x80, 0x80);
  assert.equal(r4.data!.length, 4 + 10 + 12);
});

test('REPORT SUPPORTED TASK MANAGEMENT FUNCTIONS', async () => {
  const { luns } = await ready();
  const r = await run(luns, [0xa3, 0x0d, 0, 0, 0, 0, 0, 0, 0, 16, 0, 0]);
  assert.equal(r.status, ScsiStatus.Good);
  assert.equal(r.data!.length, 4);
  assert.equal(r.data![0], 0xda); // ATS ATSS CTSS LURS TRS
  const rd = await run(luns, [0xa3, 0x0d, 0x80, 0, 0, 0, 0, 0, 0, 16, 0, 0]);
  assert.equal(rd.data!.length, 16);
  assert.equal(rd.data![3], 0x0c);
});

// ---- unit attentions and REQUEST SENSE

test('first command of a new I_T nexus gets POWER ON, RESET (29/00), then it is cleared', async () => {
  const { luns } = makeLu();
  // INQUIRY and REPORT LUNS do not report it.
  assert.equal((await run(luns, [0x12, 0, 0, 0, 96, 0])).status, ScsiStatus.Good);
  assert.equal((await run(luns, [0xa0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])).status, ScsiStatus.Good);
  expectSense(await run(luns, [0x00]), 0x06, 0x29, 0x00);
  assert.equal((await run(luns, [0x00])).status, ScsiStatus.Good);
  // Another nexus gets its own.
  expectSense(await run(luns, [0x25], { nexus: OTHER }), 0x06, 0x29, 0x00);
  assert.equal((await run(luns, [0x25], { nexus: OTHER })).status, ScsiStatus.Good);
});

test('REQUEST SENSE returns and clears a pending unit attention, in fixed or descriptor format', async () => {
  const { luns } = makeLu();
  const r = await run(luns, [0x03, 0, 0, 0, 252, 0]);
  assert.equal(r.status, ScsiStatus.Good);
  assert.equal(r.data![0], 0x70);
  assert.equal(r.data!.length, 18);
  assert.deepEqual([r.data![2] & 0x0f, r.data![12], r.data![13]], [0x06, 0x29, 0x00]);
  assert.equal((await run(luns, [0x00])).status, ScsiStatus.Good);
  // Nothing pending: NO SENSE; DESC = 1 gives descriptor format.
  const r2 = await run(luns, [0x03, 1, 0, 0, 252, 0]);
  assert.equal(r2.data![0], 0x72);
  assert.deepEqual([r2.data![1], r2.data![2], r2.data![3]], [0, 0, 0]);
  // Allocation length honoured.
  assert.equal((await run(luns, [0x03, 0, 0, 0, 8, 0])).data!.length, 8);
});

// ---- MODE SENSE / MODE SELECT

function parseMode6(d: Buffer) {
  const bdl = d[3];
  const pages = new Map<number, Buffer>();
  for (let p = 4 + bdl; p < d.length; p += d[p + 1] + 2) pages.set(d[p] & 0x3f, d.subarray(p, p + d[p + 1] + 2));
  return { length: d[0], dsp: d[2], bd: d.subarray(4, 4 + bdl), pages };
}

test('MODE SENSE(6) all pages: header, block descriptor, pages 01/08/0A', async () => {
  const { luns } = await ready({ blocks: 2048 });
  const r = await run(luns, [0x1a, 0, 0x3f, 0, 255, 0]);
  assert.equal(r.status, ScsiStatus.Good);
  const m = parseMode6(r.data!);
  assert.equal(m.length, r.data!.length - 1);
  assert.equal(m.dsp & 0x80, 0); // not write protected
  assert.equal(m.dsp & 0x10, 0x10); // DPOFUA
  assert.equal(m.bd.length, 8);
  assert.equal(m.bd.readUInt32BE(0), 2048);
  assert.equal(m.bd.readUInt32BE(4) & 0xffffff, 512);
  assert.deepEqual([...m.pages.keys()], [0x01, 0x08, 0x0a]);
  assert.equal(m.pages.get(0x08)![2] & 0x04, 0x04); // WCE = 1 by default
  assert.equal(m.pages.get(0x0a)![2] & 0x04, 0); // D_SENSE = 0
  assert.equal(m.pages.get(0x0a)!.length, 12);
  // DBD: no block descriptor. Allocation length 4: just the header, no residual overflow.
  assert.equal(parseMode6((await run(luns, [0x1a, 0x08, 0x3f, 0, 255, 0])).data!).bd.length, 0);
  assert.equal((await run(luns, [0x1a, 0, 0x3f, 0, 4, 0])).data!.length, 4);
});

test('MODE SENSE(10) with LLBAA returns a long LBA block descriptor', async () => {
  const { luns } = await ready({ blocks: 4096, blockSize: 4096 });
  const r = await run(luns, [0x5a, 0x10, 0x08, 0, 0, 0, 0, 0x01, 0x00, 0]);
  const d = r.data!;
  assert.equal(d.readUInt16BE(0), d.length - 2);
  assert.equal(d[4] & 1, 1); // LONGLBA
  assert.equal(d.readUInt16BE(6), 16);
  assert.equal(Number(d.readBigUInt64BE(8)), 4096);
  assert.equal(d.readUInt32BE(20), 4096);
  assert.equal(d[24], 0x08); // caching page
});

test('MODE SENSE page control: changeable masks, defaults, saved refused, unknown page', async () => {
  const { luns } = await ready();
  const ch = parseMode6((await run(luns, [0x1a, 0x08, 0x40 | 0x3f, 0, 255, 0])).data!);
  assert.equal(ch.pages.get(0x08)![2], 0x04); // WCE changeable
  assert.equal(ch.pages.get(0x0a)![2], 0x04); // D_SENSE changeable
  assert.equal(ch.pages.get(0x0a)![4], 0x08); // SWP changeable
  assert.ok(
    ch.pages
      .get(0x01)!
      .subarray(2)
      .every((b) => b === 0),
  );
  const df = parseMode6((await run(luns, [0x1a, 0x08, 0x80 | 0x08, 0, 255, 0])).data!);
  assert.equal(df.pages.get(0x08)![2] & 0x04, 0x04);
  expectSense(await run(luns, [0x1a, 0, 0xc0 | 0x3f, 0, 255, 0]), 0x05, 0x39, 0x00);
  expectSense(await run(luns, [0x1a, 0, 0x19, 0, 255, 0]), 0x05, 0x24, 0x00);
  expectSense(await run(luns, [0x1a, 0, 0x0a, 0x01, 255, 0]), 0x05, 0x24, 0x00);
});

function modeSelect6Data(page: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0, 0, 0, 0]), page]);
}

test('MODE SELECT(6) turns WCE off and on; other nexuses get MODE PARAMETERS CHANGED', async () => {
  const { luns, lu } = await ready();
  await run(luns, [0x00], { nexus: OTHER }); // OTHER consumes its power-on UA
  const cur = parseMode6((await run(luns, [0x1a, 0x08, 0x08, 0, 255, 0])).data!).pages.get(0x08)!;
  const page = Buffer.from(cur);
  page[2] &= ~0x04;
  const data = modeSelect6Data(page);
  const r = await run(luns, [0x15, 0x10, 0, 0, data.length, 0], { dataOut: data });
  assert.equal(r.status, ScsiStatus.Good);
  assert.equal(r.dataOutLength, data.length);
  assert.equal(lu.writeCacheEnabled, false);
  const after = parseMode6((await run(luns, [0x1a, 0x08, 0x08, 0, 255, 0])).data!).pages.get(0x08)!;
  assert.equal(after[2] & 0x04, 0);
  // The nexus that changed it gets no UA; the other one does.
  assert.equal((await run(luns, [0x00])).status, ScsiStatus.Good);
  expectSense(await run(luns, [0x00], { nexus: OTHER }), 0x06, 0x2a, 0x01);
  // And back on.
  page[2] |= 0x04;
  const d2 = modeSelect6Data(page);
  assert.equal((await run(luns, [0x15, 0x10, 0, 0, d2.length, 0], { dataOut: d2 })).status, ScsiStatus.Good);
  assert.equal(lu.writeCacheEnabled, true);
});

test('MODE SELECT refuses PF = 0, SP = 1, unchangeable fields and short lists', async () => {
  const { luns, lu } = await ready();
  const cur = parseMode6((await run(luns, [0x1a, 0x08, 0x0a, 0, 255, 0])).data!).pages.get(0x0a)!;
  const ok = modeSelect6Data(Buffer.from(cur));
  expectSense(await run(luns, [0x15, 0x00, 0, 0, ok.length, 0], { dataOut: ok }), 0x05, 0x24, 0x00);
  expectSense(await run(luns, [0x15, 0x11, 0, 0, ok.length, 0], { dataOut: ok }), 0x05, 0x24, 0x00);
  const bad = Buffer.from(cur);
  bad[3] ^= 0x02; // QERR: not changeable
  const badData = modeSelect6Data(bad);
  const r = await run(luns, [0x15, 0x10, 0, 0, badData.length, 0], { dataOut: badData });
  expectSense(r, 0x05, 0x26, 0x00);
  assert.equal(r.sense![15] & 0x40, 0); // C/D = 0: points into the parameter list
  assert.equal(r.sense!.readUInt16BE(16), 4 + 3);
  // Page length wrong.
  const wrongLen = Buffer.from(cur);
  wrongLen[1] = 0x08;
  const wl = modeSelect6Data(wrongLen.subarray(0, 10));
  expectSense(await run(luns, [0x15, 0x10, 0, 0, wl.length, 0], { dataOut: wl }), 0x05, 0x26, 0x00);
  // Parameter list shorter than the header.
  expectSense(await run(luns, [0x15, 0x10, 0, 0, 2, 0], { dataOut: Buffer.alloc(2) }), 0x05, 0x1a, 0x00);
  // Nothing changed.
  assert.equal(lu.descriptorSense, false);
  // Parameter list length 0: nothing to do.
  assert.equal((await run(luns, [0x15, 0x10, 0, 0, 0, 0], { expected: 0 })).status, ScsiStatus.Good);
});

test('D_SENSE selects descriptor-format sense data; SWP write-protects', async () => {
  const { luns, lu } = await ready();
  // Fixed format first.
  const oob = [0x88, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 1, 0, 0];
  const r1 = await run(luns, oob);
  expectSense(r1, 0x05, 0x21, 0x00);
  assert.equal(r1.sense![0], 0x70);
  const cur = parseMode6((await run(luns, [0x1a, 0x08, 0x0a, 0, 255, 0])).data!).pages.get(0x0a)!;
  const page = Buffer.from(cur);
  page[2] |= 0x04; // D_SENSE
  const d = modeSelect6Data(page);
  assert.equal((await run(luns, [0x15, 0x10, 0, 0, d.length, 0], { dataOut: d })).status, ScsiStatus.Good);
  const r2 = await run(luns, oob);
  expectSense(r2, 0x05, 0x21, 0x00);
  assert.equal(r2.sense![0], 0x72);
  assert.equal(lu.descriptorSense, true);

  // SWP: writes refused with DATA PROTECT, WP shown in the device-specific parameter.
  page[4] |= 0x08;
  const d2 = modeSelect6Data(page);
  assert.equal((await run(luns, [0x15, 0x10, 0, 0, d2.length, 0], { dataOut: d2 })).status, ScsiStatus.Good);
  const wr = await run(luns, [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], { dataOut: Buffer.alloc(512) });
  expectSense(wr, 0x07, 0x27, 0x02);
  assert.equal(parseMode6((await run(luns, [0x1a, 0x08, 0x3f, 0, 255, 0])).data!).dsp & 0x80, 0x80);
  assert.equal((await run(luns, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0])).status, ScsiStatus.Good);
  page[4] &= ~0x08;
  page[2] &= ~0x04;
  const d3 = modeSelect6Data(page);
  assert.equal((await run(luns, [0x15, 0x10, 0, 0, d3.length, 0], { dataOut: d3 })).status, ScsiStatus.Good);
  assert.equal((await run(luns, [0x2a, 0, 0, 0, 0, 0, 0, 0, 1, 0], { dataOut: Buffer.alloc(512) })).status, ScsiStatus.Good);
});

test('MODE SELECT(10) with a block descriptor', async () => {
  const { luns, lu } = await ready();
  const cur = parseMode6((await run(luns, [0x1a, 0x08, 0x08, 0, 255, 0])).data!).pages.get(0x08)!;
  const page = Buffer.from(cur);
  page[2] &= ~0x04;
  const header = Buffer.alloc(8);
  header.writeUInt16BE(8, 6);
  const bd = Buffer.alloc(8);
  bd.writeUInt32BE(512, 4);
  const data = Buffer.concat([header, bd, page]);
  const r = await run(luns, [0x55, 0x10, 0, 0, 0, 0, 0, ...be16(data.length), 0], { dataOut: data });
  assert.equal(r.status, ScsiStatus.Good);
  assert.equal(lu.writeCacheEnabled, false);
  bd.writeUInt32BE(4096, 4); // another block size: refused
  const bad = Buffer.concat([header, bd, page]);
  expectSense(await run(luns, [0x55, 0x10, 0, 0, 0, 0, 0, ...be16(bad.length), 0], { dataOut: bad }), 0x05, 0x26, 0x00);
});

// ---- RESERVE / RELEASE

test('RESERVE(6)/RELEASE(6): conflicts for the other nexus, released by RELEASE', async () => {
  const { luns } = await ready();
  await run(luns, [0x00], { nexus: OTHER });
  assert.equal((await run(luns, [0x16])).status, ScsiStatus.Good);
  assert.equal((await run(luns, [0x16])).status, ScsiStatus.Good); // re-reserve by the holder
  assert.equal((await run(luns, [0x16], { nexus: OTHER })).status, ScsiStatus.ReservationConflict);
  assert.equal((await run(luns, [0x1a, 0, 0x3f, 0, 255, 0], { nexus: OTHER })).status, ScsiStatus.ReservationConflict);
  assert.equal((await run(luns, [0x28, 0, 0, 0, 0, 0, 0, 0, 1, 0], { nexus: OTHER })).status, ScsiStatus.ReservationConflict);
  // INQUIRY, REQUEST SENSE and RELEASE (a no-op for a non-holder) are allowed.
  assert.equal((await run(luns, [0x12, 0, 0, 0, 96, 0], { nexus: OTHER })).status, ScsiStatus.Good);
  assert.equal((await run(luns, [0x03, 0, 0, 0, 18, 0], { nexus: OTHER })).status, ScsiStatus.Good);
  assert.equal((await run(luns, [0x17], { nexus: OTHER })).status, ScsiStatus.Good);
  assert.equal((await run(luns, [0x1a, 0, 0x3f, 0, 255, 0])).status, ScsiStatus.Good); // holder
  assert.equal((await run(luns, [0x17])).status, ScsiStatus.Good);
  assert.equal((await run(luns, [0x56, 0, 0, 0, 0, 0, 0, 0, 0, 0], { nexus: OTHER })).status, ScsiStatus.Good); // RESERVE(10)
  assert.equal((await run(luns, [0x16])).status, ScsiStatus.ReservationConflict);
  assert.equal((await run(luns, [0x57, 0, 0, 0, 0, 0, 0, 0, 0, 0], { nexus: OTHER })).status, ScsiStatus.Good);
  assert.equal((await run(luns, [0x16])).status, ScsiStatus.Good);
  // Third-party reservations are not supported.
  expectSense(await run(luns, [0x16, 0x10]), 0x05, 0x24, 0x00);
});
