import assert from 'node:assert/strict';
import { NodeMapMismatch } from '../allocator/node-map';
import { createLogger } from '../kernel/logger';
import { openStores } from '../server/clients';
import { testConfig, uniqueName } from './helpers/config';
import { dropNamespace } from './helpers/inventory';
import { RedisNode, startRedisNode } from './helpers/redis-node';

/**
 * Plain multi-node mode records its node map at first start; a process configured with another
 * node list or shard count refuses to start instead of reading shards from the wrong nodes.
 */
describe('node map guard (plain multi-node mode)', function () {
  this.timeout(30_000);
  const name = uniqueName('nodemap');
  const logger = createLogger('silent');
  let second: RedisNode;

  before(async () => {
    second = await startRedisNode();
  });
  after(async () => {
    await dropNamespace(testConfig(name));
    await second?.stop();
  });

  async function open(overrides: Record<string, string> = {}): Promise<void> {
    const stores = await openStores(testConfig(name, overrides), logger, { etcd: false, scripts: false });
    await stores.close();
  }

  it('records the map at first start and starts again with the same one', async () => {
    await open();
    await open();
  });

  it('refuses another shard count, naming both', async () => {
    const stack = testConfig(name).redisNodes.join(',');
    await assert.rejects(open({ REDIS_SHARDS: '32' }), (err: unknown) => {
      assert.ok(err instanceof NodeMapMismatch, String(err));
      assert.match(err.message, new RegExp(`recorded at first start: REDIS_NODES=${stack} REDIS_SHARDS=16; configured now: REDIS_NODES=${stack} REDIS_SHARDS=32`));
      return true;
    });
  });

  it('refuses a node added to the list, and leaves the new node unmarked', async () => {
    const stack = testConfig(name).redisNodes.join(',');
    await assert.rejects(open({ REDIS_NODES: `${stack},${second.address}` }), (err: unknown) => {
      assert.ok(err instanceof NodeMapMismatch, String(err));
      assert.match(err.message, new RegExp(`configured now: REDIS_NODES=${stack},${second.address} REDIS_SHARDS=16`));
      return true;
    });
    // Refused before anything was written: the added node holds no record of the rejected map.
    const { default: Redis } = await import('ioredis');
    const [host, port] = second.address.split(':');
    const redis = new Redis({ host, port: Number(port) });
    assert.equal(await redis.get(`${name}:nodemap`), null);
    redis.disconnect();
  });
});
