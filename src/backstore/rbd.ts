// A Ceph RBD image as a volume (librbd through koffi, see rbd-native.ts). Every read, write,
// discard and flush is a librbd asynchronous call with a completion; nothing on the data
// path blocks the event loop. Several gateways may open one image: librbd's exclusive lock
// moves to whichever writes (slow when they alternate, correct either way); rbd-lock.ts
// says who takes it at open and what a takeover does.
import * as fs from 'node:fs';
import type { Backstore, ExtentStatus } from './backstore';
import { callAsync, rbdError, rbdLib, type RbdLib } from './rbd-native';

export { parseRbdSpec } from '../config/rbd';

export interface RbdOpenOptions {
  pool: string;
  image: string;
  /** ceph.conf to read (default /etc/ceph/ceph.conf). */
  conf?: string;
  /** cephx user without "client." (default admin). */
  user?: string;
  /** Create the image with this size (bytes) when it is missing; grow it when it is smaller. */
  size?: number;
  readonly?: boolean;
}

export const DEFAULT_CEPH_CONF = '/etc/ceph/ceph.conf';
export const DEFAULT_CEPH_USER = 'admin';
/** GET LBA STATUS looks at most this far per call: diff-iterate costs a RADOS op per object. */
const MAP_STATUS_MAX_BYTES = 256 * 1024 * 1024;

// One completion callback for every image: librbd passes back the id of the waiting operation.
interface Waiter {
  done(ret: number): void;
  /** Buffers librbd reads or writes until completion: kept reachable (never collected) meanwhile. */
  keep: unknown[];
}
const waiters = new Map<number, Waiter>();
let nextId = 1;
let callback: unknown;
// librbd's threads are invisible to libuv: without a handle of ours, Node would exit
// with I/O still in flight.
let keepAlive: NodeJS.Timeout | undefined;

function onComplete(L: RbdLib, c: unknown, arg: number | bigint): void {
  const id = Number(arg);
  const ret = Number(L.rbd_aio_get_return_value(c));
  L.rbd_aio_release(c);
  const w = waiters.get(id);
  waiters.delete(id);
  if (waiters.size === 0 && keepAlive) {
    clearInterval(keepAlive);
    keepAlive = undefined;
  }
  w?.done(ret);
}

/** Start one asynchronous librbd call; resolves with the completion's return value (>= 0). */
function aio(L: RbdLib, call: string, keep: unknown[], start: (c: unknown) => number, onResult?: (ret: number) => void): Promise<number> {
  callback ??= L.koffi.register((c: unknown, arg: number | bigint) => onComplete(L, c, arg), L.koffi.pointer(L.completionType as string));
  return new Promise((resolve, reject) => {
    const id = nextId++;
    const out: unknown[] = [null];
    const r = L.rbd_aio_create_completion(id, callback, out) as number;
    if (r < 0) return reject(rbdError(r, 'rbd_aio_create_completion'));
    waiters.set(id, {
      keep,
      done: (ret) => {
        onResult?.(ret);
        if (ret < 0) reject(rbdError(ret, call));
        else resolve(ret);
      },
    });
    keepAlive ??= setInterval(() => undefined, 1 << 30);
    const s = Number(start(out[0]));
    if (s < 0) {
      // Not queued: librbd will never call back.
      waiters.delete(id);
      L.rbd_aio_release(out[0]);
      if (waiters.size === 0 && keepAlive) {
        clearInterval(keepAlive);
        keepAlive = undefined;
      }
      reject(rbdError(s, call));
    }
  });
}

/** The monitor addresses a ceph.conf names, for error messages. */
function monHost(conf: string): string {
  try {
    const m = /^\s*mon[ _]host\s*=\s*(.+)$/m.exec(fs.readFileSync(conf, 'utf8'));
    return m ? m[1].trim() : 'no "mon host" in it';
  } catch (err) {
    return `unreadable: ${(err as NodeJS.ErrnoException).code ?? String(err)}`;
  }
}

