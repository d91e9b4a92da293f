// libiscsi's iscsi-test-cu against the real daemon (the same run as `npm run test:conformance`):
// no test that test/interop/conformance-expected.txt lists as PASS may stop passing, and the
// target must neither crash nor hang. Takes about two and a half minutes (Sanitize.Reset alone
// polls for 60 s).
//
// Outside CI, SKIP_CONFORMANCE=1 skips the run (CI always runs it); a missing iscsi-test-cu
// skips it outside CI and fails in CI. The parser tests below need no tools.

import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { requireTools } from '../helpers/daemon';
import { compare, parseCuOutput, planPasses, report, runConformance, testList, type Verdict } from './conformance';

// Shaped like iscsi-test-cu 1.19's CUnit verbose output (suite set-up chatter included).
const SAMPLE = [
  '',
  'Suite: Inquiry',
  '  Test: Standard ...passed',
  '  Test: BlockLimits ...    [SKIPPED] Logical unit is fully provisioned. Skipping test',
  'passed    [SKIPPED] PERSISTENT RESERVE IN is not implemented.',
  '    [SKIPPED] PERSISTENT RESERVE IN is not implemented.',
  '',
  'Suite: Reserve6',
  '  Test: Simple ...passed',
  '  Test: ITNexusLoss ...    [FAILED] RESERVE6 command: failed with sense. RESERVATION CONFLICT',
  '    [FAILED] READ10 command failed with status 24 / sense key NO SENSE(0x00) / ASCQ (null)(0x0000)',
  'FAILED',
  '    1. test_reserve6_itnexus_loss.c:46  - CU_ASSERT_EQUAL(_r,0)',
  '    2. test_reserve6_itnexus_loss.c:72  - CU_ASSERT_EQUAL(_r,0)    [SKIPPED] PERSISTENT RESERVE IN is not implemented.',
  '  Test: LUNReset ...passed    [FAILED] PRIN command: failed with sense. UNIT_ATTENTION',
  '',
  'Suite: WriteSame10',
  '  Test: Unmap ...',
].join('\n');

describe('iscsi-test-cu output parsing', () => {
  const p = parseCuOutput(SAMPLE, 'main');
  const v = (n: string): Verdict | undefined => p.tests.get(n)?.verdict;

  test('names are Suite.Test; passed is PASS, passed with [SKIPPED] inside the test is SKIP', () => {
    assert.equal(v('Inquiry.Standard'), 'PASS');
    assert.equal(v('Inquiry.BlockLimits'), 'SKIP');
    assert.equal(p.tests.get('Inquiry.BlockLimits')!.reason, 'Logical unit is fully provisioned. Skipping test');
  });

  test('text after a verdict belongs to suite set-up, not to the test', () => {
    assert.equal(v('Reserve6.Simple'), 'PASS');
    assert.equal(v('Reserve6.LUNReset'), 'PASS');
  });

  test('FAILED is FAIL, with the first [FAILED] message and assertion as the reason', () => {
    assert.equal(v('Reserve6.ITNexusLoss'), 'FAIL');
    assert.equal(
      p.tests.get('Reserve6.ITNexusLoss')!.reason,
      'RESERVE6 command: failed with sense. RESERVATION CONFLICT (+1 more [FAILED]) ' +
        'at test_reserve6_itnexus_loss.c:46 CU_ASSERT_EQUAL(_r,0) (+1 more)',
    );
  });

  test('a test cut short (crash, hang) is reported as unfinished', () => {
    assert.equal(p.unfinished, 'WriteSame10.Unmap');
    assert.equal(p.tests.has('WriteSame10.Unmap'), false);
  });

  test('only an expected PASS that no longer passes is a regression', () => {
    const expected = new Map<string, Verdict>([
      ['Inquiry.Standard', 'PASS'],
      ['Reserve6.ITNexusLoss', 'PASS'],
      ['Inquiry.BlockLimits', 'FAIL'],
      ['Reserve6.Simple', 'SKIP'],
    ]);
    const c = compare(expected, p.tests);
    assert.deepEqual(
      c.regressions.map((x) => x.name),
      ['Reserve6.ITNexusLoss'],
    );
    assert.deepEqual(
      c.improvements.map((x) => x.name),
      ['Reserve6.LUNReset', 'Reserve6.Simple'],
    );
    assert.deepEqual(
      c.changes.map((x) => `${x.name} ${x.was}->${x.now}`),
      ['Inquiry.BlockLimits FAIL->SKIP'],
    );
  });
});

describe('conformance passes', () => {
  const all = [
    'Read10.Simple',
    'Read10.BeyondEol',
    'Sanitize.Overwrite',
    'Sanitize.Reset',
    'WriteSame10.UnmapUnaligned',
    'ReadOnly.ReadOnlySBC',
    'GetLBAStatus.UnmapSingle',
  ];
  const suites = ['Read10', 'GetLBAStatus', 'ReadOnly', 'Sanitize', 'WriteSame10'];

  test('a -t list takes whole suites as ALL.SUITE, parts of one test by test, in the listed order', () => {
    assert.deepEqual(testList(['Sanitize.Reset', 'Read10.Simple', 'Read10.BeyondEol'], suites, all), ['ALL.Read10', 'ALL.Sanitize.Reset']);
  });

  test('Sanitize runs single-path (and without Reset on the encrypted LUN), LBPPB tests on the 512e LUN; every test runs', () => {
    const passes = new Map(planPasses(all, 'iscsi://h/t').map((p) => [p.name, p]));
    assert.deepEqual(passes.get('main')!.urls, ['iscsi://h/t/0', 'iscsi://h/t/0']);
    assert.ok(!passes.get('main')!.tests.some((n) => n.startsWith('Sanitize.')));
    assert.deepEqual(passes.get('sanitize')!, {
      name: 'sanitize',
      tests: ['Sanitize.Overwrite', 'Sanitize.Reset'],
      urls: ['iscsi://h/t/0'],
    });
    assert.deepEqual(passes.get('sanitize-encrypted')!.tests, ['Sanitize.Overwrite']);
    assert.deepEqual(passes.get('sanitize-encrypted')!.urls, ['iscsi://h/t/3']);
    assert.deepEqual(passes.get('lbppb')!.tests, ['WriteSame10.UnmapUnaligned']);
    assert.deepEqual(passes.get('readonly')!.urls, ['iscsi://h/t/1']);
    const covered = new Set([...passes.values()].flatMap((p) => p.tests));
    assert.deepEqual([...covered].sort(), [...all].sort());
  });
});

const skip =
  requireTools(['iscsi-test-cu', 'iscsi-inq']) ?? (process.env.SKIP_CONFORMANCE && !process.env.CI ? 'SKIP_CONFORMANCE is set' : undefined);

test(
  'iscsi-test-cu conformance: no crash, no hang, no regression against conformance-expected.txt',
  { skip, timeout: 30 * 60_000 },
  async (t) => {
    const lines: string[] = [];
    const r = await runConformance({ log: (s) => lines.push(s) });
    report(r, { log: (s) => lines.push(s) });
    for (const l of lines) t.diagnostic(l);

    assert.deepEqual(r.problems, [], `the run had problems (logs in ${r.resultsDir}):\n${r.problems.join('\n')}`);
    assert.ok(r.totals.tests >= 230, `only ${r.totals.tests} tests seen; iscsi-test-cu 1.19 -l lists 230`);
    assert.deepEqual(
      r.comparison.regressions.map((x) => `${x.name}: ${x.now} (${x.reason ?? ''})`),
      [],
      'tests expected to PASS that no longer pass',
    );
  },
);
