// YAML -> typed model (src/config/model.ts), with every error located by file, line, column
// and key path, all of them collected before anything is applied.
//
//   iscsi-target.yaml:7:11: volumes.db-a.size: "20Q" is not a size: unknown unit "Q" (use e.g. 20GiB)
//
// Secrets (CHAP) never appear in errors or warnings: messages about them state lengths only.
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Document,
  LineCounter,
  isAlias,
  isMap,
  isPair,
  isScalar,
  isSeq,
  parseDocument,
  visit,
  type Node as YamlNode,
  type YAMLMap,
  type YAMLSeq,
} from 'yaml';
import type {
  AclConfig,
  AluaStateName,
  CephConfig,
  ChapAlgorithmName,
  ChapCredentials,
  Config,
  GatewayConfig,
  Portal,
  TargetConfig,
  VolumeConfig,
} from './model';
import { MAX_GROUP, MAX_PORTALS_PER_GATEWAY } from '../scsi/alua';
import { LIMIT_DEFAULTS, type LimitsConfig } from './model';
import { iscsiNameProblem, normalizeIscsiName } from './names';
import { formatPortal, isWildcardHost, parsePortal } from './portal';
import { formatSize, tryParseSize } from './size';
import { formatWwn, parseWwn, serialProblem } from './identity';
import { parseRbdSpec } from './rbd';

/** One located problem in a config file. `line`/`col` are 1-based; 0 when not tied to a place. */
export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  /** Key path, e.g. "volumes.db-a.size" or "targets[1].acls[0].chap.secret"; "" for the file. */
  key: string;
  message: string;
}

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

export const TOP_LEVEL_KEYS = ['portals', 'volumes', 'targets', 'discovery', 'security', 'limits', 'metrics', 'gateway', 'ceph'] as const;
export const GATEWAY_KEYS = ['group', 'peers'] as const;
const ALUA_STATE_NAMES = ['non-optimized', 'standby', 'unavailable'] as const;
export const CEPH_KEYS = ['conf', 'user'] as const;
export const SECURITY_KEYS = ['minChapAlgorithm'] as const;
const CHAP_ALGORITHM_NAMES = ['md5', 'sha1', 'sha256'] as const;
export const METRICS_KEYS = ['listen'] as const;
export const VOLUME_KEYS = [
  'path',
  'size',
  'readonly',
  'blockSize',
  'physicalBlockSize',
  'encryption',
  'memory',
  'rbd',
  'ceph',
  'shared',
  'serial',
  'wwn',
  'owner',
  'others',
] as const;
export const DISCOVERY_KEYS = ['chap', 'mutual'] as const;
export const TARGET_KEYS = ['iqn', 'luns', 'acls', 'allowTargetReset'] as const;
export const ACL_KEYS = ['initiator', 'luns', 'chap', 'mutual', 'allowTargetReset'] as const;
export const CHAP_KEYS = ['user', 'secret', 'minAlgorithm'] as const;

export const DEFAULT_PORTAL: Portal = { host: '0.0.0.0', port: 3260 };
export const MAX_LUN = 16383;
export const CHAP_SECRET_MIN = 12;
export const CHAP_SECRET_MAX = 255;
/** The Microsoft iSCSI initiator accepts 12..16 byte secrets only. */
export const CHAP_SECRET_PORTABLE_MAX = 16;
export const VOLUME_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

// ---------------------------------------------------------------------------------------------

type Seg = string | number;

function joinKey(base: string, seg: Seg): string {
  if (typeof seg === 'number') return `${base}[${seg}]`;
  return base ? `${base}.${seg}` : seg;
}

function levenshtein(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0];
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j];
      d[j] = Math.min(d[j] + 1, d[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length];
}

/** "did you mean X?" for a misspelt key or name. */
function suggest(word: string, candidates: readonly string[]): string {
  const norm = (s: string) => s.toLowerCase().replace(/[-_ ]/g, '');
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = norm(word) === norm(c) ? 0 : levenshtein(word.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(word.length / 3)) ? ` (did you mean "${best}"?)` : '';
}

