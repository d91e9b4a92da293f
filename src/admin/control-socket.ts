// The control socket: a unix socket (mode 0600, in a private 0700 folder: socket-path.ts)
// where `serve` answers the other commands. Protocol: the client sends one JSON request line,
// the daemon answers one JSON line and closes (src/admin/protocol.ts).
//
// Both ends check who the other is with SO_PEERCRED (peer-cred.ts): the daemon answers only
// root and its own user; the CLI sends nothing (a request can carry the whole config, CHAP
// secrets included) to a process that is not root, the CLI's own user, or the owner of the
// config file (the service user a packaged daemon runs as).
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ConfigController } from './controller';
import { myUid, peerCred } from './peer-cred';
import type { ControlReply, ControlRequest } from './protocol';
import { clientSocketPaths, privateDirProblem, serverSocketPath } from './socket-path';

const MAX_REQUEST_BYTES = 16 * 1024 * 1024;

export interface ControlServer {
  path: string;
  close(): Promise<void>;
}

function connectable(p: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(p, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

export async function startControlServer(controller: ConfigController, logger: Logger, env = process.env): Promise<ControlServer> {
  const sockPath = serverSocketPath(controller.configFile, env);
  if (fs.existsSync(sockPath)) {
    if (await connectable(sockPath)) {
      throw new Error(`another iscsi-target serve already answers on ${sockPath} for ${controller.configFile}`);
    }
    fs.unlinkSync(sockPath); // left behind by a daemon that died
  }
  const srv = net.createServer((sock) => handle(sock, controller, logger));
  const oldMask = process.umask(0o177); // the socket is created 0600, not chmod'ed after
  try {
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen(sockPath, () => {
        srv.off('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  fs.chmodSync(sockPath, 0o600);
  srv.on('error', (err) => logger.error({ err }, 'control socket error'));
  return {
    path: sockPath,
    close: () =>
      new Promise<void>((resolve) => {
        srv.close(() => resolve());
        fs.rmSync(sockPath, { force: true });
      }),
  };
}

function handle(sock: net.Socket, controller: ConfigController, logger: Logger): void {
  sock.on('error', () => undefined);
  const cred = peerCred(sock);
  const uid = myUid();
  if (cred === null || (cred.uid !== 0 && cred.uid !== uid)) {
    // Nothing is read from it; the answer says why, and holds nothing of the config.
    logger.warn({ peerUid: cred?.uid, peerPid: cred?.pid }, 'control socket: refused a process that is neither root nor our user');
    sock.end(
      `${JSON.stringify({ ok: false, message: cred === null ? 'cannot check who you are (SO_PEERCRED); refused' : `uid ${cred.uid} may not use this control socket (only root and uid ${uid})` })}\n`,
    );
    return;
  }
  let buf = '';
  let done = false;
  const reply = (r: ControlReply) => {
    if (!sock.destroyed) sock.end(`${JSON.stringify(r)}\n`);
  };
  sock.setEncoding('utf8');
  sock.on('data', (chunk: string) => {
    if (done) return;
    buf += chunk;
    if (buf.length > MAX_REQUEST_BYTES) {
      done = true;
      reply({ ok: false, message: 'request too large' });
      return;
    }
    const nl = buf.indexOf('\n');
    if (nl < 0) return;
    done = true;
    let req: ControlRequest;
    try {
      req = JSON.parse(buf.slice(0, nl)) as ControlRequest;
    } catch {
      reply({ ok: false, message: 'malformed request' });
      return;
    }
    void dispatch(req, controller).then(reply, (err: unknown) => {
      logger.error({ err }, 'control request failed');
      reply({ ok: false, message: `internal error: ${(err as Error)?.message ?? String(err)}` });
    });
  });
}

async function dispatch(req: ControlRequest, c: ConfigController): Promise<ControlReply> {
  switch (req?.op) {
    case 'apply':
      if (typeof req.text !== 'string') return { ok: false, message: 'apply needs text' };
      return c.apply(req.text, req.baseSha256);
    case 'reload':
      return c.reload();
    case 'status':
      return c.status();
    case 'log-level':
      return c.logLevel(req.level);
    case 'stats':
      return c.stats();
    default:
      return { ok: false, message: `unknown request ${JSON.stringify((req as { op?: unknown })?.op)}` };
  }
}

/**
 * Send one request to the daemon serving `configFile`. Resolves undefined when none runs
 * (no socket, or nobody listening on it).
 */
export async function controlRequest(
  configFile: string,
  req: ControlRequest,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = 120000,
  /** Ask this socket only (instead of the ones named after configFile). */
  socketPath?: string,
): Promise<ControlReply | undefined> {
  const trusted = trustedUids(configFile);
  for (const p of socketPath !== undefined ? [socketPath] : clientSocketPaths(configFile, env)) {
    if (!fs.existsSync(p)) continue;
    const problem = privateDirProblem(path.dirname(p), trusted);
    if (problem !== undefined) {
      throw new Error(`refusing to use the control socket ${p}: its folder is not private to a trusted user (${problem})`);
    }
    const r = await requestOn(p, req, timeoutMs, trusted);
    if (r !== undefined) return r;
  }
  return undefined;
}

/** Who may serve this config: root, we, and the config file's owner (a service user). */
export function trustedUids(configFile: string): number[] {
  const uids = new Set([0, myUid()]);
  try {
    uids.add(fs.statSync(configFile).uid);
  } catch {
    /* no file yet: root and we */
  }
  return [...uids];
}

function requestOn(p: string, req: ControlRequest, timeoutMs: number, trusted: number[]): Promise<ControlReply | undefined> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let connected = false;
    const s = net.connect(p, () => {
      connected = true;
      const cred = peerCred(s);
      if (cred === null || !trusted.includes(cred.uid)) {
        // Checked before a byte is sent: the request may hold every secret of the config.
        clearTimeout(timer);
        s.destroy();
        reject(
          new Error(
            cred === null
              ? `cannot check who answers on ${p} (SO_PEERCRED unavailable); nothing was sent`
              : `the process on ${p} (pid ${cred.pid}) runs as uid ${cred.uid}, not root, you or the config's owner (uids ${trusted.join(', ')}); nothing was sent`,
          ),
        );
        return;
      }
      s.write(`${JSON.stringify(req)}\n`);
    });
    s.setEncoding('utf8');
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error(`the daemon did not answer on ${p} within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    s.on('data', (c: string) => (buf += c));
    s.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (!connected && (e.code === 'ECONNREFUSED' || e.code === 'ENOENT')) resolve(undefined);
      else if (e.code === 'EACCES') reject(new Error(`permission denied on the control socket ${p} (run as the daemon's user)`));
      else reject(e);
    });
    s.on('end', () => {
      clearTimeout(timer);
      try {
        resolve(JSON.parse(buf) as ControlReply);
      } catch {
        reject(new Error(`the daemon sent a malformed answer on ${p}`));
      }
    });
  });
}
