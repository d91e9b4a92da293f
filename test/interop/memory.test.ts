// The daemon's memory stays bounded under many deep queues (issue 6): 8 sessions at QD32
// each of 128 KiB random READs, 1 MiB WRITEs and 1 MiB READs, from real initiators
// (libiscsi's iscsi-perf, qemu-img bench), and the daemon's peak RSS (VmHWM, which only
// grows) must stay under 200 MiB. Without the read budget, 8 x QD32 x 1 MiB READs alone
// hold 256 MiB of data.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { requireTools, runAsync, startDaemon, type Daemon } from '../helpers/daemon';

const IQN = 'iqn.2026-11.io.iscsi-target:memory';
const SESSIONS = 8;
const DEPTH = 32;
const LIMIT_MIB = 200;
const skip = requireTools(['iscsi-perf', 'qemu-img']);

function peakRssMiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, 'VmHWM in /proc/PID/status');
  return Number(m[1]) / 1024;
}

describe('memory under 8 sessions x QD32', { skip }, () => {
  let d: Daemon;
  before(async () => {
    d = await startDaemon(`# memory bound test target
portals: ["127.0.0.1:PORT"]
volumes:
  disk: { path: DIR/disk.img, size: 1GiB }
targets:
  - iqn: ${IQN}
    luns: { 0: disk }
`);
  });
  after(async () => {
    assert.equal(await d.stop(), 0, 'SIGTERM exits 0');
  });

  /** 8 iscsi-perf sessions at QD32 of `blocks`-block READs for `seconds`; their total IOPS. */
  async function reads(blocks: number, random: boolean, seconds: number): Promise<number> {
    const url = `iscsi://127.0.0.1:${d.port}/${IQN}/0`;
    const runs = Array.from({ length: SESSIONS }, (_, i) =>
      runAsync(
        'iscsi-perf',
        ['-t', String(seconds), ...(random ? ['-r'] : []), '-m', String(DEPTH), '-b', String(blocks), '-i', `${IQN}-r${blocks}-${i}`, url],
        (seconds + 60) * 1000,
      ),
    );
    let iops = 0;
    for (const r of await Promise.all(runs)) {
      const all = [...r.out.matchAll(/iops average (\d+)/g)];
      assert.ok(r.code === 0 && all.length > 0, `iscsi-perf failed:\n${r.out.slice(-2000)}`);
      iops += Number(all[all.length - 1][1]);
    }
    return iops;
  }

  test('peak RSS stays under 200 MiB with 128 KiB READs, 1 MiB WRITEs and 1 MiB READs', async () => {
    const pid = d.proc.pid!;
    const start = peakRssMiB(pid);

    const small = await reads(256, true, 3);
    assert.ok(small > 0, '128 KiB READs ran');
    const afterSmall = peakRssMiB(pid);

    const count = 40;
    const writes = Array.from({ length: SESSIONS }, (_, i) => {
      const opts = `driver=iscsi,transport=tcp,portal=127.0.0.1:${d.port},target=${IQN},lun=0,initiator-name=${IQN}-w-${i}`;
      return runAsync(
        'qemu-img',
        [
          'bench',
          '-w',
          '-d',
          String(DEPTH),
          '-s',
          '1M',
          '-c',
          String(count),
          '-o',
          String(i * count * 1024 * 1024),
          '-t',
          'none',
          '--image-opts',
          opts,
        ],
        120_000,
      );
    });
    for (const r of await Promise.all(writes))
      assert.ok(r.code === 0 && /Run completed/.test(r.out), `qemu-img bench failed:\n${r.out.slice(-2000)}`);
    const afterWrites = peakRssMiB(pid);

    const large = await reads(2048, false, 3);
    assert.ok(large > 0, '1 MiB READs ran');
    const afterLarge = peakRssMiB(pid);

    const report = `peak RSS MiB: start ${start.toFixed(1)}, 128K reads ${afterSmall.toFixed(1)} (${small} IOPS), 1M writes ${afterWrites.toFixed(1)}, 1M reads ${afterLarge.toFixed(1)} (${large} IOPS)`;
    console.log(report);
    assert.ok(afterLarge < LIMIT_MIB, `${report}: over ${LIMIT_MIB} MiB`);
  });
});
