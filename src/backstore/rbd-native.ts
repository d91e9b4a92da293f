// librados / librbd through koffi: the few calls an RBD volume needs. librbd's asynchronous
// calls (rbd_aio_*) take a completion whose callback librbd runs on one of its own threads;
// koffi hands that call to the main thread and makes the librbd thread wait until it has run,
// so completions arrive as ordinary event-loop callbacks. Calls that wait on the cluster
// (connect, open, create, resize, metadata, diff) run on koffi's worker threads (`.async`),
// so the event loop never blocks on the network.
import * as os from 'node:os';

/** A C function as koffi returns it (sync call, and `.async` with a node-style callback). */
interface CFunc {
  (...args: unknown[]): unknown;
  async(...args: unknown[]): void;
}

export interface RbdLib {
  koffi: typeof import('koffi');
  rados_create2: CFunc;
  rados_conf_read_file: CFunc;
  rados_conf_set: CFunc;
  rados_connect: CFunc;
  rados_shutdown: CFunc;
  rados_ioctx_create: CFunc;
  rados_ioctx_destroy: CFunc;
  rados_cluster_fsid: CFunc;
  rados_ioctx_get_id: CFunc;
  rbd_get_id: CFunc;
  rbd_create: CFunc;
  rbd_open: CFunc;
  rbd_close: CFunc;
  rbd_get_size: CFunc;
  rbd_resize: CFunc;
  rbd_metadata_get: CFunc;
  rbd_metadata_set: CFunc;
  rbd_diff_iterate2: CFunc;
  rbd_aio_create_completion: CFunc;
  rbd_aio_get_return_value: CFunc;
  rbd_aio_release: CFunc;
  rbd_aio_read: CFunc;
  rbd_aio_write: CFunc;
  rbd_aio_write_zeroes: CFunc;
  rbd_aio_writesame: CFunc;
  rbd_aio_compare_and_write: CFunc;
  rbd_aio_flush: CFunc;
  rbd_is_exclusive_lock_owner: CFunc;
  rbd_lock_get_owners: CFunc;
  rbd_lock_get_owners_cleanup: CFunc;
  rados_getaddrs: CFunc;
  rados_buffer_free: CFunc;
  rbd_snap_create: CFunc;
  rbd_snap_rollback: CFunc;
  rbd_watchers_list: CFunc;
  rbd_watchers_list_cleanup: CFunc;
  rbd_snap_protect: CFunc;
  rbd_clone3: CFunc;
  rbd_image_options_create: CFunc;
  rbd_image_options_destroy: CFunc;
  rbd_metadata_remove: CFunc;
  rbd_update_watch: CFunc;
  rbd_update_unwatch: CFunc;
  /** rbd_image_watcher_t, to decode what rbd_watchers_list fills. */
  watcherType: unknown;
  /** The completion callback type, for koffi.register. */
  completionType: unknown;
  /** The diff_iterate2 callback type. */
  diffType: unknown;
  /** rbd_update_callback_t: the image's header changed (size, features, snapshots...). */
  updateType: unknown;
}

let lib: RbdLib | undefined;
let loadError: Error | undefined;

