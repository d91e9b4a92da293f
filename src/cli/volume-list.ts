// `iscsi-target volume list`: size, allocation, identity and who maps each volume, with the
// running daemon's sessions and identities when it answers.
import * as fs from 'node:fs';
import { controlRequest } from '../admin/control-socket';
import { volumeUsers } from '../acl/access';
import { formatSize } from '../config/size';
import type { Config, VolumeConfig } from '../config/model';
import { identityFile } from '../config/identity';
import { editTarget, printIssues, readConfig } from './change';
import { EXIT, out, type CliContext } from './context';
import { type ConfigOptions, type JsonOptions } from './options';
import { table } from './table';

type Opts = ConfigOptions & JsonOptions;

export interface VolumeRow {
  name: string;
  path: string | null;
  bytes: number | null;
  allocatedBytes: number | null;
  blockSize: number;
  readonly: boolean;
  mappedTo: { target: string; initiator: string; lun: number }[];
  sessions: number | null;
  /** The identity hosts see: the running daemon's, else the config's or the identity file's; null when not known yet. */
  serial: string | null;
  wwn: string | null;
}

/** A volume's identity as far as the CLI can tell without the daemon. */
export function knownIdentity(v: VolumeConfig): { serial: string | null; wwn: string | null } {
  let stored: { serial?: string; wwn?: string } = {};
  if (v.path && !v.memory) {
    try {
      stored = JSON.parse(fs.readFileSync(identityFile(v.path), 'utf8')) as typeof stored;
    } catch {
      /* not created yet, or not readable by this user */
    }
  }
  return { serial: v.serial ?? stored.serial ?? null, wwn: v.wwn ?? stored.wwn ?? null };
}

export function volumeRows(config: Config, live?: Map<string, number>, open?: Map<string, { serial: string; wwn: string }>): VolumeRow[] {
  return [...config.volumes.values()].map((v) => {
    let bytes: number | null = v.size ?? null;
    let allocated: number | null = null;
    if (v.memory) allocated = null;
    else if (v.path) {
      try {
        const st = fs.statSync(v.path);
        if (st.isFile()) {
          bytes = st.size;
          allocated = st.blocks * 512;
        }
      } catch {
        /* not created yet */
      }
    }
    return {
      name: v.name,
      path: v.memory ? 'memory' : v.rbd ? `rbd:${v.rbd.pool}/${v.rbd.image}` : (v.path ?? null),
      bytes,
      allocatedBytes: allocated,
      blockSize: v.blockSize,
      readonly: v.readonly,
      mappedTo: volumeUsers(config, v.name),
      sessions: live ? (live.get(v.name) ?? 0) : null,
      ...(open?.get(v.name) ?? knownIdentity(v)),
    };
  });
}

export async function list(ctx: CliContext, o: Opts): Promise<number> {
  const file = editTarget(ctx, o);
  const cur = readConfig(file);
  if ('errors' in cur) {
    printIssues(ctx, cur.errors);
    return EXIT.FAILURE;
  }
  let live: Map<string, number> | undefined;
  let open: Map<string, { serial: string; wwn: string }> | undefined;
  const st = await controlRequest(file, { op: 'status' }, ctx.env).catch(() => undefined);
  if (st?.ok && 'portals' in st) {
    live = new Map();
    for (const s of st.sessions) for (const l of s.luns) live.set(l.volume, (live.get(l.volume) ?? 0) + 1);
    open = new Map(st.volumes.filter((v) => v.serial !== undefined).map((v) => [v.name, { serial: v.serial, wwn: v.wwn }]));
  }
  const rows = volumeRows(cur.config, live, open);
  if (o.json) {
    out(ctx, JSON.stringify(rows, null, 2));
    return EXIT.OK;
  }
  if (rows.length === 0) {
    out(ctx, `no volumes in ${file}`);
    return EXIT.OK;
  }
  out(
    ctx,
    table(
      ['NAME', 'SIZE', 'ALLOCATED', 'BLOCK', 'PATH', 'MAPPED TO', ...(live ? ['SESSIONS'] : [])],
      rows.map((r) => [
        r.name + (r.readonly ? ' (ro)' : ''),
        r.bytes === null ? '-' : formatSize(r.bytes),
        r.allocatedBytes === null ? '-' : formatSize(r.allocatedBytes),
        String(r.blockSize),
        r.path ?? '-',
        r.mappedTo.length === 0
          ? '-'
          : r.mappedTo.map((m) => `${m.target}${m.initiator === '*' ? '' : ` ${m.initiator}`} LUN ${m.lun}`).join('; '),
        ...(live ? [String(r.sessions)] : []),
      ]),
    ),
  );
  return EXIT.OK;
}
