/**
 * Process entry helper of the comparison servers (echo, MySQL baseline): the same start-up and
 * signal handling as server/main.ts, including WORKERS=N with node:cluster, so that the
 * comparison runs with exactly the process layout of the real server.
 */
import cluster from 'node:cluster';
import { App } from '../server/app';
import { Config, loadConfig } from '../server/config';
import { createLogger, Logger } from '../kernel/logger';

export function serve(
  name: string,
  start: (config: Config, logger: Logger) => Promise<App>,
  /** Runs once before any worker starts (in the primary, or in the only process). */
  prepare?: (config: Config, logger: Logger) => Promise<void>,
): void {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const workers = Number(process.env.WORKERS || '1');
  const ready = cluster.isPrimary && prepare ? prepare(config, logger) : Promise.resolve();
  ready.then(
    () => run(name, start, config, logger, workers),
    (err) => {
      process.stderr.write(`${name} failed to prepare: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}

function run(name: string, start: (config: Config, logger: Logger) => Promise<App>, config: Config, logger: Logger, workers: number): void {
  if (workers > 1 && cluster.isPrimary) {
    let stopping = false;
    let live = workers;
    for (let i = 0; i < workers; i++) {
      cluster.fork({ WORKER_INDEX: String(i) }).on('exit', () => {
        live--;
        if (!stopping) stop();
        if (live === 0) process.exit(0);
      });
    }
    const stop = () => {
      stopping = true;
      for (const w of Object.values(cluster.workers ?? {})) if (w && !w.isDead()) w.process.kill('SIGTERM');
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    return;
  }
  start(config, logger).then(
    (app) => {
      logger.info({ server: name, inventoryPort: app.inventoryPort }, `${name} listening`);
      const shutdown = () => app.stop().then(() => process.exit(0), () => process.exit(1));
      process.once('SIGTERM', shutdown);
      process.once('SIGINT', shutdown);
    },
    (err) => {
      process.stderr.write(`${name} failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    },
  );
}
