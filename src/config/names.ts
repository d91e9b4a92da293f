// iSCSI name syntax (RFC 3720 §3.2.6.3, RFC 7143 §4.2.7, RFC 3722 stringprep profile).
//
//   iqn.YYYY-MM.reversed.domain[:anything]   e.g. iqn.1994-05.com.redhat:host-a
//   eui.<16 hex>                             e.g. eui.02004567a425678d
//   naa.<16 or 32 hex>                       e.g. naa.52004567ba64678d
//
// Names are compared case-insensitively (stringprep folds them to lowercase); in the config
// they must be written in lowercase so that what is written is what initiators see. ASCII
// names may use only a-z, 0-9, '-', '.', ':' (RFC 3722 §6); non-ASCII letters are allowed.

export const ISCSI_NAME_MAX_BYTES = 223;

const LABEL = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
const IQN_RE = new RegExp(`^iqn\\.(\\d{4})-(\\d{2})\\.(${LABEL}(?:\\.${LABEL})*)(?::(.*))?$`);
const EUI_RE = /^eui\.[0-9a-f]{16}$/i;
const NAA_RE = /^naa\.(?:[0-9a-f]{16}|[0-9a-f]{32})$/i;

/**
 * Returns why `name` is not a valid iSCSI name, or undefined when it is valid.
 * The message quotes the name (iSCSI names are not secret).
 */
export function iscsiNameProblem(name: string): string | undefined {
  const q = JSON.stringify(name);
  if (name.length === 0) return 'an iSCSI name cannot be empty';
  if (Buffer.byteLength(name, 'utf8') > ISCSI_NAME_MAX_BYTES) {
    return `${q} is longer than ${ISCSI_NAME_MAX_BYTES} bytes`;
  }
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(name)) return `${q} contains white space or control characters`;
  const lower = name.toLowerCase();
  const type = lower.slice(0, 4);
  if (type === 'eui.') {
    if (!name.startsWith('eui.')) return `${q}: write the type prefix in lowercase ("eui.")`;
    return EUI_RE.test(name) ? undefined : `${q} is not an EUI name: expected "eui." and 16 hex digits`;
  }
  if (type === 'naa.') {
    if (!name.startsWith('naa.')) return `${q}: write the type prefix in lowercase ("naa.")`;
    return NAA_RE.test(name) ? undefined : `${q} is not an NAA name: expected "naa." and 16 or 32 hex digits`;
  }
  if (type !== 'iqn.') {
    return `${q} is not an iSCSI name: it must start with "iqn.", "eui." or "naa." (e.g. iqn.2026-11.com.example:storage)`;
  }
  if (name !== lower) return `${q}: iSCSI names are lowercase; write ${JSON.stringify(lower)}`;
  const bad = /[^a-z0-9.:\-\u0080-\u{10ffff}]/u.exec(name);
  if (bad) {
    return `${q} contains ${JSON.stringify(bad[0])}; iSCSI names allow only a-z, 0-9, '-', '.' and ':'`;
  }
  const m = IQN_RE.exec(name);
  if (!m) {
    return `${q} is not an IQN: expected iqn.YYYY-MM.reversed.domain[:identifier] (e.g. iqn.2026-11.com.example:storage)`;
  }
  const month = Number(m[2]);
  if (month < 1 || month > 12) return `${q}: "${m[1]}-${m[2]}" is not a year-month (YYYY-MM)`;
  return undefined;
}

export function isIscsiName(name: string): boolean {
  return iscsiNameProblem(name) === undefined;
}

/** The form used to compare iSCSI names (RFC 3722 folds case). */
export function normalizeIscsiName(name: string): string {
  return name.toLowerCase();
}

/** True when two iSCSI names denote the same node. */
export function sameIscsiName(a: string, b: string): boolean {
  return normalizeIscsiName(a) === normalizeIscsiName(b);
}
