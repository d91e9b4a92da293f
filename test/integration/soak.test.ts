// A short soak (tools/soak.ts) against the real daemon: 32 sessions of mixed I/O, every
// read checked against each session's model of its region, for ~15 s. Zero errors, a
// clean SIGTERM exit, and RSS that does not climb. The long run is
// `npm run soak -- --sessions 32 --minutes 10`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runSoak } from '../../tools/soak';

test('soak: 32 sessions of verified mixed I/O, no errors, RSS flat', { timeout: 120000 }, async () => {
  const r = await runSoak({ sessions: 32, seconds: Number(process.env.SOAK_SECONDS ?? 15), sampleEverySeconds: 3 });
  assert.deepEqual(r.errors, []);
  assert.equal(r.exitCode, 0);
  assert.ok(r.ops.writes > 100 && r.ops.reads > 100, JSON.stringify(r.ops));
  const rss = r.rssMiB.samples.map(([, m]) => m);
  const firstHalfPeak = Math.max(...rss.slice(0, Math.max(1, Math.floor(rss.length / 2))));
  assert.ok(r.rssMiB.end - firstHalfPeak < 64, `RSS climbs: ${rss.join(' ')} MiB`);
});
