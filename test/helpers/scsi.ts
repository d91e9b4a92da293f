// A small harness for SCSI-core tests: a LogicalUnit on a MemoryBackstore wrapped in a
// store that counts calls and can delay or fail them, CDB builders and sense checks.
// Everything goes through executeScsi, as the transport's commands do.

import assert from 'node:assert/strict';
import type { Backstore } from '../../src/backstore/backstore';
import { MemoryBackstore } from '../../src/backstore/memory';
import { executeScsi } from '../../src/scsi/dispatch';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { parseSense } from '../../src/scsi/sense';
import { ScsiStatus, type ItNexus, type ScsiResult, type ScsiTask } from '../../src/scsi/task';

export function nexus(n = 1): ItNexus {
  const isid = `40000137${n.toString(16).padStart(4, '0')}`;
  return {
    id: `iqn.2026-01.test:init,i,0x${isid}`,
    initiatorName: 'iqn.2026-01.test:init',
    isid,
    targetName: 'iqn.2026-01.test:target',
    relativePortId: 1,
  };
}

export const NEXUS = nexus(1);

/** Wraps a store: counts calls, can delay or fail them, can hold writes until released. */
export class TestStore implements Backstore {
  flushes = 0;
  writes = 0;
  reads = 0;
  unmaps = 0;
  failRead: string | null = null;
  failWrite: string | null = null;
  failUnmap: string | null = null;
  failFlush: string | null = null;
  delayWrite = 0;
  delayRead = 0;
  log: string[] = [];
  constructor(readonly inner: MemoryBackstore) {}
  get path() {
    return this.inner.path;
  }
  get size() {
    return this.inner.size;
  }
  get readonly() {
    return this.inner.readonly;
  }
  async read(buf: Buffer, offset: number): Promise<void> {
    this.reads++;
    if (this.delayRead) await sleep(this.delayRead);
    if (this.failRead) throw errno(this.failRead);
    await this.inner.read(buf, offset);
    this.log.push(`read ${offset}`);
  }
  async write(buf: Buffer, offset: number): Promise<void> {
    this.writes++;
    this.log.push(`write-start ${offset}`);
    if (this.delayWrite) await sleep(this.delayWrite);
    if (this.failWrite) throw errno(this.failWrite);
    await this.inner.write(buf, offset);
    this.log.push(`write ${offset}`);
  }
  async unmap(offset: number, length: number): Promise<void> {
    this.unmaps++;
    if (this.failUnmap) throw errno(this.failUnmap);
    await this.inner.unmap(offset, length);
    this.log.push(`unmap ${offset} ${length}`);
  }
  mapStatus(offset: number, length: number) {
    return this.inner.mapStatus(offset, length);
  }
  async flush(): Promise<void> {
    this.flushes++;
    if (this.failFlush) throw errno(this.failFlush);
    this.log.push('flush');
  }
  async close(): Promise<void> {
    await this.inner.close();
  }
}

