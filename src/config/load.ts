// YAML -> typed model (src/config/model.ts), with every error located by file, line, column
// and key path, all of them collected before anything is applied.
//
//   iscsi-target.yaml:7:11: volumes.db-a.size: "20Q" is not a size: unknown unit "Q" (use e.g. 20GiB)
//
// Secrets (CHAP) never appear in errors or warnings: messages about them state lengths only.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { type ChapCredentials, type Config, type Portal } from './model';
import { MAX_PORTALS_PER_GATEWAY } from '../scsi/alua';
import { normalizeIscsiName } from './names';
import { formatPortal, isWildcardHost, parsePortal } from './portal';
import { Checker, describe, joinKey, type Entry, type ConfigIssue } from './checker';
import { isMap, isPair, isScalar, isSeq, visit, parseDocument, LineCounter, Document } from 'yaml';
import { DEFAULT_PORTAL, DISCOVERY_KEYS, METRICS_KEYS, SECURITY_KEYS, TOP_LEVEL_KEYS, VOLUME_NAME_RE } from './keys';
import { parseVolume, parseCeph } from './parse-volumes';
import { parseLimits } from './parse-limits';
import { parseGateway, checkOwners } from './parse-gateway';
import { parseChap, chapAlgorithm, parseTarget } from './parse-access';

export type { ConfigIssue } from './checker';

/** "file:line:col: key: message" (parts that are unknown are left out). */
export function formatIssue(i: ConfigIssue): string {
  let where = i.file;
  if (i.line > 0) where += `:${i.line}`;
  if (i.line > 0 && i.col > 0) where += `:${i.col}`;
  return i.key ? `${where}: ${i.key}: ${i.message}` : `${where}: ${i.message}`;
}

/**
 * The warnings of `after` that `before` did not have (compared by key and message: an edit
 * moves lines), so that a command shows what its change caused, not every old warning again.
 */
export function newWarnings(before: readonly ConfigIssue[], after: readonly ConfigIssue[]): ConfigIssue[] {
  const seen = new Set(before.map((w) => `${w.key}\0${w.message}`));
  return after.filter((w) => !seen.has(`${w.key}\0${w.message}`));
}

/** Thrown with every error found; nothing in a config that throws may be applied. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly errors: ConfigIssue[];
  /** Warnings found alongside the errors (may be empty). */
  readonly warnings: ConfigIssue[];
  constructor(errors: ConfigIssue[], warnings: ConfigIssue[] = []) {
    const head = errors.length === 1 ? '' : `${errors.length} errors in ${errors[0]?.file ?? 'config'}:\n`;
    super(head + errors.map(formatIssue).join('\n'));
    this.errors = errors;
    this.warnings = warnings;
  }
}

export interface ParseOptions {
  /** Folder that relative volume paths resolve against. Default: the config file's folder. */
  baseDir?: string;
  /** The file's mode (fs.Stats.mode), to warn when a file holding secrets is readable by others. */
  fileMode?: number;
  /** Check volume paths on disk (a path without `size` must exist). loadConfig turns this on. */
  checkFiles?: boolean;
}

export interface ParsedConfig {
  config: Config;
  warnings: ConfigIssue[];
  /** The parsed document: edit it (comments survive) and write String(document) back. */
  document: Document;
}

export * from './keys';

// ---------------------------------------------------------------------------------------------

/** The deepest key path containing a source offset (to name the key of a YAML syntax error). */
function keyPathAt(doc: Document, offset: number): string {
  let key = '';
  let node: unknown = doc.contents;
  const within = (n: unknown) => {
    const r = (n as { range?: [number, number, number] } | null)?.range;
    return !!r && offset >= r[0] && offset <= r[2];
  };
  for (let depth = 0; depth < 64 && node; depth++) {
    if (isMap(node)) {
      const pair = node.items.find((p) => within(p.key) || within(p.value));
      if (!pair) break;
      const k = isScalar(pair.key) ? String(pair.key.value) : '?';
      key = joinKey(key, k);
      node = pair.value;
    } else if (isSeq(node)) {
      const i = node.items.findIndex((n) => within(n));
      if (i < 0) break;
      key = joinKey(key, i);
      node = node.items[i];
    } else break;
  }
  return key;
}

