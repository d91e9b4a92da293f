// Boot the e2e guest under qemu (software emulation) with one script to run, stream its
// serial console to the test log, and report the steps it passed and failed.
//
// The guest's only network is qemu's user-mode stack with restrict=on: it can reach nothing
// but 10.0.2.100:3260, which a guestfwd rule connects (one socat per connection) to the
// target on the host's loopback.

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { cpioNewc, S_IFDIR, S_IFREG } from './cpio';
import type { VmImage } from './vm-image';

/** The portal as the guest sees it. */
export const GUEST_PORTAL = '10.0.2.100:3260';

export interface BootOptions {
  name: string; // for the log prefix
  script: string; // /e2e/run.sh
  targetPort: number; // the target on 127.0.0.1
  timeoutMs: number;
  /**
   * Called for each `E2E-MARK <name>` line the guest prints. A string it returns is typed on
   * the guest's console (its stdin) as a line, for a guest that waits for the host's answer;
   * if it throws, `E2E-HOST-FAIL <name>` is typed instead, so a waiting guest fails at once.
   */
  onMark?: (mark: string) => Promise<string | void> | string | void;
  log: (line: string) => void;
}

export interface BootResult {
  exitCode: number | null; // the script's, from E2E-EXIT; null if it never finished
  passed: string[];
  failed?: string; // the first failing step, "name (exit N)"
  console: string;
  seconds: number;
  timedOut: boolean;
}

/** One boot: the cached initramfs with a second cpio archive holding the script appended. */
export async function bootGuest(image: VmImage, o: BootOptions): Promise<BootResult> {
  const t0 = Date.now();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-boot-'));
  const initrd = path.join(tmp, 'initrd.gz');
  // The kernel unpacks concatenated (gzip) cpio archives in turn, later files on top.
  const extra = zlib.gzipSync(
    cpioNewc([
      { name: 'e2e', mode: S_IFDIR | 0o755 },
      { name: 'e2e/run.sh', mode: S_IFREG | 0o755, data: Buffer.from(o.script) },
    ]),
  );
  fs.writeFileSync(initrd, Buffer.concat([fs.readFileSync(image.initrd), extra]));

  const args = [
    '-accel',
    process.env.E2E_QEMU_ACCEL ?? 'tcg',
    '-M',
    'pc',
    '-m',
    '768',
    '-smp',
    '1',
    '-nodefaults',
    '-no-user-config',
    '-display',
    'none',
    '-serial',
    'stdio',
    '-no-reboot',
    '-kernel',
    image.kernel,
    '-initrd',
    initrd,
    '-append',
    'console=ttyS0 panic=-1 loglevel=5 rdinit=/init',
    '-netdev',
    `user,id=n0,restrict=on,guestfwd=tcp:${GUEST_PORTAL}-cmd:socat - TCP:127.0.0.1:${o.targetPort}`,
    '-device',
    'virtio-net-pci,netdev=n0,romfile=', // no PXE option ROM: the kernel is given directly
  ];
  o.log(`[${o.name}] qemu-system-x86_64 ${args.map((a) => (/\s/.test(a) ? `'${a}'` : a)).join(' ')}`);
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  qemu.stdin.on('error', () => {}); // qemu gone: the exit handler reports it
  const type = (line: string) => {
    if (qemu.exitCode === null && qemu.stdin.writable) qemu.stdin.write(`${line}\n`);
  };

  const result: BootResult = { exitCode: null, passed: [], console: '', seconds: 0, timedOut: false };
  let partial = '';
  let marks = Promise.resolve();
  const onLine = (raw: string) => {
    const line = raw.replace(/\r$/, '');
    result.console += line + '\n';
    o.log(`[${o.name}] ${line}`);
    let m: RegExpExecArray | null;
    if ((m = /E2E-STEP-OK (\S+)/.exec(line))) result.passed.push(m[1]);
    else if ((m = /E2E-STEP-FAIL (.*)$/.exec(line))) result.failed ??= m[1];
    else if ((m = /E2E-INIT-FAIL (.*)$/.exec(line))) result.failed ??= `init: ${m[1]}`;
    else if ((m = /E2E-EXIT (\d+)/.exec(line))) result.exitCode = Number(m[1]);
    else if ((m = /E2E-MARK (\S+)/.exec(line)) && o.onMark) {
      const mark = m[1];
      marks = marks
        .then(() => o.onMark!(mark))
        .then((answer) => {
          if (typeof answer === 'string') type(answer);
        })
        .catch((e) => {
          result.failed ??= `host action at mark ${mark}: ${(e as Error).message}`;
          o.log(`[${o.name}] host action at mark ${mark} failed: ${(e as Error).message}`);
          type(`E2E-HOST-FAIL ${mark}`);
        });
    }
  };
  const feed = (chunk: Buffer) => {
    partial += chunk.toString('latin1');
    let nl: number;
    while ((nl = partial.indexOf('\n')) >= 0) {
      onLine(partial.slice(0, nl));
      partial = partial.slice(nl + 1);
    }
  };
  qemu.stdout.on('data', feed);
  qemu.stderr.on('data', feed);

  const timer = setTimeout(() => {
    result.timedOut = true;
    o.log(`[${o.name}] timed out after ${o.timeoutMs / 1000} s, killing qemu`);
    qemu.kill('SIGKILL');
  }, o.timeoutMs);
  const code = await new Promise<number | null>((resolve) => qemu.on('exit', (c) => resolve(c)));
  clearTimeout(timer);
  qemu.stdin.end();
  if (partial) onLine(partial);
  await marks;
  fs.rmSync(tmp, { recursive: true, force: true });
  result.seconds = (Date.now() - t0) / 1000;
  o.log(`[${o.name}] qemu exited (${code}) after ${result.seconds.toFixed(1)} s; steps passed: ${result.passed.join(', ') || 'none'}`);
  return result;
}
