// What changes between the running config and a proposed one, and what that means for each
// live session. Pure: configs in, plan out; TargetServer.apply carries the plan out.
import type { AclConfig, ChapCredentials, Config, Portal, VolumeConfig } from '../config/model';
import { NOT_ALLOWED, findTarget, resolveAccess, type Access } from '../acl/access';
import { formatPortal } from '../config/portal';

export interface ConfigDiff {
  volumes: {
    added: string[];
    removed: string[];
    /** Volumes whose configured size changed; the daemon compares with the store's real size. */
    resized: { name: string; size: number }[];
  };
  portals: { added: Portal[]; removed: Portal[] };
  targets: { added: string[]; removed: string[]; changed: string[] };
  discoveryChanged: boolean;
  metricsChanged: boolean;
  /** ALUA groups or states changed (gateway.peers, volume owner/others): applied live, with 2A/06. */
  aluaChanged: boolean;
  /** `limits` changed: they are read at start only, so this part waits for a restart. */
  limitsChanged: boolean;
  /** Changes a running daemon does not make; the whole change is refused when any is listed. */
  refused: string[];
}

const portalKey = (p: Portal) => formatPortal(p).toLowerCase();

function volumeFieldChanges(a: VolumeConfig, b: VolumeConfig): string[] {
  const out: string[] = [];
  if ((a.path ?? '') !== (b.path ?? '')) out.push('path');
  if (a.memory !== b.memory) out.push('memory');
  if (a.blockSize !== b.blockSize) out.push('blockSize');
  if (a.readonly !== b.readonly) out.push('readonly');
  if ((a.physicalBlockSize ?? a.blockSize) !== (b.physicalBlockSize ?? b.blockSize)) out.push('physicalBlockSize');
  if (!!a.encryption !== !!b.encryption || a.encryption?.keyFile !== b.encryption?.keyFile) out.push('encryption');
  if (a.serial !== b.serial) out.push('serial');
  if (a.wwn !== b.wwn) out.push('wwn');
  return out;
}

/** Does `next` change what RTPG answers (peers, portals, owners or others)? */
function aluaChanged(prev: Config, next: Config): boolean {
  const peers = (c: Config) => JSON.stringify(c.gateway?.peers ?? []);
  if (peers(prev) !== peers(next) || prev.portals.length !== next.portals.length) return true;
  for (const [name, v] of next.volumes) {
    const old = prev.volumes.get(name);
    if (old && (old.owner !== v.owner || old.others !== v.others)) return true;
  }
  return false;
}

function sameChap(a?: ChapCredentials, b?: ChapCredentials): boolean {
  return a?.user === b?.user && a?.secret === b?.secret && a?.minAlgorithm === b?.minAlgorithm;
}

