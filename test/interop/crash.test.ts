// Crash safety of the real daemon: kill -9 in the middle of a write load, restart on the
// same volume file, and every write that was acknowledged with FUA, or acknowledged and
// then covered by a completed SYNCHRONIZE CACHE, reads back with the checksum the writer
// logged. A second test watches the daemon's system calls (strace) to show that FUA and
// SYNCHRONIZE CACHE really reach fdatasync, which kill -9 alone cannot show (the page
// cache survives a killed process; only power loss would tell).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Initiator } from '../../src/initiator/initiator';
import { BIN, freePort, requireTools, startDaemon } from '../helpers/daemon';

const IQN = 'iqn.2026-11.io.iscsi-target:crash';
const BLOCK = 512;
const IO_BLOCKS = 8; // 4 KiB writes
const VOLUME_BYTES = 64 * 1024 * 1024;

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function yaml(dir: string): string {
  return `portals: ["127.0.0.1:PORT"]\nvolumes:\n  data: { path: ${path.join(dir, 'data.img')}, size: 64MiB }\ntargets:\n  - iqn: ${IQN}\n    luns: { 0: data }\n`;
}

function syncCache(): Buffer {
  return Buffer.from([0x35, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
}

interface Logged {
  lba: number;
  sum: string;
}

test('kill -9 during a write load: every FUA or synced acknowledged write is on disk after restart', { timeout: 120000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-crash-'));
  try {
    const d1 = await startDaemon(yaml(dir));
    const durable: Logged[] = [];
    let ackedNotDurable = 0;
    let stop = false;
    const writers = 4;
    const slots = VOLUME_BYTES / BLOCK / IO_BLOCKS / writers; // each writer owns its slots; no LBA is written twice
    const writer = async (w: number) => {
      const ini = await Initiator.connect({
        host: '127.0.0.1',
        port: d1.port,
        targetName: IQN,
        initiatorName: `iqn.2026-11.io.iscsi-target:writer-${w}`,
      });
      await ini.testUnitReady(0);
      let pending: Logged[] = [];
      try {
        for (let i = 0; !stop && i < slots; i++) {
          const lba = (w * slots + i) * IO_BLOCKS;
          const data = randomBytes(IO_BLOCKS * BLOCK);
          const fua = i % 2 === 0;
          await ini.write(0, lba, data, BLOCK, fua);
          if (fua) durable.push({ lba, sum: sha(data) });
          else pending.push({ lba, sum: sha(data) });
          if (i % 8 === 7) {
            const r = await ini.command(0, syncCache());
            if (r.status === 0) {
              durable.push(...pending);
              pending = [];
            }
          }
        }
      } catch {
        // the daemon was killed under us: whatever was not acknowledged makes no claim
      } finally {
        ackedNotDurable += pending.length;
        ini.close();
      }
    };
    const running = Array.from({ length: writers }, (_, w) => writer(w));
    await new Promise((r) => setTimeout(r, 1500 + Math.floor(Math.random() * 1000)));
    d1.proc.kill('SIGKILL');
    await new Promise((r) => d1.proc.once('exit', r));
    stop = true;
    await Promise.all(running);
    await d1.stop(); // cleans its own folder; the volume lives in ours
    assert.ok(durable.length > 50, `enough durable writes before the kill (${durable.length})`);

    const d2 = await startDaemon(yaml(dir));
    try {
      const ini = await Initiator.connect({ host: '127.0.0.1', port: d2.port, targetName: IQN });
      await ini.testUnitReady(0);
      let bad = 0;
      for (const l of durable) {
        const back = await ini.read(0, l.lba, IO_BLOCKS, BLOCK);
        if (sha(back) !== l.sum) bad++;
      }
      assert.equal(bad, 0, `${bad} of ${durable.length} durable writes lost`);
      console.log(
        `kill -9: ${durable.length} acknowledged durable writes verified by checksum (${ackedNotDurable} acknowledged but not yet synced make no claim)`,
      );
      await ini.logout();
    } finally {
      assert.equal(await d2.stop(), 0);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

const noStrace = requireTools(['strace']);

test('FUA writes and SYNCHRONIZE CACHE reach fdatasync (strace)', { skip: noStrace ?? false, timeout: 60000 }, async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-strace-'));
  const port = await freePort();
  const cfg = path.join(dir, 'c.yaml');
  fs.writeFileSync(cfg, yaml(dir).replace('PORT', String(port)), { mode: 0o600 });
  const trace = path.join(dir, 'trace');
  const proc = spawn('strace', ['-f', '-qq', '-e', 'trace=fdatasync', '-o', trace, process.execPath, BIN, 'serve', '--config', cfg], {
    env: { ...process.env, LOG_LEVEL: 'error' },
    stdio: 'ignore',
    detached: true, // its own process group: strace and the daemon under it are stopped together
  });
  const exited = new Promise((r) => proc.once('exit', r));
  try {
    let ini: Initiator | undefined;
    for (let i = 0; i < 100 && !ini; i++) {
      try {
        ini = await Initiator.connect({ host: '127.0.0.1', port, targetName: IQN });
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    assert.ok(ini, 'daemon under strace came up');
    await ini.testUnitReady(0);
    const count = () =>
      fs
        .readFileSync(trace, 'utf8')
        .split('\n')
        .filter((l) => /fdatasync\(\d+\)\s+= 0/.test(l)).length;
    const before = count();
    for (let i = 0; i < 20; i++) await ini.write(0, i * 8, randomBytes(4096), BLOCK, true);
    const afterFua = count();
    for (let i = 0; i < 20; i++) await ini.write(0, 1000 + i * 8, randomBytes(4096), BLOCK, false);
    const afterPlain = count();
    await ini.command(0, syncCache());
    const afterSync = count();
    assert.ok(afterFua - before >= 20, `20 FUA writes, ${afterFua - before} fdatasync calls`);
    assert.equal(afterPlain - afterFua, 0, 'plain writes with the write cache on do not sync');
    assert.ok(afterSync - afterPlain >= 1, 'SYNCHRONIZE CACHE calls fdatasync');
    await ini.logout();
  } finally {
    // SIGTERM to the group: killing strace alone would detach it and leave the daemon running.
    process.kill(-proc.pid!, 'SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10000).unref())]);
    await new Promise((r) => setTimeout(r, 500));
    try {
      process.kill(-proc.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
