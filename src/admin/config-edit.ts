// Comment-preserving edits of a config file's YAML (the `yaml` package's Document API).
//
// Each function changes one thing in a parsed Document and throws EditError when the edit
// makes no sense (the volume exists already, no such target, ...). They do not validate the
// result: callers run the edited text through parseConfigDetailed (src/config/load.ts) before
// anything is written or applied. New entries follow the file's own style where it has one
// (flow `{ ... }` volumes stay flow); new LUN maps and CHAP blocks are written in flow style,
// as the README's examples are.
import { Document, isMap, isScalar, isSeq, parseDocument, Scalar, YAMLMap, YAMLSeq, type Node as YamlNode } from 'yaml';
import { normalizeIscsiName } from '../config/names';
import { formatPortal, parsePortal } from '../config/portal';
import { DEFAULT_PORTAL } from '../config/load';

export class EditError extends Error {
  override name = 'EditError';
}

/** Parse config text for editing; YAML syntax errors are refused (fix them first). */
export function openDocument(text: string): Document {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new EditError(
      `the config is not valid YAML (${doc.errors[0].message.split('\n')[0]}); run "iscsi-target config check" and fix it first`,
    );
  }
  return doc;
}

function scalarText(n: unknown): string | undefined {
  if (!isScalar(n)) return undefined;
  const v = n.value;
  return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' ? String(v) : undefined;
}

function quoted(text: string): Scalar {
  const n = new Scalar(text);
  n.type = Scalar.QUOTE_DOUBLE;
  return n;
}

/** CHAP credentials in flow style, the secret always quoted (it may look like a number). */
function chapNode(doc: Document, chap: { user: string; secret: string }): YamlNode {
  const node = flowNode(doc, chap) as YAMLMap;
  const secret = node.get('secret', true);
  if (isScalar(secret)) secret.type = Scalar.QUOTE_DOUBLE;
  return node;
}

function flowNode(doc: Document, value: unknown): YamlNode {
  const node = doc.createNode(value) as YamlNode;
  if (isMap(node) || isSeq(node)) node.flow = true;
  return node;
}

/** The top-level map, created when the file is empty. */
function root(doc: Document): YAMLMap {
  if (doc.contents === null || doc.contents === undefined || (isScalar(doc.contents) && doc.contents.value === null)) {
    doc.contents = new YAMLMap();
  }
  if (!isMap(doc.contents)) throw new EditError('the config must be a mapping at the top level');
  return doc.contents;
}

function childMap(doc: Document, parent: YAMLMap, key: string, create: boolean, flow = false): YAMLMap | undefined {
  const v = parent.get(key, true);
  if (isMap(v)) return v;
  if (v !== undefined && !(isScalar(v) && v.value === null)) throw new EditError(`${key} must be a mapping`);
  if (!create) return undefined;
  const m = new YAMLMap();
  m.flow = flow;
  parent.set(key, m);
  return m;
}

function childSeq(parent: YAMLMap, key: string, create: boolean): YAMLSeq | undefined {
  const v = parent.get(key, true);
  if (isSeq(v)) return v;
  if (v !== undefined && !(isScalar(v) && v.value === null)) throw new EditError(`${key} must be a list`);
  if (!create) return undefined;
  const s = new YAMLSeq();
  parent.set(key, s);
  return s;
}

// ------------------------------------------------------------------------------ volumes

export interface NewVolume {
  path?: string;
  /** As the user wrote it ("20GiB"), kept as text in the file. */
  size?: string;
  blockSize?: 512 | 4096;
  physicalBlockSize?: 512 | 4096;
  memory?: boolean;
  /** `rbd: POOL/IMAGE`, with an optional per-volume `ceph: { conf, user }`. */
  rbd?: string;
  ceph?: { conf?: string; user?: string };
  readonly?: boolean;
  shared?: boolean;
  /** `encryption: true`, or `{ keyFile }`. */
  encryption?: { keyFile?: string };
  serial?: string;
  wwn?: string;
}

