// Who already listens on a TCP port, to say so when `serve` cannot: our own daemon (its pid
// and config, from its control socket or its command line), another program (tgtd, ...),
// or nobody we can see.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { controlRequest } from './control-socket';
import { runDirCandidates } from './socket-path';

export interface Listener {
  pid: number;
  /** The program's name (comm), e.g. "node", "tgtd". */
  program: string;
  /** Our own daemon: the config it serves. */
  config?: string;
  ours: boolean;
}

/** Inodes of sockets listening on `port` (any address), from /proc/net/tcp and tcp6. */
function listeningInodes(port: number): Set<string> {
  const inodes = new Set<string>();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const local = cols[1];
      const state = cols[3];
      if (state !== '0A') continue; // LISTEN
      if (parseInt(local.slice(local.lastIndexOf(':') + 1), 16) === port) inodes.add(cols[9]);
    }
  }
  return inodes;
}

/** The process holding one of these socket inodes (needs permission to read its fds). */
function processOf(inodes: Set<string>): number | undefined {
  if (inodes.size === 0) return undefined;
  let pids: string[];
  try {
    pids = fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return undefined;
  }
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = fs.readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (m && inodes.has(m[1])) return Number(pid);
      } catch {
        /* gone */
      }
    }
  }
  return undefined;
}

/** Our daemon listening on `port`, asked through the control sockets we can reach. */
async function ourDaemonOn(port: number, env: NodeJS.ProcessEnv): Promise<Listener | undefined> {
  for (const { dir } of runDirCandidates(env)) {
    let names: string[];
    try {
      names = fs.readdirSync(dir).filter((n) => /^iscsi-target-[0-9a-f]{16}\.sock$/.test(n));
    } catch {
      continue;
    }
    for (const n of names) {
      const r = await controlRequest('', { op: 'status' }, env, 2000, path.join(dir, n)).catch(() => undefined);
      if (r?.ok && 'portals' in r && r.portals.some((p) => p.endsWith(`:${port}`))) {
        return { pid: r.pid, program: 'iscsi-target', config: r.config, ours: true };
      }
    }
  }
  return undefined;
}

/** Who listens on `port`, as far as this user can see. */
export async function whoListens(port: number, env: NodeJS.ProcessEnv = process.env): Promise<Listener | undefined> {
  const ours = await ourDaemonOn(port, env);
  if (ours) return ours;
  const pid = processOf(listeningInodes(port));
  if (pid === undefined) return undefined;
  let program = '?';
  let cmdline: string[] = [];
  try {
    program = fs.readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
    cmdline = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
  } catch {
    /* gone meanwhile */
  }
  const ourBin = cmdline.some((a) => /iscsi-target(\.js)?$/.test(a)) && cmdline.includes('serve');
  if (!ourBin) return { pid, program, ours: false };
  const i = cmdline.indexOf('--config');
  return { pid, program: 'iscsi-target', config: i >= 0 ? cmdline[i + 1] : undefined, ours: true };
}

/** "our own iscsi-target daemon (pid 42, config /etc/...)" or "tgtd (pid 7)". */
export function describeListener(l: Listener): string {
  if (l.ours) return `our own iscsi-target daemon (pid ${l.pid}${l.config ? `, config ${l.config}` : ''})`;
  return `${l.program} (pid ${l.pid})`;
}
