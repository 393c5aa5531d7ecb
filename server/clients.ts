import type { Etcd3 } from 'etcd3';
import type { Pool } from 'mysql2/promise';
import { guardNodeMap } from '../allocator/node-map';
import { RedisShards, ShardOptions } from '../allocator/shards';
import { BreakerState, Breakers, DependencyBreaker } from '../kernel/breaker';
import { Logger } from '../kernel/logger';
import { createEtcdClient } from '../registry/etcd';
import { migrate } from '../store/migrations';
import { createMysqlPool, ensureDatabase } from '../store/mysql';
import { Config } from './config';

/**
 * Clients built from the configuration, for every process that needs them: the server's object
 * graph (services.ts), the ledger writer's own process (ledger-runner.ts), tools and tests. Kept
 * apart from services.ts so that a process needing only Redis loads nothing else of the server.
 */

/** The Redis shards a configuration names (also for tools and tests that need only Redis). */
export function shardsFromConfig(config: Config, overrides: Partial<ShardOptions> = {}): RedisShards {
  return new RedisShards({
    nodes: config.redisNodes,
    cluster: config.redisCluster,
    prefix: config.redisPrefix,
    shardCount: config.redisShards,
    commandTimeoutMs: config.redisCommandTimeoutMs,
    autoPipeline: config.redisAutoPipeline,
    ...overrides,
  });
}

/** The stores a process talks to, connected, with MySQL migrated. */
export interface Stores {
  /** One circuit breaker per dependency node, shared by every client of this process. */
  readonly breakers: Breakers;
  readonly shards: RedisShards;
  readonly mysql: Pool;
  /** Only when asked for (the ledger writer needs no etcd). */
  readonly etcd: Etcd3 | undefined;
  close(): Promise<void>;
}

/**
 * Connects Redis (with the script connections when `scripts`), MySQL (creating the database and
 * applying the migrations) and, when `etcd`, etcd. Rejects, with everything it opened closed again,
 * when one cannot be reached: the caller exits and its supervisor tries again.
 */
export async function openStores(config: Config, logger: Logger, options: { etcd: boolean; scripts: boolean }): Promise<Stores> {
  const breakers = new Breakers(config.breakers);
  breakers.on('change', (breaker, state) => logBreaker(logger, breaker, state));
  const shards = shardsFromConfig(config, { breakers });
  const etcd = options.etcd ? createEtcdClient(config.etcdEndpoints, { breakers }) : undefined;
  let mysql: Pool | undefined;
  const close = async () => {
    await shards.close();
    etcd?.close();
    await mysql?.end();
    breakers.shutdown();
  };
  try {
    // ioredis reconnects by itself; without a listener each failure prints an unhandled-error line.
    const names = config.redisCluster.length > 0 ? [`cluster ${config.redisCluster.join(',')}`] : config.redisNodes;
    shards.clients.forEach((client, i) => client.on('error', (err) => logger.warn({ err, node: names[i] }, 'redis connection error; reconnecting')));
    shards.onPipe((node, pipe) => pipe.on('disconnected', (err) => logger.warn({ err, node }, 'redis script connection lost; reconnecting')));
    await shards.connect({ scripts: options.scripts });
    await guardNodeMap(shards);
    await ensureDatabase(config.mysqlUrl);
    mysql = createMysqlPool(config.mysqlUrl, { breaker: breakers.for('mysql') });
    await migrate(mysql, logger);
    return { breakers, shards, mysql, etcd, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** One line per breaker change: open is an error (calls to it now fail fast), the rest news. */
export function logBreaker(logger: Logger, breaker: DependencyBreaker, state: BreakerState): void {
  const fields = { dependency: breaker.dependency, node: breaker.node, state };
  if (state === 'open') logger.error(fields, `circuit breaker open: calls to ${breaker.dependency} fail fast until a trial call succeeds`);
  else if (state === 'half-open') logger.warn(fields, 'circuit breaker half-open: one trial call decides');
  else logger.info(fields, 'circuit breaker closed: the dependency answers again');
}
