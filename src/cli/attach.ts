// The "how to attach" text `serve` prints once it listens. Pure: config + bound addresses in,
// text out. Secrets are never printed (placeholders instead).
import type { Config, TargetConfig } from '../config/model';
import { formatPortal, isWildcardHost } from '../config/portal';
import { formatSize } from '../config/size';

/** The address an initiator on this machine should dial for a bound portal. */
export function dialAddress(p: { host: string; port: number }): { host: string; port: number } {
  if (p.host === '0.0.0.0') return { host: '127.0.0.1', port: p.port };
  if (isWildcardHost(p.host)) return { host: '::1', port: p.port };
  return p;
}

function volumeLine(config: Config, lun: number, name: string): string {
  const v = config.volumes.get(name);
  if (!v) return `LUN ${lun}: ${name}`;
  const size = v.size !== undefined ? formatSize(v.size) : v.rbd ? 'size of the image' : 'size of the device';
  const where = v.memory ? 'memory' : v.rbd ? `rbd:${v.rbd.pool}/${v.rbd.image}` : (v.path ?? '');
  return `LUN ${lun}: ${name}, ${size}${v.readonly ? ', read-only' : ''}, ${where}`;
}

function lunLines(config: Config, luns: Map<number, string>, indent: string): string[] {
  if (luns.size === 0) return [`${indent}(no LUNs)`];
  return [...luns.entries()].sort((a, b) => a[0] - b[0]).map(([n, v]) => indent + volumeLine(config, n, v));
}

function targetLines(config: Config, t: TargetConfig): string[] {
  const lines = [`  ${t.iqn}`];
  if (t.acls.length === 0) {
    lines.push('    open to every initiator');
    lines.push(...lunLines(config, t.luns, '    '));
  } else {
    for (const a of t.acls) {
      const auth = a.chap ? ` (CHAP user ${a.chap.user}${a.mutual ? `, mutual CHAP user ${a.mutual.user}` : ''})` : '';
      lines.push(`    initiator ${a.initiator}${auth}`);
      lines.push(...lunLines(config, a.luns ?? t.luns, '      '));
    }
  }
  return lines;
}

export function attachInstructions(config: Config, addresses: { host: string; port: number }[]): string {
  const bound = addresses.length > 0 ? addresses : config.portals;
  const lines: string[] = [];
  lines.push(`iSCSI target listening (${config.source})`);
  lines.push('');
  lines.push('Portals:');
  let wildcard = false;
  for (const a of bound) {
    if (isWildcardHost(a.host)) {
      wildcard = true;
      lines.push(
        `  ${formatPortal(a)}  (every address; use ${formatPortal(dialAddress(a))} here, this host's address from other machines)`,
      );
    } else {
      lines.push(`  ${formatPortal(a)}`);
    }
  }
  lines.push('');
  if (config.targets.length === 0) {
    lines.push('No targets are defined: initiators will find nothing.');
    return lines.join('\n') + '\n';
  }
  lines.push('Targets:');
  for (const t of config.targets) lines.push(...targetLines(config, t));
  lines.push('');

  const p = formatPortal(dialAddress(bound[0] ?? { host: '127.0.0.1', port: 3260 }));
  const first = config.targets[0];
  lines.push('Attach with open-iscsi:');
  lines.push(`  iscsiadm -m discovery -t st -p ${p}`);
  for (const t of config.targets) lines.push(`  iscsiadm -m node -T ${t.iqn} -p ${p} --login`);
  lines.push(`  (detach: iscsiadm -m node -T ${first.iqn} -p ${p} --logout)`);
  const guarded = config.targets.filter((t) => t.acls.length > 0);
  if (guarded.length > 0) {
    lines.push('  Targets with acls admit only the initiators listed: set InitiatorName= in');
    lines.push('  /etc/iscsi/initiatorname.iscsi to one of them.');
    const chapTarget = guarded.find((t) => t.acls.some((a) => a.chap));
    if (chapTarget) {
      const acl = chapTarget.acls.find((a) => a.chap)!;
      const set = (name: string, value: string) => `  iscsiadm -m node -T ${chapTarget.iqn} -p ${p} -o update -n ${name} -v ${value}`;
      lines.push('  For CHAP, before --login:');
      lines.push(set('node.session.auth.authmethod', 'CHAP'));
      lines.push(set('node.session.auth.username', acl.chap!.user));
      lines.push(set('node.session.auth.password', "'<the secret from the config>'"));
      if (acl.mutual) {
        lines.push(set('node.session.auth.username_in', acl.mutual.user));
        lines.push(set('node.session.auth.password_in', "'<the mutual secret from the config>'"));
      }
    }
  }
  lines.push('');
  lines.push('With libiscsi:');
  lines.push(`  iscsi-ls -s iscsi://${p}${guarded.length ? '      (add -i INITIATOR-IQN for targets with acls)' : ''}`);
  const lun0 = [...first.luns.keys()].sort((a, b) => a - b)[0];
  if (lun0 !== undefined) lines.push(`  iscsi-inq iscsi://${p}/${first.iqn}/${lun0}`);
  if (wildcard) {
    lines.push('');
    lines.push(`From other machines, replace ${p.replace(/:\d+$/, '')} with this host's address.`);
  }
  return lines.join('\n') + '\n';
}
