import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_CONFIG_YAML, DEFAULT_SOURCE, DEFAULT_TARGET_IQN, defaultConfig } from '../../src/config/default';
import { parseConfigDetailed } from '../../src/config/load';
import { isIscsiName } from '../../src/config/names';

test('built-in default: 1 GiB sparse file under <cwd>/luns, LUN 0 of one open target on 0.0.0.0:3260', () => {
  const c = defaultConfig('/home/me/work');
  assert.equal(c.source, DEFAULT_SOURCE);
  assert.deepEqual(c.portals, [{ host: '0.0.0.0', port: 3260 }]);
  assert.deepEqual(
    [...c.volumes.values()],
    [
      {
        name: 'default',
        path: '/home/me/work/luns/default.img',
        size: 1024 ** 3,
        readonly: false,
        blockSize: 512,
        memory: false,
        shared: false,
      },
    ],
  );
  assert.equal(c.targets.length, 1);
  assert.equal(c.targets[0].iqn, DEFAULT_TARGET_IQN);
  assert.ok(isIscsiName(DEFAULT_TARGET_IQN));
  assert.deepEqual(c.targets[0].luns, new Map([[0, 'default']]));
  assert.deepEqual(c.targets[0].acls, []);
});

test('the default written as YAML validates to the same model', () => {
  const { config, warnings } = parseConfigDetailed(DEFAULT_CONFIG_YAML, 'default.yaml', { baseDir: '/home/me/work' });
  assert.deepEqual(warnings, []);
  assert.deepEqual({ ...config, source: DEFAULT_SOURCE }, defaultConfig('/home/me/work'));
});