function describe(node: unknown): string {
  if (node === null || node === undefined) return 'empty';
  if (isMap(node)) return 'a mapping';
  if (isSeq(node)) return 'a list';
  if (isScalar(node)) {
    const v = node.value;
    if (v === null || v === undefined) return 'empty';
    if (typeof v === 'string') return JSON.stringify(v);
    return typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : 'a mapping or list';
  }
  return 'not a plain value';
}

interface Entry {
  name: string;
  keyNode: YamlNode | undefined;
  value: YamlNode | null;
  key: string; // full key path
}

class Checker {
  readonly errors: ConfigIssue[] = [];
  readonly warnings: ConfigIssue[] = [];

  constructor(
    readonly file: string,
    readonly lc: LineCounter,
    readonly doc: Document,
  ) {}

  private issue(node: unknown, key: string, message: string): ConfigIssue {
    let line = 0;
    let col = 0;
    const range = (node as { range?: [number, number, number] } | null | undefined)?.range;
    if (range) ({ line, col } = this.lc.linePos(range[0]));
    return { file: this.file, line, col, key, message };
  }

  error(node: unknown, key: string, message: string): void {
    // An unresolved alias is reported once, not again as a value of the wrong kind.
    if (this.errors.some((e) => e.key === key && e.message.startsWith('unknown alias'))) return;
    this.errors.push(this.issue(node, key, message));
  }

  warn(node: unknown, key: string, message: string): void {
    this.warnings.push(this.issue(node, key, message));
  }

  /** Follows aliases (*name). */
  resolve(node: unknown, key: string): YamlNode | null {
    if (node === null || node === undefined) return null;
    if (isAlias(node)) {
      const target = node.resolve(this.doc);
      if (!target) {
        this.error(node, key, `unknown alias *${node.source}`);
        return null;
      }
      return target;
    }
    return node as YamlNode;
  }

  isEmpty(node: YamlNode | null): boolean {
    return node === null || (isScalar(node) && (node.value === null || node.value === undefined));
  }

  /** The pairs of a mapping; unknown keys (when `known` is given) are errors. */
  entries(mapNode: YAMLMap, key: string, known?: readonly string[]): Entry[] {
    const out: Entry[] = [];
    for (const pair of mapNode.items) {
      const kNode = this.resolve(pair.key, key);
      let name: string;
      if (isScalar(kNode) && (typeof kNode.value === 'string' || typeof kNode.value === 'number')) {
        name = String(kNode.value);
      } else {
        this.error(kNode ?? mapNode, key, `keys must be plain names, not ${describe(kNode)}`);
        continue;
      }
      const full = joinKey(key, name);
      if (known && !known.includes(name)) {
        const where = key ? `in ${key}` : 'at the top level';
        this.error(kNode, full, `unknown key "${name}" ${where}${suggest(name, known)}; known keys: ${known.join(', ')}`);
        continue;
      }
      out.push({ name, keyNode: kNode ?? undefined, value: this.resolve(pair.value, full), key: full });
    }
    return out;
  }

  map(node: YamlNode | null, at: unknown, key: string, what: string): YAMLMap | undefined {
    if (isMap(node)) return node;
    this.error(node ?? at, key, `${what} must be a mapping (key: value), not ${describe(node)}`);
    return undefined;
  }

  seq(node: YamlNode | null, at: unknown, key: string, what: string): YAMLSeq | undefined {
    if (isSeq(node)) return node;
    this.error(node ?? at, key, `${what} must be a list, not ${describe(node)}`);
    return undefined;
  }

  string(e: Entry, what: string): string | undefined {
    if (isScalar(e.value) && typeof e.value.value === 'string') return e.value.value;
    this.error(e.value ?? e.keyNode, e.key, `${what} must be a string, not ${describe(e.value)}`);
    return undefined;
  }

  bool(e: Entry): boolean | undefined {
    if (isScalar(e.value) && typeof e.value.value === 'boolean') return e.value.value;
    this.error(e.value ?? e.keyNode, e.key, `must be true or false, not ${describe(e.value)}`);
    return undefined;
  }
}

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

