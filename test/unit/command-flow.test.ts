// CommandFlow (src/iscsi/command-flow.ts) without sockets: SCSI Command and Data-Out PDUs
// go in, the PDUs it would send are recorded. R2T windows, immediate and unsolicited data,
// out-of-order and overlapping Data-Out, aborts while receiving, and waits for the shared
// write and read budgets.

import { test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import pino from 'pino';
import { MemoryBackstore } from '../../src/backstore/memory';
import { CommandFlow, type FlowSink } from '../../src/iscsi/command-flow';
import { readBudget, writeBudget } from '../../src/iscsi/data-budget';
import { defaultParams, type SessionParams } from '../../src/iscsi/negotiation';
import { letGo, type Sent } from '../../src/iscsi/pdu-channel';
import {
  Op,
  RESERVED_TAG,
  type DataIn,
  type R2T,
  type Reject,
  type ScsiCommand,
  type ScsiResponse,
  type TargetPdu,
} from '../../src/iscsi/pdu/messages';
import { Session } from '../../src/iscsi/session';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { CDB, nexus } from '../helpers/scsi';
import { dataOut as dataOutPdu, scsiCommand } from '../helpers/pdu';

const BS = 512;
let units = 0;

/** A flow over one memory LU, with the given negotiated parameters, and what it sent. */
function setup(params: Partial<SessionParams> = {}) {
  const lu = new LogicalUnit({ name: `flow-${++units}`, backstore: new MemoryBackstore(4096 * BS), blockSize: BS, readonly: false });
  lu.takeUnitAttention(nexus(1)); // the power-on unit attention, out of the way
  const p: SessionParams = { ...defaultParams(), maxSendDataSegmentLength: 8192, maxRecvDataSegmentLength: 8192, ...params };
  const session = new Session(
    1,
    Buffer.alloc(6),
    0,
    'iqn.2026-12.test:flow',
    'Normal',
    'iqn.2026-12.test:t',
    p,
    nexus(1),
    new Map([[0, lu]]),
    1,
    32,
  );
  const sent: TargetPdu[] = [];
  let statSN = 0;
  let ttt = 0x100;
  const sink: FlowSink = {
    log: pino({ level: 'silent' }),
    send: (pdu) => {
      sent.push(pdu);
      return true;
    },
    afterWrite: (s: Sent, readBytes: number) => {
      letGo(s);
      if (readBytes > 0) readBudget.give(readBytes);
    },
    cork: () => undefined,
    uncork: () => undefined,
    reject: (bhs, reason) => sent.push({ op: Op.Reject, reason, statSN: 0, expCmdSN: 0, maxCmdSN: 0, dataSN: 0, data: bhs }),
    takeStatSN: () => statSN++,
    peekStatSN: () => statSN,
    allocTtt: () => ttt++,
    gone: false,
    fault: (err) => {
      throw err;
    },
  };
  const flow = new CommandFlow(session, sink, { maxImmediateCommands: 16, connectionBufferBytes: 64 * 1024 * 1024 });
  return { lu, session, flow, sent };
}

let cmdSN = 1;
function command(cdb: number[], o: { itt: number; write?: number; read?: number; data?: Buffer; final?: boolean }): ScsiCommand {
  const c = Buffer.alloc(16);
  Buffer.from(cdb).copy(c);
  return scsiCommand({
    final: o.final ?? true,
    read: (o.read ?? 0) > 0,
    write: (o.write ?? 0) > 0,
    itt: o.itt,
    expectedDataLength: o.write ?? o.read ?? 0,
    cmdSN: cmdSN++,
    cdb: c,
    data: o.data ?? Buffer.alloc(0),
  });
}
const { write10, read10 } = CDB;

function dataOut(flow: CommandFlow, itt: number, ttt: number, offset: number, data: Buffer, dataSN: number, final: boolean): void {
  flow.onDataOut(dataOutPdu({ final, itt, ttt, dataSN, bufferOffset: offset, data }), Buffer.alloc(48));
}

const r2ts = (sent: TargetPdu[]) => sent.filter((p): p is R2T => p.op === Op.R2T);
const responses = (sent: TargetPdu[]) => sent.filter((p): p is ScsiResponse => p.op === Op.ScsiResponse);
const rejects = (sent: TargetPdu[]) => sent.filter((p): p is Reject => p.op === Op.Reject);

async function blocks(lu: LogicalUnit, lba: number, n: number): Promise<Buffer> {
  const b = Buffer.alloc(n * BS);
  await lu.backstore.read(b, lba * BS);
  return b;
}

function fill(len: number, seed: number): Buffer {
  return Buffer.from(Array.from({ length: len }, (_, i) => (i * 7 + seed) & 0xff || 1));
}

beforeEach(() => {
  // Each test starts with both shared budgets free.
  assert.equal(writeBudget.inUse, 0, 'the write budget is all back');
  assert.equal(readBudget.inUse, 0, 'the read budget is all back');
});

test('R2Ts: at most MaxOutstandingR2T at once, each MaxBurstLength, the next as each completes', async () => {
  const { lu, flow, session, sent } = setup({ maxBurstLength: 8192, maxOutstandingR2T: 2, initialR2T: true });
  const data = fill(32768, 3);
  flow.onCommand(command(write10(0, 64), { itt: 1, write: 32768 }), Buffer.alloc(48));
  assert.deepEqual(
    r2ts(sent).map((r) => [r.bufferOffset, r.desiredLength, r.r2tSN]),
    [
      [0, 8192, 0],
      [8192, 8192, 1],
    ],
  );
  const [a, b] = r2ts(sent);
  dataOut(flow, 1, a.ttt, 0, data.subarray(0, 8192), 0, true);
  assert.deepEqual(
    r2ts(sent).map((r) => r.bufferOffset),
    [0, 8192, 16384],
    'the third R2T once the first is answered',
  );
  dataOut(flow, 1, b.ttt, 8192, data.subarray(8192, 16384), 0, true);
  const c = r2ts(sent)[2];
  const d = r2ts(sent)[3];
  assert.equal(d.bufferOffset, 24576);
  dataOut(flow, 1, c.ttt, 16384, data.subarray(16384, 24576), 0, true);
  dataOut(flow, 1, d.ttt, 24576, data.subarray(24576, 28672), 0, false);
  assert.equal(responses(sent).length, 0, 'no status before the last byte');
  dataOut(flow, 1, d.ttt, 28672, data.subarray(28672), 1, true);
  assert.deepEqual(
    responses(sent).map((r) => r.status),
    [0],
  );
  assert.ok((await blocks(lu, 0, 64)).equals(data));
  assert.equal(session.tasks.size, 0);
  assert.equal(session.inFlight, 0);
  assert.deepEqual(flow.usage, { bytes: 0, commands: 0, immediate: 0 });
});

test('immediate data, then unsolicited Data-Out up to FirstBurstLength, then R2Ts for the rest', async () => {
  const { lu, flow, sent } = setup({ initialR2T: false, immediateData: true, firstBurstLength: 4096, maxBurstLength: 65536 });
  const data = fill(16384, 5);
  flow.onCommand(command(write10(10, 32), { itt: 2, write: 16384, data: data.subarray(0, 1024), final: false }), Buffer.alloc(48));
  assert.deepEqual(
    r2ts(sent).map((r) => [r.bufferOffset, r.desiredLength]),
    [[4096, 12288]],
    'the R2T starts after the first burst',
  );
  dataOut(flow, 2, RESERVED_TAG, 1024, data.subarray(1024, 4096), 0, true);
  dataOut(flow, 2, r2ts(sent)[0].ttt, 4096, data.subarray(4096), 0, true);
  assert.deepEqual(
    responses(sent).map((r) => r.status),
    [0],
  );
  assert.ok((await blocks(lu, 10, 32)).equals(data));
});

test('Data-Out out of order (the second R2T answered first) or overlapping: Reject, CHECK CONDITION, nothing written', async () => {
  for (const shape of ['out-of-order', 'overlapping'] as const) {
    const { lu, flow, session, sent } = setup({ maxBurstLength: 8192, maxOutstandingR2T: 2 });
    flow.onCommand(command(write10(0, 32), { itt: 3, write: 16384 }), Buffer.alloc(48));
    const [a, b] = r2ts(sent);
    if (shape === 'out-of-order') {
      dataOut(flow, 3, b.ttt, 8192, fill(8192, 1), 0, true);
    } else {
      dataOut(flow, 3, a.ttt, 0, fill(4096, 1), 0, false);
      dataOut(flow, 3, a.ttt, 2048, fill(6144, 1), 1, true);
    }
    assert.deepEqual(
      rejects(sent).map((r) => r.reason),
      [0x04],
      shape,
    );
    const res = responses(sent);
    assert.equal(res.length, 1);
    assert.equal(res[0].status, 0x02);
    assert.deepEqual(
      [res[0].sense![2] & 0x0f, res[0].sense![12], res[0].sense![13]],
      [0x0b, 0x4b, 0x00],
      'ABORTED COMMAND, DATA PHASE ERROR',
    );
    // Whatever follows for the task is discarded.
    dataOut(flow, 3, a.ttt, 0, fill(8192, 2), 0, true);
    assert.equal(responses(sent).length, 1);
    assert.ok((await blocks(lu, 0, 32)).equals(Buffer.alloc(16384)), `${shape}: nothing was written`);
    assert.equal(session.tasks.size, 0);
    assert.equal(session.inFlight, 0, 'the window slot is free');
  }
});

test('an abort while receiving retires the command at once: no response, no write, budgets back', async () => {
  const { lu, flow, session, sent } = setup({ maxBurstLength: 65536 });
  flow.onCommand(command(write10(0, 128), { itt: 4, write: 65536 }), Buffer.alloc(48));
  const r2t = r2ts(sent)[0];
  dataOut(flow, 4, r2t.ttt, 0, fill(8192, 9), 0, false);
  assert.equal(writeBudget.inUse, 65536, 'the WRITE holds its buffer in the write budget');
  const cmd = session.tasks.get(4)!;
  await flow.abort(cmd);
  assert.equal(session.tasks.size, 0);
  assert.equal(session.inFlight, 0);
  assert.equal(writeBudget.inUse, 0);
  assert.deepEqual(flow.usage, { bytes: 0, commands: 0, immediate: 0 });
  dataOut(flow, 4, r2t.ttt, 8192, fill(57344, 9), 1, true);
  assert.equal(responses(sent).length, 0, 'an aborted task gets no response');
  assert.ok((await blocks(lu, 0, 128)).equals(Buffer.alloc(65536)));
});

test('a WRITE beyond the write budget waits for room before its R2T; a READ beyond the read budget waits to run', async () => {
  const { lu, flow, sent } = setup({ maxBurstLength: 65536 });
  const saved = { w: writeBudget.limit, r: readBudget.limit };
  writeBudget.limit = 16384;
  readBudget.limit = 16384;
  try {
    writeBudget.force(16384);
    flow.onCommand(command(write10(0, 16), { itt: 5, write: 8192 }), Buffer.alloc(48));
    assert.equal(r2ts(sent).length, 0, 'no R2T while the budget is full');
    writeBudget.give(16384);
    assert.equal(r2ts(sent).length, 1, 'the R2T once there is room');
    const data = fill(8192, 4);
    dataOut(flow, 5, r2ts(sent)[0].ttt, 0, data, 0, true);
    assert.ok((await blocks(lu, 0, 16)).equals(data));

    readBudget.force(16384);
    flow.onCommand(command(read10(0, 16), { itt: 6, read: 8192 }), Buffer.alloc(48));
    assert.equal(sent.filter((p) => p.op === Op.DataIn).length, 0, 'the READ waits');
    readBudget.give(16384);
    const din = sent.filter((p): p is DataIn => p.op === Op.DataIn && p.itt === 6);
    assert.equal(din.length, 1);
    assert.ok(din[0].data.equals(data) && din[0].hasStatus);
  } finally {
    writeBudget.limit = saved.w;
    readBudget.limit = saved.r;
  }
});

test('connectionLost gives back what waiting commands hold and marks running ones aborted', () => {
  const { flow, session, sent } = setup({ maxBurstLength: 65536 });
  flow.onCommand(command(write10(0, 16), { itt: 7, write: 8192 }), Buffer.alloc(48));
  assert.equal(r2ts(sent).length, 1);
  assert.equal(writeBudget.inUse, 8192);
  flow.connectionLost();
  assert.equal(writeBudget.inUse, 0);
  assert.equal(session.tasks.size, 0);
  assert.equal(session.inFlight, 0);
});
