// Where `serve` puts its control socket, and where the other commands look for it.
//
// The path is derived from the config file's absolute path (symlinks resolved), so that every command given the
// same --config finds the daemon serving it, and two daemons with different configs do not
// collide. Unix socket paths are limited to about 107 bytes, so the config path is hashed:
//
//   <dir>/iscsi-target-<first 16 hex digits of sha256(absolute config path)>.sock
//
// <dir> is a private folder: a real folder (not a symlink), mode 0700, owned by the daemon's
// user. Never a shared one such as /tmp, where any local user could bind the name first and
// collect what root's CLI sends it. Candidates, in order: $ISCSI_TARGET_RUN_DIR,
// /run/iscsi-target (systemd's RuntimeDirectory=iscsi-target creates it), and
// $XDG_RUNTIME_DIR/iscsi-target. The daemon creates a missing one (0700), skips one that
// belongs to another user (unless it was named explicitly), and refuses one of its own that
// others may enter. Clients try every candidate in the same order, but only folders owned by
// a user they trust and closed to everyone else.
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { myUid } from './peer-cred';

export const SYSTEM_RUN_DIR = '/run/iscsi-target';

export function socketName(configFile: string): string {
  let abs = path.resolve(configFile);
  try {
    abs = fs.realpathSync(abs); // a symlinked config finds the same daemon
  } catch {
    /* not created yet */
  }
  return `iscsi-target-${createHash('sha256').update(abs).digest('hex').slice(0, 16)}.sock`;
}

export interface RunDirCandidate {
  dir: string;
  /** Named by $ISCSI_TARGET_RUN_DIR: problems with it are errors, not a reason to try the next. */
  explicit: boolean;
}

export function runDirCandidates(env: NodeJS.ProcessEnv = process.env): RunDirCandidate[] {
  const out: RunDirCandidate[] = [];
  if (env.ISCSI_TARGET_RUN_DIR) out.push({ dir: path.resolve(env.ISCSI_TARGET_RUN_DIR), explicit: true });
  out.push({ dir: SYSTEM_RUN_DIR, explicit: false });
  if (env.XDG_RUNTIME_DIR && path.isAbsolute(env.XDG_RUNTIME_DIR)) {
    out.push({ dir: path.join(env.XDG_RUNTIME_DIR, 'iscsi-target'), explicit: false });
  }
  const seen = new Set<string>();
  return out.filter((c) => !seen.has(c.dir) && seen.add(c.dir));
}

/** lstat, or the reason it failed (an errno code). lstat, not stat: a symlink is refused, whatever it points to. */
function lstatOrWhy(dir: string): fs.Stats | string {
  try {
    return fs.lstatSync(dir);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code ?? (e as Error).message;
  }
}

function statsProblem(dir: string, st: fs.Stats | string, owners: readonly number[]): string | undefined {
  if (typeof st === 'string') return `${dir}: ${st}`;
  if (st.isSymbolicLink()) return `${dir} is a symbolic link, not a folder`;
  if (!st.isDirectory()) return `${dir} is not a folder`;
  if (!owners.includes(st.uid))
    return `${dir} belongs to uid ${st.uid}, not ${owners.length === 1 ? `uid ${owners[0]}` : `one of uids ${owners.join(', ')}`}`;
  const mode = st.mode & 0o7777;
  if ((mode & 0o077) !== 0) return `${dir} has mode ${mode.toString(8).padStart(4, '0')}; it must be 0700 (chmod 700 ${dir})`;
  return undefined;
}

/** What is wrong with `dir` as a private folder for uids in `owners` (undefined: nothing). */
export function privateDirProblem(dir: string, owners: readonly number[]): string | undefined {
  return statsProblem(dir, lstatOrWhy(dir), owners);
}

/**
 * The path the daemon listens on, in a private folder of ours (created when missing).
 * Throws an Error saying what to fix when there is none.
 */
export function serverSocketPath(configFile: string, env: NodeJS.ProcessEnv = process.env): string {
  const uid = myUid();
  const skipped: string[] = [];
  for (const c of runDirCandidates(env)) {
    // One lstat decides both the check and whose folder it is (again only after creating it).
    let st = lstatOrWhy(c.dir);
    if (typeof st === 'string') {
      try {
        // Only the last level is made, except in a folder named explicitly.
        fs.mkdirSync(c.dir, { mode: 0o700, recursive: c.explicit });
      } catch (e) {
        const why = `cannot create ${c.dir}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`;
        if (c.explicit) throw new Error(`ISCSI_TARGET_RUN_DIR: ${why}`);
        skipped.push(why);
        continue;
      }
      st = lstatOrWhy(c.dir);
    }
    const problem = statsProblem(c.dir, st, [uid]);
    if (problem === undefined) return path.join(c.dir, socketName(configFile));
    const ownedByUs = typeof st !== 'string' && st.uid === uid && !st.isSymbolicLink();
    // Another user's folder (say, the service user's /run/iscsi-target) is not for us;
    // a folder of ours that others may enter is a mistake to fix, not to work around.
    if (c.explicit || ownedByUs) throw new Error(`the control socket's folder is not private: ${problem}`);
    skipped.push(problem);
  }
  throw new Error(
    `no private folder for the control socket (${skipped.join('; ') || 'no candidates'}); ` +
      'set ISCSI_TARGET_RUN_DIR to a folder of yours with mode 0700',
  );
}

/** Paths a client tries, most likely first (folders are checked when connecting). */
export function clientSocketPaths(configFile: string, env: NodeJS.ProcessEnv = process.env): string[] {
  return runDirCandidates(env).map((c) => path.join(c.dir, socketName(configFile)));
}