function clientAddress(L: RbdLib, cluster: unknown): string {
  const out: unknown[] = [null];
  if ((L.rados_getaddrs(cluster, out) as number) < 0 || !out[0]) return 'unknown';
  const addr = L.koffi.decode(out[0], 'char', -1) as string;
  L.rados_buffer_free(out[0]);
  return addr;
}

export class RbdBackstore implements Backstore {
  readonly path: string;
  readonly readonly: boolean;
  /** What opening did, for the log ("created image ...", "grew image ..."). */
  readonly notes: string[] = [];
  /** This RADOS client's address (`rbd lock ls`, `ceph osd blocklist ls` print it). */
  readonly clientAddress: string;
  private readonly imageName: string;
  private _size: number;
  private inflight = 0;
  private idle: (() => void) | null = null;
  private closed = false;
  // The update watch on the image header (watchSize): the koffi callback and librbd's handle.
  private sizeListener: (() => void) | null = null;
  private updateCb: ReturnType<RbdLib['koffi']['register']> | null = null;
  private updateHandle: bigint | null = null;
  private refreshing = false;
  private refreshAgain = false;

  private constructor(
    private readonly L: RbdLib,
    private cluster: unknown,
    private ioctx: unknown,
    private image: unknown,
    opts: RbdOpenOptions,
    size: number,
  ) {
    this.path = `rbd:${opts.pool}/${opts.image}`;
    this.readonly = opts.readonly ?? false;
    this._size = size;
    this.clientAddress = clientAddress(L, cluster);
    this.imageName = opts.image;
  }

  get size(): number {
    return this._size;
  }

  /** Connect to the cluster and open (or create) the image. */
  static async open(opts: RbdOpenOptions): Promise<RbdBackstore> {
    const L = rbdLib();
    const conf = opts.conf ?? DEFAULT_CEPH_CONF;
    const user = opts.user ?? DEFAULT_CEPH_USER;
    const spec = `${opts.pool}/${opts.image}`;
    const out: unknown[] = [null];
    let r = L.rados_create2(out, 'ceph', `client.${user}`, 0) as number;
    if (r < 0) throw rbdError(r, 'rados_create2');
    const cluster = out[0];
    let ioctx: unknown = null;
    let image: unknown = null;
    try {
      r = L.rados_conf_read_file(cluster, conf) as number;
      if (r < 0) throw rbdError(r, 'reading Ceph config', conf);
      // The default (300 s) would leave an admin waiting five minutes to learn that the
      // monitors are unreachable.
      L.rados_conf_set(cluster, 'client_mount_timeout', '15');
      r = await callAsync(L.rados_connect, cluster);
      if (r < 0) {
        const e = rbdError(r, 'connecting to Ceph');
        e.message = `cannot connect to Ceph as client.${user} (config ${conf}, monitors ${monHost(conf)}): ${e.code}`;
        throw e;
      }
      const io: unknown[] = [null];
      r = await callAsync(L.rados_ioctx_create, cluster, opts.pool, io);
      if (r < 0) {
        const e = rbdError(r, 'opening pool', opts.pool);
        if (e.code === 'ENOENT') e.message = `Ceph pool ${opts.pool} does not exist (config ${conf})`;
        throw e;
      }
      ioctx = io[0];
      const notes: string[] = [];
      const img: unknown[] = [null];
      r = await callAsync(L.rbd_open, ioctx, opts.image, img, null);
      if (r === -2 && opts.size !== undefined && !opts.readonly) {
        r = await callAsync(L.rbd_create, ioctx, opts.image, opts.size, [0]);
        // Another gateway may have created it meanwhile: then open theirs.
        if (r < 0 && r !== -17) throw rbdError(r, 'rbd_create', spec);
        if (r === 0) notes.push(`created RBD image ${spec} of ${opts.size} bytes`);
        r = await callAsync(L.rbd_open, ioctx, opts.image, img, null);
      }
      if (r === -2) {
        const e = rbdError(r, 'rbd_open', spec);
        e.message = `RBD image ${spec} does not exist and no size is configured to create it`;
        throw e;
      }
      if (r < 0) throw rbdError(r, 'rbd_open', spec);
      image = img[0];
      const sz = new BigUint64Array(1);
      r = L.rbd_get_size(image, sz) as number;
      if (r < 0) throw rbdError(r, 'rbd_get_size', spec);
      let size = Number(sz[0]);
      if (opts.size !== undefined && opts.size > size && !opts.readonly) {
        // A larger configured size is a request to grow (never shrink: that loses data).
        r = await callAsync(L.rbd_resize, image, opts.size);
        if (r < 0) throw rbdError(r, 'rbd_resize', spec);
        notes.push(`grew RBD image ${spec} from ${size} to ${opts.size} bytes`);
        size = opts.size;
      }
      const store = new RbdBackstore(L, cluster, ioctx, image, opts, size);
      store.notes.push(...notes);
      return store;
    } catch (err) {
      if (image) await callAsync(L.rbd_close, image).catch(() => undefined);
      if (ioctx) L.rados_ioctx_destroy(ioctx);
      await callAsync(L.rados_shutdown, cluster).catch(() => undefined);
      throw err;
    }
  }