function parseVolume(c: Checker, ve: Entry, baseDir: string): { volume: VolumeConfig; pathNode?: unknown } | undefined {
  const vm = c.map(ve.value, ve.keyNode, ve.key, `volume ${ve.name}`);
  if (!vm) return undefined;
  const before = c.errors.length;
  const vol: VolumeConfig = { name: ve.name, readonly: false, blockSize: 512, memory: false, shared: false };
  let pathNode: unknown;
  let sizeE: Entry | undefined;
  let memoryE: Entry | undefined;
  let physE: Entry | undefined;
  let encE: Entry | undefined;
  let rbdE: Entry | undefined;
  for (const e of c.entries(vm, ve.key, VOLUME_KEYS)) {
    switch (e.name) {
      case 'path': {
        const p = c.string(e, 'path');
        if (p !== undefined) {
          if (p.trim() === '') c.error(e.value, e.key, 'path cannot be empty');
          else vol.path = path.resolve(baseDir, p);
        }
        pathNode = e.value;
        break;
      }
      case 'size': {
        sizeE = e;
        if (!isScalar(e.value) || e.value.value === null || e.value.value === undefined) {
          c.error(e.value ?? e.keyNode, e.key, `size must be a number of bytes or a size such as 20GiB, not ${describe(e.value)}`);
          break;
        }
        const r = tryParseSize(e.value.value);
        if (!r.ok) c.error(e.value, e.key, r.error);
        else if (r.bytes === 0) c.error(e.value, e.key, 'a volume cannot be 0 bytes');
        else vol.size = r.bytes;
        break;
      }
      case 'readonly': {
        const b = c.bool(e);
        if (b !== undefined) vol.readonly = b;
        break;
      }
      case 'blockSize': {
        const v = isScalar(e.value) ? e.value.value : undefined;
        if (v === 512 || v === 4096) vol.blockSize = v;
        else c.error(e.value ?? e.keyNode, e.key, `blockSize must be 512 or 4096, not ${describe(e.value)}`);
        break;
      }
      case 'physicalBlockSize': {
        physE = e;
        const v = isScalar(e.value) ? e.value.value : undefined;
        if (v === 512 || v === 4096) vol.physicalBlockSize = v;
        else c.error(e.value ?? e.keyNode, e.key, `physicalBlockSize must be 512 or 4096, not ${describe(e.value)}`);
        break;
      }
      case 'encryption': {
        encE = e;
        if (isScalar(e.value) && typeof e.value.value === 'boolean') {
          if (e.value.value) vol.encryption = {};
          break;
        }
        const em = c.map(e.value, e.keyNode, e.key, 'encryption (true, or { keyFile: PATH })');
        if (!em) break;
        vol.encryption = {};
        for (const k of c.entries(em, e.key, ['keyFile'])) {
          const f = c.string(k, 'keyFile');
          if (f !== undefined && f.trim() === '') c.error(k.value, k.key, 'keyFile cannot be empty');
          else if (f !== undefined) vol.encryption.keyFile = path.resolve(baseDir, f);
        }
        break;
      }
      case 'memory': {
        memoryE = e;
        const b = c.bool(e);
        if (b !== undefined) vol.memory = b;
        break;
      }
      case 'rbd': {
        rbdE = e;
        const v = c.string(e, 'rbd');
        if (v === undefined) break;
        const spec = parseRbdSpec(v.trim());
        if ('error' in spec) c.error(e.value, e.key, spec.error);
        else vol.rbd = spec;
        break;
      }
      case 'ceph': {
        const cc = parseCeph(c, e, baseDir);
        if (cc) vol.ceph = cc;
        break;
      }
      case 'shared': {
        const b = c.bool(e);
        if (b !== undefined) vol.shared = b;
        break;
      }
      case 'serial': {
        // A number in YAML (serial: 1234) is meant as its digits.
        const v =
          isScalar(e.value) && typeof e.value.value === 'number' && Number.isInteger(e.value.value)
            ? String(e.value.source ?? e.value.value)
            : c.string(e, 'serial');
        if (v === undefined) break;
        const problem = serialProblem(v);
        if (problem) c.error(e.value, e.key, problem);
        else vol.serial = v;
        break;
      }
      case 'owner': {
        const v = isScalar(e.value) ? e.value.value : undefined;
        if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_GROUP) vol.owner = v;
        else c.error(e.value ?? e.keyNode, e.key, `owner must be a gateway's group number (1..${MAX_GROUP}), not ${describe(e.value)}`);
        break;
      }
      case 'others': {
        const v = c.string(e, 'others');
        if (v === undefined) break;
        if ((ALUA_STATE_NAMES as readonly string[]).includes(v)) vol.others = v as AluaStateName;
        else c.error(e.value, e.key, `others must be one of ${ALUA_STATE_NAMES.join(', ')}, not ${JSON.stringify(v)}`);
        break;
      }
      case 'wwn': {
        const v = c.string(e, 'wwn');
        if (v === undefined) break;
        const naa = parseWwn(v);
        if (!Buffer.isBuffer(naa)) c.error(e.value, e.key, naa.error);
        else vol.wwn = formatWwn(naa);
        break;
      }
    }
  }
  const hasPath = pathNode !== undefined;
  const hasRbd = rbdE !== undefined;
  if (hasPath && vol.memory) {
    c.error(memoryE!.keyNode, memoryE!.key, `volume ${ve.name} has both path and memory: true; give exactly one`);
  } else if (hasRbd && (hasPath || vol.memory)) {
    c.error(rbdE!.keyNode, rbdE!.key, `volume ${ve.name} has rbd and ${hasPath ? 'path' : 'memory: true'}; give exactly one`);
  } else if (!hasPath && !hasRbd && !vol.memory && !(memoryE && c.errors.length > before)) {
    c.error(ve.keyNode, ve.key, `volume ${ve.name} needs a path (file or block device), rbd: POOL/IMAGE or memory: true`);
  }
  if (hasRbd && vol.encryption) {
    c.error(encE!.keyNode, encE!.key, `volume ${ve.name}: encryption is not supported on RBD volumes yet`);
  }
  if (vol.memory && sizeE === undefined) {
    c.error(memoryE!.keyNode, ve.key, `memory volume ${ve.name} needs a size (e.g. size: 64MiB)`);
  }
  if (vol.size !== undefined && vol.size % vol.blockSize !== 0) {
    c.error(sizeE!.value, sizeE!.key, `${formatSize(vol.size)} (${vol.size} bytes) is not a multiple of the block size ${vol.blockSize}`);
  }
  if (vol.physicalBlockSize !== undefined && vol.physicalBlockSize < vol.blockSize) {
    c.error(physE!.value, physE!.key, `physicalBlockSize ${vol.physicalBlockSize} is smaller than the block size ${vol.blockSize}`);
  }
  if (vol.memory && vol.encryption?.keyFile !== undefined) {
    c.error(encE!.value, encE!.key, `memory volume ${ve.name} keeps its key in memory; leave keyFile out`);
  }
  if (c.errors.length > before) return undefined;
  return { volume: vol, pathNode };
}