function collectSecrets(doc: Document): string[] {
  const secrets: string[] = [];
  visit(doc, {
    Pair(_, pair) {
      if (isPair(pair) && isScalar(pair.key) && pair.key.value === 'secret' && isScalar(pair.value)) {
        const v = pair.value.value;
        const text = typeof v === 'string' || typeof v === 'number' ? String(v) : undefined;
        if (text !== undefined && text.length >= 4) secrets.push(text);
      }
    },
  });
  return secrets;
}

/**
 * Values of `secret:` keys found in the raw text, for a file too broken for the parser to
 * find them: a syntax error next to a secret must not quote it.
 */
function secretsInText(text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/\bsecret\s*:\s*("(?:[^"\\\n]|\\.)*"?|'(?:[^'\n]|'')*'?|[^\s,}\]#][^,}\]\n#]*)/g)) {
    let v = m[1].trim();
    if (v.startsWith('"') || v.startsWith("'")) v = v.slice(1, v.length > 1 && v.endsWith(v[0]) ? -1 : undefined);
    if (v.length >= 4) out.push(v);
  }
  return out;
}

/** The YAML parser quotes the token it stumbled on, which may be a secret: say where, not what. */
function yamlMessage(message: string): string {
  return message.replace(/(token in YAML stream): (".*")$/s, (all, head: string, tok: string) => {
    let t: unknown;
    try {
      t = JSON.parse(tok);
    } catch {
      t = undefined;
    }
    return typeof t === 'string' && t.length === 1 ? all : head;
  });
}

