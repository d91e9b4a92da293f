// The daemon side of live config in-process: ConfigController + control socket around a real
// TargetServer. Refusals (stale base, a port in use, invalid text) change neither the file
// nor the running config; the protocol answers malformed requests.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import { controlRequest, startControlServer, type ControlServer } from '../../src/admin/control-socket';
import { ConfigController, sha256 } from '../../src/admin/controller';
import { parseConfig } from '../../src/config/load';
import { Initiator, senseOf } from '../../src/initiator/initiator';
import { TargetServer } from '../../src/iscsi/server';

const IQN = 'iqn.2026-11.io.example:lab';

describe('ConfigController and the control socket', () => {
  let dir: string;
  let file: string;
  let server: TargetServer;
  let control: ControlServer;
  let busy: net.Server;
  let busyPort: number;
  const env = { ...process.env };

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-apply-'));
    env.ISCSI_TARGET_RUN_DIR = dir;
    file = path.join(dir, 'iscsi-target.yaml');
    fs.writeFileSync(
      file,
      `portals: ["127.0.0.1:0"]\nvolumes:\n  m: { memory: true, size: 1MiB }\ntargets:\n  - iqn: ${IQN}\n    luns: { 0: m }\n`,
      { mode: 0o600 },
    );
    const logger = pino({ level: 'silent' });
    server = await TargetServer.start({ config: parseConfig(fs.readFileSync(file, 'utf8'), file), logger });
    control = await startControlServer(new ConfigController(server, file, logger), logger, env);
    busy = net.createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', () => r()));
    busyPort = (busy.address() as net.AddressInfo).port;
  });

  after(async () => {
    await control?.close();
    await server?.stop();
    busy?.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  test('the socket is in $ISCSI_TARGET_RUN_DIR with mode 0600', () => {
    assert.equal(path.dirname(control.path), dir);
    assert.equal(fs.statSync(control.path).mode & 0o777, 0o600);
  });

  test('a change based on an older file is refused', async () => {
    const before = fs.readFileSync(file, 'utf8');
    const r = await controlRequest(file, { op: 'apply', text: before.replace('1MiB', '2MiB'), baseSha256: sha256('something else') }, env);
    assert.ok(r && !r.ok);
    assert.match(r.message, /changed while this edit was being made/);
    assert.equal(fs.readFileSync(file, 'utf8'), before);
  });

  test('a portal that cannot be bound is refused whole: nothing else of the change applies', async () => {
    const before = fs.readFileSync(file, 'utf8');
    const config = server.currentConfig;
    const text = before
      .replace('portals: ["127.0.0.1:0"]', `portals: ["127.0.0.1:0", "127.0.0.1:${busyPort}"]`)
      .replace('volumes:\n', 'volumes:\n  extra: { memory: true, size: 1MiB }\n')
      .replace('luns: { 0: m }', 'luns: { 0: m, 1: extra }');
    const r = await controlRequest(file, { op: 'apply', text, baseSha256: sha256(before) }, env);
    assert.ok(r && !r.ok);
    assert.match(r.message, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${busyPort}: EADDRINUSE; nothing was changed`));
    assert.equal(fs.readFileSync(file, 'utf8'), before);
    assert.equal(server.currentConfig, config);
    assert.deepEqual([...server.units.keys()], ['m']);
    assert.equal(server.addresses.length, 1);
  });

  test('an invalid text is refused with located errors', async () => {
    const before = fs.readFileSync(file, 'utf8');
    const r = await controlRequest(file, { op: 'apply', text: before.replace('1MiB', '1 parsec') }, env);
    assert.ok(r && !r.ok);
    assert.equal(r.errors?.[0]?.line, 3);
    assert.equal(r.errors?.[0]?.key, 'volumes.m.size');
    assert.equal(fs.readFileSync(file, 'utf8'), before);
  });

  test('a good change applies: a new LUN appears in a live session', async () => {
    const ini = await Initiator.connect({ host: '127.0.0.1', port: server.addresses[0].port, targetName: IQN });
    await ini.testUnitReady(0);
    const before = fs.readFileSync(file, 'utf8');
    const text = before
      .replace('volumes:\n', 'volumes:\n  extra: { memory: true, size: 2MiB }\n')
      .replace('luns: { 0: m }', 'luns: { 0: m, 1: extra }');
    const r = await controlRequest(file, { op: 'apply', text, baseSha256: sha256(before) }, env);
    assert.ok(r && r.ok && 'report' in r, JSON.stringify(r));
    assert.deepEqual(r.report.opened, ['extra']);
    assert.equal(r.report.lunsAdded[0]?.luns[0], 1);
    assert.equal(fs.readFileSync(file, 'utf8'), text);
    const tur = await ini.command(0, Buffer.alloc(6));
    assert.equal(tur.status, 2);
    assert.deepEqual(senseOf(tur.sense), { key: 6, asc: 0x3f, ascq: 0x0e }); // REPORTED LUNS DATA HAS CHANGED
    await ini.testUnitReady(1);
    assert.equal(Number((await ini.readCapacity(1)).blocks) * 512, 2 * 1024 * 1024);
    ini.close();
  });

  test('a daemon on the built-in default answers status and refuses changes, writing no file', async () => {
    const other = path.join(dir, 'builtin', 'iscsi-target.yaml');
    fs.mkdirSync(path.dirname(other));
    const logger = pino({ level: 'silent' });
    const ctl = await startControlServer(new ConfigController(server, other, logger, true), logger, env);
    try {
      const st = await controlRequest(other, { op: 'status' }, env);
      assert.ok(st && st.ok && 'portals' in st, JSON.stringify(st));
      assert.equal(st.pid, process.pid);
      assert.match(st.config, /built-in default/);
      const text = `portals: ["127.0.0.1:0"]\nvolumes:\n  m: { memory: true, size: 1MiB }\n`;
      for (const req of [{ op: 'apply' as const, text }, { op: 'reload' as const }]) {
        const r = await controlRequest(other, req, env);
        assert.ok(r && !r.ok, JSON.stringify(r));
        assert.match(r.message, /serves the built-in default/);
      }
      assert.equal(fs.existsSync(other), false);
    } finally {
      await ctl.close();
    }
  });

  test('malformed and unknown requests get an error answer', async () => {
    const ask = (line: string) =>
      new Promise<string>((resolve) => {
        let buf = '';
        const s = net.connect(control.path, () => s.write(line));
        s.on('data', (c: Buffer) => (buf += c.toString()));
        s.on('end', () => resolve(buf));
      });
    assert.deepEqual(JSON.parse(await ask('not json\n')), { ok: false, message: 'malformed request' });
    assert.match(JSON.parse(await ask('{"op":"format-disk"}\n')).message, /unknown request "format-disk"/);
  });

  test('a reload that only changes allowTargetReset is reported and applied', async () => {
    const ini = await Initiator.connect({ host: '127.0.0.1', port: server.addresses[0].port, targetName: IQN });
    assert.equal(await ini.taskManagement(6, 0), 6, 'TARGET WARM RESET refused before');
    const before = fs.readFileSync(file, 'utf8');
    fs.writeFileSync(file, before.replace(`  - iqn: ${IQN}\n`, `  - iqn: ${IQN}\n    allowTargetReset: true\n`));
    const r = await controlRequest(file, { op: 'reload' }, env);
    assert.ok(r && r.ok && 'changed' in r, JSON.stringify(r));
    assert.equal(r.changed, true);
    // The target reset ends the issuer's own session once answered.
    assert.equal(await ini.taskManagement(6, 0), 0, 'TARGET WARM RESET performed after');
    ini.close();
  });
});