/** `ceph: { conf: PATH, user: NAME }`, top level or in a volume. */
function parseCeph(c: Checker, e: Entry, baseDir: string): CephConfig | undefined {
  if (c.isEmpty(e.value)) return {};
  const m = c.map(e.value, e.keyNode, e.key, 'ceph ({ conf: /etc/ceph/ceph.conf, user: admin })');
  if (!m) return undefined;
  const out: CephConfig = {};
  for (const k of c.entries(m, e.key, CEPH_KEYS)) {
    const v = c.string(k, k.name);
    if (v === undefined) continue;
    if (v.trim() === '') c.error(k.value, k.key, `${k.name} cannot be empty`);
    else if (k.name === 'conf') out.conf = path.resolve(baseDir, v);
    else if (k.name === 'user') {
      if (/^client\./.test(v) || !/^[A-Za-z0-9._-]+$/.test(v)) {
        c.error(k.value, k.key, `user is a cephx name without "client." (e.g. admin, iscsi), not ${JSON.stringify(v)}`);
      } else out.user = v;
    }
  }
  return out;
}

function parseLuns(c: Checker, e: Entry, declaredVolumes: Set<string>): Map<number, string> | undefined {
  const luns = new Map<number, string>();
  if (c.isEmpty(e.value)) return luns;
  const m = c.map(e.value, e.keyNode, e.key, 'luns');
  if (!m) return undefined;
  const before = c.errors.length;
  for (const le of c.entries(m, e.key)) {
    const n = Number(le.name);
    if (!/^\d+$/.test(le.name.trim()) || !Number.isInteger(n) || n < 0 || n > MAX_LUN) {
      c.error(le.keyNode, le.key, `${JSON.stringify(le.name)} is not a LUN number (0..${MAX_LUN})`);
      continue;
    }
    if (luns.has(n)) {
      c.error(le.keyNode, le.key, `LUN ${n} is listed twice`);
      continue;
    }
    const vol = c.string(le, "a LUN's volume");
    if (vol === undefined) continue;
    if (!declaredVolumes.has(vol)) {
      const known = [...declaredVolumes];
      c.error(
        le.value,
        le.key,
        `volume ${JSON.stringify(vol)} is not defined under volumes${suggest(vol, known)}${known.length ? `; defined: ${known.join(', ')}` : ''}`,
      );
      continue;
    }
    luns.set(n, vol);
  }
  return c.errors.length > before ? undefined : luns;
}

