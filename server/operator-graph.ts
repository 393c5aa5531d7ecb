import type { Etcd3 } from 'etcd3';
import type { Pool } from 'mysql2/promise';
import { StockOperator } from '../admin/operator';
import { OperatorRegistry } from '../admin/types';
import { GatewayOptions, RedisGateway } from '../allocator/gateway';
import { PartitionInspector } from '../allocator/inspector';
import { PartitionCreator } from '../allocator/partitions';
import { RedisShards } from '../allocator/shards';
import { Logger } from '../kernel/logger';
import { Registry } from '../registry/registry';
import { RegistryWriteQueue } from '../registry/write-queue';
import { Config } from './config';

/** The operator's object graph: what AdminService, the top-up and the stock-message consumer share. */
export interface OperatorGraph {
  readonly gateway: RedisGateway;
  readonly inspector: PartitionInspector;
  readonly registry: Registry;
  readonly registryWrites: RegistryWriteQueue;
  /** Reads from the registry itself, writes through the queue that survives etcd outages. */
  readonly operatorRegistry: OperatorRegistry;
  readonly partitions: PartitionCreator;
  readonly operator: StockOperator;
}

/** Builds the operator's graph on connected clients (the server's, or a process of its own: the stock-message consumer's). */
export function buildOperatorGraph(clients: { shards: RedisShards; etcd: Etcd3; mysql: Pool }, config: Config, logger: Logger): OperatorGraph {
  const { shards, etcd, mysql } = clients;
  const gateway = new RedisGateway(shards, gatewayOptions(config));
  const inspector = new PartitionInspector(shards);
  const registry = new Registry(etcd, config.etcdNamespace, logger);
  const registryWrites = new RegistryWriteQueue(registry, logger);
  const operatorRegistry: OperatorRegistry = {
    putSku: (sku, value) => registry.putSku(sku, value),
    getSku: (sku) => registry.getSku(sku),
    listPartitions: (sku) => registry.listPartitions(sku),
    registerPartition: (entry) => registryWrites.registerPartition(entry),
    removePartition: (sku, id, epoch) => registryWrites.removePartition(sku, id, epoch),
  };
  const partitions = new PartitionCreator(gateway, registryWrites);
  const operator = new StockOperator(mysql, gateway, inspector, partitions, operatorRegistry, logger);
  return { gateway, inspector, registry, registryWrites, operatorRegistry, partitions, operator };
}

/** The gateway's settings from the configuration: retention and the filter of forgotten order ids. */
export function gatewayOptions(config: Config): GatewayOptions {
  return {
    retentionSeconds: config.orderRetentionSeconds,
    filter: { bits: config.forgottenFilterBits, horizonMs: config.forgottenHorizonSeconds * 1000 },
  };
}
