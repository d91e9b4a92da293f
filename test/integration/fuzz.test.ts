// A short pass of the network fuzzer (tools/fuzz.ts) against the real daemon: mutated
// PDUs from recorded sessions for ~20 s, a health check (fresh login, write, read back)
// after every batch, no crash, and RSS that levels off rather than climbing.
// The long run is `npm run fuzz -- --pdus 1000000`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runFuzz } from '../../tools/fuzz';

test('network fuzzing: no crash, the target keeps serving, memory levels off', { timeout: 120000 }, async () => {
  const seconds = Number(process.env.FUZZ_SECONDS ?? 20);
  const r = await runFuzz({ pdus: Infinity, seconds, batch: 20000, seed: Number(process.env.FUZZ_SEED ?? 1) });
  const { samples, ...rss } = r.rssMiB;
  const summary = JSON.stringify({ ...r, rssMiB: rss, daemonOutputTail: undefined });
  assert.equal(r.crashes, 0, `daemon crashed: ${r.daemonOutputTail}`);
  assert.deepEqual(r.healthFailures, [], summary);
  assert.ok(r.pdus >= 20000, `enough PDUs sent: ${summary}`);
  assert.ok(r.batches >= 2, summary);
  assert.ok(r.closedByTarget > 0 && r.receivedBytes > 0, 'the input reached the target and it answered');
  // Level off: the second half of the run may not climb far above the first half's peak.
  const half = Math.floor(samples.length / 2);
  const firstPeak = Math.max(...samples.slice(1, Math.max(2, half + 1)));
  const secondPeak = Math.max(...samples.slice(half + 1));
  assert.ok(secondPeak - firstPeak < 64, `RSS climbs: ${samples.join(' ')} MiB`);
});