  private track<T>(p: Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(rbdError(-108, 'I/O', `on closed ${this.path}`));
    this.inflight++;
    const settle = (): void => {
      if (--this.inflight === 0 && this.idle) this.idle();
    };
    p.then(settle, settle);
    return p;
  }

  private checkWritable(): void {
    if (this.readonly) throw rbdError(-30, 'write', `to read-only ${this.path}`);
  }

  read(buf: Buffer, offset: number): Promise<void> {
    if (buf.length === 0) return Promise.resolve();
    return this.track(
      aio(this.L, 'rbd_aio_read', [buf], (c) => this.L.rbd_aio_read(this.image, offset, buf.length, buf, c) as number).then(
        () => undefined,
      ),
    );
  }

  write(buf: Buffer, offset: number): Promise<void> {
    this.checkWritable();
    if (buf.length === 0) return Promise.resolve();
    return this.track(
      aio(this.L, 'rbd_aio_write', [buf], (c) => this.L.rbd_aio_write(this.image, offset, buf.length, buf, c) as number).then(
        () => undefined,
      ),
    );
  }

  /**
   * write_zeroes, not discard: librbd's discard skips ranges smaller than its discard
   * granularity (the data stays), while write_zeroes deallocates whole objects and zeroes
   * the partial ones, so the range always reads back as zeros.
   */
  unmap(offset: number, length: number): Promise<void> {
    this.checkWritable();
    if (length === 0) return Promise.resolve();
    return this.track(
      aio(this.L, 'rbd_aio_write_zeroes', [], (c) => this.L.rbd_aio_write_zeroes(this.image, offset, length, c, 0, 0) as number).then(
        () => undefined,
      ),
    );
  }

  /** WRITE SAME: `block` repeated over [offset, offset + length) in one librbd call. */
  writeSame(block: Buffer, offset: number, length: number): Promise<void> {
    this.checkWritable();
    if (length === 0) return Promise.resolve();
    return this.track(
      aio(
        this.L,
        'rbd_aio_writesame',
        [block],
        (c) => this.L.rbd_aio_writesame(this.image, offset, length, block, block.length, c, 0) as number,
      ).then(() => undefined),
    );
  }

