// The `gateway:` section (ALUA target port groups) and the volumes' `owner:`.
import type { Config, GatewayConfig } from './model';
import { MAX_GROUP, MAX_PORTALS_PER_GATEWAY } from '../scsi/alua';
import { Checker, describe, joinKey, type Entry } from './checker';
import { isMap, isScalar } from 'yaml';
import { GATEWAY_KEYS } from './keys';

/** A target port group number, 1..MAX_GROUP. */
export function groupNumber(c: Checker, e: Entry, what: string): number | undefined {
  const v = isScalar(e.value) ? e.value.value : undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_GROUP) return v;
  c.error(e.value ?? e.keyNode, e.key, `${what} must be a whole number from 1 to ${MAX_GROUP}, not ${describe(e.value)}`);
  return undefined;
}

/** `gateway: { group: N, peers: [M, { group: K, portals: P }] }`. */
export function parseGateway(c: Checker, e: Entry): GatewayConfig | undefined {
  const m = c.map(e.value, e.keyNode, e.key, 'gateway');
  if (!m) return undefined;
  const before = c.errors.length;
  const out: GatewayConfig = { group: 1, peers: [] };
  const peerNodes: { group: number; node: unknown; key: string }[] = [];
  for (const ge of c.entries(m, e.key, GATEWAY_KEYS)) {
    if (ge.name === 'group') {
      const n = groupNumber(c, ge, 'gateway.group');
      if (n !== undefined) out.group = n;
      continue;
    }
    const seq = c.seq(ge.value, ge.keyNode, ge.key, 'gateway.peers');
    if (!seq) continue;
    seq.items.forEach((item, i) => {
      const key = joinKey(ge.key, i);
      const n = c.resolve(item, key);
      if (isMap(n)) {
        let group: number | undefined;
        let portals: number | undefined;
        for (const pe of c.entries(n, key, ['group', 'portals'])) {
          if (pe.name === 'group') group = groupNumber(c, pe, 'a peer group');
          else {
            const v = isScalar(pe.value) ? pe.value.value : undefined;
            if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_PORTALS_PER_GATEWAY) portals = v;
            else
              c.error(
                pe.value ?? pe.keyNode,
                pe.key,
                `portals must be a whole number from 1 to ${MAX_PORTALS_PER_GATEWAY}, not ${describe(pe.value)}`,
              );
          }
        }
        if (group === undefined) c.error(n, key, 'a peer needs its group, e.g. { group: 2, portals: 2 }');
        else {
          out.peers.push(portals === undefined ? { group } : { group, portals });
          peerNodes.push({ group, node: n, key });
        }
        return;
      }
      const g = groupNumber(c, { name: String(i), keyNode: undefined, value: n, key }, 'a peer group');
      if (g !== undefined) {
        out.peers.push({ group: g });
        peerNodes.push({ group: g, node: n, key });
      }
    });
  }
  const seen = new Set([out.group]);
  for (const p of peerNodes) {
    if (seen.has(p.group)) c.error(p.node, p.key, `group ${p.group} is listed twice (gateway.group and gateway.peers must all differ)`);
    seen.add(p.group);
  }
  return c.errors.length > before ? undefined : out;
}

/** A volume's owner must be this gateway's group or a peer's. */
export function checkOwners(c: Checker, config: Config, volumeLocs: Map<string, { node: unknown; key: string }>): void {
  const groups = [config.gateway?.group ?? 1, ...(config.gateway?.peers ?? []).map((p) => p.group)];
  for (const vol of config.volumes.values()) {
    if (vol.owner === undefined || groups.includes(vol.owner)) continue;
    const loc = volumeLocs.get(vol.name);
    c.error(
      loc?.node,
      joinKey(loc?.key ?? `volumes.${vol.name}`, 'owner'),
      `owner ${vol.owner} is no gateway's group; known groups: ${groups.join(', ')} (gateway.group and gateway.peers)`,
    );
  }
  for (const vol of config.volumes.values()) {
    if (vol.others !== undefined && vol.owner === undefined) {
      const loc = volumeLocs.get(vol.name);
      c.error(
        loc?.node,
        joinKey(loc?.key ?? `volumes.${vol.name}`, 'others'),
        'others needs an owner: it is the state of the paths through the other gateways',
      );
    }
  }
}
