// Start a real TargetServer on a loopback port for tests.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import type { Config, TargetConfig, VolumeConfig } from '../../src/config/model';
import { TargetServer, type ServerOptions } from '../../src/iscsi/server';

export const TARGET = 'iqn.2026-11.io.iscsi-target:test';

export interface TestTarget {
  server: TargetServer;
  host: string;
  port: number;
  dir: string;
  stop(): Promise<void>;
}

export function memoryVolume(name: string, size: number, extra: Partial<VolumeConfig> = {}): VolumeConfig {
  return { name, size, readonly: false, blockSize: 512, memory: true, shared: false, ...extra };
}

export function fileVolume(name: string, file: string, size: number, extra: Partial<VolumeConfig> = {}): VolumeConfig {
  return { name, path: file, size, readonly: false, blockSize: 512, memory: false, shared: false, ...extra };
}

/** A target on 127.0.0.1 with an ephemeral port. Default: one 64 MiB memory volume as LUN 0. */
export async function startTarget(
  opts: {
    volumes?: VolumeConfig[];
    targets?: TargetConfig[];
    server?: Partial<ServerOptions>;
    /** More of the config (discovery, security, limits ...). */
    config?: Partial<Config>;
  } = {},
): Promise<TestTarget> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'iscsi-target-test-'));
  const volumes = opts.volumes ?? [memoryVolume('vol0', 64 * 1024 * 1024)];
  const targets = opts.targets ?? [{ iqn: TARGET, luns: new Map([[0, volumes[0].name]]), acls: [] }];
  const config: Config = {
    source: path.join(dir, 'iscsi-target.yaml'),
    portals: [{ host: '127.0.0.1', port: 0 }],
    volumes: new Map(volumes.map((v) => [v.name, v])),
    targets,
    ...opts.config,
  };
  const logger = pino({ level: process.env.TEST_LOG_LEVEL ?? 'silent' });
  const server = await TargetServer.start({ config, logger, ...opts.server });
  const { host, port } = server.addresses[0];
  return {
    server,
    host,
    port,
    dir,
    async stop() {
      await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
