// Replace a file so that readers (and a crash) see either the old or the new content:
// write a temporary file beside it, fsync it, rename it over the original, fsync the folder.
// The original's owner, group and mode are kept (configs with CHAP secrets are 0600, and a
// root shell editing the service user's file must not make it root's); a new file gets 0600.
// A symlinked file is replaced where it really lives, so the link stays a link.
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface PreparedWrite {
  /** Rename the prepared file into place (and fsync the folder). */
  commit(): Promise<void>;
  /** Remove the prepared file. */
  abort(): Promise<void>;
}

/** Write and fsync `<file>.<pid>.tmp`; nothing visible changes until commit(). */
export async function prepareAtomicWrite(file: string, text: string): Promise<PreparedWrite> {
  let abs = path.resolve(file);
  let mode = 0o600;
  let owner: { uid: number; gid: number } | undefined;
  try {
    abs = await fs.promises.realpath(abs);
    const st = await fs.promises.stat(abs);
    mode = st.mode & 0o7777;
    owner = { uid: st.uid, gid: st.gid };
  } catch {
    /* a new file */
  }
  const tmp = `${abs}.${process.pid}.${Date.now()}.tmp`;
  const fh = await fs.promises.open(tmp, 'wx', mode);
  try {
    await fh.writeFile(text, 'utf8');
    if (owner) {
      const mine = await fh.stat();
      if (mine.uid !== owner.uid || mine.gid !== owner.gid) {
        try {
          await fh.chown(owner.uid, owner.gid);
        } catch (e) {
          throw new Error(
            `cannot keep ${abs} owned by uid ${owner.uid} gid ${owner.gid} (${(e as NodeJS.ErrnoException).code ?? (e as Error).message}); ` +
              `nothing was written: edit it as root or as its owner`,
          );
        }
      }
    }
    await fh.chmod(mode); // the umask may have narrowed it (and chown clears set-id bits)
    await fh.sync();
  } catch (e) {
    await fh.close();
    await fs.promises.unlink(tmp).catch(() => undefined);
    throw e;
  }
  await fh.close();
  return {
    async commit() {
      await fs.promises.rename(tmp, abs);
      const dir = await fs.promises.open(path.dirname(abs), 'r');
      try {
        await dir.sync();
      } catch {
        /* some filesystems cannot fsync a folder */
      } finally {
        await dir.close();
      }
    },
    async abort() {
      await fs.promises.unlink(tmp).catch(() => undefined);
    },
  };
}

export async function writeFileAtomic(file: string, text: string): Promise<void> {
  await (await prepareAtomicWrite(file, text)).commit();
}
