// A volume's identity as a real host reads it: libiscsi's iscsi-inq, VPD 0x80 (unit serial
// number) and the NAA designator of VPD 0x83.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

/** Serial and NAA designator bytes of LUN `lun` of `iqn` on 127.0.0.1:`port`. */
export function inquireIdentity(port: number, iqn: string, lun = 0): { serial: string; naa: Buffer } {
  const url = `iscsi://127.0.0.1:${port}/${iqn}/${lun}`;
  const s = spawnSync('iscsi-inq', ['-e', '1', '-c', '128', url], { encoding: 'latin1', timeout: 30000 });
  assert.equal(s.status, 0, s.stdout + s.stderr);
  const serial = /Unit Serial Number:\[([^\]]*)\]/.exec(s.stdout)?.[1];
  assert.ok(serial, s.stdout);
  // The designator is printed as raw bytes: read them back as latin1.
  const p = spawnSync('iscsi-inq', ['-e', '1', '-c', '131', url], { encoding: 'latin1', timeout: 30000 });
  assert.equal(p.status, 0, p.stdout + p.stderr);
  const marker = 'Designator Type:(3) NAA\nDesignator:[';
  const at = p.stdout.indexOf(marker);
  assert.ok(at >= 0, p.stdout);
  return { serial, naa: Buffer.from(p.stdout.slice(at + marker.length, at + marker.length + 16), 'latin1') };
}