  /**
   * COMPARE AND WRITE, atomic in the OSD (so across gateways): null when `cmp` matched and
   * `data` was written, else the offset (from `offset`) of the first differing byte.
   */
  async compareAndWrite(cmp: Buffer, data: Buffer, offset: number): Promise<{ mismatchOffset: number } | null> {
    this.checkWritable();
    if (cmp.length !== data.length) throw rbdError(-22, 'rbd_aio_compare_and_write', '(buffers of different lengths)');
    // librbd 16 (Pacific) refuses (EINVAL) a range that crosses a 512-byte sector: for
    // those, EOPNOTSUPP tells the SCSI core to compare and write itself (atomic on this
    // gateway only). VMware's ATS uses one 512-byte block, which librbd does.
    if (cmp.length === 0 || Math.floor(offset / 512) !== Math.floor((offset + cmp.length - 1) / 512)) {
      throw rbdError(-95, 'rbd_aio_compare_and_write', `(${cmp.length} bytes at ${offset} cross a 512-byte sector)`);
    }
    const mismatch = new BigUint64Array(1);
    try {
      await this.track(
        aio(
          this.L,
          'rbd_aio_compare_and_write',
          [cmp, data, mismatch],
          (c) => this.L.rbd_aio_compare_and_write(this.image, offset, cmp.length, cmp, data, c, mismatch, 0) as number,
        ),
      );
      return null;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EILSEQ') throw err;
      // librbd 16 reports the mismatch as the object's start plus the index in the buffer,
      // not as an image offset: find the first difference from what the image holds now.
      const cur = Buffer.alloc(cmp.length);
      await this.read(cur, offset);
      for (let i = 0; i < cmp.length; i++) if (cur[i] !== cmp[i]) return { mismatchOffset: i };
      // Changed back meanwhile by another writer: librbd's value, within the buffer.
      const at = Number(mismatch[0]);
      return { mismatchOffset: at >= offset && at < offset + cmp.length ? at - offset : at % cmp.length };
    }
  }

  flush(): Promise<void> {
    return this.track(aio(this.L, 'rbd_aio_flush', [], (c) => this.L.rbd_aio_flush(this.image, c) as number).then(() => undefined));
  }

  /** Grow the image (never shrinks: a smaller size is ignored). */
  readonly grow = async (size: number): Promise<void> => {
    this.checkWritable();
    if (size <= this._size) return;
    const r = await this.track(callAsync(this.L.rbd_resize, this.image, size));
    if (r < 0) throw rbdError(r, 'rbd_resize', this.path);
    this._size = size;
  };

  /**
   * Allocation from librbd's diff of the image against nothing (whole_object off: extents
   * within objects). Looks at most MAP_STATUS_MAX_BYTES ahead; the answer is then shorter.
   */
  async mapStatus(offset: number, length: number): Promise<ExtentStatus> {
    const len = Math.min(length, MAP_STATUS_MAX_BYTES, this._size - offset);
    if (len <= 0) return { mapped: false, length: Math.max(length, 1) };
    const extents: [number, number][] = [];
    const cb = this.L.koffi.register(
      (off: number | bigint, n: number | bigint, exists: number) => {
        if (exists) extents.push([Number(off), Number(n)]);
        return 0;
      },
      this.L.koffi.pointer(this.L.diffType as string),
    );
    try {
      const r = await this.track(callAsync(this.L.rbd_diff_iterate2, this.image, null, offset, len, 1, 0, cb, 0));
      if (r < 0) throw rbdError(r, 'rbd_diff_iterate2', this.path);
    } finally {
      this.L.koffi.unregister(cb);
    }
    extents.sort((a, b) => a[0] - b[0]);
    let pos = offset;
    const end = offset + len;
    for (const [s, n] of extents) {
      if (s + n <= pos) continue;
      if (s > pos) return { mapped: pos !== offset, length: pos !== offset ? pos - offset : s - offset };
      pos = Math.min(end, s + n);
      if (pos >= end) break;
    }
    if (pos > offset) return { mapped: true, length: pos - offset };
    return { mapped: false, length: len };
  }

  /**
   * What names this image uniquely and for good: the cluster's fsid, the pool's id and the
   * image's id (neither changes on a rename). Every gateway computes the same.
   */
  uniqueId(): string {
    const { L } = this;
    const buf = Buffer.alloc(128);
    let r = L.rados_cluster_fsid(this.cluster, buf, buf.length) as number;
    if (r < 0) throw rbdError(r, 'rados_cluster_fsid');
    const fsid = buf.subarray(0, buf.indexOf(0) < 0 ? r : buf.indexOf(0)).toString('latin1');
    const pool = Number(L.rados_ioctx_get_id(this.ioctx));
    buf.fill(0);
    r = L.rbd_get_id(this.image, buf, buf.length) as number;
    if (r < 0) throw rbdError(r, 'rbd_get_id', this.path);
    const id = buf.subarray(0, buf.indexOf(0)).toString('latin1');
    return `${fsid}/${pool}/${id}`;
  }

