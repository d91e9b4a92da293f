// Build (once) and cache the VM the open-iscsi end-to-end test boots: Debian's stock
// kernel, and an initramfs holding busybox, the host's open-iscsi, e2fsprogs, fio and lsblk with
// the shared libraries they load, and the kernel modules for virtio networking, iSCSI over
// TCP, SCSI disks and ext4. The guest has no udev and no modprobe config: /init loads the
// modules itself, in the dependency order computed here from each module's .modinfo.

import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import zlib from 'node:zlib';
import { cpioNewc, S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, type CpioEntry } from './cpio';

/**
 * Host programs copied into the guest (with the libraries ldd lists); busybox-static gives it
 * a shell; lsblk (util-linux) checks what the README's walkthrough says it shows.
 */
export const GUEST_PROGRAMS = ['iscsiadm', 'iscsid', 'mke2fs', 'e2fsck', 'fio', 'busybox', 'lsblk'];

/** Where a program is on the host (sbin is often not on a user's PATH). */
export function hostProgram(name: string): string | undefined {
  for (const d of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) {
    if (fs.existsSync(path.join(d, name))) return path.join(d, name);
  }
  return undefined;
}

/**
 * Modules loaded in the guest, roots first in this order; their dependencies come from
 * .modinfo. The crypto ones come first because ext4/jbd2 (crc32c) and sd_mod's t10-pi
 * (crct10dif, crc64-rocksoft) look their algorithms up through the crypto API, which would
 * ask a modprobe the guest does not have.
 */
export const GUEST_MODULES = [
  'crc32c_generic',
  'crct10dif_generic',
  'crc64_rocksoft_generic',
  'virtio_pci',
  'virtio_net',
  'iscsi_tcp',
  'sd_mod',
  'ext4',
];

/** Host commands the test needs (besides the files above). */
export const HOST_COMMANDS = ['qemu-system-x86_64', 'socat', 'apt-get', 'apt-cache', 'dpkg-deb', 'ldd'];

export const APT_HINT = 'apt-get install qemu-system-x86 socat open-iscsi e2fsprogs fio busybox-static';

export interface VmImage {
  kernel: string;
  initrd: string;
  kernelRelease: string;
  kernelPackage: string;
}

export function missingHostPieces(): string[] {
  const missing: string[] = [];
  for (const c of HOST_COMMANDS) {
    if (spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0) missing.push(c);
  }
  for (const p of GUEST_PROGRAMS) if (!hostProgram(p)) missing.push(p);
  return missing;
}

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
}

/** The versioned image package the linux-image-amd64 metapackage depends on, and its version. */
function kernelPackage(): { name: string; version: string } {
  const deps = sh('apt-cache', ['depends', 'linux-image-amd64']);
  const m = /Depends:\s*(linux-image-[0-9][^\s]*)/.exec(deps);
  if (!m) throw new Error(`apt-cache depends linux-image-amd64 names no image package:\n${deps}`);
  const show = sh('apt-cache', ['show', '--no-all-versions', m[1]]);
  const v = /^Version:\s*(\S+)/m.exec(show);
  if (!v) throw new Error(`apt-cache show ${m[1]} gives no Version`);
  return { name: m[1], version: v[1] };
}

