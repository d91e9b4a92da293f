// The process-wide data budgets: room is granted in arrival order, one command always
// fits when nothing is held, forced data counts, and cancelled waiters are skipped.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DataBudget } from '../../src/iscsi/data-budget';

test('takes while there is room, then queues and grants in arrival order as room comes back', () => {
  const b = new DataBudget(100);
  assert.equal(b.tryTake(60), true);
  assert.equal(b.tryTake(60), false, 'over the limit');
  const granted: string[] = [];
  b.wait(60, () => granted.push('a'));
  b.wait(30, () => granted.push('b'));
  assert.equal(b.tryTake(10), false, 'nobody jumps the queue, even when it would fit');
  b.give(60);
  assert.deepEqual(granted, ['a', 'b']);
  assert.equal(b.inUse, 90);
  assert.equal(b.waiting, 0);
});

test('one request larger than the whole budget is admitted when nothing else is held', () => {
  const b = new DataBudget(100);
  assert.equal(b.tryTake(500), true);
  assert.equal(b.tryTake(1), false);
  let granted = false;
  b.wait(300, () => (granted = true));
  b.give(500);
  assert.equal(granted, true);
  assert.equal(b.inUse, 300);
});

test('forced bytes count against the budget; cancelled waiters are skipped', () => {
  const b = new DataBudget(100);
  b.force(90);
  const order: string[] = [];
  const w = b.wait(50, () => order.push('cancelled one'));
  b.wait(50, () => order.push('second'));
  b.cancel(w);
  assert.deepEqual(order, [], 'still no room');
  b.give(90);
  assert.deepEqual(order, ['second']);
  assert.equal(b.inUse, 50);
});
