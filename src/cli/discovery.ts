// `iscsi-target discovery chap|open|show`: CHAP for Discovery sessions (SendTargets).
import type { Command } from 'commander';
import { setDiscoveryChap } from '../admin/config-edit';
import { editTarget, printIssues, proposeChange, readConfig } from './change';
import { EXIT, err, out, type CliContext } from './context';
import { MUTUAL_FLAGS, addConfigOption, addJsonOption, chapPair, type ConfigOptions, type JsonOptions } from './options';

type Opts = ConfigOptions & JsonOptions;
interface ChapOpts extends Opts {
  user?: string;
  secret?: string;
  mutualUser?: string;
  mutualSecret?: string;
}

async function chap(ctx: CliContext, o: ChapOpts): Promise<number> {
  const secret = o.secret ?? ctx.env.ISCSI_CHAP_SECRET;
  if (o.user === undefined || secret === undefined) {
    err(ctx, 'error: discovery CHAP needs --user and --secret (or $ISCSI_CHAP_SECRET)');
    return EXIT.FAILURE;
  }
  const pair = chapPair(ctx, MUTUAL_FLAGS, o.mutualUser, o.mutualSecret);
  if (!pair) return EXIT.FAILURE;
  const mutual = pair.chap;
  const what = `discovery now needs CHAP (user ${o.user}${mutual ? `, mutual user ${mutual.user}` : ''})`;
  return (await proposeChange(ctx, o, what, (doc) => setDiscoveryChap(doc, { chap: { user: o.user!, secret }, mutual }))).code;
}

async function show(ctx: CliContext, o: Opts): Promise<number> {
  const cur = readConfig(editTarget(ctx, o));
  if ('errors' in cur) {
    printIssues(ctx, cur.errors);
    return EXIT.FAILURE;
  }
  const d = cur.config.discovery;
  // Users only: secrets are never printed.
  const view = { chap: d?.chap ? { user: d.chap.user } : null, mutual: d?.mutual ? { user: d.mutual.user } : null };
  if (o.json) out(ctx, JSON.stringify(view, null, 2));
  else if (!view.chap) out(ctx, 'discovery: open (no CHAP); each initiator still sees only the targets its ACLs admit it to');
  else out(ctx, `discovery: CHAP user ${view.chap.user}${view.mutual ? `, mutual CHAP user ${view.mutual.user}` : ''}`);
  return EXIT.OK;
}

export function registerDiscovery(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  const cmd = (c: Command) => addJsonOption(addConfigOption(c));
  const discovery = program.command('discovery').description('CHAP for discovery sessions (SendTargets)');
  cmd(discovery.command('chap').description('require CHAP of every discovery session (and optionally mutual CHAP)'))
    .option('--user <user>', 'CHAP user initiators discover with')
    .option('--secret <secret>', 'CHAP secret, 12..16 characters for portability (or set $ISCSI_CHAP_SECRET)')
    .option('--mutual-user <user>', 'mutual CHAP: the name the target answers with')
    .option('--mutual-secret <secret>', 'mutual CHAP secret (or set $ISCSI_MUTUAL_SECRET)')
    .addHelpText(
      'after',
      `
Example:
  $ ISCSI_CHAP_SECRET='discovery-secret' iscsi-target discovery chap --user disco
  (open-iscsi: node.session.auth... is for login; discovery.sendtargets.auth.* for this)`,
    )
    .action(async (o: ChapOpts) => setExit(await chap(ctx, o)));
  cmd(discovery.command('open').description('discovery without CHAP again')).action(async (o: Opts) =>
    setExit((await proposeChange(ctx, o, 'discovery no longer needs CHAP', (doc) => setDiscoveryChap(doc, undefined))).code),
  );
  cmd(discovery.command('show').description('whether discovery needs CHAP (secrets are never shown)')).action(async (o: Opts) =>
    setExit(await show(ctx, o)),
  );
}
