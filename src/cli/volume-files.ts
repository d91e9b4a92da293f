// The files `volume create` and `volume import` make: new files only (never an existing one
// unless adopted), given to the config's owner when root makes them, filled thick or from an
// image with a progress bar.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { nativeFs } from '../backstore/native';
import { identityFile, identityFileText, randomIdentity } from '../config/identity';
import type { CliContext } from './context';
import { progressBar } from './progress';

const CHUNK = 4 * 1024 * 1024;

/**
 * Create a new volume file: O_CREAT | O_EXCL | O_NOFOLLOW, mode 0600. An existing file, block
 * device or symlink (even a dangling one) is never opened: adopting one is `--adopt`. Missing
 * parent folders are made. When root creates it for a config someone else owns (the service
 * user of a packaged daemon), the new file and folders are given to that owner, so the daemon
 * can open them and keep its reservation and key files beside them.
 */
export function createNewVolumeFile(abs: string, configFile: string): number {
  const made: string[] = [];
  for (let d = path.dirname(abs); !fs.existsSync(d); d = path.dirname(d)) made.unshift(d);
  fs.mkdirSync(path.dirname(abs), { recursive: true, mode: 0o750 });
  const fd = fs.openSync(abs, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o600);
  try {
    const owner = ownerToGive(fs.statSync(configFile));
    if (owner) {
      for (const d of made) fs.chownSync(d, owner.uid, owner.gid);
      fs.fchownSync(fd, owner.uid, owner.gid);
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      fs.closeSync(fd);
      fs.rmSync(abs, { force: true });
      throw e;
    }
  }
  return fd;
}

/**
 * The identity file of a volume file this command just created: a new random identity (a
 * leftover from a volume once at that path is replaced, never inherited), owned like the
 * volume file.
 */
export function writeNewIdentityFile(abs: string): void {
  const file = identityFile(abs);
  fs.rmSync(file, { force: true });
  fs.writeFileSync(file, identityFileText(randomIdentity(), 'generated'), { mode: 0o600, flag: 'wx' });
  const owner = ownerToGive(fs.statSync(abs));
  if (owner) fs.chownSync(file, owner.uid, owner.gid);
}

/** Whom files root creates for `ref` (the config, or a volume file) go to: its owner, unless root. */
export function ownerToGive(ref: fs.Stats): { uid: number; gid: number } | null {
  return process.getuid?.() === 0 && (ref.uid !== 0 || ref.gid !== 0) ? { uid: ref.uid, gid: ref.gid } : null;
}

export function newFileError(abs: string, e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === 'EEXIST') {
    return `${abs} exists already; volume create makes a new file only (to export an existing file or block device as it is, add --adopt)`;
  }
  return `cannot create ${abs}: ${code ?? (e as Error).message}`;
}

/** Allocate every block of a new file (fallocate, else zeros), with a progress bar. */
export async function allocateThick(ctx: CliContext, fd: number, size: number, showProgress: boolean): Promise<void> {
  const bar = progressBar(ctx, 'allocating', size, showProgress);
  try {
    const native = nativeFs();
    let useZeros = !native;
    const zeros = Buffer.alloc(CHUNK);
    const step = 64 * 1024 * 1024;
    for (let off = 0; off < size;) {
      const n = Math.min(useZeros ? CHUNK : step, size - off);
      if (!useZeros) {
        try {
          await native!.fallocate(fd, 0, off, n);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code !== 'EOPNOTSUPP') throw e;
          useZeros = true;
          continue;
        }
      } else {
        await new Promise<void>((res, rej) => fs.write(fd, zeros, 0, n, off, (e) => (e ? rej(e) : res())));
      }
      off += n;
      bar.update(off);
    }
    fs.ftruncateSync(fd, size);
    fs.fdatasyncSync(fd);
  } finally {
    bar.stop();
  }
}

/** Copy a raw image into a volume file from offset 0; all-zero chunks are skipped (kept sparse) when `sparse`. */
export async function copyImage(ctx: CliContext, image: string, dest: string, sparse: boolean, showProgress: boolean): Promise<number> {
  const size = fs.statSync(image).size;
  const src = fs.openSync(image, 'r');
  const dst = fs.openSync(dest, 'r+');
  const bar = progressBar(ctx, 'importing', size, showProgress);
  const buf = Buffer.allocUnsafe(CHUNK);
  const zero = Buffer.alloc(CHUNK);
  try {
    for (let off = 0; off < size;) {
      const n = await new Promise<number>((res, rej) =>
        fs.read(src, buf, 0, Math.min(CHUNK, size - off), off, (e, r) => (e ? rej(e) : res(r))),
      );
      if (n === 0) break;
      const chunk = buf.subarray(0, n);
      if (!(sparse && chunk.equals(zero.subarray(0, n)))) {
        await new Promise<void>((res, rej) => fs.write(dst, chunk, 0, n, off, (e) => (e ? rej(e) : res())));
      }
      off += n;
      bar.update(off);
    }
    fs.fdatasyncSync(dst);
  } finally {
    bar.stop();
    fs.closeSync(src);
    fs.closeSync(dst);
  }
  return size;
}
