// The `volumes:` section (and the `ceph:` settings and LUN maps that refer to volumes).
import * as path from 'node:path';
import type { AluaStateName, CephConfig, VolumeConfig } from './model';
import { MAX_GROUP } from '../scsi/alua';
import { formatSize, tryParseSize } from './size';
import { formatWwn, parseWwn, serialProblem } from './identity';
import { parseRbdSpec } from './rbd';
import { Checker, describe, suggest, type Entry } from './checker';
import { isScalar } from 'yaml';
import { ALUA_STATE_NAMES, CEPH_KEYS, VOLUME_KEYS, MAX_LUN } from './keys';

export function parseVolume(c: Checker, ve: Entry, baseDir: string): { volume: VolumeConfig; pathNode?: unknown } | undefined {
  const vm = c.map(ve.value, ve.keyNode, ve.key, `volume ${ve.name}`);
  if (!vm) return undefined;
  const before = c.errors.length;
  const vol: VolumeConfig = { name: ve.name, readonly: false, blockSize: 512, memory: false, shared: false };
  let pathNode: unknown;
  let sizeE: Entry | undefined;
  let memoryE: Entry | undefined;
  let physE: Entry | undefined;
  let encE: Entry | undefined;
  let rbdE: Entry | undefined;
  for (const e of c.entries(vm, ve.key, VOLUME_KEYS)) {
    switch (e.name) {
      case 'path': {
        const p = c.string(e, 'path');
        if (p !== undefined) {
          if (p.trim() === '') c.error(e.value, e.key, 'path cannot be empty');
          else vol.path = path.resolve(baseDir, p);
        }
        pathNode = e.value;
        break;
      }
      case 'size': {
        sizeE = e;
        if (!isScalar(e.value) || e.value.value === null || e.value.value === undefined) {
          c.error(e.value ?? e.keyNode, e.key, `size must be a number of bytes or a size such as 20GiB, not ${describe(e.value)}`);
          break;
        }
        const r = tryParseSize(e.value.value);
        if (!r.ok) c.error(e.value, e.key, r.error);
        else if (r.bytes === 0) c.error(e.value, e.key, 'a volume cannot be 0 bytes');
        else vol.size = r.bytes;
        break;
      }
      case 'readonly': {
        const b = c.bool(e);
        if (b !== undefined) vol.readonly = b;
        break;
      }
      case 'blockSize': {
        const v = isScalar(e.value) ? e.value.value : undefined;
        if (v === 512 || v === 4096) vol.blockSize = v;
        else c.error(e.value ?? e.keyNode, e.key, `blockSize must be 512 or 4096, not ${describe(e.value)}`);
        break;
      }
      case 'physicalBlockSize': {
        physE = e;
        const v = isScalar(e.value) ? e.value.value : undefined;
        if (v === 512 || v === 4096) vol.physicalBlockSize = v;
        else c.error(e.value ?? e.keyNode, e.key, `physicalBlockSize must be 512 or 4096, not ${describe(e.value)}`);
        break;
      }
      case 'encryption': {
        encE = e;
        if (isScalar(e.value) && typeof e.value.value === 'boolean') {
          if (e.value.value) vol.encryption = {};
          break;
        }
        const em = c.map(e.value, e.keyNode, e.key, 'encryption (true, or { keyFile: PATH })');
        if (!em) break;
        vol.encryption = {};
        for (const k of c.entries(em, e.key, ['keyFile'])) {
          const f = c.string(k, 'keyFile');
          if (f !== undefined && f.trim() === '') c.error(k.value, k.key, 'keyFile cannot be empty');
          else if (f !== undefined) vol.encryption.keyFile = path.resolve(baseDir, f);
        }
        break;
      }
      case 'memory': {
        memoryE = e;
        const b = c.bool(e);
        if (b !== undefined) vol.memory = b;
        break;
      }
      case 'rbd': {
        rbdE = e;
        const v = c.string(e, 'rbd');
        if (v === undefined) break;
        const spec = parseRbdSpec(v.trim());
        if ('error' in spec) c.error(e.value, e.key, spec.error);
        else vol.rbd = spec;
        break;
      }
      case 'ceph': {
        const cc = parseCeph(c, e, baseDir);
        if (cc) vol.ceph = cc;
        break;
      }
      case 'shared': {
        const b = c.bool(e);
        if (b !== undefined) vol.shared = b;
        break;
      }
      case 'serial': {
        // A number in YAML (serial: 1234) is meant as its digits.
        const v =
          isScalar(e.value) && typeof e.value.value === 'number' && Number.isInteger(e.value.value)
            ? String(e.value.source ?? e.value.value)
            : c.string(e, 'serial');
        if (v === undefined) break;
        const problem = serialProblem(v);
        if (problem) c.error(e.value, e.key, problem);
        else vol.serial = v;
        break;
      }
      case 'owner': {
        const v = isScalar(e.value) ? e.value.value : undefined;
        if (typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_GROUP) vol.owner = v;
        else c.error(e.value ?? e.keyNode, e.key, `owner must be a gateway's group number (1..${MAX_GROUP}), not ${describe(e.value)}`);
        break;
      }
      case 'others': {
        const v = c.string(e, 'others');
        if (v === undefined) break;
        if ((ALUA_STATE_NAMES as readonly string[]).includes(v)) vol.others = v as AluaStateName;
        else c.error(e.value, e.key, `others must be one of ${ALUA_STATE_NAMES.join(', ')}, not ${JSON.stringify(v)}`);
        break;
      }
      case 'wwn': {
        const v = c.string(e, 'wwn');
        if (v === undefined) break;
        const naa = parseWwn(v);
        if (!Buffer.isBuffer(naa)) c.error(e.value, e.key, naa.error);
        else vol.wwn = formatWwn(naa);
        break;
      }
    }
  }
  const hasPath = pathNode !== undefined;
  const hasRbd = rbdE !== undefined;
  if (hasPath && vol.memory) {
    c.error(memoryE!.keyNode, memoryE!.key, `volume ${ve.name} has both path and memory: true; give exactly one`);
  } else if (hasRbd && (hasPath || vol.memory)) {
    c.error(rbdE!.keyNode, rbdE!.key, `volume ${ve.name} has rbd and ${hasPath ? 'path' : 'memory: true'}; give exactly one`);
  } else if (!hasPath && !hasRbd && !vol.memory && !(memoryE && c.errors.length > before)) {
    c.error(ve.keyNode, ve.key, `volume ${ve.name} needs a path (file or block device), rbd: POOL/IMAGE or memory: true`);
  }
  if (hasRbd && vol.encryption) {
    c.error(encE!.keyNode, encE!.key, `volume ${ve.name}: encryption is not supported on RBD volumes yet`);
  }
  if (vol.memory && sizeE === undefined) {
    c.error(memoryE!.keyNode, ve.key, `memory volume ${ve.name} needs a size (e.g. size: 64MiB)`);
  }
  if (vol.size !== undefined && vol.size % vol.blockSize !== 0) {
    c.error(sizeE!.value, sizeE!.key, `${formatSize(vol.size)} (${vol.size} bytes) is not a multiple of the block size ${vol.blockSize}`);
  }
  if (vol.physicalBlockSize !== undefined && vol.physicalBlockSize < vol.blockSize) {
    c.error(physE!.value, physE!.key, `physicalBlockSize ${vol.physicalBlockSize} is smaller than the block size ${vol.blockSize}`);
  }
  if (vol.memory && vol.encryption?.keyFile !== undefined) {
    c.error(encE!.value, encE!.key, `memory volume ${ve.name} keeps its key in memory; leave keyFile out`);
  }
  if (c.errors.length > before) return undefined;
  return { volume: vol, pathNode };
}

