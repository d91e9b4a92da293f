// The built-in default used by `npm start` / `iscsi-target serve` without a config file:
// one 1 GiB sparse volume under <cwd>/luns/, exported as LUN 0 of one open target on
// 0.0.0.0:3260. The equivalent YAML is DEFAULT_CONFIG_YAML.
import * as path from 'node:path';
import type { Config } from './model';

export const DEFAULT_SOURCE = '<built-in default>';
export const DEFAULT_TARGET_IQN = 'iqn.2026-11.io.iscsi-target:default';
export const DEFAULT_VOLUME_NAME = 'default';
export const DEFAULT_VOLUME_SIZE = 1024 ** 3;

/** The same default, written as a config file (what `serve` runs on when no file is given). */
export const DEFAULT_CONFIG_YAML = `# iscsi-target config (the built-in default)
portals: ["0.0.0.0:3260"]
volumes:
  ${DEFAULT_VOLUME_NAME}: { path: luns/${DEFAULT_VOLUME_NAME}.img, size: 1GiB }   # sparse file, created if missing
targets:
  - iqn: ${DEFAULT_TARGET_IQN}
    luns: { 0: ${DEFAULT_VOLUME_NAME} }   # no acls: every initiator may log in and sees LUN 0
`;

export function defaultConfig(cwd: string): Config {
  return {
    source: DEFAULT_SOURCE,
    portals: [{ host: '0.0.0.0', port: 3260 }],
    volumes: new Map([
      [
        DEFAULT_VOLUME_NAME,
        {
          name: DEFAULT_VOLUME_NAME,
          path: path.resolve(cwd, 'luns', `${DEFAULT_VOLUME_NAME}.img`),
          size: DEFAULT_VOLUME_SIZE,
          readonly: false,
          blockSize: 512,
          memory: false,
          shared: false,
        },
      ],
    ]),
    targets: [{ iqn: DEFAULT_TARGET_IQN, luns: new Map([[0, DEFAULT_VOLUME_NAME]]), acls: [] }],
  };
}
