// Text key negotiation (RFC 7143 §6.2, §13): each key with its result function.
// Pure: takes the initiator's key=value pairs, returns the target's answers and
// updates the negotiated parameters. Login and Text handling call this.

export interface SessionParams {
  headerDigest: boolean;
  dataDigest: boolean;
  maxConnections: number;
  initialR2T: boolean;
  immediateData: boolean;
  /** The initiator's MaxRecvDataSegmentLength: the largest data segment we may send it. */
  maxSendDataSegmentLength: number;
  /** Our MaxRecvDataSegmentLength: the largest data segment the initiator may send us. */
  maxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  maxOutstandingR2T: number;
  dataPDUInOrder: boolean;
  dataSequenceInOrder: boolean;
  errorRecoveryLevel: number;
}

/** RFC 7143 defaults: what applies to a key nobody negotiated. */
export function defaultParams(): SessionParams {
  return {
    headerDigest: false,
    dataDigest: false,
    maxConnections: 1,
    initialR2T: true,
    immediateData: true,
    maxSendDataSegmentLength: 8192,
    maxRecvDataSegmentLength: 8192,
    maxBurstLength: 262144,
    firstBurstLength: 65536,
    defaultTime2Wait: 2,
    defaultTime2Retain: 20,
    maxOutstandingR2T: 1,
    dataPDUInOrder: true,
    dataSequenceInOrder: true,
    errorRecoveryLevel: 0,
  };
}

/** What this target offers or accepts at most: generous limits for fast I/O. */
export interface TargetLimits {
  maxRecvDataSegmentLength: number;
  maxBurstLength: number;
  firstBurstLength: number;
  maxOutstandingR2T: number;
  initialR2T: boolean;
  immediateData: boolean;
  defaultTime2Wait: number;
  defaultTime2Retain: number;
  /** Commands the CmdSN window admits at once (MaxCmdSN - ExpCmdSN + 1). */
  queueDepth: number;
}

export const DEFAULT_LIMITS: TargetLimits = {
  maxRecvDataSegmentLength: 262144,
  maxBurstLength: 16776192, // 16 MiB - 1 KiB: the largest multiple of 1 KiB below 2^24
  // Unsolicited data must be taken whenever it comes, so every queued WRITE may hold this
  // much before the write budget can say wait: 64 KiB keeps 8 sessions x QD32 under 16 MiB
  // (at 256 KiB it was 64 MiB); the rest of a large WRITE comes on R2T.
  firstBurstLength: 65536,
  maxOutstandingR2T: 16,
  initialR2T: false,
  immediateData: true,
  defaultTime2Wait: 2,
  defaultTime2Retain: 20,
  queueDepth: 128,
};

type Kind =
  | { t: 'digest' }
  | { t: 'and' | 'or'; ours: (l: TargetLimits) => boolean; set: (p: SessionParams, v: boolean) => void }
  | {
      t: 'min' | 'max';
      lo: number;
      hi: number;
      ours: (l: TargetLimits) => number;
      set: (p: SessionParams, v: number) => void;
    }
  | { t: 'mrdsl' }
  | { t: 'obsolete-bool' }
  | { t: 'obsolete-irrelevant' };

interface KeyDef {
  kind: Kind;
  /** Only meaningful in a Normal session: answered Irrelevant in a Discovery session. */
  normalOnly?: boolean;
  /** Only valid in the login phase (not in a full-feature Text request). */
  loginOnly?: boolean;
  /** Only valid in the security stage. */
  security?: boolean;
}

const MAX24 = 16777215;

export const KEYS: Record<string, KeyDef> = {
  HeaderDigest: { kind: { t: 'digest' }, loginOnly: true },
  DataDigest: { kind: { t: 'digest' }, loginOnly: true },
  MaxConnections: {
    kind: { t: 'min', lo: 1, hi: 65535, ours: () => 1, set: (p, v) => (p.maxConnections = v) },
    loginOnly: true,
    normalOnly: true,
  },
  InitialR2T: {
    kind: { t: 'or', ours: (l) => l.initialR2T, set: (p, v) => (p.initialR2T = v) },
    loginOnly: true,
    normalOnly: true,
  },
  ImmediateData: {
    kind: { t: 'and', ours: (l) => l.immediateData, set: (p, v) => (p.immediateData = v) },
    loginOnly: true,
    normalOnly: true,
  },
  MaxRecvDataSegmentLength: { kind: { t: 'mrdsl' } },
  MaxBurstLength: {
    kind: { t: 'min', lo: 512, hi: MAX24, ours: (l) => l.maxBurstLength, set: (p, v) => (p.maxBurstLength = v) },
    loginOnly: true,
    normalOnly: true,
  },
  FirstBurstLength: {
    kind: { t: 'min', lo: 512, hi: MAX24, ours: (l) => l.firstBurstLength, set: (p, v) => (p.firstBurstLength = v) },
    loginOnly: true,
    normalOnly: true,
  },
  DefaultTime2Wait: {
    kind: { t: 'max', lo: 0, hi: 3600, ours: (l) => l.defaultTime2Wait, set: (p, v) => (p.defaultTime2Wait = v) },
    loginOnly: true,
  },
  DefaultTime2Retain: {
    kind: {
      t: 'min',
      lo: 0,
      hi: 3600,
      ours: (l) => l.defaultTime2Retain,
      set: (p, v) => (p.defaultTime2Retain = v),
    },
    loginOnly: true,
  },
  MaxOutstandingR2T: {
    kind: {
      t: 'min',
      lo: 1,
      hi: 65535,
      ours: (l) => l.maxOutstandingR2T,
      set: (p, v) => (p.maxOutstandingR2T = v),
    },
    loginOnly: true,
    normalOnly: true,
  },
  DataPDUInOrder: {
    kind: { t: 'or', ours: () => true, set: (p, v) => (p.dataPDUInOrder = v) },
    loginOnly: true,
    normalOnly: true,
  },
  DataSequenceInOrder: {
    kind: { t: 'or', ours: () => true, set: (p, v) => (p.dataSequenceInOrder = v) },
    loginOnly: true,
    normalOnly: true,
  },
  ErrorRecoveryLevel: {
    // We implement ERL 0: the result is the lower of the two.
    kind: { t: 'min', lo: 0, hi: 2, ours: () => 0, set: (p, v) => (p.errorRecoveryLevel = v) },
    loginOnly: true,
  },
  // Markers were removed by RFC 7143; old initiators still offer them.
  OFMarker: { kind: { t: 'obsolete-bool' }, loginOnly: true },
  IFMarker: { kind: { t: 'obsolete-bool' }, loginOnly: true },
  OFMarkInt: { kind: { t: 'obsolete-irrelevant' }, loginOnly: true },
  IFMarkInt: { kind: { t: 'obsolete-irrelevant' }, loginOnly: true },
};

