// `minAlgorithm` in an ACL's chap and `security.minChapAlgorithm` (issue 14).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, parseConfigDetailed } from '../../src/config/load';

const base = (chap: string, top = '') => `${top}volumes:
  v: { memory: true, size: 1MiB }
targets:
  - iqn: iqn.2026-11.io.example:t
    acls:
      - initiator: iqn.1994-05.com.redhat:a
        luns: { 0: v }
        chap: ${chap}
        mutual: { user: t, secret: "target-secret-16" }
`;

test('minAlgorithm and security.minChapAlgorithm are read', () => {
  const { config } = parseConfigDetailed(
    base('{ user: a, secret: "a-secret-twelve", minAlgorithm: sha256 }', 'security: { minChapAlgorithm: SHA1 }\n'),
    'c.yaml',
  );
  assert.equal(config.targets[0].acls[0].chap!.minAlgorithm, 'sha256');
  assert.deepEqual(config.security, { minChapAlgorithm: 'sha1' });
});

test('bad values and a minAlgorithm under mutual name the key', () => {
  const errs = (text: string) => {
    try {
      parseConfigDetailed(text, 'c.yaml');
    } catch (e) {
      if (e instanceof ConfigError) return e.errors.map((x) => `${x.line}: ${x.key}: ${x.message}`);
      throw e;
    }
    return [];
  };
  assert.match(
    errs(base('{ user: a, secret: "a-secret-twelve", minAlgorithm: sha512 }')).join('\n'),
    /8: targets\[0\]\.acls\[0\]\.chap\.minAlgorithm: must be one of md5, sha1, sha256/,
  );
  assert.match(
    errs(base('{ user: a, secret: "a-secret-twelve" }', 'security: { minChapAlgorithm: 7 }\n')).join('\n'),
    /security\.minChapAlgorithm: must be one of/,
  );
  assert.match(errs(base('{ user: a, secret: "a-secret-twelve" }', 'security: { minAlgo: sha256 }\n')).join('\n'), /unknown key "minAlgo"/);
  const m = errs(
    base('{ user: a, secret: "a-secret-twelve" }').replace(
      'secret: "target-secret-16" }',
      'secret: "target-secret-16", minAlgorithm: sha256 }',
    ),
  );
  assert.match(m.join('\n'), /mutual\.minAlgorithm: minAlgorithm belongs in chap/);
});
