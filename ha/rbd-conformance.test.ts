// libiscsi's iscsi-test-cu against RBD volumes: the conformance run of
// test/interop/conformance.ts (its runner, its passes) with LUN 0 and the 512e LUN 2 as RBD
// images instead of files. Every test must pass or skip: 0 failures, no crash, no hang.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { requireTools } from '../test/helpers/daemon';
import { report, runConformance, THIN_SIZE } from '../test/interop/conformance';
import { cephConf, newImageName, removeImages } from './cluster';

const images: string[] = [];
let conf = '';

after(() => {
  if (conf) removeImages(conf, images);
});

test('iscsi-test-cu on RBD volumes: 0 failures, no crash, no hang', { timeout: 20 * 60_000 }, async (t) => {
  // Missing tools fail here too: this file only runs under npm run test:ha.
  const missing = requireTools(['iscsi-test-cu', 'iscsi-inq']);
  assert.equal(missing, undefined);
  conf = cephConf();
  const thin = newImageName('cu-thin');
  const thin512e = newImageName('cu-512e');
  images.push(thin, thin512e);
  const lines: string[] = [];
  const r = await runConformance({
    log: (s) => lines.push(s),
    resultsDir: path.join(os.tmpdir(), `iscsi-conformance-rbd-${process.pid}`),
    volumes: {
      topLevel: `ceph: { conf: ${conf} }`,
      thin: `{ rbd: rbd/${thin}, size: ${THIN_SIZE} }`,
      thin512e: `{ rbd: rbd/${thin512e}, size: ${THIN_SIZE}, physicalBlockSize: 4096 }`,
    },
  });
  report(r, { log: (s) => lines.push(s) });
  for (const l of lines) t.diagnostic(l);
  t.diagnostic(
    `RBD conformance: ${r.totals.pass} pass, ${r.totals.skip} skip, ${r.totals.fail} fail in ${Math.round(r.durationMs / 1000)} s`,
  );
  assert.deepEqual(r.problems, [], `the run had problems (logs in ${r.resultsDir}):\n${r.problems.join('\n')}`);
  assert.ok(r.totals.tests >= 230, `only ${r.totals.tests} tests seen; iscsi-test-cu 1.19 -l lists 230`);
  const failed = [...r.results.values()].filter((x) => x.verdict === 'FAIL').map((x) => `${x.name}: ${x.reason ?? ''}`);
  assert.deepEqual(failed, [], 'tests that failed on RBD volumes');
  assert.deepEqual(
    r.comparison.regressions.map((x) => `${x.name}: ${x.now} (${x.reason ?? ''})`),
    [],
    'tests that pass on file volumes (conformance-expected.txt) but not on RBD',
  );
  // Kept for a look when the run fails; removed when it passed.
  fs.rmSync(r.resultsDir, { recursive: true, force: true });
});