export function errno(code: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: simulated`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function setup(opts: { blockSize?: 512 | 4096; physicalBlockSize?: 512 | 4096; readonly?: boolean; blocks?: number } = {}) {
  const bs = opts.blockSize ?? 512;
  const blocks = opts.blocks ?? 4096;
  const store = new TestStore(new MemoryBackstore(blocks * bs));
  const lu = new LogicalUnit({
    name: 'vol0',
    backstore: store,
    blockSize: bs,
    physicalBlockSize: opts.physicalBlockSize,
    readonly: opts.readonly ?? false,
  });
  lu.sanitize.bytesPerSecond = 0; // no pacing in tests
  const luns = new Map([[0, lu]]) as ReadonlyMap<number, LogicalUnit>;
  const first = await run(luns, [0x00]); // consume the power-on unit attention
  assert.equal(first.status, ScsiStatus.CheckCondition);
  return { lu, store, luns, bs, blocks };
}

/** A task on LUN 0 (its LUN map is set by executeOn). */
export function task(cdb: number[], opts: { expected?: number; dataOut?: Buffer | null; attr?: number; nexus?: ItNexus } = {}): ScsiTask {
  const b = Buffer.alloc(16);
  Buffer.from(cdb).copy(b);
  return {
    cdb: b,
    lun: 0,
    nexus: opts.nexus ?? NEXUS,
    luns: NO_LUNS,
    expectedLength: opts.expected ?? opts.dataOut?.length ?? 1 << 24,
    dataOut: opts.dataOut ?? null,
    attr: opts.attr ?? 1,
    aborted: false,
  };
}

const NO_LUNS: ReadonlyMap<number, LogicalUnit> = new Map();

/**
 * Run `t` as sent on an I_T nexus whose LUN map is `luns` (set on the task itself, so a
 * test that sets t.aborted later still reaches the running task).
 */
export function executeOn(luns: ReadonlyMap<number, LogicalUnit>, t: ScsiTask): Promise<ScsiResult> {
  (t as { luns: ReadonlyMap<number, LogicalUnit> }).luns = luns;
  return executeScsi(t);
}

export function run(luns: ReadonlyMap<number, LogicalUnit>, cdb: number[], opts: Parameters<typeof task>[1] = {}): Promise<ScsiResult> {
  return executeOn(luns, task(cdb, opts));
}

export function expectGood(r: ScsiResult): void {
  if (r.status !== ScsiStatus.Good) {
    assert.fail(`expected GOOD, got status ${r.status} ${r.sense ? JSON.stringify(parseSense(r.sense)) : ''}`);
  }
}

export function expectSense(r: ScsiResult, key: number, asc: number, ascq: number): void {
  assert.equal(r.status, ScsiStatus.CheckCondition, 'expected CHECK CONDITION');
  const s = parseSense(r.sense!);
  assert.deepEqual([s.key, s.asc, s.ascq], [key, asc, ascq]);
}

export const be16 = (n: number) => [(n >> 8) & 0xff, n & 0xff];
export const be32 = (n: number) => [(n >>> 24) & 0xff, (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff];
export const be64 = (n: bigint | number) => {
  const v = BigInt.asUintN(64, BigInt(n));
  return [...be32(Number(v >> 32n)), ...be32(Number(BigInt.asUintN(32, v)))];
};

export function pattern(len: number, seed: number): Buffer {
  const b = Buffer.alloc(len);
  for (let i = 0; i < len; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

/** A PERSISTENT RESERVE OUT basic parameter list (24 bytes): the key, the service action key, byte 20's flags. */
export function prOutParams(key: bigint, sark: bigint, o: { specIPt?: boolean; allTgPt?: boolean; aptpl?: boolean } = {}): Buffer {
  const p = Buffer.alloc(24);
  p.writeBigUInt64BE(key, 0);
  p.writeBigUInt64BE(sark, 8);
  p[20] = (o.specIPt ? 0x08 : 0) | (o.allTgPt ? 0x04 : 0) | (o.aptpl ? 0x01 : 0);
  return p;
}

/** CDBs by command. */
export const CDB = {
  read6: (lba: number, n: number) => [0x08, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, n & 0xff, 0],
  write6: (lba: number, n: number) => [0x0a, (lba >> 16) & 0x1f, (lba >> 8) & 0xff, lba & 0xff, n & 0xff, 0],
  read10: (lba: number, n: number, b1 = 0) => [0x28, b1, ...be32(lba), 0, ...be16(n), 0],
  write10: (lba: number, n: number, b1 = 0) => [0x2a, b1, ...be32(lba), 0, ...be16(n), 0],
  read12: (lba: number, n: number, b1 = 0) => [0xa8, b1, ...be32(lba), ...be32(n), 0, 0],
  write12: (lba: number, n: number, b1 = 0) => [0xaa, b1, ...be32(lba), ...be32(n), 0, 0],
  read16: (lba: bigint | number, n: number, b1 = 0) => [0x88, b1, ...be64(lba), ...be32(n), 0, 0],
  write16: (lba: bigint | number, n: number, b1 = 0) => [0x8a, b1, ...be64(lba), ...be32(n), 0, 0],
  /** UNMAP with a parameter list length. */
  unmap: (len: number, b1 = 0) => [0x42, b1, 0, 0, 0, 0, 0, ...be16(len), 0],
  getLbaStatus: (lba: bigint | number, alloc: number) => [0x9e, 0x12, ...be64(lba), ...be32(alloc), 0, 0],
  writeSame10: (lba: number, n: number, b1 = 0) => [0x41, b1, ...be32(lba), 0, ...be16(n), 0],
  writeSame16: (lba: bigint | number, n: number, b1 = 0) => [0x93, b1, ...be64(lba), ...be32(n), 0, 0],
  writeAtomic16: (lba: bigint | number, n: number, b1 = 0, boundary = 0) => [0x9c, b1, ...be64(lba), ...be16(boundary), ...be16(n), 0, 0],
  sanitize: (sa: number, len: number, opts: { immed?: boolean; ause?: boolean } = {}) => [
    0x48,
    (opts.immed ? 0x80 : 0) | (opts.ause ? 0x20 : 0) | sa,
    0,
    0,
    0,
    0,
    0,
    ...be16(len),
    0,
  ],
};

/** An UNMAP parameter list for [lba, blocks] descriptors. */
export function unmapList(descs: Array<[number | bigint, number]>): Buffer {
  const b = Buffer.alloc(8 + 16 * descs.length);
  b.writeUInt16BE(b.length - 2, 0);
  b.writeUInt16BE(16 * descs.length, 2);
  descs.forEach(([lba, n], i) => {
    b.writeBigUInt64BE(BigInt.asUintN(64, BigInt(lba)), 8 + 16 * i);
    b.writeUInt32BE(n, 16 + 16 * i);
  });
  return b;
}

/** GET LBA STATUS descriptors as [lba, blocks, status]. */
export function lbaStatus(r: ScsiResult): Array<[number, number, number]> {
  const d = r.data!;
  const n = (d.readUInt32BE(0) - 4) / 16;
  const out: Array<[number, number, number]> = [];
  for (let i = 0; i < n && 8 + 16 * i + 16 <= d.length; i++) {
    const at = 8 + 16 * i;
    out.push([Number(d.readBigUInt64BE(at)), d.readUInt32BE(at + 8), d[at + 12] & 0x0f]);
  }
  return out;
}

/** An EXTENDED COPY CSCD identification descriptor (E4h) naming `lu` by its NAA designator, as libiscsi builds it. */
export function cscd(lu: { naa: Buffer; blockSize: number }, opts: { type?: number; byte1?: number; blockSize?: number } = {}): Buffer {
  const d = Buffer.alloc(32);
  d[0] = opts.type ?? 0xe4;
  d[1] = opts.byte1 ?? 0;
  d[4] = 0x01; // binary
  d[5] = 0x03; // association LU, NAA
  d[7] = lu.naa.length;
  lu.naa.copy(d, 8);
  d.writeUIntBE(opts.blockSize ?? lu.blockSize, 29, 3);
  return d;
}

/** An EXTENDED COPY block-to-block segment descriptor (02h). */
export function b2b(src: number, dst: number, blocks: number, srcLba: number | bigint, dstLba: number | bigint, dc = false) {
  const d = Buffer.alloc(28);
  d[0] = 0x02;
  d[1] = dc ? 0x02 : 0;
  d.writeUInt16BE(0x18, 2);
  d.writeUInt16BE(src, 4);
  d.writeUInt16BE(dst, 6);
  d.writeUInt16BE(blocks, 10);
  d.writeBigUInt64BE(BigInt(srcLba), 12);
  d.writeBigUInt64BE(BigInt(dstLba), 20);
  return d;
}

/** An EXTENDED COPY (LID1) parameter list: header, CSCD descriptors, segment descriptors. */
export function paramList(cscds: Buffer[], segs: Buffer[], opts: { listId?: number; usage?: number } = {}): Buffer {
  const h = Buffer.alloc(16);
  const c = Buffer.concat(cscds);
  const s = Buffer.concat(segs);
  h[0] = opts.listId ?? 1;
  h[1] = (opts.usage ?? 0x02) << 3;
  h.writeUInt16BE(c.length, 2);
  h.writeUInt32BE(s.length, 8);
  return Buffer.concat([h, c, s]);
}