export function addVolume(doc: Document, name: string, v: NewVolume): void {
  const volumes = childMap(doc, root(doc), 'volumes', true)!;
  if (volumes.has(name)) throw new EditError(`volume ${name} already exists`);
  const value: Record<string, unknown> = {};
  if (v.path !== undefined) value.path = v.path;
  if (v.memory) value.memory = true;
  if (v.rbd !== undefined) value.rbd = v.rbd;
  if (v.ceph) {
    const ceph: Record<string, string> = {};
    if (v.ceph.conf !== undefined) ceph.conf = v.ceph.conf;
    if (v.ceph.user !== undefined) ceph.user = v.ceph.user;
    value.ceph = ceph;
  }
  if (v.size !== undefined) value.size = v.size;
  if (v.blockSize !== undefined && v.blockSize !== 512) value.blockSize = v.blockSize;
  if (v.physicalBlockSize !== undefined) value.physicalBlockSize = v.physicalBlockSize;
  if (v.readonly) value.readonly = true;
  if (v.shared) value.shared = true;
  if (v.encryption) value.encryption = v.encryption.keyFile !== undefined ? { keyFile: v.encryption.keyFile } : true;
  if (v.serial !== undefined) value.serial = v.serial;
  if (v.wwn !== undefined) value.wwn = v.wwn;
  // Follow the style of the volumes already there; an empty section gets flow maps.
  const siblings = volumes.items.map((p) => p.value).filter(isMap);
  const flow = siblings.length === 0 || siblings.some((m) => m.flow);
  volumes.set(name, flow ? flowNode(doc, value) : doc.createNode(value));
}

function volumeMap(doc: Document, name: string): YAMLMap {
  const volumes = childMap(doc, root(doc), 'volumes', false);
  const v = volumes?.get(name, true);
  if (!isMap(v))
    throw new EditError(`no volume named ${name}${volumes ? `; volumes: ${volumes.items.map((p) => scalarText(p.key)).join(', ')}` : ''}`);
  return v;
}

export function setVolumeSize(doc: Document, name: string, size: string): void {
  volumeMap(doc, name).set('size', size);
}

