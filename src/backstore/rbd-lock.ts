// One writer at a time on an RBD image shared by several gateways (librbd's exclusive lock).
//
// What librbd 16.2 does, measured on the test cluster (scripts/ceph-cluster.sh):
// - A gateway that holds the lock with an explicit rbd_lock_acquire (librbd's "standard"
//   policy) refuses every other client's lock request: a write through another gateway fails
//   with EROFS (after 5 s the first time, at once after that), and the holder's own writes
//   fail with EROFS too once it has released. So an explicit lock would make writes through
//   a non-owner fail, which SPC does not allow in active/non-optimized.
// - Without an explicit lock (librbd's "automatic" policy, the default) a write through B
//   asks the holder A to release; A finishes its writes in flight, releases, and B writes:
//   12 ms for the first write after a move, 2 ms for the next ones (4 KiB).
// - A holder killed with -9 never answers; B's write waits inside librbd until the OSD drops
//   A's watch (osd_client_watch_timeout, 30 s by default), then librbd breaks the lock,
//   blocklists A's client address (rbd_blocklist_on_break_lock, true by default; the entry
//   lasts mon_osd_blocklist_default_expire, 1 h) and writes: 28-30 s in all with the default,
//   0.5 s of it for the blocklist. librbd never breaks the lock of a client whose watch is
//   still there (managed_lock::BreakRequest checks the watchers first), so a live holder is
//   never blocklisted by a write, and a dead one always is before anyone else writes: its
//   writes still in the network can never land after the new holder's.
//
// Policy (hence): every gateway uses the automatic policy, so writes through any gateway
// succeed; the volume's owner (`owner:` = this gateway's group) takes the lock when it opens
// the image, which is also the failback when it comes back after a takeover. Without
// `owner:` the lock goes to whichever gateway writes, librbd's default. The lock is taken
// with a compare-and-write that cannot change data: the same bytes as compare and as data,
// so either the sector already held them (rewritten unchanged) or nothing is written; librbd
// takes the lock before the OSD compares. rbd_lock_acquire would switch the image to the
// standard policy for good (no way back in the C API), so it is not used.
//
// What this does not cover: a holder that is alive but whose event loop stalls with a
// write received and not yet handed to librbd could, after a cooperative release, take the
// lock back and land that write late; only a holder whose RADOS session is gone is fenced.
// The SCSI core bounds that instead: no write older than limits.writeAgeLimit is handed to
// librbd (scsi/write-age.ts).
import type { Logger } from 'pino';

/** What the lock policy needs from an opened image (RbdBackstore). */
export interface LockableImage {
  readonly path: string;
  readonly readonly: boolean;
  /** This RADOS client's address, as `rbd lock ls` and `ceph osd blocklist ls` print it. */
  readonly clientAddress: string;
  compareAndWrite(cmp: Buffer, data: Buffer, offset: number): Promise<{ mismatchOffset: number } | null>;
  isLockOwner(): Promise<boolean>;
  lockOwners(): Promise<string[]>;
}

// Not zeros: on an unallocated first object the compare fails and nothing is allocated.
const PROBE = Buffer.alloc(512, 'iscsi-target exclusive lock probe\n');

/**
 * Take the image's exclusive lock cooperatively (the holder, if alive, releases it after its
 * writes in flight; a dead one is broken and blocklisted by librbd). Returns whether this
 * client holds it afterwards (false: the image has no exclusive-lock feature).
 */
export async function takeLock(img: LockableImage): Promise<boolean> {
  await img.compareAndWrite(PROBE, PROBE, 0);
  return img.isLockOwner();
}

/** Whether this gateway (ALUA group `group`) owns a volume with `owner:` set so. */
export function ownsVolume(owner: number | undefined, group: number | undefined): boolean {
  return owner !== undefined && group !== undefined && owner === group;
}

/** At open: the owner takes the lock (failback included); every gateway logs its address. */
export async function applyLockPolicy(
  img: LockableImage,
  opts: { volume: string; owner?: number; group?: number; logger?: Logger },
): Promise<void> {
  const log = { volume: opts.volume, path: img.path, client: img.clientAddress };
  if (img.readonly || !ownsVolume(opts.owner, opts.group)) {
    const holders = await img.lockOwners();
    opts.logger?.info({ ...log, lockHolders: holders }, 'RBD exclusive lock left to the owner or to whichever gateway writes');
    return;
  }
  const t0 = Date.now();
  const held = await takeLock(img);
  if (held) opts.logger?.info({ ...log, ms: Date.now() - t0 }, `took the RBD exclusive lock as the volume's owner (gateway ${opts.group})`);
  else opts.logger?.warn(log, 'RBD image has no exclusive-lock feature: nothing keeps gateways from writing at once');
}
