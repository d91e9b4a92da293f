// Provisioning from the CLI against a running daemon (issue 5): the real bin/iscsi-target
// commands talk to `serve` over its control socket; changes apply live (same PID), other
// hosts' sessions keep working, comments survive, failures change nothing.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Initiator, senseOf } from '../../src/initiator/initiator';
import { nameDerivedIdentity } from '../../src/scsi/identity';
import { clientSocketPaths } from '../../src/admin/socket-path';
import { cli as runCli, freePort, httpGet, run, startDaemon, which, type CliResult, type Daemon } from '../helpers/daemon';

const SAN = 'iqn.2026-11.io.example:san1';
const A = 'iqn.1994-05.com.redhat:host-a';
const B = 'iqn.1994-05.com.redhat:host-b';
const D = 'iqn.1994-05.com.redhat:host-d';
const MiB = 1024 * 1024;

function cli(d: Daemon, ...args: string[]): Promise<CliResult> {
  return runCli(args, { daemon: d, env: { ...process.env, CI: '' } });
}

async function waitFor(cond: () => boolean | Promise<boolean>, ms = 5000): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}

describe('CLI against a running daemon', () => {
  let d: Daemon;
  let metricsPort: number;
  let hostA: Initiator;
  const patternA = Buffer.alloc(4096, 0xa5);

  before(async () => {
    metricsPort = await freePort();
    d = await startDaemon(`# Lab SAN: comments must survive CLI edits
portals: ["127.0.0.1:PORT"]   # loopback only
metrics: { listen: "127.0.0.1:${metricsPort}" }
volumes:
  db-a: { path: DIR/db-a.img, size: 32MiB }   # host A's disk
targets:
  - iqn: ${SAN}   # the SAN
    acls:
      - initiator: ${A}
        luns: { 0: db-a }   # A sees its own disk
`);
    // Host A's long-lived session: it must keep working through every change below.
    hostA = await Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: SAN, initiatorName: A });
    await hostA.testUnitReady(0);
    await hostA.write(0, 8, patternA);
  });

  after(async () => {
    hostA?.close();
    if (d) assert.equal(await d.stop(), 0, d.output());
  });

  async function hostAStillWorks(): Promise<void> {
    assert.ok(!hostA.isClosed, 'host A session was closed');
    await hostA.testUnitReady(0); // clears a unit attention, if any
    assert.deepEqual(await hostA.read(0, 8, 8), patternA);
    await hostA.write(0, 16, patternA);
  }

  test('a volume and an acl added from the CLI are seen by a new initiator, no restart, comments kept', async (t) => {
    const pid = d.proc.pid;
    const v = await cli(d, 'volume', 'create', 'db-b', '--size', '16MiB', '--path', 'db-b.img');
    assert.equal(v.code, 0, v.stderr);
    assert.match(v.stdout, /applied by the running daemon in [\d.]+ ms/);
    const a = await cli(d, 'acl', 'add', SAN, B, '--lun', '0=db-b');
    assert.equal(a.code, 0, a.stderr);
    const applied = /in ([\d.]+) ms/.exec(a.stdout)![1];
    t.diagnostic(`volume create: ${v.ms} ms end to end; acl add: ${a.ms} ms end to end, ${applied} ms inside the daemon`);

    const hostB = await Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: SAN, initiatorName: B });
    await hostB.testUnitReady(0);
    const cap = await hostB.readCapacity(0);
    assert.equal(Number(cap.blocks) * cap.blockSize, 16 * MiB);
    // The new volume's identity is the random one the CLI kept beside its file, not one
    // derived from its name (which another target's db-b would share).
    const id = JSON.parse(fs.readFileSync(path.join(d.dir, 'db-b.img.identity.json'), 'utf8')) as { wwn: string };
    const vpd = await hostB.command(0, Buffer.from([0x12, 1, 0x83, 0x10, 0, 0]), { readLength: 4096 });
    assert.ok(vpd.data.includes(Buffer.from(id.wwn.slice(4), 'hex')), "VPD 0x83 carries the identity file's NAA");
    assert.ok(!vpd.data.includes(nameDerivedIdentity('db-b').naa), 'not the name-derived one');
    await hostB.write(0, 0, Buffer.alloc(512, 0xbb));
    await hostB.logout();
    if (which('iscsi-ls')) {
      const ls = run('iscsi-ls', ['-s', '-i', B, `iscsi://127.0.0.1:${d.port}`]);
      assert.equal(ls.status, 0, ls.out);
      assert.match(ls.out, /Lun:0\s+Type:DIRECT_ACCESS \(Size:15M\)/);
    }
    assert.equal(d.proc.exitCode, null);
    assert.equal(d.proc.pid, pid);
    const st = JSON.parse((await cli(d, 'status', '--json')).stdout) as { pid: number };
    assert.equal(st.pid, pid);

    const text = fs.readFileSync(d.configFile, 'utf8');
    for (const c of [
      '# Lab SAN: comments must survive CLI edits',
      "# host A's disk",
      '# A sees its own disk',
      '# loopback only',
      '# the SAN',
    ]) {
      assert.ok(text.includes(c), `comment ${c} lost:\n${text}`);
    }
    assert.match(text, /db-b: \{ path: db-b\.img, size: 16MiB \}/);
    // Lines the edits did not touch keep their exact spacing.
    assert.ok(text.includes(`portals: ["127.0.0.1:${d.port}"]   # loopback only\n`), text);
    assert.ok(text.includes(`  db-a: { path: ${d.dir}/db-a.img, size: 32MiB }   # host A's disk\n`), text);
    await hostAStillWorks();
  });

  test('status --json lists live sessions with their LUNs, parameters and I/O counters', async () => {
    const r = await cli(d, 'status', '--json');
    assert.equal(r.code, 0, r.stderr);
    const st = JSON.parse(r.stdout) as {
      sessions: {
        initiator: string;
        target: string;
        luns: { lun: number; volume: string }[];
        params: Record<string, unknown>;
        commands: number;
        readBytes: number;
        writtenBytes: number;
        errors: number;
        unitAttentions: number;
        address: string;
      }[];
    };
    const s = st.sessions.find((x) => x.initiator === A);
    assert.ok(s, r.stdout);
    assert.equal(s.target, SAN);
    assert.deepEqual(s.luns, [{ lun: 0, volume: 'db-a' }]);
    assert.match(s.address, /^(::ffff:)?127\.0\.0\.1:\d+$/);
    assert.equal(s.params.HeaderDigest, 'None');
    assert.ok((s.params.MaxBurstLength as number) >= 512, JSON.stringify(s.params));
    assert.ok(s.commands >= 4);
    assert.ok(s.readBytes >= 4096 && s.writtenBytes >= 8192, JSON.stringify(s));
    // The power-on unit attention is counted as news, not as a failed command.
    assert.ok(s.unitAttentions >= 1, JSON.stringify(s));
    assert.equal(s.errors, 0, JSON.stringify(s));
    const human = await cli(d, 'status');
    assert.match(human.stdout, new RegExp(`${A.replaceAll('.', '\\.')}\\s+\\S+\\s+${SAN.replaceAll('.', '\\.')}\\s+0=db-a`));
  });

  test('a change that fails validation leaves the file byte-identical and the daemon serving', async () => {
    const before = fs.readFileSync(d.configFile);
    const bad = await cli(d, 'acl', 'add', SAN, D, '--lun', '0=no-such-volume');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /targets\[0\]\.acls\[2\]\.luns\.0: volume "no-such-volume" is not defined/);
    assert.match(bad.stderr, /nothing was changed/);
    // Passes the CLI's checks but the daemon cannot open the store: refused whole too.
    const unopenable = await cli(d, 'volume', 'create', 'db-x', '--size', '1MiB', '--path', '/proc/db-x.img');
    assert.equal(unopenable.code, 1, unopenable.stdout);
    assert.match(unopenable.stderr, /volume db-x: .*nothing was changed/);
    const shrink = await cli(d, 'volume', 'resize', 'db-a', '--size', '16MiB');
    assert.equal(shrink.code, 1);
    assert.match(shrink.stderr, /shrinking/);
    assert.ok(fs.readFileSync(d.configFile).equals(before), 'config file changed');
    const st = JSON.parse((await cli(d, 'status', '--json')).stdout) as { volumes: { name: string }[] };
    assert.deepEqual(st.volumes.map((v) => v.name).sort(), ['db-a', 'db-b']);
    await hostAStillWorks();
  });

  test('volume resize grows the volume live; host A gets CAPACITY DATA HAS CHANGED', async () => {
    const r = await cli(d, 'volume', 'resize', 'db-a', '--size', '48MiB');
    assert.equal(r.code, 0, r.stderr);
    const tur = await hostA.command(0, Buffer.alloc(6));
    assert.equal(tur.status, 2);
    assert.deepEqual(senseOf(tur.sense), { key: 6, asc: 0x2a, ascq: 0x09 });
    const cap = await hostA.readCapacity(0);
    assert.equal(Number(cap.blocks) * cap.blockSize, 48 * MiB);
    await hostAStillWorks();
  });

  test("removing an acl ends that initiator's session only", async () => {
    const hostB = await Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: SAN, initiatorName: B });
    await hostB.testUnitReady(0);
    const r = await cli(d, 'acl', 'remove', SAN, B);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`ended the session of ${B.replaceAll('.', '\\.')}`));
    assert.ok(await waitFor(() => hostB.isClosed), 'host B session still open');
    await assert.rejects(Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: SAN, initiatorName: B }));
    await hostAStillWorks();
    const list = await cli(d, 'volume', 'list', '--json');
    const rows = JSON.parse(list.stdout) as { name: string; mappedTo: unknown[]; allocatedBytes: number }[];
    assert.deepEqual(rows.find((x) => x.name === 'db-b')!.mappedTo, []);
    const del = await cli(d, 'volume', 'delete', 'db-b', '--purge');
    assert.equal(del.code, 0, del.stderr);
    assert.ok(!fs.existsSync(path.join(d.dir, 'db-b.img')));
  });

  test('SIGHUP re-reads a hand-edited file; reload refuses a broken one and keeps serving', async () => {
    const text = fs.readFileSync(d.configFile, 'utf8');
    fs.writeFileSync(
      d.configFile,
      text.replace('volumes:\n', `volumes:\n  db-d: { path: ${d.dir}/db-d.img, size: 8MiB }\n`) +
        `      - initiator: ${D}\n        luns: { 0: db-d }\n`,
    );
    d.proc.kill('SIGHUP');
    let hostD: Initiator | undefined;
    assert.ok(
      await waitFor(async () => {
        hostD = await Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: SAN, initiatorName: D }).catch(() => undefined);
        return !!hostD;
      }),
      d.output(),
    );
    await hostD!.logout();

    const good = fs.readFileSync(d.configFile, 'utf8');
    fs.writeFileSync(d.configFile, good.replace('size: 8MiB', 'size: 8QiB'));
    const r = await cli(d, 'reload');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /volumes\.db-d\.size/);
    assert.match(r.stderr, /keeps its current config/);
    await hostAStillWorks();
    fs.writeFileSync(d.configFile, good);
  });

  test('thick volumes are allocated; import copies a raw image into a new volume a host then reads', async () => {
    const thick = await cli(d, 'volume', 'create', 'thick1', '--size', '8MiB', '--thick', '--path', 'thick1.img');
    assert.equal(thick.code, 0, thick.stderr);
    const rows = JSON.parse((await cli(d, 'volume', 'list', '--json')).stdout) as { name: string; bytes: number; allocatedBytes: number }[];
    const t1 = rows.find((r) => r.name === 'thick1')!;
    assert.equal(t1.bytes, 8 * MiB);
    assert.ok(t1.allocatedBytes >= 8 * MiB, JSON.stringify(t1));
    const thin = rows.find((r) => r.name === 'db-a')!;
    assert.ok(thin.allocatedBytes < 1 * MiB, JSON.stringify(thin));

    const image = path.join(d.dir, 'image.raw');
    const data = Buffer.alloc(3 * MiB);
    data.fill(0x5a, MiB, MiB + 4096);
    data.fill(0xc3, 3 * MiB - 512);
    fs.writeFileSync(image, data);
    const imp = await cli(d, 'volume', 'import', 'img1', image, '--path', 'img1.img');
    assert.equal(imp.code, 0, imp.stderr);
    assert.match(imp.stdout, /imported 3 MiB into img1/);
    assert.equal((await cli(d, 'acl', 'add', SAN, D, '--lun', '1=img1')).code, 0);
    const hostD = await Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: SAN, initiatorName: D });
    await hostD.testUnitReady(1);
    assert.equal(Number((await hostD.readCapacity(1)).blocks) * 512, 3 * MiB);
    assert.deepEqual(await hostD.read(1, 2048, 8), data.subarray(MiB, MiB + 4096));
    assert.deepEqual(await hostD.read(1, 6143, 1), data.subarray(3 * MiB - 512));
    await hostD.logout();

    const qcow = path.join(d.dir, 'image.qcow2');
    fs.writeFileSync(qcow, Buffer.concat([Buffer.from('QFI\xfb', 'latin1'), Buffer.alloc(508)]));
    const q = await cli(d, 'volume', 'import', 'img2', qcow);
    assert.equal(q.code, 1);
    assert.match(q.stderr, /qcow2 image; import takes raw images .*qemu-img convert -O raw/);
    await hostAStillWorks();
  });

  test('the control socket is 0600 and named after the config path', () => {
    const candidates = clientSocketPaths(d.configFile);
    const sock = candidates.find((p) => fs.existsSync(p));
    assert.ok(sock, candidates.join(', '));
    assert.ok(Buffer.byteLength(sock) < 108);
    const st = fs.statSync(sock);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
  });

  test('host A keeps doing I/O without a failure while other hosts are added and removed', async (t) => {
    let stop = false;
    let ios = 0;
    let worst = 0;
    let failure: unknown;
    const loop = (async () => {
      while (!stop) {
        const t0 = performance.now();
        try {
          await hostA.write(0, 64 + (ios % 64) * 8, patternA);
          assert.deepEqual(await hostA.read(0, 8, 8), patternA);
        } catch (e) {
          failure = e;
          return;
        }
        worst = Math.max(worst, performance.now() - t0);
        ios++;
      }
    })();
    const applied: number[] = [];
    const E = 'iqn.1994-05.com.redhat:host-e';
    for (let i = 0; i < 3; i++) {
      for (const args of [
        ['volume', 'create', 'churn', '--size', '4MiB', '--path', 'churn.img'],
        ['acl', 'add', SAN, E, '--lun', '0=churn'],
        ['acl', 'remove', SAN, E],
        ['volume', 'delete', 'churn', '--purge'],
      ]) {
        const r = await cli(d, ...args);
        assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
        applied.push(Number(/in ([\d.]+) ms/.exec(r.stdout)![1]));
        if (process.env.ADMIN_TRACE) t.diagnostic(`${args[0]} ${args[1]}: ${applied[applied.length - 1]} ms`);
      }
    }
    stop = true;
    await loop;
    assert.equal(failure, undefined);
    assert.ok(ios > 0);
    applied.sort((a, b) => a - b);
    t.diagnostic(
      `${applied.length} changes applied in ${applied[0]}..${applied[applied.length - 1]} ms (median ${applied[applied.length >> 1]}) inside the daemon; host A did ${ios} write+read pairs meanwhile, slowest ${worst.toFixed(1)} ms`,
    );
  });

  test('portal add/remove and target create/delete apply live', async () => {
    const port2 = await freePort();
    const T2 = 'iqn.2026-11.io.example:san2';
    for (const args of [
      ['portal', 'add', `127.0.0.1:${port2}`],
      ['volume', 'create', 'db-t2', '--size', '4MiB', '--path', 'db-t2.img'],
      ['target', 'create', T2],
      ['acl', 'add', T2, A, '--lun', '0=db-t2'],
    ]) {
      const r = await cli(d, ...args);
      assert.equal(r.code, 0, `${args.join(' ')}: ${r.stderr}`);
    }
    const viaNewPortal = await Initiator.connect({ host: '127.0.0.1', port: port2, targetName: T2, initiatorName: A });
    await viaNewPortal.testUnitReady(0);
    const targets = JSON.parse((await cli(d, 'target', 'list', '--json')).stdout) as { iqn: string; sessions: number }[];
    assert.equal(targets.find((x) => x.iqn === T2)?.sessions, 1);
    const rm = await cli(d, 'portal', 'remove', `127.0.0.1:${port2}`);
    assert.equal(rm.code, 0, rm.stderr);
    await assert.rejects(Initiator.connect({ host: '127.0.0.1', port: port2, targetName: T2, initiatorName: A }));
    await viaNewPortal.testUnitReady(0); // open sessions on a removed portal stay
    const del = await cli(d, 'target', 'delete', T2);
    assert.equal(del.code, 0, del.stderr);
    assert.ok(await waitFor(() => viaNewPortal.isClosed), 'session on the deleted target still open');
    assert.equal((await cli(d, 'volume', 'delete', 'db-t2')).code, 0);
    await hostAStillWorks();
  });

  test('probe logs in, reads the capacity and block 0', async () => {
    const r = await cli(d, 'probe', '--json', '-i', A, `iscsi://127.0.0.1:${d.port}/${SAN}/0`);
    assert.equal(r.code, 0, r.stderr);
    const p = JSON.parse(r.stdout) as { capacity: { bytes: number }; inquiry: { peripheralType: number }; firstBlock: { bytes: number } };
    assert.equal(p.capacity.bytes, 48 * MiB);
    assert.equal(p.inquiry.peripheralType, 0);
    assert.equal(p.firstBlock.bytes, 512);
    const refused = await cli(d, 'probe', '-i', 'iqn.1994-05.com.redhat:stranger', `iscsi://127.0.0.1:${d.port}/${SAN}/0`);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /login failed: status 0x0202: not authorized/);
  });

  test('config check on a broken file exits non-zero naming the line', async () => {
    const broken = path.join(d.dir, 'broken.yaml');
    fs.writeFileSync(broken, 'volumes:\n  x: { path: x.img, size: 1GiB }\ntargets:\n  - iqn: not-an-iqn\n');
    const r = await runCli(['config', 'check', '--config', broken]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /broken\.yaml:4:\d+: targets\[0\]\.iqn/);
  });

  test('metrics: sessions, commands, bytes and latency per volume, login failures', async () => {
    await assert.rejects(
      Initiator.connect({ host: '127.0.0.1', port: d.port, targetName: SAN, initiatorName: 'iqn.1994-05.com.redhat:stranger' }),
    );
    const text = await httpGet(`http://127.0.0.1:${metricsPort}/metrics`);
    const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
    assert.ok(value(/^iscsi_target_sessions\{target="iqn\.2026-11\.io\.example:san1"\} (\d+)$/m) >= 1, text);
    assert.ok(value(/^iscsi_target_commands_total\{volume="db-a",op="read"\} (\d+)$/m) >= 5);
    assert.ok(value(/^iscsi_target_written_bytes_total\{volume="db-a"\} (\d+)$/m) >= 5 * 4096);
    assert.ok(value(/^iscsi_target_command_duration_seconds_count\{volume="db-a",op="write"\} (\d+)$/m) >= 5);
    assert.ok(value(/^iscsi_target_command_duration_seconds_bucket\{volume="db-a",op="write",le="\+Inf"\} (\d+)$/m) >= 5);
    assert.ok(value(/^iscsi_target_command_errors_total\{volume="db-a",status="check_condition"\} (\d+)$/m) >= 1); // the unit attention
    assert.ok(value(/^iscsi_target_login_failures_total (\d+)$/m) >= 1);
  });
});
