// `volume create --rbd POOL/IMAGE`: an RBD volume in the config.
import { addVolume } from '../admin/config-edit';
import { parseRbdSpec } from '../config/rbd';
import { proposeChange, readConfig } from './change';
import { EXIT, err, type CliContext } from './context';
import { identityOptions, type CreateOpts } from './volume';

/**
 * An RBD volume: only the config changes here; the daemon creates the image (when it is
 * missing and --size is given) and stores its identity in the image's metadata, which every
 * gateway serving it then shares.
 */
export async function createRbd(
  ctx: CliContext,
  name: string,
  o: CreateOpts,
  file: string,
  size: number | undefined,
  blockSize: number,
  phys: number | undefined,
): Promise<number> {
  const spec = parseRbdSpec(o.rbd!.trim());
  if ('error' in spec) {
    err(ctx, `error: --rbd: ${spec.error}`);
    return EXIT.FAILURE;
  }
  if (o.path || o.memory || o.thick || o.adopt || o.encrypt || o.keyFile !== undefined) {
    err(ctx, 'error: an RBD volume takes none of --path, --memory, --thick, --adopt, --encrypt, --key-file');
    return EXIT.FAILURE;
  }
  if (size !== undefined && size % blockSize !== 0) {
    err(ctx, `error: --size ${o.size} is not a multiple of the block size ${blockSize}`);
    return EXIT.FAILURE;
  }
  const identity = identityOptions(ctx, o);
  if (!identity) return EXIT.FAILURE;
  const cur = readConfig(file);
  if ('config' in cur && cur.config.volumes.has(name)) {
    err(ctx, `error: volume ${name} already exists; nothing was changed`);
    return EXIT.FAILURE;
  }
  const ceph = o.cephConf !== undefined || o.cephUser !== undefined ? { conf: o.cephConf, user: o.cephUser } : undefined;
  const r = await proposeChange(ctx, o, `volume ${name} created (RBD image ${spec.pool}/${spec.image})`, (doc) =>
    addVolume(doc, name, {
      rbd: `${spec.pool}/${spec.image}`,
      ceph,
      size: o.size,
      blockSize: blockSize as 512 | 4096,
      physicalBlockSize: phys as 512 | 4096 | undefined,
      readonly: o.readonly,
      shared: o.shared,
      ...identity,
    }),
  );
  return r.code;
}
