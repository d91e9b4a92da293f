// The login phase of one connection (RFC 7143 §6): stages, transitions, the
// leading-login checks (names, session type, target, ACL), operational key
// negotiation and long text split across PDUs in both directions.
//
// The connection feeds each Login Request to `handle()` and sends what it
// returns; when `outcome` is set the connection enters full-feature phase
// (or closes, on failure).

import { LoginRequest, LoginResponse, Op } from './pdu/messages';
import { encodeTextKeys, parseTextKeys } from './pdu/text';
import { defaultParams, negotiateKeys, SessionParams, TargetLimits } from './negotiation';
import { TextSplitter } from './text-exchange';
import {
  chapResponse,
  CHAP_ALGORITHMS,
  chooseAlgorithm,
  decodeBinary,
  encodeHex,
  newChallenge,
  parseChapId,
  peerChallengeProblem,
  verifyResponse,
  type ChapChallenge,
} from './chap';
import type { ChapCredentials } from '../config/model';

export interface ChapCredentialsPair {
  /** What the initiator must answer with (CHAP_N / secret). */
  chap: ChapCredentials;
  /** Our own name and secret, for initiators that authenticate the target (mutual CHAP). */
  mutual?: ChapCredentials;
  /** The weakest CHAP_A algorithm allowed (5 MD5, 6 SHA-1, 7 SHA-256); absent: any we support. */
  minAlgorithm?: number;
}

export const enum Stage {
  Security = 0,
  Operational = 1,
  FullFeature = 3,
}

/** Status class (high byte) and detail (low byte), RFC 7143 §11.13.5. */
export const LoginStatus = {
  Success: 0x0000,
  TargetMovedTemp: 0x0101,
  InitiatorError: 0x0200,
  AuthFailure: 0x0201,
  AuthorizationFailure: 0x0202,
  NotFound: 0x0203,
  TargetRemoved: 0x0204,
  UnsupportedVersion: 0x0205,
  TooManyConnections: 0x0206,
  MissingParameter: 0x0207,
  CantIncludeInSession: 0x0208,
  SessionTypeNotSupported: 0x0209,
  SessionDoesNotExist: 0x020a,
  InvalidDuringLogin: 0x020b,
  TargetError: 0x0300,
  ServiceUnavailable: 0x0301,
  OutOfResources: 0x0302,
} as const;

/** What login asks of the server: names, access and session bookkeeping. */
export interface LoginHost {
  readonly limits: TargetLimits;
  /** Is there a target of this name (case-insensitive)? Returns its canonical name. */
  targetExists(name: string): string | undefined;
  /** May this initiator use this target? */
  mayAccess(targetName: string, initiatorName: string): boolean;
  /**
   * The CHAP credentials this initiator must prove on this target (or on discovery,
   * when targetName is undefined); undefined when it logs in without authentication.
   */
  chapFor(targetName: string | undefined, initiatorName: string): ChapCredentialsPair | undefined;
  /**
   * Does a session have this TSIH (and, when given, belong to this initiator, ISID and
   * target)? A login adding a connection to it is answered only once authenticated.
   */
  sessionExists(tsih: number, initiatorName?: string, isid?: Buffer, targetName?: string): boolean;
  /** May a new session start (maxSessions)? Absent: always. */
  mayOpenSession?(initiatorName: string, isid: Buffer, targetName: string | undefined): boolean;
}

/** Login text the initiator may send across continued (C bit) PDUs before we give up. */
export const MAX_LOGIN_TEXT_BYTES = 64 * 1024;

export interface LoginOutcome {
  initiatorName: string;
  initiatorAlias?: string;
  sessionType: 'Normal' | 'Discovery';
  targetName?: string;
  isid: Buffer;
  tsih: number;
  cid: number;
  /** CmdSN of the leading login: the session's first ExpCmdSN. */
  cmdSN: number;
  /** The StatSN of the final login response; the next one is this + 1. */
  statSN: number;
  params: SessionParams;
  /** How the initiator authenticated (for the log). */
  auth: 'None' | 'CHAP' | 'mutual CHAP';
}