/** Keys handled by the login state machine itself, not by `negotiateKeys`. */
export const LOGIN_KEYS = new Set([
  'InitiatorName',
  'InitiatorAlias',
  'TargetName',
  'TargetAlias',
  'TargetAddress',
  'TargetPortalGroupTag',
  'SessionType',
  'AuthMethod',
  'CHAP_A',
  'CHAP_I',
  'CHAP_C',
  'CHAP_N',
  'CHAP_R',
  'SendTargets',
]);

const NUMERIC = /^(0|[1-9][0-9]*|0x[0-9a-fA-F]+)$/;

function parseNumber(v: string): number | undefined {
  if (!NUMERIC.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

export interface NegotiateContext {
  sessionType: 'Normal' | 'Discovery';
  phase: 'login' | 'full-feature';
  limits: TargetLimits;
}

/**
 * Negotiate the operational keys of one request. Returns the pairs the target
 * answers with; `params` is updated in place with the results.
 */
export function negotiateKeys(pairs: Array<[string, string]>, params: SessionParams, ctx: NegotiateContext): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const [key, value] of pairs) {
    if (LOGIN_KEYS.has(key)) continue;
    const def = Object.prototype.hasOwnProperty.call(KEYS, key) ? KEYS[key] : undefined;
    if (!def) {
      // X- and X# keys, and anything else we do not know.
      out.push([key, 'NotUnderstood']);
      continue;
    }
    if (value === 'NotUnderstood' || value === 'Irrelevant' || value === 'Reject') continue;
    if (def.loginOnly && ctx.phase === 'full-feature') {
      out.push([key, 'Reject']);
      continue;
    }
    if (def.normalOnly && ctx.sessionType === 'Discovery') {
      out.push([key, 'Irrelevant']);
      continue;
    }
    const answer = negotiateOne(key, value, def.kind, params, ctx.limits);
    if (answer !== undefined) out.push([key, answer]);
  }
  if (params.firstBurstLength > params.maxBurstLength) {
    // RFC 7143 §13.14: FirstBurstLength must not exceed MaxBurstLength.
    params.firstBurstLength = params.maxBurstLength;
    const i = out.findIndex(([k]) => k === 'FirstBurstLength');
    if (i >= 0) out[i] = ['FirstBurstLength', String(params.firstBurstLength)];
  }
  return out;
}

function negotiateOne(key: string, value: string, kind: Kind, params: SessionParams, limits: TargetLimits): string | undefined {
  switch (kind.t) {
    case 'digest': {
      const offered = value.split(',');
      let chosen: string | undefined;
      for (const o of offered) {
        if (o === 'CRC32C' || o === 'None') {
          chosen = o;
          break;
        }
      }
      if (!chosen) return 'Reject';
      const on = chosen === 'CRC32C';
      if (key === 'HeaderDigest') params.headerDigest = on;
      else params.dataDigest = on;
      return chosen;
    }
    case 'and':
    case 'or': {
      if (value !== 'Yes' && value !== 'No') return 'Reject';
      const theirs = value === 'Yes';
      const ours = kind.ours(limits);
      const result = kind.t === 'and' ? theirs && ours : theirs || ours;
      kind.set(params, result);
      return result ? 'Yes' : 'No';
    }
    case 'min':
    case 'max': {
      const n = parseNumber(value);
      if (n === undefined || n < kind.lo || n > kind.hi) return 'Reject';
      const ours = kind.ours(limits);
      const result = kind.t === 'min' ? Math.min(n, ours) : Math.max(n, ours);
      kind.set(params, result);
      return String(result);
    }
    case 'mrdsl': {
      const n = parseNumber(value);
      if (n === undefined || n < 512 || n > MAX24) return 'Reject';
      params.maxSendDataSegmentLength = n;
      // Declarative: no answer needed; we declare our own value separately.
      return undefined;
    }
    case 'obsolete-bool':
      if (value !== 'Yes' && value !== 'No') return 'Reject';
      return 'No';
    case 'obsolete-irrelevant':
      return 'Irrelevant';
  }
}
