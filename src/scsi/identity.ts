// A volume's identity as hosts see it: the unit serial number (VPD 0x80) and the NAA
// designator (VPD 0x83), which Linux turns into /dev/disk/by-id/wwn-0x... and dm-multipath
// into the WWID that decides which paths lead to one disk.
//
// Two different disks must never share it, so a volume gets a random one when it is
// created (100 random bits in the NAA), kept beside the volume file in
// `<file>.identity.json` so that it survives restarts, renames of the volume and config
// edits. The config may set `serial` and `wwn` (taking over a volume from another target);
// they win, and are written to that file too. Volumes from before identity files keep the
// name-derived identity their hosts already know (deriveIdentifiers), pinned into the file
// at their first start. Block devices have no place beside them: their identity is the
// config's (`volume create` writes one there), else the name-derived one. Memory volumes
// get a new one each start unless the config sets it.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Logger } from 'pino';
import { writeFileAtomic } from '../admin/atomic-write';
import {
  formatWwn,
  identityFile,
  identityFileText,
  parseWwn,
  randomIdentity,
  seededIdentity,
  serialProblem,
  type VolumeIdentity,
} from '../config/identity';
import { deriveIdentifiers } from './logical-unit';
import type { Backstore } from '../backstore/backstore';

export { formatWwn, identityFile, parseWwn, randomIdentity, serialProblem, type VolumeIdentity };

/** Where an identity came from, for the log and `status`. */
export type IdentityOrigin = 'generated' | 'name-derived' | 'config' | 'identity file';

/** The identity of volumes from before identity files: a hash of the name alone. */
export function nameDerivedIdentity(name: string): VolumeIdentity {
  return deriveIdentifiers(name);
}

/** What the resolution needs of a volume's config (config/model VolumeConfig fits). */
export interface IdentitySource {
  name: string;
  path?: string;
  memory: boolean;
  serial?: string;
  /** Normalized "naa.<hex>" (config/load checks it with parseWwn). */
  wwn?: string;
}

export interface ResolvedIdentity extends VolumeIdentity {
  origin: IdentityOrigin;
  /** The identity file kept beside the volume file (file volumes only). */
  file?: string;
}

interface StoredIdentity {
  serial: string;
  wwn: string;
  origin: IdentityOrigin;
}

