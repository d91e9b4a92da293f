// `npm run bench -- --rbd`: the RBD rows. Each target serves its own image in pool `rbd` of
// a Ceph cluster (scripts/ceph-cluster.sh's, or the one $CEPH_CONF names), both through
// librbd: ours in the daemon (src/backstore/rbd.ts), tgt through its bs_rbd module (Debian
// `tgt-rbd`). The bench never starts a cluster itself: starting one installs packages and
// takes about 700 MiB of RAM, which a bench run should not do behind the user's back.
//
// librbd settings: neither side sets any rbd_cache option, so both run librbd's defaults
// from the same ceph.conf (Pacific: rbd_cache=true, rbd_cache_policy=writearound,
// rbd_cache_writethrough_until_flush=true, 32 MiB). Ours only adds client_mount_timeout,
// which matters at connect only. tgt's bs_rbd also reads $CEPH_ARGS (rados_conf_parse_env),
// so the bench starts tgtd without it.

import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export const RBD_POOL = 'rbd';
/** cephx user (without "client."): the test cluster's keyring holds client.admin. */
export const RBD_USER = 'admin';
/** tgt's RBD backing-store module, from Debian's tgt-rbd. */
const BS_RBD = '/usr/lib/tgt/backing-store/bs_rbd.so';

export interface RbdCluster {
  conf: string;
  user: string;
  /** Images this run created, removed by removeImages(). */
  images: string[];
}

/** Packages missing for the RBD rows (the rbd CLI; bs_rbd when tgt runs). */
export function missingRbdTools(have: (cmd: string) => boolean, withTgt: boolean): string[] {
  const missing: string[] = [];
  if (!have('rbd')) missing.push('ceph-common');
  if (withTgt && !fs.existsSync(BS_RBD)) missing.push('tgt-rbd');
  return missing;
}

/**
 * The cluster to bench on: $CEPH_CONF when set, else the running test cluster of
 * scripts/ceph-cluster.sh (its `env`, which honours $CEPH_DIR). Throws, saying how to start
 * one, when there is none or it does not answer.
 */
export function findCluster(root: string): RbdCluster {
  const howTo =
    'start the test cluster with: bash scripts/ceph-cluster.sh start (same CEPH_DIR as for the bench), ' +
    "or point CEPH_CONF at a cluster's ceph.conf (client.admin keyring, pool rbd)";
  let conf = process.env.CEPH_CONF;
  if (!conf) {
    const r = spawnSync('bash', [path.join(root, 'scripts', 'ceph-cluster.sh'), 'env'], { encoding: 'utf8' });
    const m = /CEPH_CONF=(\S+)/.exec(r.stdout ?? '');
    if (r.status !== 0 || !m) throw new Error(`--rbd: no Ceph cluster is running (${(r.stderr ?? '').trim()});\n  ${howTo}`);
    conf = m[1];
  }
  // A cluster that is down makes the client wait for monitors; bound it.
  const r = spawnSync('rbd', ['--conf', conf, '--id', RBD_USER, 'ls', RBD_POOL], { encoding: 'utf8', timeout: 20_000 });
  if (r.status !== 0) {
    const why = r.error ? 'no answer in 20 s' : (r.stderr || r.stdout || `exit ${r.status}`).trim();
    throw new Error(`--rbd: the Ceph cluster of ${conf} does not answer (${why});\n  ${howTo}`);
  }
  return { conf, user: RBD_USER, images: [] };
}

function rbdCli(c: RbdCluster, args: string[], timeout = 300_000): ReturnType<typeof spawnSync> {
  return spawnSync('rbd', ['--conf', c.conf, '--id', c.user, ...args], { encoding: 'utf8', timeout });
}

/**
 * A new image in pool rbd holding `file` (the same non-zero data the file volumes start
 * with, so reads fetch real objects, not holes). `rbd import` creates it with librbd's
 * default features, as `rbd create` would; every target's image is made this way.
 */
export function createImage(c: RbdCluster, target: string, file: string): string {
  const name = `iscsi-bench-${target}-${process.pid}-${randomBytes(3).toString('hex')}`;
  c.images.push(name);
  const r = rbdCli(c, ['import', '--no-progress', file, `${RBD_POOL}/${name}`]);
  if (r.status !== 0) throw new Error(`rbd import ${file} ${RBD_POOL}/${name} failed: ${String(r.stderr || r.stdout)}`);
  return name;
}

/**
 * Remove the run's images. A client that did not close its image (a killed target) keeps
 * a watch on it until the OSD times it out, and `rbd rm` refuses meanwhile: retry a while.
 */
export async function removeImages(c: RbdCluster): Promise<string[]> {
  const left: string[] = [];
  for (const name of c.images) {
    let ok = false;
    for (let i = 0; i < 20 && !ok; i++) {
      ok = rbdCli(c, ['rm', '--no-progress', `${RBD_POOL}/${name}`], 60_000).status === 0;
      if (!ok) await new Promise((r) => setTimeout(r, 2000));
    }
    if (!ok) left.push(name);
  }
  c.images = [];
  return left;
}

/** ceph.conf + user for bs_rbd's --bsopts (it splits on ';'; tgtadm joins options with ','). */
export function tgtBsopts(c: RbdCluster): string {
  if (/[;,]/.test(c.conf)) throw new Error(`tgt's bsopts cannot carry a ceph.conf path with ';' or ',': ${c.conf}`);
  return `conf=${c.conf};id=${c.user}`;
}