/** `limits:` keys: [name, kind, lowest, highest]. Times are seconds (fractions allowed). */
const LIMIT_KEYS: Record<string, { kind: 'count' | 'seconds' | 'bytes' | 'bool' | 'micros'; lo: number; hi: number }> = {
  maxLoginConnections: { kind: 'count', lo: 1, hi: 65535 },
  maxLoginConnectionsPerAddress: { kind: 'count', lo: 1, hi: 65535 },
  maxSessions: { kind: 'count', lo: 1, hi: 65535 },
  loginTimeout: { kind: 'seconds', lo: 1, hi: 3600 },
  nopInterval: { kind: 'seconds', lo: 0, hi: 3600 },
  nopTimeout: { kind: 'seconds', lo: 1, hi: 3600 },
  dropIdlePeers: { kind: 'bool', lo: 0, hi: 1 },
  stallTimeout: { kind: 'seconds', lo: 1, hi: 600 },
  queueDepth: { kind: 'count', lo: 1, hi: 65536 },
  maxImmediateCommands: { kind: 'count', lo: 1, hi: 1024 },
  connectionBuffer: { kind: 'bytes', lo: 1024 * 1024, hi: 64 * 1024 * 1024 * 1024 },
  shutdownGrace: { kind: 'seconds', lo: 0, hi: 600 },
  busyPoll: { kind: 'micros', lo: 0, hi: 1000 },
};
export const LIMITS_KEYS = Object.keys(LIMIT_KEYS);

/** The `limits:` mapping; keys left out keep LIMIT_DEFAULTS. */
function groupNumber(c: Checker, e: Entry, what: string): number | undefined {
  const v = isScalar(e.value) ? e.value.value : undefined;
  if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_GROUP) return v;
  c.error(e.value ?? e.keyNode, e.key, `${what} must be a whole number from 1 to ${MAX_GROUP}, not ${describe(e.value)}`);
  return undefined;
}

