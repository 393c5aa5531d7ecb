import Redis from 'ioredis';
import { loadConfig } from '../../server/config';
import { InventoryFixture, startInventory } from '../helpers/inventory';
import { RedisNode, startRedisNode } from '../helpers/redis-node';
import { TcpProxy } from '../helpers/tcp-proxy';
import { FAULT_ENV, failuresOnly, runScenario, stockSkus } from './scenario';

/**
 * Redis faults under steady Reserve/Confirm/Release load, each on a Redis node or a proxy of the
 * test's own (the shared stack's Redis is never killed): a crash and restart, one of two nodes
 * crashed, the server's connection cut, and a node whose memory is full.
 */
describe('faults: Redis', function () {
  const stackRedis = loadConfig().redisNodes[0];
  const escaped = (address: string) => address.replace(/\./g, '\\.');
  /** A Redis failure answered as the README says: UNAVAILABLE naming the node, or the deadline. */
  const unavailableNaming = (node: string) =>
    new RegExp(`^(UNAVAILABLE/DEPENDENCY_(UNAVAILABLE|TIMEOUT) .*redis ${escaped(node)}|DEADLINE_EXCEEDED/)`);

  it('Redis SIGKILLed and restarted (AOF, appendfsync always)', async () => {
    const node = await startRedisNode({ aof: true });
    const inv = await startInventory('fredis', { ...FAULT_ENV, REDIS_NODES: node.address });
    try {
      const skus = ['fr-a', 'fr-b'];
      await stockSkus(inv, skus);
      await runScenario({
        name: 'Redis SIGKILL, restarted after 3 s (the only node, appendfsync always)',
        inv,
        skus,
        faultMs: 3000,
        inject: () => node.kill(),
        heal: () => node.restart(),
        checks: { 'failures only UNAVAILABLE naming the node or DEADLINE_EXCEEDED': failuresOnly(unavailableNaming(node.address)) },
      });
    } finally {
      await closeAll(inv, node);
    }
  });

  it('one of two Redis nodes SIGKILLed and restarted', async () => {
    const nodeB = await startRedisNode({ aof: true });
    const inv = await startInventory('ftwonodes', { ...FAULT_ENV, REDIS_NODES: `${stackRedis},${nodeB.address}` });
    try {
      const skus = ['f2-a', 'f2-b'];
      await stockSkus(inv, skus);
      await runScenario({
        name: 'one of two Redis nodes SIGKILLed, restarted after 5 s',
        inv,
        skus,
        faultMs: 5000,
        inject: () => nodeB.kill(),
        heal: () => nodeB.restart(),
        checks: { 'failures only UNAVAILABLE naming the dead node or DEADLINE_EXCEEDED': failuresOnly(unavailableNaming(nodeB.address)) },
      });
    } finally {
      await closeAll(inv, nodeB);
    }
  });

  it("the server's Redis connection cut at a TCP proxy", async () => {
    const proxy = await TcpProxy.start(stackRedis);
    const inv = await startInventory('fcut', { ...FAULT_ENV, REDIS_NODES: proxy.address });
    try {
      const skus = ['fc-a', 'fc-b'];
      await stockSkus(inv, skus);
      await runScenario({
        name: "the server's Redis connection cut (proxy resets every connection for 3 s)",
        inv,
        skus,
        faultMs: 3000,
        inject: async () => proxy.pause('reset'),
        heal: async () => proxy.resume(),
        checks: { 'failures only UNAVAILABLE naming the node or DEADLINE_EXCEEDED': failuresOnly(unavailableNaming(proxy.address)) },
      });
    } finally {
      proxy.resume();
      await inv.close();
      await proxy.close();
    }
  });

  it('a Redis node filled to its maxmemory', async () => {
    const node = await startRedisNode({ maxmemory: '64mb' });
    const inv = await startInventory('foom', { ...FAULT_ENV, REDIS_NODES: node.address });
    const [host, port] = node.address.split(':');
    const filler = new Redis({ host, port: Number(port), maxRetriesPerRequest: 1 });
    try {
      const skus = ['fm-a', 'fm-b'];
      await stockSkus(inv, skus);
      let junk = 0;
      await runScenario({
        name: 'a Redis node filled to its maxmemory (64 MB, noeviction) with junk for 4 s, then the junk deleted',
        inv,
        skus,
        faultMs: 4000,
        async inject() {
          // Values of falling size until even a small write is refused: a big value alone meets OOM
          // early, as Redis counts its own request buffer. Then every write of the service is refused too.
          for (const size of [1 << 20, 1 << 16, 1 << 10, 64]) {
            const value = Buffer.alloc(size, 'x');
            for (;;) {
              try {
                await filler.set(`junk:${junk++}`, value);
              } catch (err) {
                if (/OOM/.test((err as Error).message)) break;
                throw err;
              }
            }
          }
        },
        async heal() {
          for (let i = 0; i < junk; i++) await filler.del(`junk:${i}`);
        },
        // A full node refuses writes like a dead one: its breaker opens, and a Reserve whose partitions
        // are all there waits for a top-up onto a node that answers (there is none) up to its deadline.
        checks: {
          'failures only UNAVAILABLE naming the node or DEADLINE_EXCEEDED (never INTERNAL, never REJECTED)': failuresOnly(unavailableNaming(node.address)),
        },
      });
    } finally {
      filler.disconnect();
      await closeAll(inv, node);
    }
  });
});

async function closeAll(inv: InventoryFixture, node: RedisNode): Promise<void> {
  await inv.close();
  await node.stop();
}
