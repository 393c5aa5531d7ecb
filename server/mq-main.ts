import { loadConfigOrExit } from './config';
import { startStockConsumer } from './mq-runner';
import { createLogger } from '../kernel/logger';
import { stopOnSignals } from './stop-signals';

/**
 * The stock-message consumer as a process of its own: `node dist/server/mq-main.js`, configured by
 * the same environment as the server. The server starts one as its child (MQ_CONSUMER=process);
 * on other hosts it can run on its own (MQ_CONSUMER=off on the servers). Any number may run on one
 * queue. If its applier cannot be built at start (MySQL unreachable) it exits 1 and its supervisor
 * starts it again; messages wait in the queue. Started by a server, it exits when that server is
 * gone.
 */
async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config.logLevel).child({ role: 'stock-consumer' });
  const running = await startStockConsumer(config, logger);

  const stop = stopOnSignals(logger, 'stock consumer process', () => running.stop());
  if (process.send) {
    const parent = process.ppid;
    setInterval(() => process.ppid !== parent && stop('parent gone'), 1000).unref();
  }
}

main().catch((err) => {
  process.stderr.write(`stock consumer failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
