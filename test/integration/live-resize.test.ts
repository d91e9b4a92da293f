// Live resize through TargetServer.apply() for every store that can grow: a plain file and
// an encrypted one (which used to be refused). The host sees CAPACITY DATA HAS CHANGED, the
// new capacity, its old data intact and the new blocks reading as zeros.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import pino from 'pino';
import { diffConfig, sessionVerdict } from '../../src/admin/diff';
import { parseConfig } from '../../src/config/load';
import { Initiator, senseOf } from '../../src/initiator/initiator';
import { TargetServer } from '../../src/iscsi/server';

const IQN = 'iqn.2026-11.io.example:resize';

for (const encrypted of [false, true]) {
  test(`a ${encrypted ? 'encrypted ' : ''}file volume grows while a host uses it`, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-resize-'));
    const file = path.join(dir, 'iscsi-target.yaml');
    const text = (size: string) =>
      `portals: ["127.0.0.1:0"]\nvolumes:\n  v: { path: v.img, size: ${size}${encrypted ? ', encryption: true' : ''} }\ntargets:\n  - iqn: ${IQN}\n    luns: { 0: v }\n`;
    const before = parseConfig(text('8MiB'), file);
    const server = await TargetServer.start({ config: before, logger: pino({ level: 'silent' }) });
    const ini = await Initiator.connect({ host: '127.0.0.1', port: server.addresses[0].port, targetName: IQN });
    try {
      await ini.testUnitReady(0);
      const data = randomBytes(64 * 1024);
      await ini.write(0, 16000, data);
      const after = parseConfig(text('16MiB'), file);
      const report = await server.apply(after, diffConfig(before, after), (t, i) => sessionVerdict(before, after, t, i));
      assert.deepEqual(report.resized, [{ name: 'v', from: 8 * 1024 * 1024, to: 16 * 1024 * 1024 }]);
      const ua = await ini.command(0, Buffer.alloc(6));
      assert.deepEqual(senseOf(ua.sense), { key: 6, asc: 0x2a, ascq: 0x09 }, 'CAPACITY DATA HAS CHANGED');
      assert.equal((await ini.readCapacity(0)).blocks, BigInt(32768));
      assert.ok((await ini.read(0, 16000, 128)).equals(data), 'the old data reads back');
      assert.ok((await ini.read(0, 30000, 128)).equals(Buffer.alloc(64 * 1024)), 'the new blocks read as zeros');
      const more = randomBytes(8192);
      await ini.write(0, 32768 - 16, more);
      assert.ok((await ini.read(0, 32768 - 16, 16)).equals(more), 'the last blocks take writes');
    } finally {
      ini.close();
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