/** The kernel .deb, downloaded once into the cache (the newest one already there wins offline). */
function kernelDeb(cacheRoot: string, log: (s: string) => void): string {
  const dir = path.join(cacheRoot, 'kernel');
  fs.mkdirSync(dir, { recursive: true });
  const have = fs.readdirSync(dir).filter((f) => /^linux-image-.*\.deb$/.test(f));
  let pkg: { name: string; version: string };
  try {
    pkg = kernelPackage();
  } catch (e) {
    if (have.length > 0) return path.join(dir, have.sort().at(-1)!); // apt lists gone: use what we have
    throw e;
  }
  const ver = pkg.version.replace(/:/g, '%3a');
  const want = have.find((f) => f.startsWith(`${pkg.name}_${ver}_`));
  if (want) return path.join(dir, want);
  log(`downloading ${pkg.name} ${pkg.version} (apt-get download)`);
  const tmp = fs.mkdtempSync(path.join(dir, 'dl-'));
  try {
    // _apt cannot write into a root-owned temp dir; apt then downloads as root (a warning only).
    const r = spawnSync('apt-get', ['download', `${pkg.name}=${pkg.version}`], { cwd: tmp, encoding: 'utf8' });
    const got = fs.readdirSync(tmp).filter((f) => f.endsWith('.deb'));
    if (r.status !== 0 || got.length !== 1) {
      throw new Error(`apt-get download ${pkg.name}=${pkg.version} failed (exit ${r.status}):\n${r.stdout}${r.stderr}`);
    }
    fs.renameSync(path.join(tmp, got[0]), path.join(dir, got[0]));
    for (const old of have) fs.rmSync(path.join(dir, old), { force: true }); // keep one kernel
    return path.join(dir, got[0]);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** The `key=value` strings of an ELF module's .modinfo section. */
export function modinfo(ko: Buffer): Map<string, string[]> {
  if (ko.readUInt32BE(0) !== 0x7f454c46 || ko[4] !== 2 || ko[5] !== 1) throw new Error('not a 64-bit little-endian ELF');
  const shoff = Number(ko.readBigUInt64LE(0x28));
  const shentsize = ko.readUInt16LE(0x3a);
  const shnum = ko.readUInt16LE(0x3c);
  const shstrndx = ko.readUInt16LE(0x3e);
  const sect = (i: number) => {
    const o = shoff + i * shentsize;
    return { name: ko.readUInt32LE(o), offset: Number(ko.readBigUInt64LE(o + 0x18)), size: Number(ko.readBigUInt64LE(o + 0x20)) };
  };
  const strtab = sect(shstrndx);
  const out = new Map<string, string[]>();
  for (let i = 0; i < shnum; i++) {
    const s = sect(i);
    const nameEnd = ko.indexOf(0, strtab.offset + s.name);
    if (ko.toString('latin1', strtab.offset + s.name, nameEnd) !== '.modinfo') continue;
    for (const kv of ko.toString('latin1', s.offset, s.offset + s.size).split('\0')) {
      const eq = kv.indexOf('=');
      if (eq <= 0) continue;
      const k = kv.slice(0, eq);
      out.set(k, [...(out.get(k) ?? []), kv.slice(eq + 1)]);
    }
  }
  return out;
}

const modName = (s: string) => s.replace(/\.ko(\.[gx]z|\.zst)?$/, '').replace(/-/g, '_');

/** Module files (relative to lib/modules/REL) in load order: every dependency before its user. */
export function moduleLoadOrder(modulesDir: string, roots: string[]): string[] {
  const byName = new Map<string, string>();
  const walk = (rel: string) => {
    for (const d of fs.readdirSync(path.join(modulesDir, rel), { withFileTypes: true })) {
      const r = path.join(rel, d.name);
      if (d.isDirectory()) walk(r);
      else if (/\.ko$/.test(d.name)) byName.set(modName(d.name), r);
    }
  };
  walk('kernel');
  const order: string[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, from: string) => {
    const st = state.get(name);
    if (st === 'done') return;
    if (st === 'visiting') throw new Error(`module dependency cycle at ${name}`);
    const rel = byName.get(name);
    if (!rel) throw new Error(`module ${name} (needed by ${from}) is not in ${modulesDir} (compressed modules are not handled)`);
    state.set(name, 'visiting');
    const deps = (modinfo(fs.readFileSync(path.join(modulesDir, rel))).get('depends') ?? [''])[0];
    for (const d of deps.split(',').filter(Boolean)) visit(modName(d), name);
    state.set(name, 'done');
    order.push(rel);
  };
  for (const r of roots) visit(r, 'the test');
  return order;
}

/** Absolute paths of the shared objects (and the loader) `ldd` lists for a program. */
export function sharedLibraries(program: string): string[] {
  const r = spawnSync('ldd', [program], { encoding: 'utf8' });
  if (r.status !== 0) return []; // "not a dynamic executable" (busybox-static)
  const libs: string[] = [];
  for (const line of r.stdout.split('\n')) {
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) libs.push(m[1]);
    else if (/=>\s*not found/.test(line)) throw new Error(`ldd ${program}: ${line.trim()}`);
  }
  return libs;
}

/** The guest's /init: mounts, module loading, the network, then the test's /e2e/run.sh. */
function initScript(kernelRelease: string, modules: string[]): string {
  const insmods = modules
    .map((m) => `insmod /lib/modules/${kernelRelease}/${m} || { echo "E2E-INIT-FAIL insmod ${path.basename(m)}"; halt_vm; }`)
    .join('\n');
  return `#!/bin/sh
# Generated by e2e/vm-image.ts: the open-iscsi e2e guest's init.
/bin/busybox mkdir -p /usr/local/busybox
/bin/busybox --install -s /usr/local/busybox
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/usr/local/busybox
halt_vm() { sync; echo o > /proc/sysrq-trigger; sleep 5; reboot -f; }
mkdir -p /proc /sys /dev /run /tmp /mnt
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run/lock /var/lock /var/lib/iscsi /etc/iscsi
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /run
mkdir -p /run/lock /run/lock/iscsi
echo "E2E-INIT kernel $(uname -r), loading modules"
${insmods}
ip link set lo up
ip link set eth0 up || { echo "E2E-INIT-FAIL no eth0"; halt_vm; }
ip addr add 10.0.2.15/24 dev eth0
ip route add default via 10.0.2.2
echo "E2E-INIT ready"
# From here the console carries only the script's output (a kernel line printed in the
# middle of an E2E-STEP marker would garble it); steps print dmesg where it matters.
dmesg -n 1
sh /e2e/run.sh
echo "E2E-EXIT $?"
halt_vm
`;
}

function hashFiles(files: string[]): string {
  const h = crypto.createHash('sha256');
  for (const f of files) {
    const st = fs.statSync(f);
    h.update(`${f}\0${st.size}\0${st.mtimeMs}\0`);
  }
  return h.digest('hex');
}

/**
 * The cached VM for these host tools and this builder (its compiled source is part of the
 * key), building it when missing. The kernel .deb is kept; other stale images are removed.
 */
export function vmImage(cacheRoot: string, log: (s: string) => void): VmImage {
  fs.mkdirSync(cacheRoot, { recursive: true });
  const deb = kernelDeb(cacheRoot, log);
  const programs = GUEST_PROGRAMS.map((p) => {
    const found = hostProgram(p);
    if (!found) throw new Error(`${p} not found on the host (${APT_HINT})`);
    return found;
  });
  const libs = [...new Set(programs.flatMap(sharedLibraries))].sort();
  const key = crypto
    .createHash('sha256')
    .update(fs.readFileSync(__filename))
    .update(fs.readFileSync(path.join(__dirname, 'cpio.js')))
    .update(hashFiles([deb, ...programs, ...libs]))
    .digest('hex')
    .slice(0, 16);
  const dir = path.join(cacheRoot, `vm-${key}`);
  const at = (meta: { kernelRelease: string; kernelPackage: string }): VmImage => ({
    kernel: path.join(dir, 'vmlinuz'),
    initrd: path.join(dir, 'initrd.gz'),
    ...meta,
  });
  if (fs.existsSync(path.join(dir, 'image.json'))) return at(JSON.parse(fs.readFileSync(path.join(dir, 'image.json'), 'utf8')));

  log(`building the VM image in ${dir}`);
  const t0 = Date.now();
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'e2e-vm-build-'));
  try {
    execFileSync('dpkg-deb', ['-x', deb, work]);
    const vmlinuz = fs.readdirSync(path.join(work, 'boot')).find((f) => f.startsWith('vmlinuz-'));
    if (!vmlinuz) throw new Error(`${deb} holds no boot/vmlinuz-*`);
    const kernelRelease = vmlinuz.slice('vmlinuz-'.length);
    const modulesDir = path.join(work, 'lib', 'modules', kernelRelease);
    const modules = moduleLoadOrder(modulesDir, GUEST_MODULES);

    const entries: CpioEntry[] = [];
    const dirs = new Set<string>();
    const addDir = (d: string) => {
      const parts = d.split('/').filter(Boolean);
      for (let i = 1; i <= parts.length; i++) {
        const p = parts.slice(0, i).join('/');
        if (dirs.has(p)) continue;
        dirs.add(p);
        entries.push({ name: p, mode: S_IFDIR | 0o755 });
      }
    };
    const files = new Map<string, CpioEntry>();
    const addFile = (name: string, data: Buffer, mode: number) => {
      addDir(path.dirname(name));
      files.set(name, { name, mode: S_IFREG | mode, data });
    };
    // Mirror the host's merged-/usr links, so every path ldd printed resolves the same way.
    const links: CpioEntry[] = [];
    for (const top of ['bin', 'sbin', 'lib', 'lib64']) {
      const p = `/${top}`;
      if (fs.existsSync(p) && fs.lstatSync(p).isSymbolicLink()) {
        links.push({ name: top, mode: S_IFLNK | 0o777, data: Buffer.from(fs.readlinkSync(p)) });
        dirs.add(top);
      }
    }
    entries.push(...links);
    // A file goes under its directory's real path, with its own (possibly versioned) name,
    // holding the contents of what the name resolves to.
    const inGuest = (p: string) => path.join(fs.realpathSync(path.dirname(p)), path.basename(p)).slice(1);
    for (const p of [...programs, ...libs]) addFile(inGuest(p), fs.readFileSync(p), 0o755);
    const mke2fs = inGuest(programs[GUEST_PROGRAMS.indexOf('mke2fs')]);
    entries.push({ name: path.join(path.dirname(mke2fs), 'mkfs.ext4'), mode: S_IFLNK | 0o777, data: Buffer.from('mke2fs') });
    const busybox = inGuest(programs[GUEST_PROGRAMS.indexOf('busybox')]);
    entries.push({ name: path.join(path.dirname(busybox), 'sh'), mode: S_IFLNK | 0o777, data: Buffer.from('busybox') });
    if (fs.existsSync('/etc/mke2fs.conf')) addFile('etc/mke2fs.conf', fs.readFileSync('/etc/mke2fs.conf'), 0o644);
    for (const m of modules) addFile(`lib/modules/${kernelRelease}/${m}`, fs.readFileSync(path.join(modulesDir, m)), 0o644);
    addFile('etc/passwd', Buffer.from('root:x:0:0:root:/root:/bin/sh\n'), 0o644);
    addFile('etc/group', Buffer.from('root:x:0:\n'), 0o644);
    addFile('init', Buffer.from(initScript(kernelRelease, modules)), 0o755);
    // The kernel opens /dev/console before /init runs (devtmpfs is mounted later).
    addDir('dev');
    entries.push({ name: 'dev/console', mode: S_IFCHR | 0o600, rdevMajor: 5, rdevMinor: 1 });
    for (const d of ['proc', 'sys', 'run', 'tmp', 'mnt', 'root', 'var/lib/iscsi', 'etc/iscsi']) addDir(d);
    entries.push(...files.values());

    const initrd = zlib.gzipSync(cpioNewc(entries), { level: 6 });
    const tmpDir = path.join(cacheRoot, `tmp-${key}-${process.pid}`);
    fs.rmSync(tmpDir, { recursive: true, force: true });
    fs.mkdirSync(tmpDir, { recursive: true });
    fs.copyFileSync(path.join(work, 'boot', vmlinuz), path.join(tmpDir, 'vmlinuz'));
    fs.writeFileSync(path.join(tmpDir, 'initrd.gz'), initrd);
    const meta = { kernelRelease, kernelPackage: path.basename(deb) };
    fs.writeFileSync(path.join(tmpDir, 'image.json'), JSON.stringify(meta, null, 2));
    for (const old of fs.readdirSync(cacheRoot)) {
      // Older images, and builds a killed run left behind.
      if (old.startsWith('vm-') || (old.startsWith('tmp-') && path.join(cacheRoot, old) !== tmpDir)) {
        fs.rmSync(path.join(cacheRoot, old), { recursive: true, force: true });
      }
    }
    fs.renameSync(tmpDir, dir);
    log(
      `built in ${((Date.now() - t0) / 1000).toFixed(1)} s: kernel ${kernelRelease}, initramfs ${(initrd.length / 1048576).toFixed(1)} MiB, ` +
        `${modules.length} modules (${modules.map((m) => modName(path.basename(m))).join(' ')})`,
    );
    return at(meta);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
