// `iscsi-target volume create|resize|delete|list|import`.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Option, type Command } from 'commander';
import { addVolume, removeVolume, setVolumeFields, setVolumeSize, volumePathText } from '../admin/config-edit';
import { volumeUsers } from '../acl/access';
import { formatSize, tryParseSize } from '../config/size';
import type { Config } from '../config/model';
import { formatWwn, identityFile, identityText, parseWwn, randomIdentity, serialProblem } from '../config/identity';
import { createRbd } from './volume-rbd';
import { registerSnapshotCommands } from './volume-snapshot';
import { allocateThick, copyImage, createNewVolumeFile, newFileError, writeNewIdentityFile } from './volume-files';
import { list } from './volume-list';
import { editTarget, proposeChange, readConfig } from './change';
import { EXIT, err, out, type CliContext } from './context';
import { addConfigOption, addJsonOption, type ConfigOptions, type JsonOptions } from './options';

type Opts = ConfigOptions & JsonOptions;

function parseSizeOption(ctx: CliContext, text: string | undefined, what = '--size'): number | undefined {
  if (text === undefined) return undefined;
  const r = tryParseSize(/^\d+$/.test(text) ? Number(text) : text);
  if (!r.ok) {
    err(ctx, `error: ${what}: ${r.error}`);
    return undefined;
  }
  return r.bytes;
}

function volumeFile(configFile: string, p: string): string {
  return path.resolve(path.dirname(configFile), p);
}

/** The service's state folder (systemd StateDirectory=, created by the .deb). */
export const SYSTEM_VOLUME_DIR = '/var/lib/iscsi-target/luns';

/**
 * Where a new volume's file goes: luns/NAME.img beside the config, but for a config under
 * /etc (the installed service's) the service's state folder: volumes do not belong in /etc.
 */
export function defaultVolumePath(configFile: string, name: string): string {
  return path.resolve(configFile).startsWith('/etc/') ? `${SYSTEM_VOLUME_DIR}/${name}.img` : `luns/${name}.img`;
}

interface IdentityOpts {
  serial?: string;
  wwn?: string;
  newIdentity?: boolean;
}

export interface CreateOpts extends Opts, IdentityOpts {
  size?: string;
  path?: string;
  blockSize?: string;
  physicalBlockSize?: string;
  thick?: boolean;
  memory?: boolean;
  readonly?: boolean;
  shared?: boolean;
  encrypt?: boolean;
  keyFile?: string;
  adopt?: boolean;
  progress?: boolean;
  rbd?: string;
  cephConf?: string;
  cephUser?: string;
}

/** --serial / --wwn / --new-identity as config values, or undefined after printing why not. */
export function identityOptions(ctx: CliContext, o: IdentityOpts): { serial?: string; wwn?: string } | undefined {
  if (o.newIdentity && (o.serial !== undefined || o.wwn !== undefined)) {
    err(ctx, 'error: --new-identity makes a serial and wwn; give it alone, or --serial and --wwn');
    return undefined;
  }
  if (o.newIdentity) {
    return identityText(randomIdentity());
  }
  const out: { serial?: string; wwn?: string } = {};
  if (o.serial !== undefined) {
    const problem = serialProblem(o.serial);
    if (problem) {
      err(ctx, `error: --serial: ${problem}`);
      return undefined;
    }
    out.serial = o.serial;
  }
  if (o.wwn !== undefined) {
    const naa = parseWwn(o.wwn);
    if (!Buffer.isBuffer(naa)) {
      err(ctx, `error: --wwn: ${naa.error}`);
      return undefined;
    }
    out.wwn = formatWwn(naa);
  }
  return out;
}

/**
 * A volume whose file exists before the daemon first opens it (--thick, an adopted image, a
 * block device) would get the name-derived identity of volumes from before identity files:
 * give it a random one in the config instead (unless its identity file already says).
 */
function needsConfiguredIdentity(abs: string | undefined): boolean {
  if (abs === undefined || fs.existsSync(identityFile(abs))) return false;
  return fs.existsSync(abs);
}

