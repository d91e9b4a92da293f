// `volume snapshot NAME SNAP`, `volume rollback NAME SNAP` and `volume clone NAME SNAP NEW
// --rbd POOL/IMAGE`: RBD snapshots and clones through librbd,
// from the CLI process itself (the image is in the cluster, not behind the daemon).
import type { Command } from 'commander';
import type { VolumeConfig } from '../config/model';
import { addVolume } from '../admin/config-edit';
import { RbdBackstore } from '../backstore/rbd';
import { parseRbdSpec } from '../config/rbd';
import { IDENTITY_METADATA_KEY } from '../scsi/identity';
import { editTarget, printIssues, proposeChange, readConfig } from './change';
import { EXIT, err, out, type CliContext } from './context';
import type { ConfigOptions, JsonOptions } from './options';

type Opts = ConfigOptions & JsonOptions;

/** The RBD volume NAME of the config, or an error already printed. */
function rbdVolume(ctx: CliContext, name: string, o: Opts, what: string): VolumeConfig | undefined {
  const cur = readConfig(editTarget(ctx, o));
  if ('errors' in cur) {
    printIssues(ctx, cur.errors);
    return undefined;
  }
  const vol = cur.config.volumes.get(name);
  if (!vol) {
    err(ctx, `error: no volume ${name} in the config`);
    return undefined;
  }
  if (!vol.rbd) {
    // Reflinks (FICLONE) for file volumes are not written yet.
    err(ctx, `error: volume ${name} is not an RBD volume: ${what} works on RBD volumes only for now`);
    return undefined;
  }
  return vol;
}

async function withImage<T>(ctx: CliContext, vol: VolumeConfig, fn: (img: RbdBackstore) => Promise<T>): Promise<T | undefined> {
  let img: RbdBackstore;
  try {
    img = await RbdBackstore.open({ pool: vol.rbd!.pool, image: vol.rbd!.image, conf: vol.ceph?.conf, user: vol.ceph?.user });
  } catch (e) {
    err(ctx, `error: volume ${vol.name}: ${(e as Error).message}`);
    return undefined;
  }
  try {
    return await fn(img);
  } catch (e) {
    err(ctx, `error: volume ${vol.name}: ${(e as Error).message}`);
    return undefined;
  } finally {
    await img.close().catch(() => undefined);
  }
}

const SNAP_NAME = /^[A-Za-z0-9._-]{1,64}$/;

function checkSnapName(ctx: CliContext, snap: string): boolean {
  if (SNAP_NAME.test(snap)) return true;
  err(ctx, `error: snapshot name ${JSON.stringify(snap)}: use 1-64 letters, digits, '.', '_' or '-'`);
  return false;
}

export async function snapshot(ctx: CliContext, name: string, snap: string, o: Opts): Promise<number> {
  if (!checkSnapName(ctx, snap)) return EXIT.FAILURE;
  const vol = rbdVolume(ctx, name, o, 'snapshot');
  if (!vol) return EXIT.FAILURE;
  const spec = `${vol.rbd!.pool}/${vol.rbd!.image}@${snap}`;
  const done = await withImage(ctx, vol, async (img) => {
    await img.snapshot(snap);
    return true;
  });
  if (!done) return EXIT.FAILURE;
  if (o.json) out(ctx, JSON.stringify({ ok: true, volume: name, snapshot: snap, rbd: spec }, null, 2));
  else out(ctx, `volume ${name}: snapshot ${spec} created`);
  return EXIT.OK;
}

/**
 * Refused while any client but this one has the image open: a gateway serving it would keep
 * cached data and hosts would read a mix of before and after.
 */
export async function rollback(ctx: CliContext, name: string, snap: string, o: Opts): Promise<number> {
  if (!checkSnapName(ctx, snap)) return EXIT.FAILURE;
  const vol = rbdVolume(ctx, name, o, 'rollback');
  if (!vol) return EXIT.FAILURE;
  const spec = `${vol.rbd!.pool}/${vol.rbd!.image}`;
  const done = await withImage(ctx, vol, async (img) => {
    const others = (await img.watchers()).filter((a) => a !== img.clientAddress);
    if (others.length > 0) {
      err(
        ctx,
        `error: volume ${name}: RBD image ${spec} is open by ${others.length} other client(s) (${others.join(', ')}): ` +
          'a gateway serves it. Stop every daemon serving it (or remove the volume from their config) before rolling back; nothing was changed',
      );
      return false;
    }
    await img.rollback(snap);
    return true;
  });
  if (!done) return EXIT.FAILURE;
  if (o.json) out(ctx, JSON.stringify({ ok: true, volume: name, rolledBackTo: snap, rbd: spec }, null, 2));
  else out(ctx, `volume ${name}: rolled back to snapshot ${spec}@${snap}`);
  return EXIT.OK;
}