export interface LoginStep {
  responses: LoginResponse[];
  /** Set on the final successful response: the connection goes to full-feature phase. */
  outcome?: LoginOutcome;
  /** Set when the login failed: send the responses, then close. */
  failed?: { status: number; reason: string; initiatorName?: string; targetName?: string };
}

export class LoginPhase {
  private stage: Stage = Stage.Security;
  private first = true;
  private pendingText: Buffer[] = [];
  private pendingTextBytes = 0;
  private outgoing?: TextSplitter;
  private isid = Buffer.alloc(6);
  private tsih = 0;
  private cid = 0;
  private cmdSN = 0;
  private statSN = 0;
  private initiatorName?: string;
  private initiatorAlias?: string;
  private targetName?: string;
  private sessionType: 'Normal' | 'Discovery' = 'Normal';
  private authDone = false;
  private chap?: 'want-algorithm' | 'want-response' | 'done';
  private mutualDone = false;
  private challenge?: ChapChallenge;
  private declared = false;
  private deferredTransit = false;
  private deferredNsg = 0;
  readonly params: SessionParams = defaultParams();

  constructor(
    private readonly host: LoginHost,
    /** Assigns the TSIH of a new session when login completes. */
    private readonly allocateTsih: () => number,
    /** Target Portal Group Tag of the portal this connection came in on. */
    private readonly tpgt: number,
  ) {
    this.params.maxRecvDataSegmentLength = host.limits.maxRecvDataSegmentLength;
  }

  handle(req: LoginRequest): LoginStep {
    if (this.first) {
      this.first = false;
      this.isid = Buffer.from(req.isid);
      this.tsih = req.tsih;
      this.cid = req.cid;
      this.cmdSN = req.cmdSN;
      this.statSN = req.expStatSN;
      if (req.versionMin > 0 || req.versionMax < req.versionMin) {
        return this.fail(req, LoginStatus.UnsupportedVersion, `unsupported version ${req.versionMin}..${req.versionMax}`);
      }
    } else if (!req.isid.equals(this.isid) || req.tsih !== this.tsih || req.cid !== this.cid) {
      return this.fail(req, LoginStatus.InitiatorError, 'ISID, TSIH or CID changed during login');
    }

    if (req.csg === 2 || req.csg === Stage.FullFeature) {
      return this.fail(req, LoginStatus.InitiatorError, `invalid current stage ${req.csg}`);
    }
    if (req.csg < this.stage) {
      return this.fail(req, LoginStatus.InitiatorError, `stage went back from ${this.stage} to ${req.csg}`);
    }
    if (req.transit && (req.nsg === 2 || req.nsg <= req.csg)) {
      return this.fail(req, LoginStatus.InitiatorError, `invalid next stage ${req.nsg} from ${req.csg}`);
    }
    if (req.transit && req.cont) {
      return this.fail(req, LoginStatus.InitiatorError, 'T and C bits both set');
    }

    // The rest of a long response of ours: the initiator asks with an empty request.
    if (this.outgoing && !this.outgoing.done) {
      if (req.data.length > 0) {
        return this.fail(req, LoginStatus.InitiatorError, 'text sent while the target was still answering');
      }
      const piece = this.outgoing.next();
      if (!this.outgoing.done) return { responses: [this.response(req, piece, false)] };
      return this.finish({ ...req, nsg: this.deferredNsg }, piece, this.deferredTransit);
    }

    this.pendingText.push(req.data);
    this.pendingTextBytes += req.data.length;
    if (this.pendingTextBytes > MAX_LOGIN_TEXT_BYTES) {
      // An endless run of continued text would grow without bound until the login timeout.
      return this.fail(req, LoginStatus.InitiatorError, `login text longer than ${MAX_LOGIN_TEXT_BYTES} bytes`);
    }
    if (req.cont) {
      // More of the initiator's text follows: acknowledge with an empty response.
      return { responses: [this.response(req, Buffer.alloc(0), false)] };
    }
    const text = this.pendingText.length === 1 ? this.pendingText[0] : Buffer.concat(this.pendingText);
    this.pendingText = [];
    this.pendingTextBytes = 0;

    let pairs: Array<[string, string]>;
    try {
      pairs = parseTextKeys(text);
    } catch (e) {
      return this.fail(req, LoginStatus.InitiatorError, `malformed login text: ${(e as Error).message}`);
    }
    const keys = new Map(pairs);
    const answers: Array<[string, string]> = [];

    if (this.initiatorName === undefined) {
      const check = this.leadingChecks(keys, req);
      if (check) return check;
      if (this.sessionType === 'Normal') answers.push(['TargetPortalGroupTag', String(this.tpgt)]);
    } else if (keys.has('InitiatorName') && keys.get('InitiatorName') !== this.initiatorName) {
      return this.fail(req, LoginStatus.InitiatorError, 'InitiatorName changed during login');
    }

    this.stage = req.csg;
    const creds = this.host.chapFor(this.targetName, this.initiatorName!);
    if (req.csg === Stage.Security) {
      const failure = this.security(keys, creds, answers, req);
      if (failure) return failure;
    } else if (!this.authDone) {
      // The initiator skipped the security stage: fine only if no authentication is required.
      if (creds) return this.fail(req, LoginStatus.AuthFailure, 'authentication required but security stage skipped');
      this.authDone = true;
    }

    answers.push(...negotiateKeys(pairs, this.params, { sessionType: this.sessionType, phase: 'login', limits: this.host.limits }));

    // Leaving the security stage waits for authentication to complete.
    if (req.transit && req.csg === Stage.Security && !this.authDone && !creds && this.chap === undefined) {
      this.authDone = true;
    }
    if (this.tsih !== 0 && this.authDone) return this.joinAnswer(req);
    const transit = req.transit && (req.csg !== Stage.Security || this.authDone);
    const finishing = transit && req.nsg === Stage.FullFeature;
    if (!this.declared && (req.csg === Stage.Operational || finishing)) {
      this.declared = true;
      answers.push(['MaxRecvDataSegmentLength', String(this.params.maxRecvDataSegmentLength)]);
    }

    // Our answer may exceed what the initiator accepts in one PDU (8192 during login).
    this.outgoing = new TextSplitter(encodeTextKeys(answers), 8192);
    const chunk = this.outgoing.next();
    if (!this.outgoing.done) {
      // The transit the initiator asked for happens with our last piece.
      this.deferredTransit = transit;
      this.deferredNsg = req.nsg;
      return { responses: [this.response(req, chunk, false)] };
    }
    return this.finish(req, chunk, transit);
  }

