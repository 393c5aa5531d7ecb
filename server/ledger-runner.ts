import { Config } from './config';
import { Logger } from '../kernel/logger';
import { shardsFromConfig } from './clients';
import { LedgerWriter } from '../ledger/writer';
import { migrate } from '../store/migrations';
import { createMysqlPool, ensureDatabase } from '../store/mysql';

/**
 * A ledger writer with its own Redis connections and MySQL pool, for a process that runs nothing
 * else of the services (ledger-main, a cluster primary). Rejects when MySQL or Redis cannot be
 * reached at start: the caller exits and its supervisor tries again; records wait in Redis.
 */
export async function startLedgerWriter(config: Config, logger: Logger): Promise<{ stop(): Promise<void> }> {
  const shards = shardsFromConfig(config);
  shards.clients.forEach((client, i) =>
    client.on('error', (err) => logger.warn({ err, node: config.redisNodes[i] }, 'redis connection error; reconnecting')),
  );
  await shards.connect({ scripts: false });
  await ensureDatabase(config.mysqlUrl);
  const pool = createMysqlPool(config.mysqlUrl);
  await migrate(pool, logger);
  const writer = new LedgerWriter(shards, pool, logger);
  await writer.start();
  return {
    async stop() {
      await writer.stop();
      await Promise.all([shards.close(), pool.end()]);
    },
  };
}
