/**
 * Stock for the benchmark, in a namespace of its own (Redis key prefix and etcd prefix), created
 * through the same calls the tests and the demo data use: `registry.putSku` then
 * `partitions.create` (Redis first, then the registry). Many SKUs are seeded concurrently.
 */
import { Etcd3 } from 'etcd3';
import { RedisGateway } from '../allocator/gateway';
import { PartitionCreator } from '../allocator/partitions';
import { shardsFromConfig } from '../server/clients';
import { createEtcdClient } from '../registry/etcd';
import { Registry } from '../registry/registry';
import { Config } from '../server/config';
import { createLogger } from '../kernel/logger';
import { redisLayout, withRedisNode } from './redis-nodes';

export interface SeedSku {
  readonly sku: string;
  readonly units: number;
  readonly partitions: number;
  readonly perUserLimit?: number;
}

export interface SeedReport {
  readonly skus: number;
  readonly partitions: number;
  readonly units: number;
  readonly ms: number;
}

export async function seedInventory(
  config: Config,
  skus: readonly SeedSku[],
  options: { concurrency?: number; onProgress?: (done: number, total: number) => void } = {},
): Promise<SeedReport> {
  const started = performance.now();
  const shards = shardsFromConfig(config, { commandTimeoutMs: 10_000 });
  const etcd = createEtcdClient(config.etcdEndpoints);
  try {
    await shards.connect();
    const gateway = new RedisGateway(shards);
    const registry = new Registry(etcd, config.etcdNamespace, createLogger('silent'), { callTimeoutMs: 30_000 });
    const creator = new PartitionCreator(gateway, registry);
    let next = 0;
    let done = 0;
    const worker = async () => {
      while (next < skus.length) {
        const s = skus[next++];
        await registry.putSku(s.sku, { perUserLimit: s.perUserLimit ?? 0 });
        await creator.create(s.sku, s.units, s.partitions);
        done++;
        if (done % 100 === 0 || done === skus.length) options.onProgress?.(done, skus.length);
      }
    };
    await Promise.all(Array.from({ length: Math.min(options.concurrency ?? 32, skus.length) }, worker));
    return {
      skus: skus.length,
      partitions: skus.reduce((a, s) => a + s.partitions, 0),
      units: skus.reduce((a, s) => a + s.units, 0),
      ms: performance.now() - started,
    };
  } finally {
    await shards.close();
    etcd.close();
  }
}

/** Deletes every Redis key under the prefix (on every node) and every etcd key under the namespace. */
export async function dropInventory(config: Config): Promise<void> {
  await dropRedisPrefix(config);
  await dropEtcdNamespace(config.etcdEndpoints, config.etcdNamespace);
}

/** Deletes every etcd key under a namespace (a key prefix). */
export async function dropEtcdNamespace(endpoints: readonly string[], namespace: string): Promise<void> {
  const etcd = new Etcd3({ hosts: [...endpoints] });
  try {
    await etcd.namespace(namespace).delete().all();
  } finally {
    etcd.close();
  }
}

/** Deletes every Redis key under the prefix on every node that holds keys (the plain nodes, or the cluster's masters). */
export async function dropRedisPrefix(config: Config): Promise<void> {
  for (const node of (await redisLayout(config)).masters) {
    await withRedisNode(node, async (redis) => {
      let cursor = '0';
      let rounds = 0;
      do {
        const [nextCursor, keys] = await redis.scan(cursor, 'MATCH', `${config.redisPrefix}:*`, 'COUNT', 5000);
        // One UNLINK per key: a cluster node refuses one naming keys of several slots (CROSSSLOT).
        const unlinks = redis.pipeline();
        for (const key of keys) unlinks.unlink(key);
        if (keys.length) await unlinks.exec();
        cursor = nextCursor;
      } while (cursor !== '0' && ++rounds < 100_000);
    });
  }
}