function readStored(file: string): (VolumeIdentity & { origin: IdentityOrigin }) | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`cannot read its identity file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  // Never replace it silently: hosts know the volume by what it held.
  return parseStored(
    text,
    `its identity file ${file} is damaged (it needs "serial" and "wwn"); restore it, or set serial and wwn in the config`,
  );
}

/** A stored identity (file or image metadata) as JSON, or `damaged` thrown. */
function parseStored(text: string, damaged: string): VolumeIdentity & { origin: IdentityOrigin } {
  let data: Partial<StoredIdentity> = {};
  try {
    data = JSON.parse(text) as Partial<StoredIdentity>;
  } catch {
    // reported below
  }
  const naa = typeof data.wwn === 'string' ? parseWwn(data.wwn) : { error: 'no wwn' };
  if (typeof data.serial !== 'string' || serialProblem(data.serial) || !Buffer.isBuffer(naa)) throw new Error(damaged);
  return { serial: data.serial, naa, origin: data.origin ?? 'identity file' };
}

/**
 * The identity a volume is exported with; call before the volume file is opened (a file
 * that does not exist yet is a new volume). Writes the identity file when it is missing or
 * the config changed the identity. `taken` answers which open volume already has an NAA or
 * serial, so that a copied volume (file and identity file) is refused, not exported twice.
 */
export async function resolveVolumeIdentity(
  vol: IdentitySource,
  baseDir: string,
  opts: { logger?: Logger; taken?: (id: VolumeIdentity) => string | undefined } = {},
): Promise<ResolvedIdentity> {
  const log = opts.logger;
  const configured = {
    serial: vol.serial,
    naa: vol.wwn !== undefined ? asBuffer(parseWwn(vol.wwn), vol.name) : undefined,
  };
  const resolved = await resolve();
  const other = opts.taken?.(resolved);
  if (other !== undefined) {
    throw new Error(
      `volume ${vol.name}: its identity (serial ${resolved.serial}, wwn ${formatWwn(resolved.naa)}) is already volume ${other}'s` +
        `${resolved.file ? ` (was ${resolved.file} copied with the volume file?)` : ''}; ` +
        'two volumes with one identity look like one disk to multipath: give this one its own serial and wwn in the config',
    );
  }
  return resolved;

  async function resolve(): Promise<ResolvedIdentity> {
    if (vol.memory || vol.path === undefined) {
      const r = randomIdentity();
      const origin: IdentityOrigin = configured.serial !== undefined && configured.naa !== undefined ? 'config' : 'generated';
      return { serial: configured.serial ?? r.serial, naa: configured.naa ?? r.naa, origin };
    }
    const abs = path.resolve(baseDir, vol.path);
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(abs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') throw new Error(`volume ${vol.name}: cannot use ${abs}: ${code ?? (err as Error).message}`);
    }
    if (st !== undefined && !st.isFile()) {
      // A block device: nothing can be kept beside it.
      const d = nameDerivedIdentity(vol.name);
      if (configured.serial === undefined || configured.naa === undefined) {
        log?.warn(
          { volume: vol.name, path: abs },
          `volume ${vol.name}: a block device without serial and wwn in the config gets an identity derived from its name, ` +
            'which a volume of the same name on another target would share; set both (iscsi-target volume set ' +
            `${vol.name} --new-identity)`,
        );
      }
      const origin: IdentityOrigin = configured.serial !== undefined || configured.naa !== undefined ? 'config' : 'name-derived';
      return { serial: configured.serial ?? d.serial, naa: configured.naa ?? d.naa, origin };
    }
    const file = identityFile(abs);
    const stored = readStored(file);
    let base: VolumeIdentity & { origin: IdentityOrigin };
    if (stored) base = stored;
    else if (st === undefined) base = { ...randomIdentity(), origin: 'generated' };
    else base = { ...nameDerivedIdentity(vol.name), origin: 'name-derived' };
    const { serial, naa, origin, fromConfig } = withConfigured(base, configured);
    if (stored && !fromConfig) return { serial, naa, origin, file };
    try {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      await writeFileAtomic(file, identityFileText({ serial, naa }, origin));
    } catch (err) {
      const why = `${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
      // A new volume must not start with an identity it cannot keep: the next start would
      // give it another one.
      if (st === undefined) throw new Error(`volume ${vol.name}: cannot write its identity file ${file}: ${why}`);
      log?.warn(
        { volume: vol.name, file },
        `volume ${vol.name}: cannot write its identity file ${file} (${why}); it keeps serial ${serial}, wwn ${formatWwn(naa)} while its name and config stay`,
      );
      return { serial, naa, origin, file };
    }
    const what =
      origin === 'generated'
        ? 'new volume: generated its identity'
        : origin === 'name-derived'
          ? 'kept the name-derived identity its hosts know and saved it'
          : 'took the identity the config sets and saved it';
    log?.info({ volume: vol.name, serial, wwn: formatWwn(naa), file }, `volume ${vol.name}: ${what} in ${path.basename(file)}`);
    return { serial, naa, origin, file };
  }
}

/** The stored (or new) identity with the config's serial and wwn over it; `fromConfig` when they change it. */
function withConfigured(
  base: VolumeIdentity & { origin: IdentityOrigin },
  configured: { serial?: string; naa?: Buffer },
): VolumeIdentity & { origin: IdentityOrigin; fromConfig: boolean } {
  const serial = configured.serial ?? base.serial;
  const naa = configured.naa ?? base.naa;
  const fromConfig =
    (configured.serial !== undefined && configured.serial !== base.serial) ||
    (configured.naa !== undefined && !configured.naa.equals(base.naa));
  return { serial, naa, origin: fromConfig ? 'config' : base.origin, fromConfig };
}

function asBuffer(r: Buffer | { error: string }, name: string): Buffer {
  if (Buffer.isBuffer(r)) return r;
  throw new Error(`volume ${name}: wwn ${r.error}`);
}

/** The image metadata key of an RBD volume's identity (the same on every gateway). */
export const IDENTITY_METADATA_KEY = 'iscsi-target.identity';

/**
 * The identity of a volume whose store keeps metadata with the data (an RBD image): read
 * from the key IDENTITY_METADATA_KEY, generated and stored there on first use, so that
 * every gateway serving the image shows the same serial and NAA. The config's serial and
 * wwn win and are stored too. Call once the store is open.
 */
export async function resolveStoredIdentity(
  vol: IdentitySource,
  store: {
    path: string;
    getMetadata(key: string): Promise<string | undefined>;
    setMetadata(key: string, value: string): Promise<void>;
    uniqueId?(): string;
  },
  opts: { logger?: Logger; taken?: (id: VolumeIdentity) => string | undefined } = {},
): Promise<ResolvedIdentity> {
  const where = `${store.path} metadata ${IDENTITY_METADATA_KEY}`;
  const text = await store.getMetadata(IDENTITY_METADATA_KEY);
  const stored =
    text === undefined
      ? undefined
      : parseStored(
          text,
          `volume ${vol.name}: its identity in ${where} is damaged (it needs "serial" and "wwn"); repair it, or set serial and wwn in the config`,
        );
  const configured = {
    serial: vol.serial,
    naa: vol.wwn !== undefined ? asBuffer(parseWwn(vol.wwn), vol.name) : undefined,
  };
  // Derived from the image's own unique name, not random: two gateways opening a new image
  // at once would otherwise race to store different identities.
  const fresh = store.uniqueId ? seededIdentity(store.uniqueId()) : randomIdentity();
  const base = stored ?? { ...fresh, origin: 'generated' as IdentityOrigin };
  const { serial, naa, origin, fromConfig } = withConfigured(base, configured);
  const resolved: ResolvedIdentity = { serial, naa, origin };
  const other = opts.taken?.(resolved);
  if (other !== undefined) {
    throw new Error(
      `volume ${vol.name}: its identity (serial ${serial}, wwn ${formatWwn(naa)}) is already volume ${other}'s; ` +
        'two volumes with one identity look like one disk to multipath: give this one its own serial and wwn in the config',
    );
  }
  if (stored && !fromConfig) return resolved;
  await store.setMetadata(IDENTITY_METADATA_KEY, JSON.stringify({ serial, wwn: formatWwn(naa), origin }));
  opts.logger?.info(
    { volume: vol.name, serial, wwn: formatWwn(naa) },
    `volume ${vol.name}: ${origin === 'generated' ? 'generated its identity' : 'took the identity the config sets'} and stored it in ${where}`,
  );
  return resolved;
}

