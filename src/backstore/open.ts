// VolumeConfig -> Backstore: memory, regular file or block device.

import * as path from 'node:path';
import type { Logger } from 'pino';
import type { VolumeConfig } from '../config/model';
import type { Backstore } from './backstore';
import { FileBackstore } from './file';
import { MemoryBackstore } from './memory';

export interface OpenBackstoreOptions {
  /** Where to report what opening did ("created sparse file ...", "extended ..."). */
  logger?: Logger;
}

/**
 * Open the store behind a volume. Relative paths resolve against `baseDir` (the config
 * file's folder, or the working directory for the built-in default). Rejects with an
 * Error naming the volume and path when the store cannot be used as configured.
 */
export async function openBackstore(
  vol: VolumeConfig,
  baseDir: string,
  opts: OpenBackstoreOptions = {},
): Promise<Backstore> {
  const bs = vol.blockSize ?? 512;
  if (bs !== 512 && bs !== 4096) {
    throw new Error(`volume ${vol.name}: block size must be 512 or 4096 (got ${String(bs)})`);
  }
  if (vol.memory) {
    if (vol.size === undefined) throw new Error(`volume ${vol.name}: a memory volume needs a size`);
    if (vol.size % bs !== 0) {
      throw new Error(`volume ${vol.name}: size ${vol.size} is not a multiple of the ${bs}-byte block size`);
    }
    return new MemoryBackstore(vol.size, { readonly: vol.readonly, path: `memory:${vol.name}` });
  }
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
  return store;
}
