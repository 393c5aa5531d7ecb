import { Etcd3 } from 'etcd3';
import { RedisGateway } from '../allocator/gateway';
import { PartitionCreator } from '../allocator/partitions';
import { ReservationService } from '../allocator/reservations';
import { RedisShards } from '../allocator/shards';
import { Sweeper } from '../allocator/sweeper';
import { RegistryCache } from '../registry/cache';
import { createEtcdClient } from '../registry/etcd';
import { Registry } from '../registry/registry';
import { RegistryWriteQueue } from '../registry/write-queue';
import { InventoryHandlers } from './app';
import { Config } from './config';
import { inventoryHandlers } from './inventory-service';
import { Logger } from './logger';
import { Metrics } from './metrics';

/**
 * Everything one server process runs, built from the configuration: the Redis shards, the etcd
 * registry and its watched cache, the reservation service and the sweeper. Each dependency is
 * created here once and injected, so tests build the same graph against their own namespaces.
 */
export interface Services {
  readonly shards: RedisShards;
  readonly gateway: RedisGateway;
  readonly etcd: Etcd3;
  readonly registry: Registry;
  readonly registryWrites: RegistryWriteQueue;
  readonly cache: RegistryCache;
  readonly reservations: ReservationService;
  readonly partitions: PartitionCreator;
  readonly sweeper: Sweeper;
  readonly inventory: InventoryHandlers;
  /** Stops the background work and closes every client, in order. */
  readonly closers: Array<() => Promise<void>>;
}

export async function createServices(config: Config, logger: Logger, metrics: Metrics): Promise<Services> {
  const shards = new RedisShards({
    nodes: config.redisNodes,
    prefix: config.redisPrefix,
    shardCount: config.redisShards,
    commandTimeoutMs: config.redisCommandTimeoutMs,
  });
  const etcd = createEtcdClient(config.etcdEndpoints);
  const closeClients = async () => {
    await shards.close();
    etcd.close();
  };
  try {
    await shards.connect();
    const gateway = new RedisGateway(shards);
    const registry = new Registry(etcd, config.etcdNamespace, logger);
    const registryWrites = new RegistryWriteQueue(registry, logger);
    const cache = new RegistryCache(etcd, config.etcdNamespace, logger);
    cache.on('error', (err) => logger.warn({ err }, 'registry cache: watch failed; re-listing'));
    await cache.start();
    metrics.observeRegistry(cache);

    const reservations = new ReservationService(gateway, cache, registryWrites, config, logger);
    const sweeper = new Sweeper(gateway, reservations, { intervalMs: config.sweepIntervalMs, recoveryGraceMs: config.recoveryGraceMs }, logger, (kind, n) =>
      metrics.swept.labels(kind).inc(n),
    );
    sweeper.start();

    return {
      shards,
      gateway,
      etcd,
      registry,
      registryWrites,
      cache,
      reservations,
      partitions: new PartitionCreator(gateway, registryWrites),
      sweeper,
      inventory: inventoryHandlers(reservations, config, metrics),
      closers: [
        () => sweeper.stop(),
        () => registryWrites.drain().catch((err) => logger.warn({ err }, 'registry writes left queued at shutdown')),
        () => registryWrites.close(),
        () => cache.stop(),
        closeClients,
      ],
    };
  } catch (err) {
    await closeClients();
    throw err;
  }
}