/**
 * Open a volume's store and resolve its identity, in the order the kind of store needs: a
 * file volume's identity first (a file that does not exist yet is a new volume), a store
 * that keeps metadata with its data (RBD) once it is open. The store is closed again when
 * its identity cannot be resolved.
 */
export async function openWithIdentity(
  vol: IdentitySource,
  open: () => Promise<Backstore>,
  baseDir: string,
  opts: { logger?: Logger; taken?: (id: VolumeIdentity) => string | undefined },
): Promise<{ id: ResolvedIdentity; store: Backstore }> {
  if (vol.path !== undefined || vol.memory) {
    const id = await resolveVolumeIdentity(vol, baseDir, opts);
    return { id, store: await open() };
  }
  const store = await open();
  try {
    if (!store.getMetadata || !store.setMetadata) throw new Error(`volume ${vol.name}: ${store.path} keeps no metadata for its identity`);
    const meta = {
      path: store.path,
      getMetadata: (key: string) => store.getMetadata!(key),
      setMetadata: (key: string, value: string) => store.setMetadata!(key, value),
      uniqueId: store.uniqueId && (() => store.uniqueId!()),
    };
    const id = await resolveStoredIdentity(vol, meta, opts);
    return { id, store };
  } catch (err) {
    await store.close().catch(() => undefined);
    throw err;
  }
}