/** librbd and librados, loaded once; throws with the reason when they are not installed. */
export function rbdLib(): RbdLib {
  if (lib) return lib;
  if (loadError) throw loadError;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const koffi = require('koffi') as typeof import('koffi');
    const rados = koffi.load('librados.so.2');
    const rbd = koffi.load('librbd.so.1');
    const completionType = koffi.proto('void iscsi_target_rbd_cb(void *c, uintptr_t arg)');
    const updateType = koffi.proto('void iscsi_target_rbd_update_cb(uintptr_t arg)');
    const diffType = koffi.proto('int iscsi_target_rbd_diff_cb(uint64_t off, size_t len, int exists, uintptr_t arg)');
    const f = (l: typeof rados, sig: string): CFunc => l.func(sig);
    lib = {
      koffi,
      rados_create2: f(rados, 'int rados_create2(_Out_ void **cluster, const char *clustername, const char *name, uint64_t flags)'),
      rados_conf_read_file: f(rados, 'int rados_conf_read_file(void *cluster, const char *path)'),
      rados_conf_set: f(rados, 'int rados_conf_set(void *cluster, const char *option, const char *value)'),
      rados_connect: f(rados, 'int rados_connect(void *cluster)'),
      rados_shutdown: f(rados, 'void rados_shutdown(void *cluster)'),
      rados_ioctx_create: f(rados, 'int rados_ioctx_create(void *cluster, const char *pool, _Out_ void **ioctx)'),
      rados_ioctx_destroy: f(rados, 'void rados_ioctx_destroy(void *ioctx)'),
      rados_cluster_fsid: f(rados, 'int rados_cluster_fsid(void *cluster, void *buf, size_t len)'),
      rados_ioctx_get_id: f(rados, 'int64_t rados_ioctx_get_id(void *ioctx)'),
      rbd_get_id: f(rbd, 'int rbd_get_id(void *image, void *id, size_t len)'),
      rbd_create: f(rbd, 'int rbd_create(void *io, const char *name, uint64_t size, _Inout_ int *order)'),
      rbd_open: f(rbd, 'int rbd_open(void *io, const char *name, _Out_ void **image, const char *snap)'),
      rbd_close: f(rbd, 'int rbd_close(void *image)'),
      rbd_get_size: f(rbd, 'int rbd_get_size(void *image, uint64_t *size)'),
      rbd_resize: f(rbd, 'int rbd_resize(void *image, uint64_t size)'),
      rbd_metadata_get: f(rbd, 'int rbd_metadata_get(void *image, const char *key, void *value, uint64_t *len)'),
      rbd_metadata_set: f(rbd, 'int rbd_metadata_set(void *image, const char *key, const char *value)'),
      rbd_diff_iterate2: f(
        rbd,
        'int rbd_diff_iterate2(void *image, const char *from, uint64_t off, uint64_t len, uint8_t parent, uint8_t whole, iscsi_target_rbd_diff_cb *cb, uintptr_t arg)',
      ),
      rbd_aio_create_completion: f(rbd, 'int rbd_aio_create_completion(uintptr_t arg, iscsi_target_rbd_cb *cb, _Out_ void **c)'),
      rbd_aio_get_return_value: f(rbd, 'int64_t rbd_aio_get_return_value(void *c)'),
      rbd_aio_release: f(rbd, 'void rbd_aio_release(void *c)'),
      rbd_aio_read: f(rbd, 'int rbd_aio_read(void *image, uint64_t off, size_t len, void *buf, void *c)'),
      rbd_aio_write: f(rbd, 'int rbd_aio_write(void *image, uint64_t off, size_t len, void *buf, void *c)'),
      rbd_aio_write_zeroes: f(rbd, 'int rbd_aio_write_zeroes(void *image, uint64_t off, size_t len, void *c, int zflags, int opflags)'),
      rbd_aio_writesame: f(
        rbd,
        'int rbd_aio_writesame(void *image, uint64_t off, size_t len, void *buf, size_t dlen, void *c, int opflags)',
      ),
      rbd_aio_compare_and_write: f(
        rbd,
        'int64_t rbd_aio_compare_and_write(void *image, uint64_t off, size_t len, void *cmp, void *buf, void *c, uint64_t *mismatch, int opflags)',
      ),
      rbd_aio_flush: f(rbd, 'int rbd_aio_flush(void *image, void *c)'),
      rbd_is_exclusive_lock_owner: f(rbd, 'int rbd_is_exclusive_lock_owner(void *image, _Out_ int *owner)'),
      // owners: an array of char * that librbd fills (freed with the cleanup call).
      rbd_lock_get_owners: f(rbd, 'int rbd_lock_get_owners(void *image, _Out_ int *mode, void *owners, _Inout_ size_t *max)'),
      rbd_lock_get_owners_cleanup: f(rbd, 'void rbd_lock_get_owners_cleanup(void *owners, size_t n)'),
      rados_getaddrs: f(rados, 'int rados_getaddrs(void *cluster, _Out_ void **addrs)'),
      rados_buffer_free: f(rados, 'void rados_buffer_free(void *buf)'),
      rbd_snap_create: f(rbd, 'int rbd_snap_create(void *image, const char *name)'),
      rbd_snap_rollback: f(rbd, 'int rbd_snap_rollback(void *image, const char *name)'),
      // watchers: an array of rbd_image_watcher_t that librbd fills (freed with the cleanup call).
      rbd_watchers_list: f(rbd, 'int rbd_watchers_list(void *image, void *watchers, _Inout_ size_t *max)'),
      rbd_watchers_list_cleanup: f(rbd, 'void rbd_watchers_list_cleanup(void *watchers, size_t n)'),
      rbd_snap_protect: f(rbd, 'int rbd_snap_protect(void *image, const char *snap)'),
      rbd_clone3: f(rbd, 'int rbd_clone3(void *p_io, const char *p_name, const char *p_snap, void *c_io, const char *c_name, void *opts)'),
      rbd_image_options_create: f(rbd, 'void rbd_image_options_create(_Out_ void **opts)'),
      rbd_image_options_destroy: f(rbd, 'void rbd_image_options_destroy(void *opts)'),
      rbd_metadata_remove: f(rbd, 'int rbd_metadata_remove(void *image, const char *key)'),
      rbd_update_watch: f(rbd, 'int rbd_update_watch(void *image, _Out_ uint64_t *handle, iscsi_target_rbd_update_cb *cb, uintptr_t arg)'),
      rbd_update_unwatch: f(rbd, 'int rbd_update_unwatch(void *image, uint64_t handle)'),
      watcherType: koffi.struct('iscsi_target_rbd_watcher', { addr: 'char *', id: 'int64_t', cookie: 'uint64_t' }),
      completionType,
      diffType,
      updateType,
    };
    return lib;
  } catch (err) {
    loadError = new Error(
      `cannot load librbd/librados (${err instanceof Error ? err.message : String(err)}); RBD volumes need the librbd1 package`,
    );
    throw loadError;
  }
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));