/** `ceph: { conf: PATH, user: NAME }`, top level or in a volume. */
export function parseCeph(c: Checker, e: Entry, baseDir: string): CephConfig | undefined {
  if (c.isEmpty(e.value)) return {};
  const m = c.map(e.value, e.keyNode, e.key, 'ceph ({ conf: /etc/ceph/ceph.conf, user: admin })');
  if (!m) return undefined;
  const out: CephConfig = {};
  for (const k of c.entries(m, e.key, CEPH_KEYS)) {
    const v = c.string(k, k.name);
    if (v === undefined) continue;
    if (v.trim() === '') c.error(k.value, k.key, `${k.name} cannot be empty`);
    else if (k.name === 'conf') out.conf = path.resolve(baseDir, v);
    else if (k.name === 'user') {
      if (/^client\./.test(v) || !/^[A-Za-z0-9._-]+$/.test(v)) {
        c.error(k.value, k.key, `user is a cephx name without "client." (e.g. admin, iscsi), not ${JSON.stringify(v)}`);
      } else out.user = v;
    }
  }
  return out;
}

export function parseLuns(c: Checker, e: Entry, declaredVolumes: Set<string>): Map<number, string> | undefined {
  const luns = new Map<number, string>();
  if (c.isEmpty(e.value)) return luns;
  const m = c.map(e.value, e.keyNode, e.key, 'luns');
  if (!m) return undefined;
  const before = c.errors.length;
  for (const le of c.entries(m, e.key)) {
    const n = Number(le.name);
    if (!/^\d+$/.test(le.name.trim()) || !Number.isInteger(n) || n < 0 || n > MAX_LUN) {
      c.error(le.keyNode, le.key, `${JSON.stringify(le.name)} is not a LUN number (0..${MAX_LUN})`);
      continue;
    }
    if (luns.has(n)) {
      c.error(le.keyNode, le.key, `LUN ${n} is listed twice`);
      continue;
    }
    const vol = c.string(le, "a LUN's volume");
    if (vol === undefined) continue;
    if (!declaredVolumes.has(vol)) {
      const known = [...declaredVolumes];
      c.error(
        le.value,
        le.key,
        `volume ${JSON.stringify(vol)} is not defined under volumes${suggest(vol, known)}${known.length ? `; defined: ${known.join(', ')}` : ''}`,
      );
      continue;
    }
    luns.set(n, vol);
  }
  return c.errors.length > before ? undefined : luns;
}