function sameLuns(a: Map<number, string>, b: Map<number, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

function sameAcl(a: AclConfig, b: AclConfig): boolean {
  return (
    a.initiator === b.initiator &&
    // undefined inherits the target's value, so it is not the same as an explicit false
    a.allowTargetReset === b.allowTargetReset &&
    sameChap(a.chap, b.chap) &&
    sameChap(a.mutual, b.mutual) &&
    (a.luns === undefined) === (b.luns === undefined) &&
    (a.luns === undefined || sameLuns(a.luns, b.luns!))
  );
}

export function diffConfig(prev: Config, next: Config): ConfigDiff {
  const d: ConfigDiff = {
    volumes: { added: [], removed: [], resized: [] },
    portals: { added: [], removed: [] },
    targets: { added: [], removed: [], changed: [] },
    discoveryChanged: false,
    metricsChanged: false,
    aluaChanged: aluaChanged(prev, next),
    limitsChanged: false,
    refused: [],
  };
  const group = (c: Config) => c.gateway?.group ?? 1;
  if (group(prev) !== group(next)) {
    d.refused.push(
      `gateway.group: this gateway's target port group (${group(prev)} -> ${group(next)}) numbers every target port; it changes at a restart only`,
    );
  }
  for (const [name, v] of next.volumes) {
    const old = prev.volumes.get(name);
    if (!old) {
      d.volumes.added.push(name);
      continue;
    }
    const fields = volumeFieldChanges(old, v);
    if (fields.length > 0) {
      d.refused.push(
        `volume ${name}: ${fields.join(', ')} of a volume in use cannot change while the target runs; delete the volume and create it again, or restart`,
      );
      continue;
    }
    if (v.size !== undefined && v.size !== old.size) {
      if (v.memory) d.refused.push(`volume ${name}: a memory volume cannot be resized while the target runs`);
      else if (old.size !== undefined && v.size < old.size)
        d.refused.push(`volume ${name}: shrinking a volume would lose data; only growing is supported`);
      else d.volumes.resized.push({ name, size: v.size });
    }
  }
  for (const name of prev.volumes.keys()) if (!next.volumes.has(name)) d.volumes.removed.push(name);

  const prevPortals = new Map(prev.portals.map((p) => [portalKey(p), p]));
  const nextPortals = new Map(next.portals.map((p) => [portalKey(p), p]));
  for (const [k, p] of nextPortals) if (!prevPortals.has(k)) d.portals.added.push(p);
  for (const [k, p] of prevPortals) if (!nextPortals.has(k)) d.portals.removed.push(p);

  for (const t of next.targets) {
    const old = findTarget(prev, t.iqn);
    if (!old) d.targets.added.push(t.iqn);
    else if (
      !sameLuns(old.luns, t.luns) ||
      (old.allowTargetReset ?? false) !== (t.allowTargetReset ?? false) ||
      old.acls.length !== t.acls.length ||
      old.acls.some((a, i) => !sameAcl(a, t.acls[i]))
    )
      d.targets.changed.push(t.iqn);
  }
  for (const t of prev.targets) if (!findTarget(next, t.iqn)) d.targets.removed.push(t.iqn);

  d.discoveryChanged =
    !sameChap(prev.discovery?.chap, next.discovery?.chap) ||
    !sameChap(prev.discovery?.mutual, next.discovery?.mutual) ||
    // (the floor applies to new logins, discovery ones included)
    prev.security?.minChapAlgorithm !== next.security?.minChapAlgorithm;
  d.metricsChanged =
    (prev.metrics?.listen ? portalKey(prev.metrics.listen) : '') !== (next.metrics?.listen ? portalKey(next.metrics.listen) : '');
  d.limitsChanged = JSON.stringify(prev.limits ?? {}) !== JSON.stringify(next.limits ?? {});
  return d;
}

export function diffIsEmpty(d: ConfigDiff): boolean {
  return (
    d.volumes.added.length +
      d.volumes.removed.length +
      d.volumes.resized.length +
      d.portals.added.length +
      d.portals.removed.length +
      d.targets.added.length +
      d.targets.removed.length +
      d.targets.changed.length ===
      0 &&
    !d.discoveryChanged &&
    !d.metricsChanged &&
    !d.aluaChanged
  );
}

export type SessionVerdict =
  | { action: 'keep' }
  | { action: 'end'; why: string }
  /** Still admitted; these LUNs are new to it. */
  | { action: 'add'; luns: Map<number, string> };

/**
 * What a live Normal session of `initiator` on `target` becomes under `next`. Sessions lose
 * nothing silently: a LUN taken away or pointed elsewhere, changed CHAP credentials, or a
 * removed acl or target end the session; new LUNs are added to it; anything else keeps it.
 */
export function sessionVerdict(prev: Config, next: Config, target: string, initiator: string): SessionVerdict {
  const nt = findTarget(next, target);
  if (!nt) return { action: 'end', why: `target ${target} was removed` };
  const now = resolveAccess(nt, initiator);
  if (!now.allowed) return { action: 'end', why: `${initiator} is no longer admitted to ${target}` };
  const pt = findTarget(prev, target);
  const before: Access = pt ? resolveAccess(pt, initiator) : NOT_ALLOWED;
  for (const [lun, vol] of before.luns) {
    const v = now.luns.get(lun);
    if (v !== vol)
      return { action: 'end', why: v === undefined ? `LUN ${lun} (${vol}) was unmapped` : `LUN ${lun} now maps ${v} instead of ${vol}` };
  }
  if (!sameChap(before.acl?.chap, now.acl?.chap) || !sameChap(before.acl?.mutual, now.acl?.mutual)) {
    return { action: 'end', why: 'its CHAP credentials changed' };
  }
  const added = new Map<number, string>();
  for (const [lun, vol] of now.luns) if (!before.luns.has(lun)) added.set(lun, vol);
  return added.size > 0 ? { action: 'add', luns: added } : { action: 'keep' };
}