/** librbd returns -errno: a Node error with `code` (EIO, ENOSPC, ...) naming the call. */
export function rbdError(ret: number, call: string, what?: string): NodeJS.ErrnoException {
  const errno = -ret;
  const code = ERRNO_NAMES.get(errno) ?? `E${errno}`;
  const err = new Error(`${call}${what ? ` ${what}` : ''} failed: ${code} (${describe(code, errno)})`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = ret;
  err.syscall = call;
  return err;
}

function describe(code: string, errno: number): string {
  const known: Record<string, string> = {
    ENOENT: 'no such image or pool',
    EACCES: 'permission denied (cephx caps?)',
    EPERM: 'operation not permitted',
    ETIMEDOUT: 'timed out',
    ENOSPC: 'no space left',
    EIO: 'I/O error',
    EINVAL: 'invalid argument',
    EEXIST: 'already exists',
    EBUSY: 'busy',
    EILSEQ: 'miscompare',
    EBLOCKLISTED: 'this client is blocklisted',
    ESHUTDOWN: 'blocklisted or shut down',
  };
  return known[code] ?? `errno ${errno}`;
}

/** Run a blocking librbd/librados call on koffi's worker thread; resolves its int result. */
export function callAsync(fn: CFunc, ...args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    fn.async(...args, (err: unknown, res: unknown) => {
      if (err) reject(err instanceof Error ? err : new Error(`koffi call failed: ${JSON.stringify(err)}`));
      else resolve(typeof res === 'bigint' ? Number(res) : (res as number));
    });
  });
}