  /** One step of the security stage: AuthMethod, then the CHAP exchange when required. */
  private security(
    keys: Map<string, string>,
    creds: ChapCredentialsPair | undefined,
    answers: Array<[string, string]>,
    req: LoginRequest,
  ): LoginStep | undefined {
    const auth = keys.get('AuthMethod');
    if (this.chap === undefined) {
      if (auth === undefined) return undefined;
      const offered = auth.split(',');
      if (creds) {
        if (!offered.includes('CHAP')) return this.fail(req, LoginStatus.AuthFailure, 'CHAP required but not offered');
        answers.push(['AuthMethod', 'CHAP']);
        this.chap = 'want-algorithm';
      } else if (offered.includes('None')) {
        answers.push(['AuthMethod', 'None']);
        this.authDone = true;
      } else {
        answers.push(['AuthMethod', 'Reject']);
      }
      return undefined;
    }
    if (this.chap === 'want-algorithm') {
      const offer = keys.get('CHAP_A');
      if (offer === undefined) return this.fail(req, LoginStatus.AuthFailure, 'CHAP_A missing');
      const alg = chooseAlgorithm(offer, creds!.minAlgorithm);
      if (alg === undefined) {
        const floor = creds!.minAlgorithm !== undefined ? ` at least ${CHAP_ALGORITHMS[creds!.minAlgorithm].name}` : '';
        return this.fail(req, LoginStatus.AuthFailure, `no supported CHAP algorithm${floor} in CHAP_A=${offer.slice(0, 64)}`);
      }
      this.challenge = newChallenge(alg);
      answers.push(['CHAP_A', String(alg)], ['CHAP_I', String(this.challenge.id)], ['CHAP_C', encodeHex(this.challenge.challenge)]);
      this.chap = 'want-response';
      return undefined;
    }
    if (this.chap === 'want-response') {
      const c = this.challenge!;
      const name = keys.get('CHAP_N');
      const response = decodeBinary(keys.get('CHAP_R') ?? '');
      if (name === undefined || !response) return this.fail(req, LoginStatus.AuthFailure, 'CHAP_N or CHAP_R missing');
      // Compare the response even when the name is wrong, so timing says nothing.
      const ok = verifyResponse(c, creds!.chap.secret, response);
      if (!ok || name !== creds!.chap.user)
        return this.fail(req, LoginStatus.AuthFailure, `CHAP response for user ${JSON.stringify(name)} did not match`);
      const idText = keys.get('CHAP_I');
      const theirChallenge = keys.get('CHAP_C');
      if (idText !== undefined || theirChallenge !== undefined) {
        // Mutual CHAP: the initiator authenticates us in turn.
        const id = parseChapId(idText);
        const ch = decodeBinary(theirChallenge ?? '');
        if (!creds!.mutual) return this.fail(req, LoginStatus.AuthFailure, 'mutual CHAP asked for but no target secret configured');
        if (id === undefined || !ch) {
          return this.fail(req, LoginStatus.AuthFailure, 'malformed CHAP_I/CHAP_C from initiator (CHAP_I must be decimal 0..255)');
        }
        const problem = peerChallengeProblem(ch, c.challenge);
        if (problem) return this.fail(req, LoginStatus.AuthFailure, problem);
        const mine = chapResponse(c.algorithm, id, Buffer.from(creds!.mutual.secret, 'utf8'), ch);
        answers.push(['CHAP_N', creds!.mutual.user], ['CHAP_R', encodeHex(mine)]);
        this.mutualDone = true;
      }
      this.chap = 'done';
      this.authDone = true;
    }
    return undefined;
  }