/** `gateway: { group: N, peers: [M, { group: K, portals: P }] }`. */
function parseGateway(c: Checker, e: Entry): GatewayConfig | undefined {
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
function checkOwners(c: Checker, config: Config, volumeLocs: Map<string, { node: unknown; key: string }>): void {
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

function parseLimits(c: Checker, e: Entry): LimitsConfig | undefined {
  const m = c.map(e.value, e.keyNode, e.key, 'limits');
  if (!m) return undefined;
  const before = c.errors.length;
  const out: LimitsConfig = { ...LIMIT_DEFAULTS };
  for (const le of c.entries(m, e.key, [...LIMITS_KEYS, 'maxConnections'])) {
    if (le.name === 'maxConnections') {
      // Before issue 14 it counted connections still in login too, so idle sockets locked
      // hosts out; logged-in connections are bounded by maxSessions now.
      c.warn(
        le.keyNode,
        le.key,
        'maxConnections is no longer used: connections in login are bounded by maxLoginConnections and maxLoginConnectionsPerAddress, logged-in ones by maxSessions',
      );
      continue;
    }
    const spec = LIMIT_KEYS[le.name];
    const v = isScalar(le.value) ? le.value.value : undefined;
    if (spec.kind === 'bool') {
      const b = c.bool(le);
      if (b !== undefined) out.dropIdlePeers = b;
      continue;
    }
    let n: number | undefined;
    if (spec.kind === 'bytes') {
      const r = v === null || v === undefined ? undefined : tryParseSize(v);
      if (!r || !r.ok) {
        c.error(le.value ?? le.keyNode, le.key, `must be a size such as 256MiB${r && !r.ok ? `: ${r.error}` : ''}`);
        continue;
      }
      n = r.bytes;
    } else if (typeof v === 'number' && Number.isFinite(v) && (spec.kind === 'seconds' || Number.isInteger(v))) {
      n = v;
    } else {
      const what =
        spec.kind === 'seconds' ? 'a number of seconds' : spec.kind === 'micros' ? 'a whole number of microseconds' : 'a whole number';
      c.error(le.value ?? le.keyNode, le.key, `must be ${what}, not ${describe(le.value)}`);
      continue;
    }
    if (n < spec.lo || n > spec.hi) {
      const fmt = (x: number) => (spec.kind === 'bytes' ? formatSize(x) : String(x));
      const unit = spec.kind === 'seconds' ? ' seconds' : spec.kind === 'micros' ? ' microseconds' : '';
      c.error(le.value, le.key, `must be between ${fmt(spec.lo)} and ${fmt(spec.hi)}${unit}, not ${fmt(n)}`);
      continue;
    }
    switch (le.name) {
      case 'loginTimeout':
        out.loginTimeoutMs = Math.round(n * 1000);
        break;
      case 'nopInterval':
        out.nopIntervalMs = Math.round(n * 1000);
        break;
      case 'nopTimeout':
        out.nopTimeoutMs = Math.round(n * 1000);
        break;
      case 'stallTimeout':
        out.stallTimeoutMs = Math.round(n * 1000);
        break;
      case 'connectionBuffer':
        out.connectionBufferBytes = n;
        break;
      case 'shutdownGrace':
        out.shutdownGraceMs = Math.round(n * 1000);
        break;
      case 'busyPoll':
        out.busyPollUs = n;
        break;
      default:
        (out as unknown as Record<string, number>)[le.name] = n;
    }
  }
  return c.errors.length > before ? undefined : out;
}

function parseChap(c: Checker, e: Entry): ChapCredentials | undefined {
  if (!isMap(e.value)) {
    // Never quote the value: it may hold the secret.
    const kind = isSeq(e.value) ? 'a list' : c.isEmpty(e.value) ? 'empty' : 'a plain value';
    c.error(e.value ?? e.keyNode, e.key, `${e.name} must be a mapping { user: NAME, secret: "..." }, not ${kind}`);
    return undefined;
  }
  const m = e.value;
  const before = c.errors.length;
  let user: string | undefined;
  let secret: string | undefined;
  const entries = c.entries(m, e.key, CHAP_KEYS);
  let minAlgorithm: ChapCredentials['minAlgorithm'];
  for (const ce of entries) {
    if (ce.name === 'minAlgorithm') {
      if (e.name !== 'chap')
        c.error(ce.keyNode, ce.key, 'minAlgorithm belongs in chap: one algorithm serves both directions of mutual CHAP');
      else minAlgorithm = chapAlgorithm(c, ce);
    } else if (ce.name === 'user') {
      user = c.string(ce, 'the CHAP user');
      if (user !== undefined) {
        const len = Buffer.byteLength(user, 'utf8');
        if (len === 0) c.error(ce.value, ce.key, 'the CHAP user cannot be empty');
        else if (len > CHAP_SECRET_MAX) c.error(ce.value, ce.key, `the CHAP user is longer than ${CHAP_SECRET_MAX} bytes`);
        // eslint-disable-next-line no-control-regex
        else if (/[\x00-\x1f\x7f]/.test(user)) c.error(ce.value, ce.key, 'the CHAP user contains control characters');
      }
    } else {
      // Never quote the value: say what is wrong with it, not what it is.
      if (!(isScalar(ce.value) && typeof ce.value.value === 'string')) {
        const v = isScalar(ce.value) ? ce.value.value : undefined;
        const kind = isMap(ce.value)
          ? 'a mapping'
          : isSeq(ce.value)
            ? 'a list'
            : c.isEmpty(ce.value)
              ? 'empty'
              : typeof v === 'number'
                ? 'a number (put it in quotes)'
                : typeof v === 'boolean'
                  ? 'true/false (put it in quotes)'
                  : 'not text';
        c.error(ce.value ?? ce.keyNode, ce.key, `the CHAP secret must be a string; it is ${kind}`);
        continue;
      }
      secret = ce.value.value;
      const len = Buffer.byteLength(secret, 'utf8');
      if (len < CHAP_SECRET_MIN || len > CHAP_SECRET_MAX) {
        c.error(
          ce.value,
          ce.key,
          `the CHAP secret is ${len} bytes long; it must be ${CHAP_SECRET_MIN}..${CHAP_SECRET_MAX} bytes (RFC 7143 §12.1.3 asks for at least ${CHAP_SECRET_MIN})`,
        );
      } else if (len > CHAP_SECRET_PORTABLE_MAX) {
        c.warn(
          ce.value,
          ce.key,
          `the CHAP secret is ${len} bytes long: open-iscsi accepts it, the Microsoft iSCSI initiator accepts only ${CHAP_SECRET_MIN}..${CHAP_SECRET_PORTABLE_MAX}`,
        );
      }
    }
  }
  const has = (k: string) => entries.some((x) => x.name === k);
  if (!has('user')) c.error(m, e.key, `${e.name} needs a user`);
  if (!has('secret')) c.error(m, e.key, `${e.name} needs a secret`);
  if (c.errors.length > before || user === undefined || secret === undefined) return undefined;
  return minAlgorithm ? { user, secret, minAlgorithm } : { user, secret };
}

/** md5, sha1 or sha256. */
function chapAlgorithm(c: Checker, e: Entry): ChapAlgorithmName | undefined {
  const v = isScalar(e.value) ? e.value.value : undefined;
  if (typeof v === 'string' && (CHAP_ALGORITHM_NAMES as readonly string[]).includes(v.toLowerCase()))
    return v.toLowerCase() as ChapAlgorithmName;
  c.error(e.value ?? e.keyNode, e.key, `must be one of ${CHAP_ALGORITHM_NAMES.join(', ')}, not ${describe(e.value)}`);
  return undefined;
}

function parseAcl(
  c: Checker,
  am: YAMLMap,
  key: string,
  declaredVolumes: Set<string>,
): { acl?: AclConfig; initiator?: string; initiatorNode: unknown; lunsGiven: boolean } {
  const before = c.errors.length;
  let initiator: string | undefined;
  let initiatorNode: unknown;
  let luns: Map<number, string> | undefined;
  let lunsGiven = false;
  let chap: ChapCredentials | undefined;
  let mutual: ChapCredentials | undefined;
  let chapE: Entry | undefined;
  let mutualE: Entry | undefined;
  let allowTargetReset: boolean | undefined;
  for (const e of c.entries(am, key, ACL_KEYS)) {
    switch (e.name) {
      case 'initiator': {
        initiatorNode = e.value ?? e.keyNode;
        const s = c.string(e, 'initiator');
        if (s === undefined) break;
        const problem = iscsiNameProblem(s);
        if (problem) c.error(e.value, e.key, problem);
        else initiator = s;
        break;
      }
      case 'luns':
        lunsGiven = true;
        luns = parseLuns(c, e, declaredVolumes);
        break;
      case 'chap':
        chapE = e;
        chap = parseChap(c, e);
        break;
      case 'mutual':
        mutualE = e;
        mutual = parseChap(c, e);
        break;
      case 'allowTargetReset':
        allowTargetReset = c.bool(e);
        break;
    }
  }
  if (initiatorNode === undefined) c.error(am, key, 'an acl needs an initiator (its iSCSI name, e.g. iqn.1994-05.com.redhat:host-a)');
  if (mutualE && !chapE) {
    c.error(mutualE.keyNode, mutualE.key, 'mutual CHAP needs chap too: the initiator must authenticate before the target does');
  }
  if (chap && mutual && chap.secret === mutual.secret) {
    c.error(mutualE!.keyNode, joinKey(mutualE!.key, 'secret'), 'the mutual secret must differ from the chap secret (RFC 7143 §12.1.3)');
  }
  if (c.errors.length > before || initiator === undefined) return { initiator, initiatorNode, lunsGiven };
  const acl: AclConfig = { initiator };
  if (lunsGiven && luns) acl.luns = luns;
  if (chap) acl.chap = chap;
  if (mutual) acl.mutual = mutual;
  if (allowTargetReset !== undefined) acl.allowTargetReset = allowTargetReset;
  return { acl, initiator, initiatorNode, lunsGiven };
}

function parseTarget(
  c: Checker,
  tm: YAMLMap,
  key: string,
  declaredVolumes: Set<string>,
): { target?: TargetConfig; iqn?: string; iqnNode: unknown; acls: { node: unknown; key: string; lunsGiven: boolean }[] } {
  const before = c.errors.length;
  let iqn: string | undefined;
  let iqnNode: unknown;
  let luns: Map<number, string> | undefined = new Map();
  const acls: AclConfig[] = [];
  const aclLocs: { node: unknown; key: string; lunsGiven: boolean }[] = [];
  let sawIqn = false;
  let allowTargetReset: boolean | undefined;
  for (const e of c.entries(tm, key, TARGET_KEYS)) {
    switch (e.name) {
      case 'iqn': {
        sawIqn = true;
        iqnNode = e.value ?? e.keyNode;
        const s = c.string(e, 'iqn');
        if (s === undefined) break;
        const problem = iscsiNameProblem(s);
        if (problem) c.error(e.value, e.key, problem);
        else iqn = s;
        break;
      }
      case 'luns':
        luns = parseLuns(c, e, declaredVolumes);
        break;
      case 'allowTargetReset':
        allowTargetReset = c.bool(e);
        break;
      case 'acls': {
        if (c.isEmpty(e.value)) break;
        const seq = c.seq(e.value, e.keyNode, e.key, 'acls');
        if (!seq) break;
        const seen = new Map<string, string>();
        seq.items.forEach((item, i) => {
          const akey = joinKey(e.key, i);
          const n = c.resolve(item, akey);
          const am = c.map(n, seq, akey, 'an acl');
          if (!am) return;
          const r = parseAcl(c, am, akey, declaredVolumes);
          if (r.initiator !== undefined) {
            const norm = normalizeIscsiName(r.initiator);
            const prev = seen.get(norm);
            if (prev !== undefined) {
              c.error(r.initiatorNode, joinKey(akey, 'initiator'), `initiator ${r.initiator} has two acls in this target (also ${prev})`);
              return;
            }
            seen.set(norm, akey);
          }
          if (!r.acl) return;
          acls.push(r.acl);
          aclLocs.push({ node: am, key: akey, lunsGiven: r.lunsGiven });
        });
        break;
      }
    }
  }
  if (!sawIqn) c.error(tm, key, 'a target needs an iqn (e.g. iqn.2026-11.com.example:storage)');
  if (c.errors.length > before || iqn === undefined || luns === undefined) return { iqn, iqnNode, acls: aclLocs };
  const target: TargetConfig = { iqn, luns, acls };
  if (allowTargetReset !== undefined) target.allowTargetReset = allowTargetReset;
  return { target, iqn, iqnNode, acls: aclLocs };
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
