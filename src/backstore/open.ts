// VolumeConfig -> Backstore: memory, regular file, block device or Ceph RBD image.

import * as path from 'node:path';
import type { Logger } from 'pino';
import type { VolumeConfig } from '../config/model';
import type { Backstore } from './backstore';
import { createKeyFile, defaultKeyFile, EncryptedBackstore, newKey, readKeyFile } from './encrypted';
import { FileBackstore } from './file';
import { MemoryBackstore } from './memory';
import { RbdBackstore } from './rbd';
import { applyLockPolicy } from './rbd-lock';

export interface OpenBackstoreOptions {
  /** Where to report what opening did ("created sparse file ...", "extended ..."). */
  logger?: Logger;
  /** This gateway's ALUA group: the owner of an RBD volume (`owner:`) takes its exclusive lock. */
  gatewayGroup?: number;
}

/**
 * Open the store behind a volume. Relative paths resolve against `baseDir` (the config
 * file's folder, or the working directory for the built-in default). Rejects with an
 * Error naming the volume and path when the store cannot be used as configured.
 */
export async function openBackstore(vol: VolumeConfig, baseDir: string, opts: OpenBackstoreOptions = {}): Promise<Backstore> {
  const bs = vol.blockSize ?? 512;
  if (bs !== 512 && bs !== 4096) {
    throw new Error(`volume ${vol.name}: block size must be 512 or 4096 (got ${String(bs)})`);
  }
  if (vol.memory) {
    if (vol.size === undefined) throw new Error(`volume ${vol.name}: a memory volume needs a size`);
    if (vol.size % bs !== 0) {
      throw new Error(`volume ${vol.name}: size ${vol.size} is not a multiple of the ${bs}-byte block size`);
    }
    const mem = new MemoryBackstore(vol.size, { readonly: vol.readonly, path: `memory:${vol.name}` });
    // A memory volume's key lives (and dies) with it.
    return vol.encryption ? new EncryptedBackstore(mem, { blockSize: bs, key: newKey() }) : mem;
  }
  if (vol.rbd) return openRbd(vol, bs, opts);
  if (!vol.path) throw new Error(`volume ${vol.name}: no path configured (and not a memory volume)`);
  const abs = path.resolve(baseDir, vol.path);
  let store: FileBackstore;
  try {
    store = await FileBackstore.open({ path: abs, size: vol.size, blockSize: bs, readonly: vol.readonly });
  } catch (err) {
    if (err instanceof Error) {
      err.message = `volume ${vol.name}: ${err.message}`;
      throw err;
    }
    throw new Error(`volume ${vol.name}: ${String(err)}`);
  }
  for (const note of store.notes) opts.logger?.info({ volume: vol.name, path: abs }, note);
  if (!vol.encryption) return store;
  try {
    return await encrypt(vol, store, bs, opts);
  } catch (err) {
    await store.close().catch(() => undefined);
    const e = err instanceof Error ? err : new Error(String(err));
    e.message = `volume ${vol.name}: ${e.message}`;
    throw e;
  }
}

async function openRbd(vol: VolumeConfig, bs: number, opts: OpenBackstoreOptions): Promise<Backstore> {
  const { pool, image } = vol.rbd!;
  if (vol.encryption) throw new Error(`volume ${vol.name}: encryption is not supported on RBD volumes yet`);
  if (vol.size !== undefined && vol.size % bs !== 0) {
    throw new Error(`volume ${vol.name}: size ${vol.size} is not a multiple of the ${bs}-byte block size`);
  }
  let store: RbdBackstore;
  try {
    store = await RbdBackstore.open({ pool, image, conf: vol.ceph?.conf, user: vol.ceph?.user, size: vol.size, readonly: vol.readonly });
  } catch (err) {
    const e = err instanceof Error ? err : new Error(String(err));
    e.message = `volume ${vol.name}: ${e.message}`;
    throw e;
  }
  if (store.size % bs !== 0) {
    await store.close().catch(() => undefined);
    throw new Error(`volume ${vol.name}: RBD image ${pool}/${image} is ${store.size} bytes, not a multiple of the ${bs}-byte block size`);
  }
  for (const note of store.notes) opts.logger?.info({ volume: vol.name, path: store.path }, note);
  try {
    await applyLockPolicy(store, { volume: vol.name, owner: vol.owner, group: opts.gatewayGroup, logger: opts.logger });
  } catch (err) {
    await store.close().catch(() => undefined);
    const e = err instanceof Error ? err : new Error(String(err));
    e.message = `volume ${vol.name}: taking the RBD exclusive lock: ${e.message}`;
    throw e;
  }
  return store;
}

/**
 * Wrap a file or device store in encryption. The key file is read, or created (0600) when
 * the volume holds no data yet: a new file, or one with nothing allocated. A volume with data
 * and no key file is refused, since its blocks would read as noise.
 */
async function encrypt(vol: VolumeConfig, store: FileBackstore, bs: number, opts: OpenBackstoreOptions): Promise<Backstore> {
  let keyFile = vol.encryption?.keyFile;
  if (keyFile === undefined) {
    if (store.kind === 'block') throw new Error('an encrypted block device needs encryption.keyFile (a key cannot live under /dev)');
    keyFile = defaultKeyFile(store.path);
  }
  let key: Buffer;
  try {
    const r = await readKeyFile(keyFile);
    key = r.key;
    if (r.warning) opts.logger?.warn({ volume: vol.name, keyFile }, r.warning);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    if (store.readonly) throw new Error(`key file ${keyFile} does not exist (a read-only volume never gets a new key)`);
    if (!store.created && !(await isEmpty(store))) {
      throw new Error(
        `key file ${keyFile} does not exist, but the volume holds data: refusing to open it encrypted ` +
          `(restore the key file, or remove encryption from the volume)`,
      );
    }
    key = await createKeyFile(keyFile);
    opts.logger?.info({ volume: vol.name, keyFile }, 'created encryption key file (mode 0600)');
  }
  return new EncryptedBackstore(store, { blockSize: bs, key, keyFile });
}

/** Nothing allocated (a sparse file never written, or fully unmapped). */
async function isEmpty(store: Backstore): Promise<boolean> {
  if (!store.mapStatus || store.size === 0) return store.size === 0;
  const s = await store.mapStatus(0, store.size);
  return !s.mapped && s.length >= store.size;
}