  private leadingChecks(keys: Map<string, string>, req: LoginRequest): LoginStep | undefined {
    const name = keys.get('InitiatorName');
    if (!name) return this.fail(req, LoginStatus.MissingParameter, 'InitiatorName missing');
    this.initiatorName = name;
    this.initiatorAlias = keys.get('InitiatorAlias');
    const type = keys.get('SessionType') ?? 'Normal';
    if (type !== 'Normal' && type !== 'Discovery') {
      return this.fail(req, LoginStatus.SessionTypeNotSupported, `SessionType ${type}`);
    }
    this.sessionType = type;
    // A TSIH (adding a connection to a session) is looked at only once the initiator is
    // authenticated (see joinAnswer): before that, whether a TSIH exists must not show.
    if (type === 'Normal') {
      const tname = keys.get('TargetName');
      if (!tname) return this.fail(req, LoginStatus.MissingParameter, 'TargetName missing');
      const canonical = this.host.targetExists(tname);
      if (!canonical) return this.fail(req, LoginStatus.NotFound, `no target ${tname}`);
      // An initiator not on the target's ACL is told "not found": the name leaks nothing.
      if (!this.host.mayAccess(canonical, name)) {
        return this.fail(req, LoginStatus.AuthorizationFailure, `${name} is not in the acls of ${canonical}`);
      }
      this.targetName = canonical;
    }
    if (req.tsih === 0 && this.host.mayOpenSession && !this.host.mayOpenSession(name, this.isid, this.targetName)) {
      return this.fail(req, LoginStatus.OutOfResources, 'too many sessions (limits.maxSessions)');
    }
    return undefined;
  }

  /**
   * A login with a TSIH, once authenticated: we run one connection per session, so it is
   * refused either way; "too many connections" only for the initiator's own session.
   */
  private joinAnswer(req: LoginRequest): LoginStep {
    if (this.host.sessionExists(this.tsih, this.initiatorName, this.isid, this.targetName)) {
      return this.fail(req, LoginStatus.TooManyConnections, 'MaxConnections is 1');
    }
    return this.fail(req, LoginStatus.SessionDoesNotExist, `TSIH ${this.tsih} is no session of this initiator`);
  }

