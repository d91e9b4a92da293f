// Who may log in to what: targets, their ACLs and CHAP credentials.
import type { AclConfig, ChapAlgorithmName, ChapCredentials, TargetConfig } from './model';
import { iscsiNameProblem, normalizeIscsiName } from './names';
import { Checker, describe, joinKey, type Entry } from './checker';
import { isMap, isScalar, isSeq, type YAMLMap } from 'yaml';
import { CHAP_ALGORITHM_NAMES, TARGET_KEYS, ACL_KEYS, CHAP_KEYS, CHAP_SECRET_MIN, CHAP_SECRET_MAX, CHAP_SECRET_PORTABLE_MAX } from './keys';
import { parseLuns } from './parse-volumes';

export function parseChap(c: Checker, e: Entry): ChapCredentials | undefined {
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
export function chapAlgorithm(c: Checker, e: Entry): ChapAlgorithmName | undefined {
  const v = isScalar(e.value) ? e.value.value : undefined;
  if (typeof v === 'string' && (CHAP_ALGORITHM_NAMES as readonly string[]).includes(v.toLowerCase()))
    return v.toLowerCase() as ChapAlgorithmName;
  c.error(e.value ?? e.keyNode, e.key, `must be one of ${CHAP_ALGORITHM_NAMES.join(', ')}, not ${describe(e.value)}`);
  return undefined;
}

export function parseAcl(
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

export function parseTarget(
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
