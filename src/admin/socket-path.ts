// Where `serve` puts its control socket, and where the other commands look for it.
//
// The path is derived from the config file's absolute path (symlinks resolved), so that every command given the
// same --config finds the daemon serving it, and two daemons with different configs do not
// collide. Unix socket paths are limited to about 107 bytes, so the config path is hashed:
//
//   <dir>/iscsi-target-<first 16 hex digits of sha256(absolute config path)>.sock
//
// <dir> is the first of these that exists and is writable: $ISCSI_TARGET_RUN_DIR,
// /run/iscsi-target (systemd's RuntimeDirectory=iscsi-target creates it), $XDG_RUNTIME_DIR,
// os.tmpdir(). Clients try every candidate in the same order, so a root shell with
// XDG_RUNTIME_DIR set still finds a daemon that systemd started under /run/iscsi-target.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export function socketName(configFile: string): string {
  let abs = path.resolve(configFile);
  try {
    abs = fs.realpathSync(abs); // a symlinked config finds the same daemon
  } catch {
    /* not created yet */
  }
  return `iscsi-target-${createHash('sha256').update(abs).digest('hex').slice(0, 16)}.sock`;
}

export function runDirCandidates(env: NodeJS.ProcessEnv = process.env): string[] {
  const dirs = [env.ISCSI_TARGET_RUN_DIR, '/run/iscsi-target', env.XDG_RUNTIME_DIR, os.tmpdir()];
  return [...new Set(dirs.filter((d): d is string => !!d))];
}

function writableDir(dir: string): boolean {
  try {
    if (!fs.statSync(dir).isDirectory()) return false;
    fs.accessSync(dir, fs.constants.W_OK | fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The path the daemon listens on. */
export function serverSocketPath(configFile: string, env: NodeJS.ProcessEnv = process.env): string {
  const dir = runDirCandidates(env).find(writableDir) ?? os.tmpdir();
  return path.join(dir, socketName(configFile));
}

/** Paths a client tries, most likely first. */
export function clientSocketPaths(configFile: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return runDirCandidates(env).map((d) => path.join(d, socketName(configFile)));
}
