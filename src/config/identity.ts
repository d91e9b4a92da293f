// A volume's identity as text (`serial`, `wwn` in the config, the identity file) and new
// random ones; scsi/identity.ts decides which identity a volume is exported with. Light on
// imports: the config checker and the CLI use it without loading the SCSI core.
import { createHash, randomBytes } from 'node:crypto';
import { COMPANY_ID } from '../scsi/limits';

export interface VolumeIdentity {
  /** VPD 0x80 unit serial number (printable ASCII). */
  serial: string;
  /** NAA designator: 16 bytes (NAA 6, IEEE Registered Extended) or 8 (NAA 5, IEEE Registered). */
  naa: Buffer;
}

export const SERIAL_MAX = 64;

/** "naa.6..." as LIO, tgt and `lsscsi --wwn` spell it (lowercase hex). */
export function formatWwn(naa: Buffer): string {
  return `naa.${naa.toString('hex')}`;
}

/**
 * A configured WWN: "naa.6" + 31 hex digits (NAA 6) or "naa.5" + 15 (NAA 5); "0x" or no
 * prefix is accepted too (as /dev/disk/by-id/wwn-0x... shows it). Returns the designator
 * bytes, or why the text is not one.
 */
export function parseWwn(text: string): Buffer | { error: string } {
  const hex = text.trim().replace(/^(naa\.|0x)/i, '');
  const q = JSON.stringify(text);
  if (!/^[0-9a-f]+$/i.test(hex))
    return { error: `${q} is not a WWN: expected naa. and hex digits, e.g. naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4` };
  const naa = hex[0];
  if (naa === '6' && hex.length === 32) return Buffer.from(hex, 'hex');
  if (naa === '5' && hex.length === 16) return Buffer.from(hex, 'hex');
  if (naa !== '5' && naa !== '6')
    return { error: `${q}: only NAA 6 (32 hex digits) and NAA 5 (16 hex digits) designators are supported; this one is NAA ${naa}` };
  return { error: `${q}: an NAA ${naa} designator has ${naa === '6' ? 32 : 16} hex digits, not ${hex.length}` };
}

/** Why `serial` cannot be a unit serial number, or undefined. */
export function serialProblem(serial: string): string | undefined {
  if (serial.length === 0) return 'the serial cannot be empty';
  if (serial.length > SERIAL_MAX) return `the serial is ${serial.length} characters long; at most ${SERIAL_MAX}`;
  if (!/^[\x21-\x7e]+$/.test(serial)) return 'the serial may hold only printable ASCII without spaces';
  return undefined;
}

export const IDENTITY_FILE_SUFFIX = '.identity.json';

/** The identity file of a volume file. */
export function identityFile(volumeFile: string): string {
  return `${volumeFile}${IDENTITY_FILE_SUFFIX}`;
}

/** An identity as the config and the identity file write it. */
export function identityText(id: VolumeIdentity): { serial: string; wwn: string } {
  return { serial: id.serial, wwn: formatWwn(id.naa) };
}

/** The identity file's content: what scsi/identity.ts reads back. */
export function identityFileText(id: VolumeIdentity, origin: string): string {
  return `${JSON.stringify({ ...identityText(id), origin }, null, 2)}\n`;
}

/**
 * An NAA 6 (IEEE Registered Extended) designator under our company id carrying 100 bits:
 * the low 4 bits of `nibble` and the 12 bytes of `rest`.
 */
export function naa6(nibble: number, rest: Buffer): Buffer {
  const naa = Buffer.alloc(16);
  // NAA (4 bits) | IEEE company id (24 bits) | vendor specific id (36 bits) | extension (64 bits)
  naa[0] = 0x60 | ((COMPANY_ID >> 20) & 0x0f);
  naa[1] = (COMPANY_ID >> 12) & 0xff;
  naa[2] = (COMPANY_ID >> 4) & 0xff;
  naa[3] = ((COMPANY_ID & 0x0f) << 4) | (nibble & 0x0f);
  rest.copy(naa, 4, 0, 12);
  return naa;
}

/** A new identity: 100 random bits in the NAA (NAA 6, our company id), 96 in the serial. */
export function randomIdentity(): VolumeIdentity {
  return identityFromBytes(randomBytes(13), randomBytes(12));
}

/**
 * The identity derived from a volume's unique name (an RBD image's cluster fsid, pool id and
 * image id): as unique as a random one, and the same wherever it is computed, so gateways
 * that open a new image at the same moment cannot store two different identities.
 */
export function seededIdentity(seed: string): VolumeIdentity {
  const h = createHash('sha256').update(`iscsi-target identity\0${seed}`).digest();
  return identityFromBytes(h.subarray(0, 13), h.subarray(13, 25));
}

function identityFromBytes(r: Buffer, s: Buffer): VolumeIdentity {
  return { serial: s.toString('hex').toUpperCase(), naa: naa6(r[12], r.subarray(0, 12)) };
}
