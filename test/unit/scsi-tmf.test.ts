// Task management semantics in the SCSI core (src/scsi/task-management.ts), with a scope
// that records what the transport is asked to do: which tasks, which LUs, which resets.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryBackstore } from '../../src/backstore/memory';
import { LogicalUnit } from '../../src/scsi/logical-unit';
import { performTmf, TmfFunction, TmfResponse, type TmfScope } from '../../src/scsi/task-management';
import { executeOn, nexus, task } from '../helpers/scsi';

function unit(name: string): LogicalUnit {
  return new LogicalUnit({ name, backstore: new MemoryBackstore(1024 * 512), blockSize: 512, readonly: false });
}

/** A scope over `luns` whose calls are logged; task tag 7 exists on LUN 0. */
function scope(luns: Map<number, LogicalUnit>, mayResetTarget: boolean) {
  const calls: string[] = [];
  const s: TmfScope = {
    nexus: nexus(1),
    luns,
    mayResetTarget,
    abortTask: async (tag, lun) => {
      calls.push(`abortTask ${tag} ${lun}`);
      return tag === 7 && lun === 0;
    },
    abortOwnTasks: async (lun) => void calls.push(`abortOwnTasks ${lun}`),
    abortAllTasks: async (lus) => void calls.push(`abortAllTasks ${[...lus].map((l) => l.name).join(',')}`),
    endInitiatorSessions: () => void calls.push('endInitiatorSessions'),
    refused: (why) => void calls.push(`refused: ${why}`),
  };
  return { s, calls };
}

const TUR = [0x00];

async function uaOf(lu: LogicalUnit, n = nexus(1)): Promise<string> {
  const r = await executeOn(new Map([[0, lu]]), task(TUR, { nexus: n }));
  if (r.status === 0) return 'none';
  const s = r.sense!;
  return `${s[12].toString(16)}/${s[13].toString(16)}`;
}

test("a LUN outside the issuer's map does not exist for every LUN-addressed function", async () => {
  const { s, calls } = scope(new Map([[0, unit('tmf-a')]]), true);
  for (const fn of [TmfFunction.AbortTask, TmfFunction.AbortTaskSet, TmfFunction.ClearTaskSet, TmfFunction.LogicalUnitReset]) {
    assert.equal(await performTmf(fn, 3, 7, s), TmfResponse.LunDoesNotExist, `function ${fn}`);
  }
  assert.deepEqual(calls, [], 'nothing was asked of the transport');
});

test("ABORT TASK and ABORT TASK SET reach only the issuer's own tasks", async () => {
  const { s, calls } = scope(new Map([[0, unit('tmf-b')]]), false);
  assert.equal(await performTmf(TmfFunction.AbortTask, 0, 7, s), TmfResponse.Complete);
  assert.equal(await performTmf(TmfFunction.AbortTask, 0, 8, s), TmfResponse.TaskDoesNotExist);
  assert.equal(await performTmf(TmfFunction.AbortTaskSet, 0, 0, s), TmfResponse.Complete);
  assert.deepEqual(calls, ['abortTask 7 0', 'abortTask 8 0', 'abortOwnTasks 0']);
});

test('CLEAR TASK SET clears one LU; LOGICAL UNIT RESET also resets it (29/03), and nothing else', async () => {
  const a = unit('tmf-c');
  const other = unit('tmf-d');
  for (const lu of [a, other]) await uaOf(lu); // the power-on unit attentions
  const { s, calls } = scope(new Map([[0, a]]), false);
  assert.equal(await performTmf(TmfFunction.ClearTaskSet, 0, 0, s), TmfResponse.Complete);
  assert.equal(await uaOf(a), 'none');
  assert.equal(await performTmf(TmfFunction.LogicalUnitReset, 0, 0, s), TmfResponse.Complete);
  assert.deepEqual(calls, ['abortAllTasks tmf-c', 'abortAllTasks tmf-c']);
  assert.equal(await uaOf(a), '29/3');
  assert.equal(await uaOf(other), 'none', 'an LU outside the map is not reset');
});

test("target resets: refused without allowTargetReset; allowed, they reset only the issuer's LUs", async () => {
  const a = unit('tmf-e');
  const b = unit('tmf-f');
  const other = unit('tmf-g');
  for (const lu of [a, b, other]) await uaOf(lu);
  const refused = scope(
    new Map([
      [0, a],
      [1, b],
    ]),
    false,
  );
  for (const fn of [TmfFunction.TargetWarmReset, TmfFunction.TargetColdReset]) {
    assert.equal(await performTmf(fn, 0, 0, refused.s), TmfResponse.AuthorizationFailed);
  }
  assert.equal(refused.calls.length, 2);
  assert.match(refused.calls[0], /^refused: /);
  for (const lu of [a, b]) assert.equal(await uaOf(lu), 'none', 'a refused reset resets nothing');

  const allowed = scope(
    new Map([
      [0, a],
      [1, b],
    ]),
    true,
  );
  assert.equal(await performTmf(TmfFunction.TargetWarmReset, 0, 0, allowed.s), TmfResponse.Complete);
  for (const lu of [a, b]) assert.equal(await uaOf(lu), '29/0');
  assert.equal(await performTmf(TmfFunction.TargetColdReset, 0, 0, allowed.s), TmfResponse.Complete);
  for (const lu of [a, b]) assert.equal(await uaOf(lu), '29/1');
  assert.equal(await uaOf(other), 'none');
  assert.deepEqual(allowed.calls, ['abortAllTasks tmf-e,tmf-f', 'abortAllTasks tmf-e,tmf-f', 'endInitiatorSessions']);
});

test('CLEAR ACA, TASK REASSIGN and unknown functions are not supported', async () => {
  const { s, calls } = scope(new Map([[0, unit('tmf-h')]]), true);
  assert.equal(await performTmf(TmfFunction.ClearAca, 0, 0, s), TmfResponse.NotSupported);
  assert.equal(await performTmf(TmfFunction.TaskReassign, 0, 7, s), TmfResponse.ReassignmentNotSupported);
  assert.equal(await performTmf(9, 0, 0, s), TmfResponse.NotSupported);
  assert.equal(await performTmf(0x7f, 0, 0, s), TmfResponse.NotSupported);
  assert.deepEqual(calls, []);
});
