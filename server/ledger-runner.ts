import { openStores } from './clients';
import { Config } from './config';
import { Logger } from '../kernel/logger';
import { LedgerWriter } from '../ledger/writer';

/**
 * A ledger writer with its own Redis connections and MySQL pool, for a process that runs nothing
 * else of the services (ledger-main, a cluster primary). Rejects when MySQL or Redis cannot be
 * reached at start: the caller exits and its supervisor tries again; records wait in Redis.
 */
export async function startLedgerWriter(config: Config, logger: Logger): Promise<{ stop(): Promise<void> }> {
  const stores = await openStores(config, logger, { etcd: false, scripts: false });
  const { shards, mysql: pool } = stores;
  const writer = new LedgerWriter(shards, pool, logger);
  await writer.start();
  return {
    async stop() {
      await writer.stop();
      await stores.close();
    },
  };
}
