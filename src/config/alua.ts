// From config to ALUA (scsi/alua.ts): every gateway's target port group with its ports, and
// the state of each group for a volume. Pure, so that every gateway given the same
// `gateway.peers` and volume `owner:` computes the same RTPG answer.

import { AluaState, relativePortId, type TargetPortGroup } from '../scsi/alua';
import type { AluaStateName, Config, VolumeConfig } from './model';

const STATE_OF: Record<AluaStateName, AluaState> = {
  'non-optimized': AluaState.ActiveNonOptimized,
  standby: AluaState.Standby,
  unavailable: AluaState.Unavailable,
};

const range = (group: number, n: number) => Array.from({ length: n }, (_, i) => relativePortId(group, i));

/**
 * This gateway's group (its ports: `ownPorts`, else one per configured portal) and each
 * peer's (as many ports as it declares, default as many portals as this config lists).
 */
export function gatewayGroups(config: Config, ownPorts?: readonly number[]): TargetPortGroup[] {
  const group = config.gateway?.group ?? 1;
  const portals = config.portals.length;
  const groups: TargetPortGroup[] = [{ id: group, ports: ownPorts ?? range(group, portals) }];
  for (const p of config.gateway?.peers ?? []) groups.push({ id: p.group, ports: range(p.group, p.portals ?? portals) });
  return groups;
}

/** A volume's state per group: its owner active/optimized, the rest `others`; no owner: all optimized. */
export function aluaStatesFor(vol: VolumeConfig, groups: readonly TargetPortGroup[]): Map<number, AluaState> {
  const others = vol.owner === undefined ? AluaState.ActiveOptimized : STATE_OF[vol.others ?? 'non-optimized'];
  return new Map(groups.map((g) => [g.id, g.id === vol.owner ? AluaState.ActiveOptimized : others]));
}
