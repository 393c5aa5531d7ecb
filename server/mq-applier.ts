import { StockMessageApplier } from '../mq/apply';
import { StockApplier } from '../mq/types';
import { Logger } from '../kernel/logger';
import { Stores, openStores } from './clients';
import { StockOperator } from '../admin/operator';
import { Config } from './config';
import { buildOperatorGraph } from './operator-graph';

/**
 * The StockApplier of a stock-message consumer running in a process of its own (MQ_CONSUMER=process
 * or `node dist/server/mq-main.js`): its own Redis, MySQL and etcd clients and the operator's graph,
 * nothing of the gRPC server (the operator and stores are handed out too: the event publisher runs
 * beside it, tools seed stock). Rejects when a store cannot be reached at start; the supervisor
 * tries again, and the messages wait in RabbitMQ.
 */
export async function createStockApplier(config: Config, logger: Logger): Promise<{ applier: StockApplier; operator: StockOperator; stores: Stores; close(): Promise<void> }> {
  const stores = await openStores(config, logger, { etcd: true, scripts: true });
  const graph = buildOperatorGraph({ shards: stores.shards, etcd: stores.etcd!, mysql: stores.mysql }, config, logger);
  const applier = new StockMessageApplier({
    pool: stores.mysql,
    operator: graph.operator,
    gateway: graph.gateway,
    registry: graph.operatorRegistry,
    logger,
  });
  return {
    applier,
    operator: graph.operator,
    stores,
    async close() {
      await graph.registryWrites.drain().catch((err) => logger.warn({ err }, 'registry writes left queued at shutdown'));
      await graph.registryWrites.close();
      await stores.close();
    },
  };
}
