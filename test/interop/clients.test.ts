// Real, independent initiators against the real daemon: libiscsi's command-line
// tools and qemu's iscsi:// block driver.

import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { requireTools, run, startDaemon, type Daemon } from '../helpers/daemon';

const IQN = 'iqn.2026-11.io.iscsi-target:interop';
const skip = requireTools(['iscsi-ls', 'iscsi-inq', 'iscsi-readcapacity16', 'qemu-img']);

describe('libiscsi and qemu clients', { skip }, () => {
  let d: Daemon;
  let url: string;
  before(async () => {
    d = await startDaemon(`# interop test target
portals: ["127.0.0.1:PORT"]
volumes:
  disk: { path: DIR/disk.img, size: 128MiB }
  small: { path: DIR/small.img, size: 16MiB, blockSize: 4096 }
targets:
  - iqn: ${IQN}
    luns: { 0: disk, 1: small }
`);
    url = `iscsi://127.0.0.1:${d.port}/${IQN}`;
  });
  after(async () => {
    const code = await d.stop();
    assert.equal(code, 0, 'SIGTERM exits 0');
  });

  test('iscsi-ls discovers the target and its LUNs', () => {
    const r = run('iscsi-ls', ['-s', `iscsi://127.0.0.1:${d.port}`]);
    assert.equal(r.status, 0, r.out);
    assert.match(r.out, new RegExp(`Target:${IQN.replaceAll('.', '\\.')} Portal:127\\.0\\.0\\.1:${d.port},1`));
    // iscsi-ls prints (last LBA x block length): one block short of the size.
    assert.match(r.out, /Lun:0 +Type:DIRECT_ACCESS \(Size:127M\)/);
    assert.match(r.out, /Lun:1 +Type:DIRECT_ACCESS \(Size:15M\)/);
  });

  test('iscsi-inq reads standard inquiry and VPD pages', () => {
    const std = run('iscsi-inq', [`${url}/0`]);
    assert.equal(std.status, 0, std.out);
    assert.match(std.out, /Peripheral Device Type:.*DIRECT_ACCESS|Peripheral Device Type:\s*0/i);
    const serial = run('iscsi-inq', ['-e', '1', '-c', '128', `${url}/0`]);
    assert.equal(serial.status, 0, serial.out);
    assert.match(serial.out, /Unit Serial Number/i);
    const ids = run('iscsi-inq', ['-e', '1', '-c', '131', `${url}/0`]);
    assert.equal(ids.status, 0, ids.out);
    assert.match(ids.out, /NAA/);
  });

  test('iscsi-readcapacity16 reports size and block length', () => {
    const r0 = run('iscsi-readcapacity16', [`${url}/0`]);
    assert.equal(r0.status, 0, r0.out);
    assert.match(r0.out, /RETURNED LOGICAL BLOCK ADDRESS:262143\n/);
    assert.match(r0.out, /LOGICAL BLOCK LENGTH IN BYTES:512\n/);
    assert.match(r0.out, /Total size:134217728\n/);
    const r1 = run('iscsi-readcapacity16', [`${url}/1`]);
    assert.equal(r1.status, 0, r1.out);
    assert.match(r1.out, /RETURNED LOGICAL BLOCK ADDRESS:4095\n/);
    assert.match(r1.out, /LOGICAL BLOCK LENGTH IN BYTES:4096\n/);
    assert.match(r1.out, /Total size:16777216\n/);
  });

  test('qemu-img info sees the volume', () => {
    const r = run('qemu-img', ['info', '--output=json', `${url}/0`]);
    assert.equal(r.status, 0, r.out);
    assert.equal(JSON.parse(r.out)['virtual-size'], 134217728);
  });

  test('a 64 MiB random image survives a qemu-img convert round trip bit for bit', () => {
    const src = path.join(d.dir, 'random.raw');
    const back = path.join(d.dir, 'back.raw');
    fs.writeFileSync(src, randomBytes(64 * 1024 * 1024));
    const up = run('qemu-img', ['convert', '-n', '-f', 'raw', '-O', 'raw', src, `${url}/0`]);
    assert.equal(up.status, 0, up.out);
    const down = run('qemu-img', ['convert', '-f', 'raw', '-O', 'raw', `${url}/0`, back]);
    assert.equal(down.status, 0, down.out);
    const sha = (f: string, len: number) => {
      const fd = fs.openSync(f, 'r');
      const buf = Buffer.alloc(len);
      fs.readSync(fd, buf, 0, len, 0);
      fs.closeSync(fd);
      return createHash('sha256').update(buf).digest('hex');
    };
    assert.equal(fs.statSync(back).size, 134217728);
    assert.equal(sha(back, 64 * 1024 * 1024), sha(src, 64 * 1024 * 1024));
  });

  test('qemu-io writes and reads a pattern on the 4096-byte-block LUN', () => {
    const w = run('qemu-io', ['-f', 'raw', '-c', 'write -P 0x5a 8k 64k', `${url}/1`]);
    assert.equal(w.status, 0, w.out);
    assert.doesNotMatch(w.out, /error|failed/i);
    const r = run('qemu-io', ['-f', 'raw', '-c', 'read -P 0x5a 8k 64k', `${url}/1`]);
    assert.equal(r.status, 0, r.out);
    assert.doesNotMatch(r.out, /Pattern verification failed|error/i);
  });
});
