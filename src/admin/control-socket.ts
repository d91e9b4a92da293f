// The control socket: a unix socket (mode 0600) where `serve` answers the other commands.
// Protocol: the client sends one JSON request line, the daemon answers one JSON line and
// closes (src/admin/protocol.ts). Only the daemon's user (and root) may connect.
import * as fs from 'node:fs';
import * as net from 'node:net';
import type { Logger } from 'pino';
import type { ConfigController } from './controller';
import type { ControlReply, ControlRequest } from './protocol';
import { clientSocketPaths, serverSocketPath } from './socket-path';

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
  let buf = '';
  let done = false;
  const reply = (r: ControlReply) => {
    if (!sock.destroyed) sock.end(`${JSON.stringify(r)}\n`);
  };
  sock.setEncoding('utf8');
  sock.on('error', () => undefined);
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
  for (const p of socketPath !== undefined ? [socketPath] : clientSocketPaths(configFile, env)) {
    if (!fs.existsSync(p)) continue;
    const r = await requestOn(p, req, timeoutMs);
    if (r !== undefined) return r;
  }
  return undefined;
}

function requestOn(p: string, req: ControlRequest, timeoutMs: number): Promise<ControlReply | undefined> {
  return new Promise((resolve, reject) => {
    let buf = '';
    let connected = false;
    const s = net.connect(p, () => {
      connected = true;
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
