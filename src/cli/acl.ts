// `iscsi-target acl add|remove|list`: which initiator sees which volume as which LUN.
import type { Command } from 'commander';
import { addAcl, removeAcl } from '../admin/config-edit';
import { iscsiNameProblem } from '../config/names';
import { MAX_LUN } from '../config/load';
import { editTarget, printIssues, proposeChange, readConfig } from './change';
import { EXIT, err, out, type CliContext } from './context';
import {
  CHAP_FLAGS,
  MUTUAL_FLAGS,
  addConfigOption,
  addJsonOption,
  chapPair,
  collect,
  parseLunMaps,
  type ConfigOptions,
  type JsonOptions,
} from './options';
import { table } from './table';

type Opts = ConfigOptions & JsonOptions;
interface AddOpts extends Opts {
  lun: string[];
  chapUser?: string;
  chapSecret?: string;
  mutualUser?: string;
  mutualSecret?: string;
}

async function add(ctx: CliContext, target: string, initiator: string, o: AddOpts): Promise<number> {
  const problem = iscsiNameProblem(initiator);
  if (problem) {
    err(ctx, `error: ${problem}`);
    return EXIT.FAILURE;
  }
  const luns = parseLunMaps(ctx, o.lun ?? []);
  if (!luns) return EXIT.FAILURE;
  const chap = chapPair(ctx, CHAP_FLAGS, o.chapUser, o.chapSecret);
  if (!chap) return EXIT.FAILURE;
  const mutual = chapPair(ctx, MUTUAL_FLAGS, o.mutualUser, o.mutualSecret);
  if (!mutual) return EXIT.FAILURE;
  const what = `${initiator} admitted to ${target}${luns.size ? ` (${[...luns].map(([n, v]) => `LUN ${n}=${v}`).join(', ')})` : ''}`;
  return (await proposeChange(ctx, o, what, (doc) => addAcl(doc, target, initiator, { luns, chap: chap.chap, mutual: mutual.chap }))).code;
}

async function remove(
  ctx: CliContext,
  target: string,
  initiator: string,
  o: Opts & { lun?: string; allowOpen?: boolean },
): Promise<number> {
  const lun = o.lun === undefined ? undefined : Number(o.lun);
  if (lun !== undefined && !(Number.isInteger(lun) && lun >= 0 && lun <= MAX_LUN)) {
    err(ctx, `error: --lun ${o.lun} is not a LUN number`);
    return EXIT.FAILURE;
  }
  const what = lun === undefined ? `${initiator} removed from ${target}` : `LUN ${lun} of ${initiator} on ${target} removed`;
  return (await proposeChange(ctx, o, what, (doc) => removeAcl(doc, target, initiator, { lun, allowOpen: o.allowOpen }))).code;
}

async function list(ctx: CliContext, target: string | undefined, o: Opts): Promise<number> {
  const cur = readConfig(editTarget(ctx, o));
  if ('errors' in cur) {
    printIssues(ctx, cur.errors);
    return EXIT.FAILURE;
  }
  const rows: { target: string; initiator: string; luns: Record<string, string>; chap: string | null; mutual: boolean }[] = [];
  for (const t of cur.config.targets) {
    if (target && t.iqn.toLowerCase() !== target.toLowerCase()) continue;
    if (t.acls.length === 0) rows.push({ target: t.iqn, initiator: '*', luns: Object.fromEntries(t.luns), chap: null, mutual: false });
    for (const a of t.acls) {
      rows.push({
        target: t.iqn,
        initiator: a.initiator,
        luns: Object.fromEntries(a.luns ?? t.luns),
        chap: a.chap?.user ?? null,
        mutual: !!a.mutual,
      });
    }
  }
  if (o.json) {
    out(ctx, JSON.stringify(rows, null, 2)); // CHAP secrets are never printed
    return EXIT.OK;
  }
  if (rows.length === 0) {
    out(ctx, 'no acls');
    return EXIT.OK;
  }
  out(
    ctx,
    table(
      ['TARGET', 'INITIATOR', 'LUNS', 'CHAP USER'],
      rows.map((r) => [
        r.target,
        r.initiator === '*' ? '* (every initiator)' : r.initiator,
        Object.entries(r.luns)
          .map(([n, v]) => `${n}=${v}`)
          .join(',') || '-',
        r.chap ? `${r.chap}${r.mutual ? ' (mutual)' : ''}` : '-',
      ]),
    ),
  );
  return EXIT.OK;
}

export function registerAcl(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  const cmd = (c: Command) => addJsonOption(addConfigOption(c));
  const acl = program.command('acl').description('admit initiators to targets and map their LUNs');
  cmd(acl.command('add <target> <initiator>').description('admit an initiator (or add LUNs/CHAP to its entry); usable at once'))
    .option('--lun <N=VOLUME>', 'map VOLUME as LUN N for this initiator (repeatable)', collect, [])
    .option('--chap-user <user>', 'CHAP user the initiator must log in with')
    .option('--chap-secret <secret>', 'CHAP secret, 12..16 characters for portability (or set $ISCSI_CHAP_SECRET)')
    .option('--mutual-user <user>', 'mutual CHAP: the name the target answers the initiator with')
    .option('--mutual-secret <secret>', 'mutual CHAP secret, not the CHAP secret (or set $ISCSI_MUTUAL_SECRET)')
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target acl add iqn.2026-11.io.example:san1 iqn.1994-05.com.redhat:host-a --lun 0=db-a
  $ ISCSI_CHAP_SECRET='host-a-secret1' iscsi-target acl add iqn.2026-11.io.example:san1 \\
      iqn.1994-05.com.redhat:host-a --chap-user host-a
  $ iscsi-target acl add iqn.2026-11.io.example:san1 iqn.1994-05.com.redhat:host-a \\
      --chap-user host-a --chap-secret 'host-a-secret1' --mutual-user san1 --mutual-secret 'target-secret-16'`,
    )
    .action(async (t: string, i: string, o: AddOpts) => setExit(await add(ctx, t, i, o)));
  cmd(acl.command('remove <target> <initiator>').description("remove an initiator's entry (its sessions end), or one LUN with --lun"))
    .option('--lun <N>', 'remove only this LUN from its map')
    .option('--allow-open', 'allow removing the last acl (the target then admits every initiator)')
    .action(async (t: string, i: string, o: Opts & { lun?: string; allowOpen?: boolean }) => setExit(await remove(ctx, t, i, o)));
  cmd(acl.command('list [target]').description('who sees what (CHAP secrets are never shown)')).action(
    async (t: string | undefined, o: Opts) => setExit(await list(ctx, t, o)),
  );
}