  /** The value of an image metadata key, or undefined when it is not set. */
  async getMetadata(key: string): Promise<string | undefined> {
    let buf = Buffer.alloc(256);
    for (;;) {
      const n = new BigUint64Array([BigInt(buf.length)]);
      const r = await callAsync(this.L.rbd_metadata_get, this.image, key, buf, n);
      if (r === -2) return undefined;
      if (r === -34) {
        buf = Buffer.alloc(Number(n[0]) + 1);
        continue;
      }
      if (r < 0) throw rbdError(r, 'rbd_metadata_get', `${this.path} ${key}`);
      const text = buf.subarray(0, Number(n[0])).toString('utf8');
      return text.replace(/\0+$/, '');
    }
  }

  async setMetadata(key: string, value: string): Promise<void> {
    const r = await callAsync(this.L.rbd_metadata_set, this.image, key, value);
    if (r < 0) throw rbdError(r, 'rbd_metadata_set', `${this.path} ${key}`);
  }

  /** Whether this client holds the image's exclusive lock now. */
  async isLockOwner(): Promise<boolean> {
    const owner = new Int32Array(1);
    const r = await callAsync(this.L.rbd_is_exclusive_lock_owner, this.image, owner);
    if (r < 0) throw rbdError(r, 'rbd_is_exclusive_lock_owner', this.path);
    return owner[0] !== 0;
  }

  /** The client addresses holding the exclusive lock (none, or one). */
  async lockOwners(): Promise<string[]> {
    const { L } = this;
    const max = 4;
    const ptrs = Buffer.alloc(8 * max);
    const n = new BigUint64Array([BigInt(max)]);
    const r = await callAsync(L.rbd_lock_get_owners, this.image, new Int32Array(1), ptrs, n);
    if (r === -2) return []; // ENOENT: nobody holds it
    if (r < 0) throw rbdError(r, 'rbd_lock_get_owners', this.path);
    const owners = L.koffi.decode(ptrs, L.koffi.array('char *', Number(n[0]))) as string[];
    L.rbd_lock_get_owners_cleanup(ptrs, n[0]);
    return owners;
  }

  /** Take a snapshot of the image (crash-consistent: librbd asks the lock holder to make it). */
  async snapshot(name: string): Promise<void> {
    const r = await callAsync(this.L.rbd_snap_create, this.image, name);
    if (r < 0) throw rbdError(r, 'rbd_snap_create', `${this.path}@${name}`);
  }

  /** Roll the image back to a snapshot (the caller makes sure nobody else has it open). */
  async rollback(name: string): Promise<void> {
    const r = await callAsync(this.L.rbd_snap_rollback, this.image, name);
    if (r < 0) throw rbdError(r, 'rbd_snap_rollback', `${this.path}@${name}`);
  }

  /**
   * Clone the snapshot `snap` into a new image pool/image of the same cluster (librbd's
   * default features). The snapshot is protected first, as clone format 1 requires.
   */
  async clone(snap: string, pool: string, image: string): Promise<void> {
    const { L } = this;
    let r = await callAsync(L.rbd_snap_protect, this.image, snap);
    if (r < 0 && r !== -16) throw rbdError(r, 'rbd_snap_protect', `${this.path}@${snap}`); // EBUSY: already protected
    const io: unknown[] = [null];
    r = await callAsync(L.rados_ioctx_create, this.cluster, pool, io);
    if (r < 0) throw rbdError(r, 'opening pool', pool);
    const opts: unknown[] = [null];
    L.rbd_image_options_create(opts);
    try {
      r = await callAsync(L.rbd_clone3, this.ioctx, this.imageName, snap, io[0], image, opts[0]);
      if (r < 0) throw rbdError(r, 'rbd_clone3', `${this.path}@${snap} to ${pool}/${image}`);
    } finally {
      L.rbd_image_options_destroy(opts[0]);
      L.rados_ioctx_destroy(io[0]);
    }
  }