async function create(ctx: CliContext, name: string, o: CreateOpts): Promise<number> {
  const file = editTarget(ctx, o);
  const size = parseSizeOption(ctx, o.size);
  if (o.size !== undefined && size === undefined) return EXIT.FAILURE;
  const blockSize = o.blockSize === undefined ? 512 : Number(o.blockSize);
  if (blockSize !== 512 && blockSize !== 4096) {
    err(ctx, `error: --block-size must be 512 or 4096, not ${o.blockSize}`);
    return EXIT.FAILURE;
  }
  const phys = o.physicalBlockSize === undefined ? undefined : Number(o.physicalBlockSize);
  if (phys !== undefined && ((phys !== 512 && phys !== 4096) || phys < blockSize)) {
    err(ctx, `error: --physical-block-size must be 512 or 4096 and at least the block size (${blockSize}), not ${o.physicalBlockSize}`);
    return EXIT.FAILURE;
  }
  if (o.memory && (o.path || o.thick || o.adopt)) {
    err(ctx, 'error: a memory volume has no --path and cannot be --thick or --adopt');
    return EXIT.FAILURE;
  }
  if (o.rbd !== undefined) return createRbd(ctx, name, o, file, size, blockSize, phys);
  if (o.cephConf !== undefined || o.cephUser !== undefined) {
    err(ctx, 'error: --ceph-conf and --ceph-user are for RBD volumes (--rbd POOL/IMAGE)');
    return EXIT.FAILURE;
  }
  if (o.memory && o.keyFile !== undefined) {
    err(ctx, 'error: a memory volume keeps its key in memory; leave --key-file out');
    return EXIT.FAILURE;
  }
  const identity = identityOptions(ctx, o);
  if (!identity) return EXIT.FAILURE;
  if (o.adopt && (!o.path || o.thick)) {
    err(
      ctx,
      o.thick
        ? 'error: --adopt takes the file as it is; it cannot be --thick'
        : 'error: --adopt needs --path (the existing file or block device)',
    );
    return EXIT.FAILURE;
  }
  if (size === undefined && !o.adopt) {
    err(ctx, 'error: give the size with --size (e.g. --size 20GiB)');
    return EXIT.FAILURE;
  }
  const cur = readConfig(file);
  if ('config' in cur && cur.config.volumes.has(name)) {
    err(ctx, `error: volume ${name} already exists; nothing was changed`);
    return EXIT.FAILURE;
  }
  const rel = o.memory ? undefined : (o.path ?? defaultVolumePath(file, name));
  const abs = rel ? volumeFile(file, rel) : undefined;
  let created = false;
  if (abs && o.adopt) {
    // The admin names an existing file or device on purpose; still, the path itself must
    // be it, not a symlink that could be pointed elsewhere later.
    let st: fs.Stats;
    try {
      st = fs.lstatSync(abs);
    } catch (e) {
      err(ctx, `error: --adopt: cannot use ${abs}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
      return EXIT.FAILURE;
    }
    if (st.isSymbolicLink()) {
      err(ctx, `error: --adopt: ${abs} is a symbolic link; give the path it points to (${fs.realpathSync.native(abs)}) if that is the one`);
      return EXIT.FAILURE;
    }
    if (!st.isFile() && !st.isBlockDevice()) {
      err(ctx, `error: --adopt: ${abs} is neither a regular file nor a block device`);
      return EXIT.FAILURE;
    }
  } else if (abs && size !== undefined && size % blockSize === 0) {
    // (A size that is not whole blocks creates nothing: validation below says why.)
    let fd: number;
    try {
      fd = createNewVolumeFile(abs, file);
    } catch (e) {
      err(ctx, `error: volume ${name}: ${newFileError(abs, e)}; nothing was changed`);
      return EXIT.FAILURE;
    }
    created = true;
    try {
      if (o.thick) await allocateThick(ctx, fd, size, o.progress !== false && !o.json);
      else fs.ftruncateSync(fd, size); // sparse
      // A new volume gets a new identity, kept beside it (as the daemon does for a file it
      // creates itself), unless the admin gave one.
      if (identity.serial === undefined && identity.wwn === undefined) writeNewIdentityFile(abs);
    } catch (e) {
      fs.closeSync(fd);
      fs.rmSync(abs, { force: true });
      fs.rmSync(identityFile(abs), { force: true });
      throw e;
    }
    fs.closeSync(fd);
  }
  if (identity.serial === undefined && identity.wwn === undefined && needsConfiguredIdentity(abs)) {
    Object.assign(identity, identityText(randomIdentity()));
  }
  const encryption = o.encrypt || o.keyFile !== undefined ? { keyFile: o.keyFile } : undefined;
  const r = await proposeChange(ctx, o, `volume ${name} ${o.adopt ? `adopted (${abs})` : 'created'}`, (doc) =>
    addVolume(doc, name, {
      path: rel,
      size: o.size,
      blockSize: blockSize,
      physicalBlockSize: phys,
      memory: o.memory,
      readonly: o.readonly,
      shared: o.shared,
      encryption,
      ...identity,
    }),
  );
  if (r.code !== EXIT.OK && created) fs.rmSync(abs!, { force: true });
  return r.code;
}

async function resize(ctx: CliContext, name: string, o: Opts & { size?: string }): Promise<number> {
  const file = editTarget(ctx, o);
  const size = parseSizeOption(ctx, o.size);
  if (size === undefined) {
    if (o.size === undefined) err(ctx, 'error: give the new size with --size');
    return EXIT.FAILURE;
  }
  const cur = readConfig(file);
  if ('config' in cur) {
    const v = cur.config.volumes.get(name);
    const actual = v?.path && fs.existsSync(v.path) ? fs.statSync(v.path) : undefined;
    const now = actual?.isFile() ? actual.size : v?.size;
    if (now !== undefined && size < now) {
      err(ctx, `error: volume ${name} is ${formatSize(now)}; shrinking to ${formatSize(size)} would lose data (only growing is supported)`);
      return EXIT.FAILURE;
    }
  }
  return (await proposeChange(ctx, o, `volume ${name} resized to ${formatSize(size)}`, (doc) => setVolumeSize(doc, name, o.size!))).code;
}

async function remove(ctx: CliContext, name: string, o: Opts & { force?: boolean; purge?: boolean }): Promise<number> {
  const file = editTarget(ctx, o);
  let abs: string | undefined;
  const r = await proposeChange(ctx, o, `volume ${name} deleted`, (doc) => {
    const p = volumePathText(doc, name);
    abs = p ? volumeFile(file, p) : undefined;
    removeVolume(doc, name, { force: o.force });
  });
  if (r.code === EXIT.OK && o.purge && abs) {
    for (const f of [abs, `${abs}.pr.json`, identityFile(abs)]) fs.rmSync(f, { force: true });
    if (!o.json) out(ctx, `removed ${abs}`);
  } else if (r.code === EXIT.OK && abs && !o.json) {
    out(ctx, `the file ${abs} is kept (give --purge to delete it)`);
  }
  return r.code;
}

interface SetOpts extends Opts, IdentityOpts {
  readonly?: boolean;
  shared?: boolean;
  physicalBlockSize?: string;
}

async function set(ctx: CliContext, name: string, o: SetOpts): Promise<number> {
  const identity = identityOptions(ctx, o);
  if (!identity) return EXIT.FAILURE;
  const phys = o.physicalBlockSize === undefined ? undefined : Number(o.physicalBlockSize);
  if (phys !== undefined && phys !== 512 && phys !== 4096) {
    err(ctx, `error: --physical-block-size must be 512 or 4096, not ${o.physicalBlockSize}`);
    return EXIT.FAILURE;
  }
  const fields = { readonly: o.readonly, shared: o.shared, physicalBlockSize: phys, serial: identity.serial, wwn: identity.wwn };
  const changed = Object.entries(fields).filter(([, v]) => v !== undefined);
  if (changed.length === 0) {
    err(
      ctx,
      'error: nothing to set: give --readonly/--no-readonly, --shared/--no-shared, --physical-block-size, --serial, --wwn or --new-identity',
    );
    return EXIT.FAILURE;
  }
  const what = `volume ${name}: ${changed.map(([k, v]) => `${k}=${v}`).join(', ')}`;
  // false is the default of readonly and shared: the key goes rather than saying false.
  const edit = { ...fields, readonly: o.readonly === false ? null : o.readonly, shared: o.shared === false ? null : o.shared };
  return (await proposeChange(ctx, o, what, (doc) => setVolumeFields(doc, name, edit))).code;
}

async function importImage(
  ctx: CliContext,
  name: string,
  image: string,
  o: Opts & { size?: string; path?: string; force?: boolean; progress?: boolean },
): Promise<number> {
  const file = editTarget(ctx, o);
  let st: fs.Stats;
  try {
    st = fs.statSync(image);
    if (!st.isFile()) throw new Error('not a regular file');
  } catch (e) {
    err(ctx, `error: cannot import ${image}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    return EXIT.FAILURE;
  }
  const head = Buffer.alloc(4);
  const fd = fs.openSync(image, 'r');
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  if (head.toString('latin1') === 'QFI\xfb') {
    err(ctx, `error: ${image} is a qcow2 image; import takes raw images (convert first: qemu-img convert -O raw ${image} ${image}.raw)`);
    return EXIT.FAILURE;
  }
  const showProgress = o.progress !== false && !o.json;
  const cur = readConfig(file);
  const existing = 'config' in cur ? cur.config.volumes.get(name) : undefined;
  if (existing) {
    if (!existing.path) {
      err(ctx, `error: volume ${name} is a memory volume; import into file volumes only`);
      return EXIT.FAILURE;
    }
    const users = volumeUsers((cur as { config: Config }).config, name);
    if (users.length > 0 && !o.force) {
      err(
        ctx,
        `error: volume ${name} is mapped (${users.map((u) => `${u.target} LUN ${u.lun}`).join('; ')}); writing under a host corrupts what it sees. Unmap it first, or give --force`,
      );
      return EXIT.FAILURE;
    }
    const volBytes = fs.existsSync(existing.path) ? fs.statSync(existing.path).size : (existing.size ?? 0);
    if (st.size > volBytes) {
      err(
        ctx,
        `error: ${image} is ${formatSize(st.size)}, larger than volume ${name} (${formatSize(volBytes)}); grow it first with volume resize`,
      );
      return EXIT.FAILURE;
    }
    const t0 = Date.now();
    const n = await copyImage(ctx, image, existing.path, false, showProgress);
    report(ctx, o, name, n, Date.now() - t0);
    return EXIT.OK;
  }
  // A new volume holding the image: at least the image's size, rounded up to whole blocks.
  const requested = parseSizeOption(ctx, o.size);
  if (o.size !== undefined && requested === undefined) return EXIT.FAILURE;
  const bytes = Math.max(requested ?? 0, Math.ceil(st.size / 512) * 512);
  const rel = o.path ?? defaultVolumePath(file, name);
  const abs = volumeFile(file, rel);
  try {
    const fd = createNewVolumeFile(abs, file);
    fs.ftruncateSync(fd, bytes);
    fs.closeSync(fd);
  } catch (e) {
    err(ctx, `error: ${newFileError(abs, e)}`);
    return EXIT.FAILURE;
  }
  const t0 = Date.now();
  let n: number;
  try {
    n = await copyImage(ctx, image, abs, true, showProgress);
  } catch (e) {
    fs.rmSync(abs, { force: true });
    throw e;
  }
  const ms = Date.now() - t0;
  const sizeText = requested !== undefined && o.size ? o.size : String(bytes);
  // The file exists before the daemon sees it: its new identity goes into the config.
  const id = randomIdentity();
  const r = await proposeChange(ctx, o, `volume ${name} created from ${image}`, (doc) =>
    addVolume(doc, name, {
      path: rel,
      size: /^\d+$/.test(sizeText) ? formatSizeText(bytes) : sizeText,
      ...identityText(id),
    }),
  );
  if (r.code !== EXIT.OK) {
    fs.rmSync(abs, { force: true });
    return r.code;
  }
  report(ctx, o, name, n, ms);
  return EXIT.OK;
}

function formatSizeText(bytes: number): string {
  for (const [u, m] of [
    ['GiB', 1024 ** 3],
    ['MiB', 1024 ** 2],
    ['KiB', 1024],
  ] as const)
    if (bytes % m === 0) return `${bytes / m}${u}`;
  return String(bytes);
}

function report(ctx: CliContext, o: Opts, name: string, bytes: number, ms: number): void {
  const rate = ms > 0 ? `${formatSize(Math.round((bytes / ms) * 1000))}/s` : '';
  if (o.json) out(ctx, JSON.stringify({ ok: true, volume: name, importedBytes: bytes, ms }, null, 2));
  else out(ctx, `imported ${formatSize(bytes)} into ${name} in ${(ms / 1000).toFixed(1)} s ${rate}`);
}

export function registerVolume(program: Command, ctx: CliContext, setExit: (code: number) => void): void {
  const volume = program.command('volume').description('create, grow, delete, list and import volumes');
  const cmd = (c: Command) => addJsonOption(addConfigOption(c));
  const identityOpts = (c: Command) =>
    c
      .option('--serial <serial>', 'unit serial number hosts see (take over a volume from another target)')
      .option('--wwn <naa>', 'NAA designator hosts see, e.g. naa.6001405... (take over a volume from another target)')
      .option('--new-identity', 'a new random serial and wwn (e.g. for a copied volume)');
  identityOpts(
    cmd(
      volume
        .command('create <name>')
        .description('add a volume: a new sparse file (luns/NAME.img by default), or an existing file or device with --adopt'),
    ),
  )
    .option('--size <size>', 'size, e.g. 20GiB, 512MiB (with --adopt: grow the file to it)')
    .option('--path <path>', 'a new file (relative to the config file; default luns/NAME.img)')
    .option('--adopt', 'export the existing file or block device at --path as it is, instead of creating a new file')
    .addOption(new Option('--block-size <bytes>', 'logical block size').choices(['512', '4096']))
    .addOption(new Option('--physical-block-size <bytes>', 'physical block size (4096 on 512-byte blocks: 512e)').choices(['512', '4096']))
    .option('--readonly', 'writes get DATA PROTECT')
    .option('--shared', 'may be mapped to several hosts (cluster-aware filesystems only)')
    .option('--encrypt', 'encrypt at rest (AES-256-XTS); key file PATH.key unless --key-file')
    .option('--key-file <path>', 'key file of an encrypted volume (implies --encrypt)')
    .option('--thick', 'allocate every block now (progress bar on a terminal)')
    .option('--memory', 'a RAM-only volume (lost at exit)')
    .option('--rbd <pool/image>', 'a Ceph RBD image (created by the daemon when missing and --size is given)')
    .option('--ceph-conf <path>', "the RBD volume's ceph.conf (default: the config's ceph.conf, else /etc/ceph/ceph.conf)")
    .option('--ceph-user <name>', 'the cephx user of an RBD volume, without "client." (default admin)')
    .option('--no-progress', 'no progress bar')
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target volume create db-a --size 20GiB
  $ iscsi-target volume create db-b --size 50GiB --thick --encrypt
  $ iscsi-target volume create vm1 --path /dev/vdb
  $ iscsi-target volume create db --rbd rbd/db --size 20GiB
  $ iscsi-target volume create old --path /srv/old.img --serial 3f9c1e --wwn naa.6001405f3a8c2e4b9d7a61c0e5f2b3a4`,
    )
    .action(async (name: string, o: CreateOpts) => setExit(await create(ctx, name, o)));
  identityOpts(
    cmd(volume.command('set <name>').description("change a volume's options (a running daemon refuses changes to a volume in use)")),
  )
    .option('--readonly', 'writes get DATA PROTECT')
    .option('--no-readonly', 'writable again')
    .option('--shared', 'may be mapped to several hosts (cluster-aware filesystems only)')
    .option('--no-shared', 'one host only')
    .addOption(new Option('--physical-block-size <bytes>', 'physical block size').choices(['512', '4096']))
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target volume set golden --readonly
  $ iscsi-target volume set copy --new-identity`,
    )
    .action(async (name: string, o: SetOpts) => setExit(await set(ctx, name, o)));
  cmd(volume.command('resize <name>').description('grow a volume; hosts get CAPACITY DATA HAS CHANGED'))
    .requiredOption('--size <size>', 'new size (only growing)')
    .addHelpText(
      'after',
      `
Example:
  $ iscsi-target volume resize db-a --size 40GiB   # then on the host: iscsiadm -m session -R`,
    )
    .action(async (name: string, o: Opts & { size?: string }) => setExit(await resize(ctx, name, o)));
  cmd(volume.command('delete <name>').description('remove a volume (refused while mapped unless --force); the file stays unless --purge'))
    .option('--force', 'also remove its LUN mappings (ends the sessions that use it)')
    .option('--purge', 'delete the file too')
    .addHelpText(
      'after',
      `
Examples:
  $ iscsi-target volume delete scratch
  $ iscsi-target volume delete old --force --purge   # unmap it (ending its sessions) and delete the file`,
    )
    .action(async (name: string, o: Opts & { force?: boolean; purge?: boolean }) => setExit(await remove(ctx, name, o)));
  cmd(volume.command('list').description('volumes: size, allocated bytes, who maps them')).action(async (o: Opts) =>
    setExit(await list(ctx, o)),
  );
  registerSnapshotCommands(volume, cmd, ctx, setExit);
  cmd(
    volume
      .command('import <name> <image>')
      .description('copy a raw image into a volume (a new one sized to fit, or an existing unmapped one)'),
  )
    .option('--size <size>', 'size of a new volume (default: the image size)')
    .option('--path <path>', 'file for a new volume (default luns/NAME.img)')
    .option('--force', 'write into a mapped volume anyway')
    .addHelpText(
      'after',
      `
Example:
  $ qemu-img convert -O raw vm.qcow2 vm.raw && iscsi-target volume import vm1 vm.raw`,
    )
    .option('--no-progress', 'no progress bar')
    .action(async (name: string, image: string, o: Opts & { size?: string; path?: string; force?: boolean; progress?: boolean }) =>
      setExit(await importImage(ctx, name, image, o)),
    );
}
