// CHAP (RFC 1994 as used by RFC 7143 §12.1.3): the target's challenge, the
// check of the initiator's response, and our response for mutual CHAP.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** CHAP_A algorithm numbers (IANA "PPP Authentication Algorithms"). */
export const CHAP_ALGORITHMS: Record<number, { hash: string; challengeBytes: number }> = {
  7: { hash: 'sha256', challengeBytes: 32 },
  5: { hash: 'md5', challengeBytes: 16 },
};

/** The first algorithm of the initiator's list that we support, or undefined. */
export function chooseAlgorithm(offer: string): number | undefined {
  for (const a of offer.split(',')) {
    const n = Number(a.trim());
    if (Number.isInteger(n) && CHAP_ALGORITHMS[n]) return n;
  }
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