  /** Remove an image metadata key (absent already: fine). */
  async removeMetadata(key: string): Promise<void> {
    const r = await callAsync(this.L.rbd_metadata_remove, this.image, key);
    if (r < 0 && r !== -2) throw rbdError(r, 'rbd_metadata_remove', `${this.path} ${key}`);
  }

  /** Client addresses that have the image open (watch its header), this one included. */
  async watchers(): Promise<string[]> {
    const { L } = this;
    for (let max = 8; ; max *= 4) {
      const buf = Buffer.alloc(24 * max);
      const n = new BigUint64Array([BigInt(max)]);
      const r = await callAsync(L.rbd_watchers_list, this.image, buf, n);
      if (r === -34) continue; // ERANGE: more than max
      if (r < 0) throw rbdError(r, 'rbd_watchers_list', this.path);
      const list = L.koffi.decode(buf, L.koffi.array(L.watcherType as string, Number(n[0]))) as { addr: string }[];
      const addrs = list.map((w) => w.addr);
      L.rbd_watchers_list_cleanup(buf, n[0]);
      return addrs;
    }
  }

  /**
   * Another gateway's resize (rbd_resize notifies every client watching the image header):
   * librbd calls back on each header change; the size is read again (which refreshes the
   * header) and `listener` runs when it differs. The callback only schedules that read: koffi
   * holds librbd's notifying thread until the callback has run on the main thread.
   */
  async watchSize(listener: () => void): Promise<void> {
    const { L } = this;
    if (this.updateCb !== null || this.closed) return;
    this.sizeListener = listener;
    this.updateCb = L.koffi.register(() => this.refreshSize(), L.koffi.pointer(L.updateType as string));
    const handle = new BigUint64Array(1);
    const r = await callAsync(L.rbd_update_watch, this.image, handle, this.updateCb, 0);
    if (r < 0) {
      L.koffi.unregister(this.updateCb);
      this.updateCb = null;
      throw rbdError(r, 'rbd_update_watch', this.path);
    }
    this.updateHandle = handle[0];
  }

  private refreshSize(): void {
    if (this.closed) return;
    if (this.refreshing) {
      this.refreshAgain = true; // one more read after this one: it may predate the change
      return;
    }
    this.refreshing = true;
    const sz = new BigUint64Array(1);
    const done = (): void => {
      this.refreshing = false;
      if (this.refreshAgain) {
        this.refreshAgain = false;
        this.refreshSize();
      }
    };
    this.track(callAsync(this.L.rbd_get_size, this.image, sz)).then((r) => {
      const size = Number(sz[0]);
      if (r >= 0 && size !== this._size) {
        this._size = size;
        this.sizeListener?.();
      }
      done();
    }, done);
  }

  /** Waits for I/O in flight, then closes the image and the cluster connection (which releases the lock). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.inflight > 0) await new Promise<void>((resolve) => (this.idle = resolve));
    const { L } = this;
    if (this.updateHandle !== null) {
      // On a worker thread: librbd waits for a callback in flight, which needs this one.
      await callAsync(L.rbd_update_unwatch, this.image, this.updateHandle).catch(() => undefined);
      this.updateHandle = null;
    }
    if (this.updateCb !== null) {
      L.koffi.unregister(this.updateCb);
      this.updateCb = null;
    }
    const r = await callAsync(L.rbd_close, this.image);
    L.rados_ioctx_destroy(this.ioctx);
    await callAsync(L.rados_shutdown, this.cluster);
    this.image = this.ioctx = this.cluster = null;
    if (r < 0) throw rbdError(r, 'rbd_close', this.path);
  }
}
