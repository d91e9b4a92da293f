// The daemon as the unit runs it (issue 14): an unprivileged user. Port 3260 is above 1024, so
// it needs no privilege at all; a portal below 1024 (860, iSCSI's other port) needs
// CAP_NET_BIND_SERVICE, which the unit grants and nothing else. Each run is in a network
// namespace of its own (unshare -n): the machine's ports are never touched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BIN, which } from '../helpers/daemon';

const need = ['unshare', 'setpriv', 'ip'];
const skip =
  process.getuid?.() !== 0 ? 'needs root (network namespace, setpriv)' : need.some((t) => !which(t)) ? `missing ${need.join(', ')}` : false;

test('uid 65534 serves on 3260 with no capability at all, and on 860 with CAP_NET_BIND_SERVICE alone', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-unpriv-'));
  try {
    const run = path.join(dir, 'run');
    fs.mkdirSync(run, { mode: 0o700 });
    fs.chownSync(dir, 65534, 65534);
    fs.chownSync(run, 65534, 65534);
    const attempt = (port: number, caps: boolean) => {
      const cfg = path.join(dir, `c${port}.yaml`);
      fs.writeFileSync(
        cfg,
        `portals: ["127.0.0.1:${port}"]\nvolumes:\n  v: { memory: true, size: 8MiB }\ntargets:\n  - iqn: iqn.2026-11.io.example:u\n    luns: { 0: v }\n`,
        { mode: 0o600 },
      );
      fs.chownSync(cfg, 65534, 65534);
      const priv = [
        'setpriv',
        '--reuid=65534',
        '--regid=65534',
        '--clear-groups',
        ...(caps
          ? ['--inh-caps=-all,+net_bind_service', '--ambient-caps=-all,+net_bind_service', '--bounding-set=-all,+net_bind_service']
          : ['--inh-caps=-all', '--bounding-set=-all']),
      ].join(' ');
      const probe = `${process.execPath} -e "const s=require('net').connect(${port},'127.0.0.1',()=>{console.log('PORT OPEN');s.destroy()});s.on('error',()=>process.exit(1))"`;
      const script = `
        ip link set lo up
        ISCSI_TARGET_RUN_DIR=${run} ${priv} ${process.execPath} ${BIN} serve --config ${cfg} > ${dir}/log 2>&1 &
        pid=$!
        for i in $(seq 150); do ${probe} && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
        ${which('iscsi-ls') ? `iscsi-ls -s iscsi://127.0.0.1:${port} && echo LISTED` : 'echo LISTED'}
        awk '/^Uid:/{print "UID " $2} /^CapEff:/{print "CAPEFF " $2}' /proc/$pid/status 2>/dev/null
        kill -TERM $pid 2>/dev/null; wait $pid; echo "EXIT $?"
        cat ${dir}/log`;
      // A network namespace of our own: its port 3260 and 860 are nobody else's.
      return spawnSync('unshare', ['-n', 'sh', '-c', script], { encoding: 'utf8', timeout: 60000 }).stdout;
    };
    const plain = attempt(3260, false);
    assert.match(plain, /PORT OPEN[\s\S]*LISTED/, plain);
    assert.match(plain, /^UID 65534$/m);
    assert.match(plain, /^CAPEFF 0000000000000000$/m, 'no capability at all');
    assert.match(plain, /^EXIT 0$/m, plain);
    const low = attempt(860, true);
    assert.match(low, /PORT OPEN[\s\S]*LISTED/, low);
    assert.match(low, /^CAPEFF 0000000000000400$/m, 'CAP_NET_BIND_SERVICE and nothing else');
    assert.match(low, /^EXIT 0$/m, low);
    const refused = attempt(860, false);
    assert.doesNotMatch(refused, /PORT OPEN/);
    assert.match(refused, /EACCES/, refused);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
