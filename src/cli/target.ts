// `iscsi-target target create|delete|list`, `portal add|remove|list` and `gateway set|show`.
import type { Command } from 'commander';
import { addPortal, addTarget, removePortal, removeTarget, setGateway, setTargetLuns } from '../admin/config-edit';
import { gatewayGroups } from '../config/alua';
import { MAX_LUN } from '../config/load';
import { controlRequest } from '../admin/control-socket';
import { iscsiNameProblem } from '../config/names';
import { formatPortal, parsePortal } from '../config/portal';
import { editTarget, printIssues, proposeChange, readConfig } from './change';
import { EXIT, err, out, type CliContext } from './context';
import { addConfigOption, addJsonOption, collect, parseLunMaps, type ConfigOptions, type JsonOptions } from './options';
import { table } from './table';
import { plural } from '../text';

type Opts = ConfigOptions & JsonOptions;

function checkName(ctx: CliContext, name: string): boolean {
  const problem = iscsiNameProblem(name);
  if (problem) err(ctx, `error: ${problem}`);
  return !problem;
}

async function listTargets(ctx: CliContext, o: Opts): Promise<number> {
  const file = editTarget(ctx, o);
  const cur = readConfig(file);
  if ('errors' in cur) {
    printIssues(ctx, cur.errors);
    return EXIT.FAILURE;
  }
  const st = await controlRequest(file, { op: 'status' }, ctx.env).catch(() => undefined);
  const sessions = new Map<string, number>();
  if (st?.ok && 'portals' in st)
    for (const s of st.sessions) if (s.target) sessions.set(s.target.toLowerCase(), (sessions.get(s.target.toLowerCase()) ?? 0) + 1);
  const rows = cur.config.targets.map((t) => ({
    iqn: t.iqn,
    luns: Object.fromEntries(t.luns),
    acls: t.acls.map((a) => ({
      initiator: a.initiator,
      luns: a.luns ? Object.fromEntries(a.luns) : undefined,
      chap: !!a.chap,
      mutual: !!a.mutual,
    })),
    sessions: st?.ok ? (sessions.get(t.iqn.toLowerCase()) ?? 0) : null,
  }));
  if (o.json) {
    out(ctx, JSON.stringify(rows, null, 2));
    return EXIT.OK;
  }
  if (rows.length === 0) {
    out(ctx, `no targets in ${file}`);
    return EXIT.OK;
  }
  out(
    ctx,
    table(
      ['TARGET', 'LUNS', 'ACCESS', ...(st?.ok ? ['SESSIONS'] : [])],
      rows.map((r) => [
        r.iqn,
        Object.entries(r.luns)
          .map(([n, v]) => `${n}=${v}`)
          .join(',') || '-',
        r.acls.length === 0 ? 'every initiator' : plural(r.acls.length, 'acl'),
        ...(st?.ok ? [String(r.sessions)] : []),
      ]),
    ),
  );
  return EXIT.OK;
}

async function listPortals(ctx: CliContext, o: Opts): Promise<number> {
  const file = editTarget(ctx, o);
  const cur = readConfig(file);
  if ('errors' in cur) {
    printIssues(ctx, cur.errors);
    return EXIT.FAILURE;
  }
  const portals = cur.config.portals.map(formatPortal);
  if (o.json) out(ctx, JSON.stringify(portals, null, 2));
  else out(ctx, portals.join('\n'));
  return EXIT.OK;
}

/** `gateway show`: every gateway's target port group and its relative target port ids. */
function showGateway(ctx: CliContext, o: Opts): number {
  const file = editTarget(ctx, o);
  const cur = readConfig(file);
  if ('errors' in cur) {
    printIssues(ctx, cur.errors);
    return EXIT.FAILURE;
  }
  const own = cur.config.gateway?.group ?? 1;
  const groups = gatewayGroups(cur.config).map((g) => ({ group: g.id, self: g.id === own, ports: [...g.ports] }));
  if (o.json) out(ctx, JSON.stringify(groups, null, 2));
  else
    out(
      ctx,
      table(
        ['GROUP', 'GATEWAY', 'RELATIVE TARGET PORTS'],
        groups.map((g) => [String(g.group), g.self ? 'this one' : 'peer', g.ports.join(',')]),
      ),
    );
  return EXIT.OK;
}

/** "2,3" -> [2, 3]; "" or "none" -> []. */
function parseGroups(ctx: CliContext, text: string): number[] | undefined {
  if (text === '' || text === 'none') return [];
  const groups = text.split(',').map((t) => Number(t.trim()));
  if (groups.some((g) => !Number.isInteger(g) || g < 1 || g > 255)) {
    err(ctx, `error: --peers takes group numbers 1..255 separated by commas, not ${JSON.stringify(text)}`);
    return undefined;
  }
  return groups;
}

function checkPortal(ctx: CliContext, text: string): boolean {
  const p = parsePortal(text);
  if ('error' in p) err(ctx, `error: ${p.error}`);
  return !('error' in p);
}

