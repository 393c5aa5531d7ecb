import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import { Etcd3 } from 'etcd3';
import { InventoryServiceClient, ReserveRequest } from '../gen/inventory/v1/inventory.pb';
import { createLogger } from '../kernel/logger';
import { RegistryCache } from '../registry/cache';
import { createEtcdClient } from '../registry/etcd';
import { Registry } from '../registry/registry';
import { uniqueName } from './helpers/config';
import { EtcdCluster, EtcdMember, startEtcdCluster } from './helpers/etcd-cluster';
import { unary } from './helpers/grpc';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { checkSale, runSale } from './helpers/sale';
import { ServerProcess, spawnServerBeside } from './helpers/server-process';

/**
 * The registry on a 3-member etcd cluster of the test's own (never the shared stack's), with
 * members SIGKILLed under it: a leader killed mid-sale, the member serving the cache's watch
 * killed, a member left without a leader.
 */
describe('etcd cluster: leader change and member loss', function () {
  this.timeout(60_000);
  const logger = createLogger((process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent');
  let cluster: EtcdCluster;
  /** Closed after each test. */
  let cleanup: Array<() => unknown>;

  before(async () => {
    cluster = await startEtcdCluster();
  });
  after(() => cluster?.stop());
  beforeEach(() => (cleanup = []));
  afterEach(async () => {
    for (const close of cleanup.reverse()) await close();
    // Every member runs again for the next test.
    for (const m of cluster.members) if (!m.running) await m.restart();
  });

  const fastClient = { reconnectBackoffMaxMs: 200, callTimeoutMs: 2000 };

  function client(endpoints: string[], options: { requireLeader?: boolean } = {}): Etcd3 {
    const etcd = createEtcdClient(endpoints, { ...fastClient, ...options });
    cleanup.push(() => etcd.close());
    return etcd;
  }

  async function startCache(etcd: Etcd3, ns: string): Promise<RegistryCache> {
    const cache = new RegistryCache(etcd, ns, logger, { resyncBackoffMs: 50, maxResyncBackoffMs: 500 });
    cleanup.push(() => cache.stop());
    await cache.start();
    await waitFor(() => cache.staleness() === 0, 5000, 'watch live');
    return cache;
  }

  /** A partition registration for cache-level tests (the registry does not look at Redis). */
  const partition = (sku: string, partitionId: string) => ({ sku, partitionId, node: '127.0.0.1:6390', shard: 1, epoch: 1, createdAt: Date.now() });

  it('a watch on a member left without a leader ends (require-leader): the cache reports itself stale, then catches up', async () => {
    const ns = `/${uniqueName('lone')}/`;
    const [lone, ...others] = cluster.members;
    const cache = await startCache(client([lone.clientUrl]), ns);
    await Promise.all(others.map((m) => m.kill()));
    // etcd ends require-leader streams after 3 election timeouts (3 x 500 ms here) without a leader;
    // without the metadata the watch stays open on the lone member and the cache claims to be live.
    await waitFor(() => cache.staleness() > 0, 10_000, 'the cache to see its watch end');
    await Promise.all(others.map((m) => m.restart()));
    await new Registry(client(others.map((m) => m.clientUrl)), ns, logger).registerPartition(partition('s', 'p1'));
    await waitFor(() => cache.partitions('s').length === 1 && cache.staleness() === 0, 10_000, 'the cache to catch up');
  });

  it('the member serving the watch SIGKILLed while writes go on: the watch resumes on another member and misses none', async () => {
    const ns = `/${uniqueName('resume')}/`;
    const cache = await startCache(client(cluster.endpoints), ns);
    let relists = 0;
    cache.on('reloaded', () => relists++);
    const serving = await watchedMember();
    const writer = new Registry(client(cluster.endpoints), ns, logger);
    const written: string[] = [];
    let writing = true;
    const writes = (async () => {
      for (let i = 0; writing; i++) {
        // A write lost to the kill is tried again: what counts is that every written one arrives.
        await writer.registerPartition(partition('s', `p${i}`)).then(() => written.push(`p${i}`), () => sleep(50));
      }
    })();
    await waitFor(() => written.length >= 20, 10_000, 'writes before the kill');
    await serving.kill();
    await waitFor(() => written.length >= 60, 15_000, 'writes after the kill');
    writing = false;
    await writes;
    await waitFor(() => cache.partitions('s').length === written.length, 10_000, `the cache to hold all ${written.length} partitions`);
    assert.deepEqual(cache.partitions('s').map((p) => p.partitionId).sort(), [...written].sort());
    assert.notEqual(await watchedMember(), serving, 'the watch moved to another member');
    assert.equal(relists, 0, 'resumed from its revision, not re-listed');
  });

  it('the leader SIGKILLed mid-sale: both servers keep selling, exactly the stock is sold, registry changes still reach them', async () => {
    const endpoints = { ETCD_ENDPOINTS: cluster.endpoints.join(',') };
    const inv = await startInventory('etcdsale', endpoints);
    cleanup.push(() => inv.close());
    const second = await spawnServerBeside(inv.config, endpoints);
    cleanup.push(() => second.stop());
    const sku = 'hot';
    await inv.services.operator.setStock('set-1', sku, 2000, 'count');
    await inv.services.operator.preallocate('pre-1', sku, 1000, 8);
    await waitFor(() => inv.services.cache.partitions(sku).length === 8);
    await waitFor(async () => (await partitionsSeenBy(second, sku)) === 8, 5000, 'the second server to see the partitions');

    // Two members of three answer throughout: health must not call etcd down.
    const health: string[] = [];
    inv.services.health.on('change', (report) => health.push(...report.degraded.filter((line) => line.includes('etcd'))));
    let killed: EtcdMember | undefined;
    let midSale = false;
    const here = runSale(inv, sku, 'here', {
      orders: 3000,
      callers: 100,
      during: async (running) => {
        await waitFor(() => inv.services.cache.partitions(sku).length < 8, 20_000, 'a partition exhausted before the kill');
        killed = await cluster.leader();
        await killed.kill();
        midSale = running();
        const next = await cluster.leader();
        assert.notEqual(next, killed);
        // A registry change made while the old leader is down reaches both servers' caches.
        await inv.services.operator.setStock('set-2', 'probe', 10, 'count');
        await inv.services.operator.preallocate('pre-2', 'probe', 10, 2);
        await waitFor(() => inv.services.cache.partitions('probe').length === 2, 10_000, 'this server to see the new partitions');
        await waitFor(async () => (await partitionsSeenBy(second, 'probe')) === 2, 10_000, 'the other server to see the new partitions');
        await killed.restart();
      },
    });
    const there = runSale(beside(inv, second), sku, 'there', { orders: 3000, callers: 100 });
    const [a, b] = await Promise.all([here, there]);
    assert.ok(killed && midSale, 'the leader was killed during the sale');
    assert.ok(a.won.length > 0 && b.won.length > 0, 'both servers sold');
    assert.equal(a.won.length + b.won.length, 2000, 'exactly the stock is sold: no exhausted partition sold from, none left unsold');
    await checkSale(inv, sku, { won: [...a.won, ...b.won], cancelled: 0 });
    assert.deepEqual(health, [], 'health never said etcd was down');
    await waitFor(() => inv.services.cache.partitions(sku).length === 0, 10_000, 'every exhausted partition gone from this cache');
    await waitFor(async () => (await partitionsSeenBy(second, sku)) === 0, 10_000, 'and from the other server');
  });

  /** The one member with an open watch (only this test watches this cluster). */
  async function watchedMember(): Promise<EtcdMember> {
    const counts = await Promise.all(cluster.members.map(async (m) => (m.running ? cluster.watchers(m) : 0)));
    const serving = cluster.members.filter((_, i) => counts[i] > 0);
    assert.equal(serving.length, 1, `watchers per member: ${counts.join(', ')}`);
    return serving[0];
  }

  /** Live partitions of a SKU in another server's cache, as its GetStock reports them. */
  async function partitionsSeenBy(server: ServerProcess, sku: string): Promise<number> {
    const client = new InventoryServiceClient(server.address, grpc.credentials.createInsecure());
    try {
      const res = await unary<{ stock: Array<{ partitions: number }> }>(client, 'getStock', { skuIds: [sku] });
      return res.stock[0]?.partitions ?? 0;
    } finally {
      client.close();
    }
  }

  /** The fixture, with its Reserves sent to another server process on the same namespace. */
  function beside(inv: InventoryFixture, server: ServerProcess): InventoryFixture {
    const client = new InventoryServiceClient(server.address, grpc.credentials.createInsecure());
    cleanup.push(() => client.close());
    return {
      ...inv,
      reserve: (orderId, items, extra = {}) =>
        unary(client, 'reserve', ReserveRequest.fromPartial({ orderId, items: items.map(([skuId, quantity]) => ({ skuId, quantity })), ...extra })),
    };
  }
});