function redact(issues: ConfigIssue[], secrets: string[]): void {
  for (const i of issues) {
    for (const s of secrets) {
      if (i.message.includes(s)) i.message = i.message.split(s).join('***');
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** Where a parsed target and its acls sit in the file, for warnings found later. */
type TargetLoc = { node: unknown; key: string; acls: { node: unknown; key: string; lunsGiven: boolean }[] };

interface Loc {
  node: unknown;
  key: string;
}

/**
 * Parse and validate config text. Throws ConfigError listing every error; returns the model,
 * the warnings and the document (for comment-preserving edits).
 */
export function parseConfigDetailed(text: string, file: string, opts: ParseOptions = {}): ParsedConfig {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const c = new Checker(file, lc, doc);
  const secrets = [...new Set([...collectSecrets(doc), ...secretsInText(text)])];

  for (const w of doc.warnings) {
    const { line, col } = lc.linePos(w.pos[0]);
    c.warnings.push({ file, line, col, key: keyPathAt(doc, w.pos[0]), message: yamlMessage(w.message) });
  }
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      const { line, col } = lc.linePos(e.pos[0]);
      const msg = e.code === 'DUPLICATE_KEY' ? 'this key appears twice in the same mapping' : yamlMessage(e.message);
      c.errors.push({ file, line, col, key: keyPathAt(doc, e.pos[0]), message: `YAML: ${msg}` });
    }
    // A duplicate key leaves a whole document: check the rest too, so that every error
    // comes in one pass. Broken syntax does not: what follows would be guesses.
    if (doc.errors.some((e) => e.code !== 'DUPLICATE_KEY')) {
      redact(c.errors, secrets);
      redact(c.warnings, secrets);
      throw new ConfigError(c.errors, c.warnings);
    }
  }

  const baseDir = opts.baseDir ?? path.dirname(path.resolve(file));
  const config: Config = {
    source: file,
    portals: [],
    volumes: new Map(),
    targets: [],
  };

  const root = c.resolve(doc.contents, '');
  let top: Entry[] = [];
  if (!c.isEmpty(root)) {
    const m = c.map(root, root, '', 'the config');
    if (m) top = c.entries(m, '', TOP_LEVEL_KEYS);
  }
  const get = (name: string) => top.find((e) => e.name === name);

  // --- portals ---
  const portalsE = get('portals');
  if (!portalsE) {
    config.portals.push({ ...DEFAULT_PORTAL });
  } else {
    const seq = c.seq(portalsE.value, portalsE.keyNode, portalsE.key, 'portals');
    if (seq) {
      if (seq.items.length === 0) c.error(seq, portalsE.key, 'give at least one portal, e.g. ["0.0.0.0:3260"]');
      const seen: { p: Portal; loc: Loc }[] = [];
      seq.items.forEach((item, i) => {
        const key = joinKey(portalsE.key, i);
        const n = c.resolve(item, key);
        let text: string | undefined;
        if (isScalar(n) && (typeof n.value === 'string' || typeof n.value === 'number')) text = String(n.value);
        else {
          c.error(n ?? seq, key, `a portal must be "host:port" text, not ${describe(n)}`);
          return;
        }
        const p = parsePortal(text);
        if ('error' in p) {
          c.error(n, key, p.error);
          return;
        }
        for (const s of seen) {
          if (s.p.port !== p.port || p.port === 0) continue;
          if (s.p.host.toLowerCase() === p.host.toLowerCase()) {
            c.error(n, key, `${formatPortal(p)} is listed twice (also ${s.loc.key})`);
            return;
          }
          if (isWildcardHost(s.p.host) || isWildcardHost(p.host)) {
            c.error(
              n,
              key,
              `${formatPortal(p)} overlaps ${formatPortal(s.p)} (${s.loc.key}): a wildcard address already listens on every address of port ${p.port}`,
            );
            return;
          }
        }
        seen.push({ p, loc: { node: n, key } });
        config.portals.push(p);
      });
    }
  }

  // --- volumes ---
  const volumeLocs = new Map<string, { node: unknown; key: string; pathNode?: unknown; sizeGiven: boolean }>();
  const volumesE = get('volumes');
  if (volumesE && !c.isEmpty(volumesE.value)) {
    const vm = c.map(volumesE.value, volumesE.keyNode, 'volumes', 'volumes');
    if (vm) {
      for (const ve of c.entries(vm, 'volumes')) {
        const vol = parseVolume(c, ve, baseDir);
        if (!VOLUME_NAME_RE.test(ve.name)) {
          c.error(
            ve.keyNode,
            ve.key,
            `volume name ${JSON.stringify(ve.name)} may use only letters, digits, '.', '_' and '-' (at most 64, starting with a letter or digit)`,
          );
        }
        if (vol) {
          config.volumes.set(ve.name, vol.volume);
          volumeLocs.set(ve.name, { node: ve.keyNode, key: ve.key, pathNode: vol.pathNode, sizeGiven: vol.volume.size !== undefined });
        }
      }
    }
  }
  // Two volumes with one identity look like two paths to one disk (dm-multipath).
  const identities = new Map<string, string>();
  for (const [name, v] of config.volumes) {
    for (const [what, value] of [
      ['serial', v.serial],
      ['wwn', v.wwn],
    ] as const) {
      if (value === undefined) continue;
      const k = `${what} ${value}`;
      const other = identities.get(k);
      const loc = volumeLocs.get(name)!;
      if (other !== undefined)
        c.error(
          loc.node,
          joinKey(loc.key, what),
          `volume ${name} has the ${what} of volume ${other}; hosts would take the two for one disk`,
        );
      else identities.set(k, name);
    }
  }
  // Names declared under volumes, even those with errors, so that targets do not also
  // complain that they are undefined.
  const declaredVolumes = new Set<string>();
  if (volumesE && isMap(volumesE.value)) {
    for (const p of volumesE.value.items) if (isScalar(p.key)) declaredVolumes.add(String(p.key.value));
  }

  // --- targets ---
  const targetLocs: TargetLoc[] = [];
  const targetsE = get('targets');
  if (targetsE && !c.isEmpty(targetsE.value)) {
    const seq = c.seq(targetsE.value, targetsE.keyNode, 'targets', 'targets');
    if (seq) {
      const seenIqn = new Map<string, string>();
      seq.items.forEach((item, i) => {
        const key = joinKey('targets', i);
        const n = c.resolve(item, key);
        const tm = c.map(n, seq, key, 'a target');
        if (!tm) return;
        const t = parseTarget(c, tm, key, declaredVolumes);
        if (t.iqn !== undefined) {
          const norm = normalizeIscsiName(t.iqn);
          const prev = seenIqn.get(norm);
          if (prev !== undefined) c.error(t.iqnNode, joinKey(key, 'iqn'), `target ${t.iqn} is defined twice (also ${prev})`);
          else seenIqn.set(norm, key);
        }
        if (!t.target) return;
        config.targets.push(t.target);
        targetLocs.push({ node: tm, key, acls: t.acls });
      });
    }
  }

  // --- discovery: optional CHAP for discovery sessions ---
  const discoveryE = get('discovery');
  if (discoveryE && !c.isEmpty(discoveryE.value)) {
    const dm = c.map(discoveryE.value, discoveryE.keyNode, 'discovery', 'discovery');
    if (dm) {
      const before = c.errors.length;
      const d: { chap?: ChapCredentials; mutual?: ChapCredentials } = {};
      let mutualE: Entry | undefined;
      for (const e of c.entries(dm, 'discovery', DISCOVERY_KEYS)) {
        if (e.name === 'chap') d.chap = parseChap(c, e);
        else {
          mutualE = e;
          d.mutual = parseChap(c, e);
        }
      }
      if (mutualE && !d.chap) c.error(mutualE.keyNode, mutualE.key, 'mutual CHAP needs chap too');
      if (d.chap && d.mutual && d.chap.secret === d.mutual.secret) {
        c.error(mutualE!.keyNode, joinKey(mutualE!.key, 'secret'), 'the mutual secret must differ from the chap secret (RFC 7143 §12.1.3)');
      }
      if (c.errors.length === before && d.chap) config.discovery = d;
    }
  }

  // --- security: the weakest CHAP algorithm any login may use ---
  const securityE = get('security');
  if (securityE && !c.isEmpty(securityE.value)) {
    const sm = c.map(securityE.value, securityE.keyNode, 'security', 'security');
    if (sm) {
      for (const e of c.entries(sm, 'security', SECURITY_KEYS)) {
        const alg = chapAlgorithm(c, e);
        if (alg) config.security = { minChapAlgorithm: alg };
      }
    }
  }

  // --- gateway: this daemon's target port group and its peers' (ALUA) ---
  const gatewayE = get('gateway');
  if (gatewayE && !c.isEmpty(gatewayE.value)) {
    const g = parseGateway(c, gatewayE);
    if (g) config.gateway = g;
  }
  checkOwners(c, config, volumeLocs);
  if (config.portals.length > MAX_PORTALS_PER_GATEWAY && portalsE) {
    c.error(portalsE.keyNode, 'portals', `a gateway has at most ${MAX_PORTALS_PER_GATEWAY} portals (each is one relative target port)`);
  }

  // --- limits: resource bounds and timers ---
  const limitsE = get('limits');
  if (limitsE && !c.isEmpty(limitsE.value)) {
    const limits = parseLimits(c, limitsE);
    if (limits) config.limits = limits;
  }

  // --- metrics: optional Prometheus endpoint ---
  const metricsE = get('metrics');
  if (metricsE && !c.isEmpty(metricsE.value)) {
    const mm = c.map(metricsE.value, metricsE.keyNode, 'metrics', 'metrics');
    if (mm) {
      for (const e of c.entries(mm, 'metrics', METRICS_KEYS)) {
        const text = c.string(e, 'metrics.listen');
        if (text === undefined) continue;
        const p = parsePortal(text);
        if ('error' in p) c.error(e.value, e.key, p.error);
        else config.metrics = { listen: p };
      }
    }
  }

  // --- ceph: the cluster of RBD volumes; each volume's own ceph: wins key by key ---
  const cephE = get('ceph');
  if (cephE) {
    const cc = parseCeph(c, cephE, baseDir);
    if (cc) config.ceph = cc;
  }
  for (const v of config.volumes.values()) {
    if (v.rbd) v.ceph = { ...config.ceph, ...v.ceph };
    else if (v.ceph) {
      const loc = volumeLocs.get(v.name)!;
      c.error(loc.node, `${loc.key}.ceph`, `volume ${v.name} sets ceph but is not an RBD volume (rbd: POOL/IMAGE)`);
    }
  }

  // --- cross checks: volumes mapped to several hosts are errors whatever else is wrong (every
  // error in one pass); the warnings only for a config without errors (with errors, targets
  // or volumes are missing from the model and these would mislead) ---
  crossCheck(c, config, targetLocs, volumeLocs, c.errors.length === 0);

  const hasSecrets = config.targets.some((t) => t.acls.some((a) => a.chap || a.mutual)) || !!config.discovery || secrets.length > 0;
  if (hasSecrets && opts.fileMode !== undefined && (opts.fileMode & 0o044) !== 0) {
    const mode = (opts.fileMode & 0o777).toString(8).padStart(4, '0');
    c.warn(null, '', `holds CHAP secrets but is readable by other users (mode ${mode}); run: chmod 600 ${file}`);
  }
  if (config.targets.length === 0 && c.errors.length === 0) {
    c.warn(null, 'targets', 'no targets are defined: initiators will find nothing');
  }

  if (opts.checkFiles) {
    for (const [name, vol] of config.volumes) {
      if (!vol.path) continue;
      const loc = volumeLocs.get(name)!;
      const pkey = joinKey(loc.key, 'path');
      let st: fs.Stats | undefined;
      try {
        st = fs.statSync(vol.path);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT') c.error(loc.pathNode, pkey, `cannot use ${vol.path}: ${code ?? (err as Error).message}`);
        else if (!loc.sizeGiven) {
          c.error(loc.pathNode, pkey, `${vol.path} does not exist; give a size (e.g. size: 1GiB) to create it as a sparse file`);
        } else {
          const dir = path.dirname(vol.path);
          if (!fs.existsSync(dir)) c.error(loc.pathNode, pkey, `cannot create ${vol.path}: folder ${dir} does not exist`);
        }
        continue;
      }
      if (st.isDirectory()) c.error(loc.pathNode, pkey, `${vol.path} is a directory, not a file or block device`);
      else if (!st.isFile() && !st.isBlockDevice()) {
        c.error(loc.pathNode, pkey, `${vol.path} is neither a regular file nor a block device`);
      }
    }
  }

  redact(c.errors, secrets);
  redact(c.warnings, secrets);
  const byPlace = (a: ConfigIssue, b: ConfigIssue) => a.line - b.line || a.col - b.col;
  c.errors.sort(byPlace);
  c.warnings.sort(byPlace);
  if (c.errors.length > 0) throw new ConfigError(c.errors, c.warnings);
  return { config, warnings: c.warnings, document: doc };
}

function crossCheck(
  c: Checker,
  config: Config,
  targetLocs: TargetLoc[],
  volumeLocs: Map<string, { node: unknown; key: string }>,
  warnings: boolean,
): void {
  if (warnings) warnAboutReach(c, config, targetLocs);
  sharedVolumes(c, config, volumeLocs, warnings);
}

/** Targets that export nothing, initiators admitted to no LUN. */
function warnAboutReach(c: Checker, config: Config, targetLocs: TargetLoc[]): void {
  config.targets.forEach((t, ti) => {
    const loc = targetLocs[ti];
    if (t.acls.length === 0) {
      if (t.luns.size === 0) c.warn(loc.node, loc.key, `target ${t.iqn} exports nothing: it has no luns and no acls with luns`);
      return;
    }
    t.acls.forEach((a, ai) => {
      const al = loc.acls[ai];
      if ((a.luns ?? t.luns).size > 0) return;
      c.warn(
        al.node,
        al.key,
        al.lunsGiven
          ? `${a.initiator} is admitted but sees no LUNs (its luns are empty)`
          : `${a.initiator} is admitted but sees no LUNs: give it luns, or give target ${t.iqn} luns`,
      );
    });
  });
}

/**
 * A volume several hosts reach is an error unless it says `shared: true` (then a warning).
 * Checked over the targets and volumes that parsed, so it holds even beside other errors.
 */
function sharedVolumes(c: Checker, config: Config, volumeLocs: Map<string, { node: unknown; key: string }>, warnings: boolean): void {
  // Who sees each volume: an initiator (ACL), or everyone (a target without acls).
  const holders = new Map<string, Map<string, string>>(); // volume -> normalized holder -> label
  const addHolder = (vol: string, id: string, label: string) => {
    let h = holders.get(vol);
    if (!h) holders.set(vol, (h = new Map<string, string>()));
    if (!h.has(id)) h.set(id, label);
  };
  for (const t of config.targets) {
    if (t.acls.length === 0) {
      for (const v of t.luns.values()) addHolder(v, `*${normalizeIscsiName(t.iqn)}`, `every initiator of ${t.iqn}`);
    } else {
      for (const a of t.acls) {
        for (const v of (a.luns ?? t.luns).values()) addHolder(v, normalizeIscsiName(a.initiator), a.initiator);
      }
    }
  }
  for (const [name, loc] of volumeLocs) {
    const h = holders.get(name);
    if (!h) {
      if (warnings) c.warn(loc.node, loc.key, `volume ${name} is not mapped to any target`);
    } else if (h.size > 1) {
      const who = [...h.values()].join(' and ');
      // A SAN volume belongs to one host: two hosts mounting one ordinary filesystem
      // destroy it. Sharing has to be asked for.
      if (config.volumes.get(name)?.shared) {
        if (warnings)
          c.warn(
            loc.node,
            loc.key,
            `volume ${name} is shared between ${who}; only a cluster-aware filesystem may be mounted on it by several hosts at once`,
          );
      } else {
        c.error(
          loc.node,
          loc.key,
          `volume ${name} is mapped to ${who}; a volume belongs to one host unless it says shared: true (for a cluster-aware filesystem)`,
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------

/** Parse and validate config text; throws ConfigError listing every error. */
export function parseConfig(text: string, file: string, opts?: ParseOptions): Config {
  return parseConfigDetailed(text, file, opts).config;
}

/** Read, parse and validate a config file (volume paths are checked on disk). */
export async function loadConfigDetailed(file: string, opts: ParseOptions = {}): Promise<ParsedConfig> {
  let text: string;
  let mode: number | undefined;
  try {
    const fh = await fs.promises.open(file, 'r');
    try {
      mode = (await fh.stat()).mode;
      text = await fh.readFile('utf8');
    } finally {
      await fh.close();
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT' ? 'no such file' : e.code === 'EACCES' ? 'permission denied' : e.code === 'EISDIR' ? 'is a directory' : e.message;
    throw new ConfigError([{ file, line: 0, col: 0, key: '', message: `cannot read the config: ${why}` }]);
  }
  return parseConfigDetailed(text, file, { checkFiles: true, fileMode: mode, ...opts });
}

/** Read, parse and validate a config file; throws ConfigError listing every error. */
export async function loadConfig(file: string): Promise<Config> {
  return (await loadConfigDetailed(file)).config;
}
