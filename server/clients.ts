import { RedisShards, ShardOptions } from '../allocator/shards';
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
    prefix: config.redisPrefix,
    shardCount: config.redisShards,
    commandTimeoutMs: config.redisCommandTimeoutMs,
    autoPipeline: config.redisAutoPipeline,
    ...overrides,
  });
}
