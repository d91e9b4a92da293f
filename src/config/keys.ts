// The keys a config file may hold, per section, and the bounds its values are checked
// against (load.ts re-exports them; the CLI's completion and edits use them too).
import type { Portal } from './model';

export const TOP_LEVEL_KEYS = ['portals', 'volumes', 'targets', 'discovery', 'security', 'limits', 'metrics', 'gateway', 'ceph'] as const;
export const GATEWAY_KEYS = ['group', 'peers'] as const;
export const ALUA_STATE_NAMES = ['non-optimized', 'standby', 'unavailable'] as const;
export const CEPH_KEYS = ['conf', 'user'] as const;
export const SECURITY_KEYS = ['minChapAlgorithm'] as const;
export const CHAP_ALGORITHM_NAMES = ['md5', 'sha1', 'sha256'] as const;
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