/** Set (a value) or remove (null) keys of a volume; undefined leaves a key as it is. */
export function setVolumeFields(doc: Document, name: string, fields: Record<string, string | number | boolean | null | undefined>): void {
  const v = volumeMap(doc, name);
  for (const [k, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    // yaml quotes a string that would read back as something else (serial "1234", "true",
    // "0x10"), under the document's own YAML version, so no hand quoting here.
    if (value === null) v.delete(k);
    else v.set(k, value);
  }
}

export function volumePathText(doc: Document, name: string): string | undefined {
  return scalarText(volumeMap(doc, name).get('path', true));
}

/** Where a volume is mapped, as "target LUN n" / "target initiator LUN n" texts. */
export function volumeReferences(doc: Document, name: string): string[] {
  const out: string[] = [];
  for (const t of targetMaps(doc)) {
    const iqn = scalarText(t.get('iqn', true)) ?? '?';
    const luns = t.get('luns', true);
    if (isMap(luns)) for (const p of luns.items) if (scalarText(p.value) === name) out.push(`${iqn} LUN ${scalarText(p.key)}`);
    const acls = t.get('acls', true);
    if (isSeq(acls)) {
      for (const a of acls.items) {
        if (!isMap(a)) continue;
        const al = a.get('luns', true);
        const who = scalarText(a.get('initiator', true)) ?? '?';
        if (isMap(al)) for (const p of al.items) if (scalarText(p.value) === name) out.push(`${iqn} ${who} LUN ${scalarText(p.key)}`);
      }
    }
  }
  return out;
}

/** Remove a volume; a mapped one only with force, which also removes its LUN mappings. */
export function removeVolume(doc: Document, name: string, opts: { force?: boolean } = {}): void {
  volumeMap(doc, name);
  const refs = volumeReferences(doc, name);
  if (refs.length > 0 && !opts.force) {
    throw new EditError(`volume ${name} is mapped (${refs.join('; ')}); unmap it first, or give --force to remove the mappings too`);
  }
  if (refs.length > 0) {
    for (const t of targetMaps(doc)) {
      const maps: unknown[] = [t.get('luns', true)];
      const acls = t.get('acls', true);
      if (isSeq(acls)) for (const a of acls.items) if (isMap(a)) maps.push(a.get('luns', true));
      for (const m of maps) {
        if (!isMap(m)) continue;
        m.items = m.items.filter((p) => scalarText(p.value) !== name);
      }
    }
  }
  childMap(doc, root(doc), 'volumes', false)!.delete(name);
}

// ------------------------------------------------------------------------------ targets

function targetMaps(doc: Document): YAMLMap[] {
  const r = isMap(doc.contents) ? doc.contents : undefined;
  const targets = r?.get('targets', true);
  return isSeq(targets) ? targets.items.filter(isMap) : [];
}

function findTargetMap(doc: Document, iqn: string): YAMLMap | undefined {
  const want = normalizeIscsiName(iqn);
  return targetMaps(doc).find((t) => {
    const v = scalarText(t.get('iqn', true));
    return v !== undefined && normalizeIscsiName(v) === want;
  });
}

function targetMap(doc: Document, iqn: string): YAMLMap {
  const t = findTargetMap(doc, iqn);
  if (!t) {
    const known = targetMaps(doc)
      .map((m) => scalarText(m.get('iqn', true)))
      .filter(Boolean);
    throw new EditError(`no target ${iqn}${known.length ? `; targets: ${known.join(', ')}` : ''}`);
  }
  return t;
}

export function addTarget(doc: Document, iqn: string, luns: Map<number, string> = new Map()): void {
  if (findTargetMap(doc, iqn)) throw new EditError(`target ${iqn} already exists`);
  const node = doc.createNode({ iqn }) as YAMLMap;
  if (luns.size > 0) node.set('luns', flowNode(doc, new Map([...luns].sort((a, b) => a[0] - b[0]))));
  childSeq(root(doc), 'targets', true)!.add(node);
}

/**
 * The target's own LUN map (what every admitted initiator sees unless its acl has a map):
 * `add` maps (or re-points) LUNs, `remove` unmaps them.
 */
export function setTargetLuns(doc: Document, iqn: string, add: Map<number, string>, remove: number[] = []): void {
  const t = targetMap(doc, iqn);
  let m = t.get('luns', true) as unknown;
  if (!isMap(m)) {
    if (add.size === 0) throw new EditError(`target ${iqn} has no LUNs of its own`);
    m = flowNode(doc, new Map());
    t.set('luns', m);
  }
  const luns = m as YAMLMap;
  for (const n of remove) {
    const before = luns.items.length;
    luns.items = luns.items.filter((p) => scalarText(p.key) !== String(n));
    if (luns.items.length === before) throw new EditError(`target ${iqn} has no LUN ${n} of its own`);
  }
  for (const [n, vol] of [...add].sort((a, b) => a[0] - b[0])) {
    const existing = luns.items.find((p) => scalarText(p.key) === String(n));
    if (existing) existing.value = doc.createNode(vol);
    else luns.add(doc.createPair(n, vol));
  }
}

// ------------------------------------------------------------------------------ discovery

/** CHAP for Discovery sessions (`discovery:`); undefined removes it (discovery open to all). */
export function setDiscoveryChap(
  doc: Document,
  auth: { chap: { user: string; secret: string }; mutual?: { user: string; secret: string } } | undefined,
): void {
  const r = root(doc);
  if (auth === undefined) {
    if (!r.has('discovery')) throw new EditError('discovery has no CHAP set');
    r.delete('discovery');
    return;
  }
  const d = new YAMLMap();
  d.set('chap', chapNode(doc, auth.chap));
  if (auth.mutual) d.set('mutual', chapNode(doc, auth.mutual));
  r.set('discovery', d);
}

export function removeTarget(doc: Document, iqn: string): void {
  const t = targetMap(doc, iqn);
  const seq = root(doc).get('targets', true) as unknown as YAMLSeq;
  seq.items = seq.items.filter((i) => i !== t);
}

// ------------------------------------------------------------------------------ portals

function samePortal(a: string, b: string): boolean {
  const pa = parsePortal(a);
  const pb = parsePortal(b);
  if ('error' in pa || 'error' in pb) return a.trim() === b.trim();
  return pa.host.toLowerCase() === pb.host.toLowerCase() && pa.port === pb.port;
}

export function addPortal(doc: Document, portal: string): void {
  const r = root(doc);
  let seq = childSeq(r, 'portals', false);
  if (!seq) {
    // Without `portals` the target listens on the default; keep it listening there unless
    // the new portal takes the default's port (then it replaces the default).
    seq = childSeq(r, 'portals', true)!;
    seq.flow = true;
    const p = parsePortal(portal);
    if ('error' in p || p.port !== DEFAULT_PORTAL.port) seq.add(quoted(formatPortal(DEFAULT_PORTAL)));
  }
  if (seq.items.some((i) => samePortal(scalarText(i) ?? '', portal))) throw new EditError(`portal ${portal} is already listed`);
  // Quote it as the others are ("0.0.0.0:3260" is usually written in quotes).
  const node = new Scalar(portal);
  const sibling = seq.items.find(isScalar);
  node.type = sibling?.type && sibling.type !== Scalar.PLAIN ? sibling.type : Scalar.QUOTE_DOUBLE;
  seq.add(node);
}

/** `gateway: { group, peers }` (ALUA): sets what is given; an empty peers list removes it. */
export function setGateway(doc: Document, change: { group?: number; peers?: number[] }): void {
  const g = childMap(doc, root(doc), 'gateway', true, true)!;
  if (change.group !== undefined) g.set('group', change.group);
  if (change.peers !== undefined) {
    if (change.peers.length === 0) g.delete('peers');
    else g.set('peers', flowNode(doc, change.peers));
  }
}

export function removePortal(doc: Document, portal: string): void {
  const seq = childSeq(root(doc), 'portals', false);
  const i = seq ? seq.items.findIndex((n) => samePortal(scalarText(n) ?? '', portal)) : -1;
  if (!seq || i < 0) throw new EditError(`portal ${portal} is not listed under portals`);
  seq.items.splice(i, 1);
}

// ------------------------------------------------------------------------------ acls

function findAcl(t: YAMLMap, initiator: string): { seq: YAMLSeq; acl: YAMLMap } | undefined {
  const seq = t.get('acls', true);
  if (!isSeq(seq)) return undefined;
  const want = normalizeIscsiName(initiator);
  const acl = seq.items.find((a): a is YAMLMap => {
    const v = isMap(a) ? scalarText(a.get('initiator', true)) : undefined;
    return v !== undefined && normalizeIscsiName(v) === want;
  });
  return acl ? { seq, acl } : undefined;
}

export interface AclChange {
  /** LUN number -> volume, added to (or replacing in) the initiator's map. */
  luns: Map<number, string>;
  chap?: { user: string; secret: string };
  /** Mutual CHAP: the target's own credentials toward this initiator. */
  mutual?: { user: string; secret: string };
}

/** Admit an initiator to a target (or add LUNs / CHAP to its existing entry). */
export function addAcl(doc: Document, iqn: string, initiator: string, change: AclChange): void {
  const t = targetMap(doc, iqn);
  const found = findAcl(t, initiator);
  if (!found) {
    const value: Record<string, unknown> = { initiator };
    const node = doc.createNode(value) as YAMLMap;
    if (change.luns.size > 0) node.set('luns', flowNode(doc, new Map([...change.luns].sort((a, b) => a[0] - b[0]))));
    if (change.chap) node.set('chap', chapNode(doc, change.chap));
    if (change.mutual) node.set('mutual', chapNode(doc, change.mutual));
    childSeq(t, 'acls', true)!.add(node);
    return;
  }
  const acl = found.acl;
  if (change.luns.size > 0) {
    let m = acl.get('luns', true) as unknown;
    if (!isMap(m)) {
      m = flowNode(doc, new Map());
      acl.set('luns', m);
    }
    const luns = m as YAMLMap;
    for (const [n, vol] of change.luns) {
      const existing = luns.items.find((p) => scalarText(p.key) === String(n));
      if (existing) existing.value = doc.createNode(vol);
      else luns.add(doc.createPair(n, vol));
    }
  }
  if (change.chap) acl.set('chap', chapNode(doc, change.chap));
  if (change.mutual) acl.set('mutual', chapNode(doc, change.mutual));
}

/** Remove an initiator's entry (or only one of its LUNs). */
export function removeAcl(doc: Document, iqn: string, initiator: string, opts: { lun?: number; allowOpen?: boolean } = {}): void {
  const t = targetMap(doc, iqn);
  const found = findAcl(t, initiator);
  if (!found) throw new EditError(`target ${iqn} has no acl for ${initiator}`);
  if (opts.lun !== undefined) {
    const luns = found.acl.get('luns', true);
    const before = isMap(luns) ? luns.items.length : 0;
    if (isMap(luns)) luns.items = luns.items.filter((p) => scalarText(p.key) !== String(opts.lun));
    if (!isMap(luns) || luns.items.length === before) throw new EditError(`${initiator} has no LUN ${opts.lun} of its own in ${iqn}`);
    return;
  }
  const remaining = found.seq.items.filter((a) => a !== found.acl);
  if (remaining.length === 0 && !opts.allowOpen) {
    // A target without acls admits every initiator: removing the last one must not open it.
    throw new EditError(
      `${initiator} is the last acl of ${iqn}; without acls the target admits every initiator. Delete the target instead, or give --allow-open`,
    );
  }
  found.seq.items = remaining;
}

// ------------------------------------------------------------------------------ layout

const squeeze = (line: string) => {
  const indent = /^\s*/.exec(line)![0];
  return indent + line.slice(indent.length).replace(/\s+/g, '');
};

/**
 * The `yaml` package re-spaces what it writes back (`["a"]` becomes `[ "a" ]`, `}   # note`
 * becomes `} # note`). Lines of the edited text that differ from an original line only in
 * spaces after the indentation get the original line back, so that an edit shows up as the
 * lines it changed and nothing else. If that ever changed what the text means, the edited
 * text is returned as it was.
 */
export function keepLayout(original: string, edited: string): string {
  const pool = new Map<string, string[]>();
  for (const line of original.split('\n')) {
    const k = squeeze(line);
    const list = pool.get(k);
    if (list) list.push(line);
    else pool.set(k, [line]);
  }
  const out = edited.split('\n').map((line) => {
    const list = pool.get(squeeze(line));
    return list && list.length > 0 ? list.shift()! : line;
  });
  let text = out.join('\n');
  if (edited.endsWith('\n') && !text.endsWith('\n')) text += '\n';
  const same = JSON.stringify(parseDocument(text).toJS()) === JSON.stringify(parseDocument(edited).toJS());
  return same ? text : edited;
}
