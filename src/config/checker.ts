// The config checker: walks the YAML document and records each problem with its file, line,
// column and key path, so that every error is reported in one pass (load.ts and the
// parse-*.ts section parsers use it).
import { Document, LineCounter, isAlias, isMap, isScalar, isSeq, type Node as YamlNode, type YAMLMap, type YAMLSeq } from 'yaml';

/** One located problem in a config file. `line`/`col` are 1-based; 0 when not tied to a place. */
export interface ConfigIssue {
  file: string;
  line: number;
  col: number;
  /** Key path, e.g. "volumes.db-a.size" or "targets[1].acls[0].chap.secret"; "" for the file. */
  key: string;
  message: string;
}

export type Seg = string | number;

export function joinKey(base: string, seg: Seg): string {
  if (typeof seg === 'number') return `${base}[${seg}]`;
  return base ? `${base}.${seg}` : seg;
}

export function levenshtein(a: string, b: string): number {
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
export function suggest(word: string, candidates: readonly string[]): string {
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

export function describe(node: unknown): string {
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

export interface Entry {
  name: string;
  keyNode: YamlNode | undefined;
  value: YamlNode | null;
  key: string; // full key path
}

export class Checker {
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
