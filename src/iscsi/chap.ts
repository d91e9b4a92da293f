// CHAP (RFC 1994 as used by RFC 7143 §12.1.3): the target's challenge, the
// check of the initiator's response, and our response for mutual CHAP.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** CHAP_A algorithm numbers (IANA "PPP Authentication Algorithms"). */
export const CHAP_ALGORITHMS: Record<number, { hash: string; challengeBytes: number; name: ChapAlgorithmName }> = {
  7: { hash: 'sha256', challengeBytes: 32, name: 'sha256' },
  6: { hash: 'sha1', challengeBytes: 20, name: 'sha1' },
  5: { hash: 'md5', challengeBytes: 16, name: 'md5' },
};

export type ChapAlgorithmName = 'md5' | 'sha1' | 'sha256';
/** Config names -> CHAP_A numbers. */
export const CHAP_ALGORITHM_BY_NAME: Record<ChapAlgorithmName, number> = { md5: 5, sha1: 6, sha256: 7 };
/** Weakest first: an algorithm's index is its strength. */
const STRENGTH = [5, 6, 7];

/**
 * The algorithm to answer the initiator's CHAP_A list with: the strongest one it offers that
 * we support and that is at least `min` (a CHAP_A number), or undefined when there is none.
 *
 * RFC 7143 §6.2.1 has the responder pick "the first value that it supports (and is allowed to
 * use for the specific originator)" from the list; our policy allows only the strongest one
 * offered, so the answer is always a value of the initiator's list, and listing MD5 first
 * no longer gets MD5 when SHA-256 is there too.
 */
export function chooseAlgorithm(offer: string, min = 5): number | undefined {
  let best: number | undefined;
  for (const a of offer.split(',')) {
    const t = a.trim();
    if (!/^[0-9]{1,3}$/.test(t)) continue;
    const n = Number(t);
    if (!CHAP_ALGORITHMS[n] || STRENGTH.indexOf(n) < STRENGTH.indexOf(min)) continue;
    best = strongerAlgorithm(best, n);
  }
  return best;
}

/** The stronger of two CHAP_A numbers (either may be absent). */
export function strongerAlgorithm(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined) return b;
  if (b === undefined) return a;
  return STRENGTH.indexOf(a) >= STRENGTH.indexOf(b) ? a : b;
}

/** Mutual CHAP: challenge lengths we answer (RFC 7143 §12.1.3 caps CHAP_C at 1024 bytes). */
export const PEER_CHALLENGE_MIN = 16;
export const PEER_CHALLENGE_MAX = 1024;

/** CHAP_I as RFC 1994 has it: one octet, written in decimal. */
export function parseChapId(text: string | undefined): number | undefined {
  if (text === undefined || !/^[0-9]{1,3}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 255 ? n : undefined;
}

/**
 * Challenges initiators sent us, remembered (as hashes) so that one sent again, by the same
 * initiator or another, is refused: our answer to a challenge must never be collected twice.
 */
export class ChallengeHistory {
  private readonly seen = new Set<string>();
  constructor(private readonly max = 65536) {}

  /** False when `challenge` was seen before; remembers it otherwise. */
  remember(challenge: Buffer): boolean {
    const key = createHash('sha256').update(challenge).digest('base64');
    if (this.seen.has(key)) return false;
    this.seen.add(key);
    if (this.seen.size > this.max) this.seen.delete(this.seen.values().next().value as string);
    return true;
  }
}

export const peerChallenges = new ChallengeHistory();

/**
 * Why the initiator's mutual CHAP challenge is refused, or undefined when it may be answered:
 * too short or too long, no variety (one byte repeated: all zeros, say), our own challenge
 * reflected, or one seen before.
 */
export function peerChallengeProblem(ch: Buffer, ours: Buffer, history: ChallengeHistory = peerChallenges): string | undefined {
  if (ch.length < PEER_CHALLENGE_MIN || ch.length > PEER_CHALLENGE_MAX) {
    return `mutual CHAP challenge of ${ch.length} bytes (${PEER_CHALLENGE_MIN}..${PEER_CHALLENGE_MAX} accepted)`;
  }
  if (ch.every((b) => b === ch[0])) return 'mutual CHAP challenge is one byte repeated';
  if (ch.equals(ours)) return 'initiator reflected our CHAP challenge';
  if (!history.remember(ch)) return 'mutual CHAP challenge was used before';
  return undefined;
}

export function chapResponse(algorithm: number, id: number, secret: Buffer, challenge: Buffer): Buffer {
  const h = createHash(CHAP_ALGORITHMS[algorithm].hash);
  h.update(Buffer.from([id & 0xff]));
  h.update(secret);
  h.update(challenge);
  return h.digest();
}

/** Decode a CHAP binary value: hex ("0x..."), base64 ("0b...") or undefined when malformed. */
export function decodeBinary(v: string): Buffer | undefined {
  if (/^0[xX]([0-9a-fA-F]{2})+$/.test(v)) return Buffer.from(v.slice(2), 'hex');
  if (/^0[xX][0-9a-fA-F]+$/.test(v)) return Buffer.from('0' + v.slice(2), 'hex'); // odd digit count
  if (/^0[bB][A-Za-z0-9+/]+=*$/.test(v)) return Buffer.from(v.slice(2), 'base64');
  return undefined;
}

export function encodeHex(b: Buffer): string {
  return '0x' + b.toString('hex');
}

export interface ChapChallenge {
  algorithm: number;
  id: number;
  challenge: Buffer;
}

export function newChallenge(algorithm: number): ChapChallenge {
  return {
    algorithm,
    id: randomBytes(1)[0],
    challenge: randomBytes(CHAP_ALGORITHMS[algorithm].challengeBytes),
  };
}

/** Constant-time check of the initiator's CHAP_R against the expected response. */
export function verifyResponse(c: ChapChallenge, secret: string, response: Buffer): boolean {
  const expected = chapResponse(c.algorithm, c.id, Buffer.from(secret, 'utf8'), c.challenge);
  return response.length === expected.length && timingSafeEqual(response, expected);
}
