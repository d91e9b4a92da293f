// This gateway's side of ALUA: the target port groups it reports (its listening portals'
// ports, and its peers' from config) and a config reload's new groups and states.

import type { Logger } from 'pino';
import { aluaStatesFor, gatewayGroups } from '../config/alua';
import type { Config } from '../config/model';
import type { AluaTopology, TargetPortGroup } from '../scsi/alua';
import type { LogicalUnit } from '../scsi/logical-unit';

/**
 * The groups RTPG reports: this gateway's ports are its listening portals' TPGTs (the
 * config's before they listen), each peer's as many as it declares (default: as many as
 * ours), numbered alike on every gateway (scsi/alua.ts).
 */
export function groupsOf(config: Config, listening: readonly { tpgt: number }[]): TargetPortGroup[] {
  return gatewayGroups(config, listening.length > 0 ? listening.map((a) => a.tpgt) : undefined);
}

/**
 * Config reload: peers and portals may have changed the groups, owners and `others:` the
 * states. Each LU whose RTPG answer changes tells its I_T nexuses (2A/06).
 */
export function applyAlua(
  next: Config,
  topology: AluaTopology,
  listening: readonly { tpgt: number }[],
  units: ReadonlyMap<string, LogicalUnit>,
  logger: Logger,
): void {
  const before = JSON.stringify(topology.groups);
  topology.update(groupsOf(next, listening));
  const groupsChanged = JSON.stringify(topology.groups) !== before;
  for (const [name, lu] of units) {
    const vol = next.volumes.get(name);
    if (vol === undefined) continue;
    const changed = lu.alua.applyImplicit(aluaStatesFor(vol, topology.groups));
    if (changed) logger.info({ volume: name, owner: vol.owner, others: vol.others }, 'ALUA states changed');
    else if (groupsChanged) lu.alua.topologyChanged();
  }
}
