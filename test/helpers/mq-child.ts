/**
 * A stock-message consumer in a process of its own, for the test that kills it with SIGKILL between
 * the MySQL commit of a message and its acknowledgement. Configured by the environment like the
 * server (REDIS_PREFIX, MYSQL_URL, ETCD_NAMESPACE, AMQP_URL, MQ_*), plus MQ_STALL_MESSAGE: once the
 * applier has committed that message it prints `{"event":"committed"}` and hangs there, before the
 * consumer could acknowledge it, until it is killed. Prints `{"event":"started"}` when consuming.
 */
import { createLogger } from '../../kernel/logger';
import { StockConsumer } from '../../mq/consumer';
import { StockApplier } from '../../mq/types';
import { loadConfig } from '../../server/config';
import { createStockApplier } from '../../server/mq-applier';
import { stockConsumerOptions } from '../../server/mq-options';

async function main(): Promise<void> {
  const config = loadConfig();
  const logger = createLogger(config.logLevel);
  const { applier } = await createStockApplier(config, logger);
  const stalling: StockApplier = {
    ready: () => applier.ready(),
    async apply(update) {
      const outcome = await applier.apply(update);
      if (update.messageId === process.env.MQ_STALL_MESSAGE) {
        process.stdout.write(`${JSON.stringify({ event: 'committed', outcome })}\n`);
        await new Promise(() => {});
      }
      return outcome;
    },
  };
  const consumer = new StockConsumer(stockConsumerOptions(config), stalling, logger);
  consumer.once('consuming', () => process.stdout.write(`${JSON.stringify({ event: 'started' })}\n`));
  await consumer.start();
}

main().catch((err) => {
  process.stderr.write(`mq child failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
