// The test cluster of scripts/ceph-cluster.sh, as the ha/ tests use it. No cluster is a
// failure, never a skip: `npm run test:ha` starts one first.
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ROOT } from '../test/helpers/daemon';

const SCRIPT = path.join(ROOT, 'scripts', 'ceph-cluster.sh');

/** The running test cluster's ceph.conf; throws (loudly) when none is running. */
export function cephConf(): string {
  const r = spawnSync('bash', [SCRIPT, 'env'], { encoding: 'utf8' });
  const m = /CEPH_CONF=(\S+)/.exec(r.stdout);
  if (r.status !== 0 || !m) {
    throw new Error(`no test Ceph cluster is running (${r.stderr.trim()}); start one with: bash scripts/ceph-cluster.sh start`);
  }
  return m[1];
}

/** A fresh image name in pool rbd, so reruns and parallel files never share state. */
export function newImageName(what: string): string {
  return `${what}-${process.pid}-${randomBytes(3).toString('hex')}`;
}

/** `rbd` with the test cluster's conf; throws with its output on failure. */
export function rbd(conf: string, args: string[]): string {
  const r = spawnSync('rbd', ['--conf', conf, ...args], { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`rbd ${args.join(' ')}: ${r.stderr || r.stdout || `exit ${r.status}`}`);
  return r.stdout;
}

/** Remove images (best effort: a test that failed may not have created them). */
export function removeImages(conf: string, images: string[]): void {
  for (const img of images) spawnSync('rbd', ['--conf', conf, 'rm', '--no-progress', `rbd/${img}`], { timeout: 60_000 });
}

/**
 * A daemon config serving RBD image `image` (64 MiB, created if missing) as LUN 0 of `iqn`
 * on a loopback port; `top` adds top-level keys (gateway, limits), `volume` volume keys.
 */
export function rbdTargetYaml(o: { conf: string; image: string; iqn: string; top?: string; volume?: string }): string {
  return `portals: ["127.0.0.1:PORT"]
${o.top ? `${o.top}\n` : ''}ceph: { conf: ${o.conf} }
volumes:
  db: { rbd: rbd/${o.image}, size: 64MiB${o.volume ? `, ${o.volume}` : ''} }
targets:
  - iqn: ${o.iqn}
    luns: { 0: db }
`;
}
