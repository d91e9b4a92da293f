// Who may log in to which target and which LUNs each initiator sees.
//
// - A target without acls admits every initiator; each sees the target's luns.
// - A target with acls admits only the listed initiators (iSCSI names compare
//   case-insensitively); each sees its ACL's own luns, or else the target's luns.
import type { AclConfig, Config, TargetConfig } from '../config/model';
import { sameIscsiName } from '../config/names';

export interface Access {
  allowed: boolean;
  /** LUN number -> volume name this initiator sees (empty when not allowed). */
  luns: Map<number, string>;
  /** The matching ACL entry (absent for open targets or when not allowed). */
  acl?: AclConfig;
  /** May it send TARGET WARM/COLD RESET (the ACL's allowTargetReset, else the target's)? */
  allowTargetReset: boolean;
}

/** What an initiator no ACL admits gets (shared: callers only read an Access). */
export const NOT_ALLOWED: Readonly<Access> = Object.freeze({ allowed: false, luns: new Map<number, string>(), allowTargetReset: false });

export function resolveAccess(target: TargetConfig, initiatorName: string): Access {
  const targetReset = target.allowTargetReset ?? false;
  if (target.acls.length === 0) return { allowed: true, luns: target.luns, allowTargetReset: targetReset };
  const acl = target.acls.find((a) => sameIscsiName(a.initiator, initiatorName));
  if (!acl) return NOT_ALLOWED;
  return { allowed: true, luns: acl.luns ?? target.luns, acl, allowTargetReset: acl.allowTargetReset ?? targetReset };
}

/** The target named `iqn` (case-insensitive), if any. */
export function findTarget(config: Config, iqn: string): TargetConfig | undefined {
  return config.targets.find((t) => sameIscsiName(t.iqn, iqn));
}

/** Targets this initiator may log in to: what SendTargets=All answers. */
export function visibleTargets(config: Config, initiatorName: string): TargetConfig[] {
  return config.targets.filter((t) => resolveAccess(t, initiatorName).allowed);
}

/** Initiators that see a volume through any target: names, or "*" for open targets. */
export function volumeUsers(config: Config, volume: string): { target: string; initiator: string; lun: number }[] {
  const out: { target: string; initiator: string; lun: number }[] = [];
  for (const t of config.targets) {
    const maps: [string, Map<number, string>][] =
      t.acls.length === 0 ? [['*', t.luns]] : t.acls.map((a) => [a.initiator, a.luns ?? t.luns]);
    for (const [initiator, luns] of maps) {
      for (const [lun, v] of luns) if (v === volume) out.push({ target: t.iqn, initiator, lun });
    }
  }
  return out;
}
