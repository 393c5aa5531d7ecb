import { ConfigError, loadConfig } from './config';
import { createLogger } from './logger';
import { startApp } from './app';
import { Metrics } from './metrics';
import { createServices } from './services';
import { seedDemo } from './demo';

/** Process entry point: configuration from the environment, the app, and SIGTERM/SIGINT handling. */
async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger(config.logLevel);
  const metrics = new Metrics();
  const services = await createServices(config, logger, metrics);
  if (config.demoData) await seedDemo(services, logger);
  const app = await startApp({ config, logger, metrics, inventory: services.inventory, closers: services.closers });

  const shutdown = (signal: string) => {
    logger.info({ signal }, 'shutting down: draining in-flight calls');
    app.stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => shutdown('SIGTERM'));
  process.once('SIGINT', () => shutdown('SIGINT'));
}

main().catch((err) => {
  process.stderr.write(`inventory core failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
