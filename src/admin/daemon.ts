// What `serve` adds around a running TargetServer for issue 5: the control socket, SIGHUP
// reload and the metrics endpoint.
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { TargetServer } from '../iscsi/server';
import { startControlServer } from './control-socket';
import { ConfigController } from './controller';
import { TargetMetrics } from './metrics';

export interface AdminHandle {
  socketPath?: string;
  close(): Promise<void>;
}

export async function startAdmin(server: TargetServer, configFile: string | undefined, logger: Logger): Promise<AdminHandle> {
  const metrics = new TargetMetrics(server);
  const config = server.currentConfig;
  if (config.metrics) {
    server.observer = metrics;
    await metrics.listen(config.metrics.listen, logger);
  }
  if (!configFile) {
    logger.info('no config file: no control socket (volume, acl, ... commands edit a config file)');
    return { close: () => metrics.close() };
  }
  const controller = new ConfigController(server, path.resolve(configFile), logger);
  controller.onMetricsChanged = async (next) => {
    if (next.metrics) {
      server.observer = metrics;
      await metrics.listen(next.metrics.listen, logger);
    } else {
      server.observer = undefined;
      await metrics.close();
    }
  };
  const control = await startControlServer(controller, logger);
  logger.info({ socket: control.path }, 'control socket listening');
  const onHup = () => {
    logger.info('SIGHUP: reloading the config');
    void controller.reload().then((r) => {
      if (!r.ok) {
        logger.error({ errors: 'errors' in r ? r.errors : undefined }, `reload refused: ${r.message}`);
      }
    });
  };
  process.on('SIGHUP', onHup);
  return {
    socketPath: control.path,
    async close() {
      process.off('SIGHUP', onHup);
      await control.close();
      await metrics.close();
    },
  };
}