/**
 * A new image cloned from a snapshot, and a new volume in the config serving it. The clone
 * must not keep its parent's identity (librbd copies image metadata into a clone): two LUs
 * with one NAA would look like one disk to multipath, so the key is removed and the daemon
 * derives a new identity from the clone's own image id.
 */
export async function clone(ctx: CliContext, name: string, snap: string, newName: string, o: Opts & { rbd?: string }): Promise<number> {
  if (!checkSnapName(ctx, snap)) return EXIT.FAILURE;
  if (o.rbd === undefined) {
    err(ctx, 'error: give the new image with --rbd POOL/IMAGE');
    return EXIT.FAILURE;
  }
  const spec = parseRbdSpec(o.rbd.trim());
  if ('error' in spec) {
    err(ctx, `error: --rbd: ${spec.error}`);
    return EXIT.FAILURE;
  }
  const vol = rbdVolume(ctx, name, o, 'clone');
  if (!vol) return EXIT.FAILURE;
  const cur = readConfig(editTarget(ctx, o));
  if ('config' in cur && cur.config.volumes.has(newName)) {
    err(ctx, `error: volume ${newName} already exists; nothing was changed`);
    return EXIT.FAILURE;
  }
  const from = `${vol.rbd!.pool}/${vol.rbd!.image}@${snap}`;
  const done = await withImage(ctx, vol, async (img) => {
    await img.clone(snap, spec.pool, spec.image);
    const c = await RbdBackstore.open({ pool: spec.pool, image: spec.image, conf: vol.ceph?.conf, user: vol.ceph?.user });
    try {
      await c.removeMetadata(IDENTITY_METADATA_KEY);
    } finally {
      await c.close();
    }
    return true;
  });
  if (!done) return EXIT.FAILURE;
  const top = 'config' in cur ? cur.config.ceph : undefined;
  const ownCeph = vol.ceph && (vol.ceph.conf !== top?.conf || vol.ceph.user !== top?.user) ? vol.ceph : undefined;
  const r = await proposeChange(ctx, o, `volume ${newName} created (RBD image ${spec.pool}/${spec.image}, a clone of ${from})`, (doc) =>
    addVolume(doc, newName, { rbd: `${spec.pool}/${spec.image}`, ceph: ownCeph, blockSize: vol.blockSize }),
  );
  return r.code;
}

export function registerSnapshotCommands(
  volume: Command,
  cmd: (c: Command) => Command,
  ctx: CliContext,
  setExit: (code: number) => void,
): void {
  cmd(volume.command('snapshot <name> <snap>').description("snapshot an RBD volume's image (crash-consistent, while it serves)"))
    .addHelpText('after', '\nExample:\n  $ iscsi-target volume snapshot db before-upgrade')
    .action(async (name: string, snap: string, o: Opts) => setExit(await snapshot(ctx, name, snap, o)));
  cmd(volume.command('rollback <name> <snap>').description('roll an RBD volume back to a snapshot (refused while a gateway serves it)'))
    .addHelpText('after', '\nExample:\n  $ iscsi-target volume rollback db before-upgrade')
    .action(async (name: string, snap: string, o: Opts) => setExit(await rollback(ctx, name, snap, o)));
  cmd(volume.command('clone <name> <snap> <new>').description("a new volume on a clone of an RBD volume's snapshot"))
    .requiredOption('--rbd <pool/image>', 'the new image')
    .addHelpText('after', '\nExample:\n  $ iscsi-target volume clone golden v1 vm7 --rbd rbd/vm7')
    .action(async (name: string, snap: string, newName: string, o: Opts & { rbd?: string }) =>
      setExit(await clone(ctx, name, snap, newName, o)),
    );
}
