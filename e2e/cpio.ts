// A writer for the "newc" cpio format the Linux kernel unpacks as an initramfs
// (Documentation/driver-api/early-userspace/buffer-format.rst). Written here rather than
// shelling out to cpio(1) so building the VM needs no extra host tool and no root
// (device nodes are just headers).

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export interface CpioEntry {
  name: string; // without the leading slash
  mode: number; // type | permissions
  data?: Buffer; // file contents or symlink target
  rdevMajor?: number;
  rdevMinor?: number;
}

function hex8(n: number): string {
  return n.toString(16).padStart(8, '0');
}

function pad4(len: number): Buffer {
  return Buffer.alloc((4 - (len % 4)) % 4);
}

export function cpioNewc(entries: CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const push = (e: CpioEntry): void => {
    const name = Buffer.from(e.name + '\0');
    const data = e.data ?? Buffer.alloc(0);
    const header =
      '070701' +
      hex8(ino++) +
      hex8(e.mode) +
      hex8(0) + // uid
      hex8(0) + // gid
      hex8((e.mode & 0o170000) === S_IFDIR ? 2 : 1) +
      hex8(0) + // mtime: fixed, so identical inputs give an identical image
      hex8(data.length) +
      hex8(0) +
      hex8(0) +
      hex8(e.rdevMajor ?? 0) +
      hex8(e.rdevMinor ?? 0) +
      hex8(name.length) +
      hex8(0);
    const h = Buffer.from(header, 'ascii');
    parts.push(h, name, pad4(h.length + name.length), data, pad4(data.length));
  };
  for (const e of entries) push(e);
  push({ name: 'TRAILER!!!', mode: 0 });
  return Buffer.concat(parts);
}
