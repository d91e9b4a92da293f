// `iscsi-target top` against a live daemon under load from real initiators: a frame shows
// every volume and session with IOPS, throughput, latency p50/p99, queue depth and errors;
// its counters are the ones `status` and the metrics endpoint give.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import path from 'node:path';
import { Initiator } from '../../src/initiator/initiator';
import { cli as runCli, freePort, httpGet, requireTools, startDaemon, type CliResult, type Daemon } from '../helpers/daemon';
import { frame, quantile, render } from '../../src/cli/top';
import type { StatsReply } from '../../src/admin/protocol';

const T = 'iqn.2026-11.io.example:top';
const PERF = 'iqn.2007-10.com.github:libiscsi-perf';
const HOST = 'iqn.1994-05.com.example:writer';
const skip = requireTools(['iscsi-perf']);

/** The CLI, run without blocking this process (its own initiator keeps writing meanwhile). */
function cli(d: Daemon, ...args: string[]): Promise<CliResult> {
  return runCli(args, { daemon: d, timeout: 60000 });
}

test('quantiles interpolate within the bucket; a frame is the difference of two samples', () => {
  const bounds = [0.00001, 0.00002, 0.00005, 0.0001];
  assert.equal(quantile([0, 0, 0, 0, 0], bounds, 0.5), null);
  // 10 commands in 10-20 µs: the median is in the middle of that bucket.
  assert.ok(Math.abs(quantile([0, 10, 0, 0, 0], bounds, 0.5)! - 0.000015) < 1e-12);
  // 99 fast, 1 slow (above the last bound): p99 still fast, p100 at the last bound.
  assert.ok(quantile([99, 0, 0, 0, 1], bounds, 0.99)! <= 0.00001);
  assert.equal(quantile([99, 0, 0, 0, 1], bounds, 1), 0.0001);
  const base = { ok: true as const, pid: 1, uptimeSeconds: 5, bounds, sessions: [] };
  const a: StatsReply = {
    ...base,
    at: 1000,
    volumes: [
      { name: 'v', reads: 100, writes: 0, others: 0, readBytes: 409600, writtenBytes: 0, errors: 1, queued: 0, buckets: [100, 0, 0, 0, 0] },
    ],
  };
  const b: StatsReply = {
    ...base,
    at: 3000,
    volumes: [
      {
        name: 'v',
        reads: 300,
        writes: 0,
        others: 0,
        readBytes: 1228800,
        writtenBytes: 0,
        errors: 2,
        queued: 3,
        buckets: [100, 200, 0, 0, 0],
      },
    ],
  };
  const f = frame(a, b);
  assert.equal(f.seconds, 2);
  assert.equal(f.volumes[0].iops, 100);
  assert.equal(f.volumes[0].readBps, 409600);
  assert.ok(Math.abs(f.volumes[0].p50! - 0.000015) < 1e-12, "the interval's latencies only, not the earlier ones");
  assert.equal(f.volumes[0].newErrors, 1);
  assert.equal(f.volumes[0].queued, 3);
  const text = render(f, 'x.yaml');
  assert.match(text, /^v\s+100\s+400 KiB\/s\s+0 B\/s\s+15 µs\s+20 µs\s+3\s+2 \(\+1\)$/m);
});

