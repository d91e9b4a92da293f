// What `serve` adds around a running TargetServer for issue 5: the control socket, SIGHUP
// reload and the metrics endpoint.
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { ConfigIssue } from '../config/load';
import type { TargetServer } from '../iscsi/server';
import { startControlServer } from './control-socket';
import { ConfigController } from './controller';
import { TargetMetrics } from './metrics';
import { monotonicUsec, sdNotify } from './sd-notify';

export interface AdminHandle {
  socketPath?: string;
  close(): Promise<void>;
}

/**
 * `configFile` is the file the daemon serves; with `builtIn` it is the file the CLI commands
 * would look for (./iscsi-target.yaml), so that `status` finds the daemon while changes are
 * refused with an explanation instead of "no daemon is running". `warnings` are those serve
 * found loading the config, so that a change reports only the warnings it brings.
 */
export async function startAdmin(
  server: TargetServer,
  configFile: string,
  logger: Logger,
  opts: { builtIn?: boolean; warnings?: ConfigIssue[] } = {},
): Promise<AdminHandle> {
  const builtIn = opts.builtIn ?? false;
  // The counters are kept always (`top`, `stats`); the HTTP endpoint only when configured.
  const metrics = new TargetMetrics(server);
  server.observer = metrics;
  const config = server.currentConfig;
  if (config.metrics) await metrics.listen(config.metrics.listen, logger);
  const controller = new ConfigController(server, path.resolve(configFile), logger, builtIn, opts.warnings);
  controller.metrics = metrics;
  controller.onMetricsChanged = async (next) => {
    if (next.metrics) await metrics.listen(next.metrics.listen, logger);
    else await metrics.close();
  };
  const control = await startControlServer(controller, logger);
  logger.info({ socket: control.path }, 'control socket listening');
  const onHup = () => {
    if (builtIn) {
      logger.warn('SIGHUP: serving the built-in default, there is no config file to reload');
      return;
    }
    logger.info('SIGHUP: reloading the config');
    sdNotify(`RELOADING=1\nSTATUS=reloading the config\nMONOTONIC_USEC=${monotonicUsec()}`);
    controller.reload().then(
      (r) => {
        if (!r.ok) {
          logger.error({ errors: 'errors' in r ? r.errors : undefined }, `reload refused: ${r.message}`);
        }
        sdNotify(`READY=1\nSTATUS=${r.ok ? 'config reloaded' : `reload refused (${r.message}); serving the previous config`}`);
      },
      (err: unknown) => {
        logger.error({ err }, 'reload failed');
        sdNotify('READY=1\nSTATUS=reload failed; serving the previous config');
      },
    );
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
