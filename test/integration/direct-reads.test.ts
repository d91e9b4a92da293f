// Data-Out payloads are read from the socket straight into their command's buffer
// (socket-reads.ts, PduParser.directTarget): most of a large WRITE's data never passes
// through an intermediate buffer, with and without digests, and it lands intact.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Initiator } from '../../src/initiator/initiator';
import { startTarget, TARGET } from '../helpers/target';

for (const digests of [false, true]) {
  test(`a 4 MiB WRITE's Data-Out is read in place (${digests ? 'CRC32C digests' : 'no digests'})`, async () => {
    const t = await startTarget();
    const ini = await Initiator.connect({
      host: t.host,
      port: t.port,
      targetName: TARGET,
      headerDigest: digests,
      dataDigest: digests,
      loginKeys: [['MaxRecvDataSegmentLength', '262144']],
    });
    try {
      await ini.testUnitReady(0);
      const data = randomBytes(4 * 1024 * 1024);
      await ini.write(0, 0, data);
      assert.ok((await ini.read(0, 0, data.length / 512)).equals(data), 'the data reads back');
      const session = [...t.server.sessions.keys()][0];
      const direct = session.counters.directBytes;
      assert.ok(direct > data.length / 2, `${direct} of ${data.length} bytes read in place`);
      assert.ok(direct <= data.length);
    } finally {
      ini.close();
      await t.stop();
    }
  });
}