test(
  'top against a live daemon: volumes and sessions under load, the same counters as status and metrics',
  { skip, timeout: 120000 },
  async () => {
    const metricsPort = await freePort();
    const d = await startDaemon(`portals: ["127.0.0.1:PORT"]
metrics: { listen: "127.0.0.1:${metricsPort}" }
volumes:
  reads: { memory: true, size: 64MiB }
  writes: { path: DIR/writes.img, size: 64MiB }
  idle: { memory: true, size: 1MiB }
targets:
  - iqn: ${T}
    acls:
      - initiator: ${PERF}
        luns: { 0: reads }
      - initiator: ${HOST}
        luns: { 0: writes, 1: idle }
`);
    const perf = spawn('iscsi-perf', ['-m', '8', '-b', '8', '-r', '-i', PERF, `iscsi://127.0.0.1:${d.port}/${T}/0`], { stdio: 'ignore' });
    const writer = await Initiator.connect({ host: '127.0.0.1', port: d.port, initiatorName: HOST, targetName: T });
    let writing = true;
    const writes = (async () => {
      await writer.testUnitReady(0);
      const block = Buffer.alloc(4096, 0x5a);
      for (let i = 0; writing; i++) await writer.write(0, (i * 8) % 100000, block);
    })();
    try {
      await new Promise((r) => setTimeout(r, 1500));
      const once = await cli(d, 'top', '--once');
      assert.equal(once.code, 0, once.stderr);
      const screen = once.stdout;
      const row = (name: string) => screen.split('\n').find((l) => l.startsWith(`${name} `)) ?? '';
      // reads: many IOPS, read throughput, latencies, no writes.
      assert.match(
        row('reads'),
        /^reads\s+\d+(\.\d)?K\s+\d+(\.\d+)? MiB\/s\s+0 B\/s\s+<?\d+(\.\d+)? (µs|ms)\s+<?\d+(\.\d+)? (µs|ms)\s+\d+\s+0$/,
        screen,
      );
      assert.match(row('writes'), /^writes\s+\d+(\.\d)?K?\s+0 B\/s\s+\d+(\.\d+)? (KiB|MiB)\/s\s+<?\d+(\.\d+)? (µs|ms)/, screen);
      assert.match(row('idle'), /^idle\s+0\s+0 B\/s\s+0 B\/s\s+-\s+-\s+0\s+0$/, screen);
      assert.match(screen, new RegExp(`^\\d+\\s+${PERF.replace(/\./g, '\\.')}\\s+${T.replace(/\./g, '\\.')}\\s+\\d`, 'm'));
      assert.match(screen, new RegExp(`^\\d+\\s+${HOST.replace(/\./g, '\\.')}\\s+`, 'm'));
      process.stdout.write(`# top --once against a live daemon:\n${screen.replace(/^/gm, '#   ')}\n`);

      const frames = (await cli(d, 'top', '--json', '--count', '2', '--interval', '0.5')).stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(frames.length, 2);
      for (const f of frames) {
        const reads = f.volumes.find((v: { name: string }) => v.name === 'reads');
        assert.ok(reads.iops > 100, JSON.stringify(reads));
        assert.ok(reads.p50 > 0 && reads.p99 >= reads.p50);
        assert.ok(reads.queued >= 0 && reads.queued <= 8);
      }
    } finally {
      writing = false;
      await writes.catch(() => undefined);
      perf.kill('SIGKILL');
    }
    try {
      // Quiet now: what top reads equals what status and the metrics say.
      await new Promise((r) => setTimeout(r, 300));
      const status = JSON.parse((await cli(d, 'status', '--json')).stdout);
      const stats = JSON.parse(
        spawnSync(
          process.execPath,
          [
            '-e',
            `
      require(${JSON.stringify(path.join(__dirname, '../../src/admin/control-socket.js'))})
        .controlRequest(${JSON.stringify(d.configFile)}, { op: 'stats' }).then((r) => console.log(JSON.stringify(r)));
    `,
          ],
          { encoding: 'utf8' },
        ).stdout,
      ) as StatsReply;
      const mine = status.sessions.find((s: { initiator: string }) => s.initiator === HOST);
      const topMine = stats.sessions.find((s) => s.initiator === HOST)!;
      assert.equal(topMine.commands, mine.commands);
      assert.equal(topMine.writtenBytes, mine.writtenBytes);
      const metrics = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
      const writesVol = stats.volumes.find((v) => v.name === 'writes')!;
      const counted = Number(/^iscsi_target_commands_total\{volume="writes",op="write"\} (\d+)$/m.exec(metrics)?.[1]);
      assert.equal(counted, writesVol.writes);
      // Latency buckets start at 10 µs.
      assert.match(metrics, /^iscsi_target_command_duration_seconds_bucket\{volume="writes",op="write",le="0.00001"\} \d+$/m);
    } finally {
      await writer.logout().catch(() => undefined);
      await d.stop();
    }
  },
);