export function registerTarget(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  const cmd = (c: Command) => addJsonOption(addConfigOption(c));
  const target = program.command('target').description('create, delete and list targets');
  cmd(target.command('create <iqn>').description('add a target (admit hosts with acl add)'))
    .option('--lun <N=VOLUME>', 'map VOLUME as LUN N for every admitted initiator without LUNs of its own (repeatable)', collect, [])
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target target create iqn.2026-11.io.example:san1
  $ iscsi-target target create iqn.2026-11.io.example:lab --lun 0=scratch --lun 1=golden`,
    )
    .action(async (iqn: string, o: Opts & { lun: string[] }) => {
      if (!checkName(ctx, iqn)) return setExit(EXIT.FAILURE);
      const luns = parseLunMaps(ctx, o.lun ?? []);
      if (!luns) return setExit(EXIT.FAILURE);
      setExit((await proposeChange(ctx, o, `target ${iqn} created`, (doc) => addTarget(doc, iqn, luns))).code);
    });
  cmd(
    target
      .command('map <iqn> <lun...>')
      .description("map volumes in the target's own LUN map (N=VOLUME ...); sessions see new LUNs at once"),
  )
    .addHelpText(
      'after',
      `
Example:
  $ iscsi-target target map iqn.2026-11.io.example:lab 0=scratch 1=golden`,
    )
    .action(async (iqn: string, specs: string[], o: Opts) => {
      const luns = parseLunMaps(ctx, specs);
      if (!luns) return setExit(EXIT.FAILURE);
      const what = `target ${iqn}: ${[...luns].map(([n, v]) => `LUN ${n}=${v}`).join(', ')}`;
      setExit((await proposeChange(ctx, o, what, (doc) => setTargetLuns(doc, iqn, luns))).code);
    });
  cmd(target.command('unmap <iqn> <lun...>').description("remove LUNs from the target's own LUN map; sessions that used them end")).action(
    async (iqn: string, nums: string[], o: Opts) => {
      const bad = nums.find((n) => !/^\d+$/.test(n) || Number(n) > MAX_LUN);
      if (bad !== undefined) {
        err(ctx, `error: ${bad} is not a LUN number (0..${MAX_LUN})`);
        return setExit(EXIT.FAILURE);
      }
      const what = `target ${iqn}: LUN ${nums.join(', ')} unmapped`;
      setExit((await proposeChange(ctx, o, what, (doc) => setTargetLuns(doc, iqn, new Map(), nums.map(Number)))).code);
    },
  );
  cmd(target.command('delete <iqn>').description('remove a target; its sessions end')).action(async (iqn: string, o: Opts) => {
    setExit((await proposeChange(ctx, o, `target ${iqn} deleted`, (doc) => removeTarget(doc, iqn))).code);
  });
  cmd(target.command('list').description('targets, their LUNs and access')).action(async (o: Opts) => setExit(await listTargets(ctx, o)));

  const portal = program.command('portal').description('addresses the target listens on');
  cmd(portal.command('add <address>').description('listen on ADDR:PORT too'))
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target portal add 0.0.0.0:3260
  $ iscsi-target portal add [::]:3260`,
    )
    .action(async (a: string, o: Opts) => {
      if (!checkPortal(ctx, a)) return setExit(EXIT.FAILURE);
      setExit((await proposeChange(ctx, o, `portal ${a} added`, (doc) => addPortal(doc, a))).code);
    });
  cmd(portal.command('remove <address>').description('stop listening on ADDR:PORT (open sessions stay)')).action(
    async (a: string, o: Opts) => {
      setExit((await proposeChange(ctx, o, `portal ${a} removed`, (doc) => removePortal(doc, a))).code);
    },
  );
  cmd(portal.command('list').description('configured portals')).action(async (o: Opts) => setExit(await listPortals(ctx, o)));

  const gateway = program.command('gateway').description("this gateway's ALUA target port group and its peers'");
  cmd(gateway.command('set').description('set gateway.group (at the next restart) and gateway.peers (live)'))
    .option('--group <n>', "this gateway's target port group, 1..255")
    .option('--peers <groups>', 'the other gateways\' groups, e.g. 2,3 ("none" for none)')
    .action(async (o: Opts & { group?: string; peers?: string }) => {
      const group = o.group === undefined ? undefined : Number(o.group);
      if (group !== undefined && (!Number.isInteger(group) || group < 1 || group > 255)) {
        err(ctx, `error: --group must be 1..255, not ${o.group}`);
        return setExit(EXIT.FAILURE);
      }
      const peers = o.peers === undefined ? undefined : parseGroups(ctx, o.peers);
      if (o.peers !== undefined && peers === undefined) return setExit(EXIT.FAILURE);
      if (group === undefined && peers === undefined) {
        err(ctx, 'error: give --group, --peers or both');
        return setExit(EXIT.FAILURE);
      }
      setExit((await proposeChange(ctx, o, 'gateway changed', (doc) => setGateway(doc, { group, peers }))).code);
    });
  cmd(gateway.command('show').description("every gateway's target port group and relative target port ids")).action((o: Opts) =>
    setExit(showGateway(ctx, o)),
  );
}
