// `volume snapshot NAME SNAP` and `volume rollback NAME SNAP`: RBD snapshots through librbd,
// from the CLI process itself (the image is in the cluster, not behind the daemon).
import type { Command } from 'commander';
import type { VolumeConfig } from '../config/model';
import { RbdBackstore } from '../backstore/rbd';
import { editTarget, readConfig, printIssues } from './change';
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
}