  private finish(req: LoginRequest, text: Buffer, transit: boolean): LoginStep {
    const nsg = transit ? req.nsg : req.csg;
    if (transit) this.stage = req.nsg;
    if (transit && nsg === Stage.FullFeature) {
      this.tsih = this.allocateTsih();
      const res = this.response(req, text, true);
      return {
        responses: [res],
        outcome: {
          initiatorName: this.initiatorName!,
          initiatorAlias: this.initiatorAlias,
          sessionType: this.sessionType,
          targetName: this.targetName,
          isid: this.isid,
          tsih: this.tsih,
          cid: this.cid,
          cmdSN: this.cmdSN,
          statSN: res.statSN,
          params: this.params,
          auth: this.chap !== 'done' ? 'None' : this.mutualDone ? 'mutual CHAP' : 'CHAP',
        },
      };
    }
    return { responses: [this.response(req, text, transit)] };
  }

  private response(req: LoginRequest, data: Buffer, transit: boolean): LoginResponse {
    const statSN = this.statSN;
    this.statSN = (this.statSN + 1) >>> 0;
    return {
      op: Op.LoginResponse,
      transit,
      cont: this.outgoing !== undefined && !this.outgoing.done,
      csg: req.csg,
      nsg: transit ? req.nsg : 0,
      versionMax: 0,
      versionActive: 0,
      isid: this.isid,
      tsih: transit && req.nsg === Stage.FullFeature ? this.tsih : 0,
      itt: req.itt,
      statSN,
      expCmdSN: this.cmdSN,
      maxCmdSN: (this.cmdSN + this.host.limits.queueDepth - 1) >>> 0,
      statusClass: 0,
      statusDetail: 0,
      data,
    };
  }

  private fail(req: LoginRequest, status: number, reason: string): LoginStep {
    const res = this.response(req, Buffer.alloc(0), false);
    res.cont = false;
    res.statusClass = status >> 8;
    res.statusDetail = status & 0xff;
    return {
      responses: [res],
      failed: { status, reason, initiatorName: this.initiatorName, targetName: this.targetName },
    };
  }
}

/**
 * The one info line of a completed login: who, to what, from where, how authenticated,
 * which LUNs; the negotiated parameters go to a debug line (negotiatedParams).
 */
export function loginLine(o: LoginOutcome, remote: string, luns: Iterable<number>): { fields: Record<string, unknown>; message: string } {
  const p = o.params;
  const lunList = [...luns].join(',') || 'none';
  return {
    fields: {
      initiator: o.initiatorName,
      target: o.targetName,
      type: o.sessionType,
      isid: o.isid.toString('hex'),
      auth: o.auth,
      HeaderDigest: p.headerDigest ? 'CRC32C' : 'None',
      DataDigest: p.dataDigest ? 'CRC32C' : 'None',
    },
    message:
      o.sessionType === 'Discovery'
        ? `login: ${o.initiatorName} (discovery) from ${remote}`
        : `login: ${o.initiatorName} on ${o.targetName} from ${remote}, LUNs ${lunList}`,
  };
}

/** The negotiated operational parameters of a login, for its debug line. */
export function negotiatedParams(o: LoginOutcome): Record<string, unknown> {
  const p = o.params;
  return {
    params: {
      HeaderDigest: p.headerDigest ? 'CRC32C' : 'None',
      DataDigest: p.dataDigest ? 'CRC32C' : 'None',
      InitialR2T: p.initialR2T,
      ImmediateData: p.immediateData,
      MaxRecvDataSegmentLength: p.maxRecvDataSegmentLength,
      InitiatorMaxRecvDataSegmentLength: p.maxSendDataSegmentLength,
      MaxBurstLength: p.maxBurstLength,
      FirstBurstLength: p.firstBurstLength,
      MaxOutstandingR2T: p.maxOutstandingR2T,
      ErrorRecoveryLevel: p.errorRecoveryLevel,
    },
  };
}
