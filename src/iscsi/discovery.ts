// SendTargets (RFC 7143 §11.10.3, Appendix C): which targets an initiator is told about,
// and at which addresses. Only those its ACLs admit it to, and `All` only in a Discovery
// session; a refusal is logged, or an admin sees nothing either.

import type { Logger } from 'pino';
import { resolveAccess } from '../acl/access';
import { plural } from '../text';
import type { TargetConfig } from '../config/model';
import { formatPortal, isWildcardHost } from '../config/portal';
import type { Session } from './session';

/** The SendTargets answer: TargetName and TargetAddress keys, in that order. */
export function sendTargetsAnswer(
  targets: readonly TargetConfig[],
  /** Listening portals, each its own target portal group. */
  addresses: readonly { host: string; port: number; tpgt: number }[],
  req: { initiatorName: string; value: string; session: Session; localAddress: string },
  logger: Logger,
): Array<[string, string]> {
  const { initiatorName, value, session, localAddress } = req;
  const out: Array<[string, string]> = [];
  let wanted: readonly TargetConfig[];
  if (value === 'All') {
    if (session.type !== 'Discovery') return out; // only a Discovery session may ask for All
    wanted = targets;
  } else if (value === '') {
    wanted = targets.filter((t) => t.iqn === session.targetName);
  } else {
    wanted = targets.filter((t) => t.iqn.toLowerCase() === value.toLowerCase());
  }
  const withheld: string[] = [];
  for (const t of wanted) {
    if (!resolveAccess(t, initiatorName).allowed) {
      withheld.push(t.iqn);
      continue;
    }
    out.push(['TargetName', t.iqn]);
    for (const a of addresses) {
      const host = isWildcardHost(a.host) ? normalizeLocal(localAddress) : a.host;
      out.push(['TargetAddress', `${formatPortal({ host, port: a.port })},${a.tpgt}`]);
    }
  }
  // An initiator no ACL lists sees nothing: say so, or the admin sees nothing either.
  if (withheld.length > 0) {
    const who = { initiator: initiatorName, tsih: session.tsih, withheld };
    if (out.length === 0) logger.info(who, `discovery refused: ${initiatorName} is in no acl of ${withheld.join(', ')}; it sees no target`);
    else logger.debug(who, `discovery: ${plural(withheld.length, 'target')} not shown to ${initiatorName} (not in their acls)`);
  }
  return out;
}

/** The address the initiator reached us on, as it can dial it back. */
function normalizeLocal(addr: string): string {
  return addr.startsWith('::ffff:') ? addr.slice(7) : addr || '127.0.0.1';
}
