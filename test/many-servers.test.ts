import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { InventoryServiceClient, ReserveOutcome, ReserveRequest, ReserveResponse } from '../gen/inventory/v1/inventory.pb';
import { EtcdCluster, startEtcdCluster } from './helpers/etcd-cluster';
import { unary } from './helpers/grpc';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { RedisClusterFixture, startRedisCluster } from './helpers/redis-cluster';
import { checkSale } from './helpers/sale';
import { ServerProcess, spawnServerBeside } from './helpers/server-process';

/**
 * Past one machine as a shop runs it: three server processes (not workers of one) on a Redis
 * Cluster of three masters and a 3-member etcd, both the test's own, with nothing in front of them
 * but the client's own round robin over their addresses. A hot SKU sells exactly its stock.
 */
describe('many servers: three processes on a Redis Cluster and a 3-member etcd', function () {
  this.timeout(120_000);
  const STOCK = 900;
  const ORDERS = 1500;
  let redis: RedisClusterFixture;
  let etcd: EtcdCluster;
  let inv: InventoryFixture;
  let servers: ServerProcess[] = [];

  before(async () => {
    redis = await startRedisCluster({ basePort: 7120, nodeTimeoutMs: 1000 });
    etcd = await startEtcdCluster();
    const env = { REDIS_CLUSTER: redis.seeds.join(','), ETCD_ENDPOINTS: etcd.endpoints.join(',') };
    // The in-process fixture is the operator's hand (stock, checks); buyers go to the three processes.
    inv = await startInventory('many', { ...env, TOPUP_ENABLED: 'false' });
    servers = await Promise.all([0, 1, 2].map(() => spawnServerBeside(inv.config, { ...env, TOPUP_ENABLED: 'false', LEDGER_WRITER: 'off' })));
  });
  after(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await inv?.close();
    await etcd?.stop();
    await redis?.stop();
  });

  it('sells a hot SKU exactly, every process selling, through client-side round robin', async () => {
    await inv.services.operator.setStock('many-set', 'many-hot', STOCK, 'count');
    await inv.services.operator.preallocate('many-pre', 'many-hot', STOCK, 12);
    const parts = await inv.services.operator.listPartitions('many-hot');
    const masters = await Promise.all(parts.map((p) => redis.masterOf(inv.services.shards.slot(p.shard))));
    assert.equal(new Set(masters.map((m) => m.address)).size, 3, 'the hot SKU is spread over the three masters');
    const direct = servers.map((s) => new InventoryServiceClient(s.address, grpc.credentials.createInsecure()));
    const balanced = new InventoryServiceClient(`ipv4:${servers.map((s) => s.address).join(',')}`, grpc.credentials.createInsecure(), {
      'grpc.service_config': JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] }),
    });
    try {
      // Each process learns of the partitions through its own watch on the etcd cluster.
      for (const client of direct) {
        await waitFor(async () => (await unary<{ stock: Array<{ partitions: number }> }>(client, 'getStock', { skuIds: ['many-hot'] })).stock[0]?.partitions === 12, 10_000, 'every process to route the SKU');
      }
      const won: string[] = [];
      const peers = new Map<string, number>();
      let next = 0;
      const buyer = async () => {
        while (next < ORDERS) {
          const orderId = `many-${next++}`;
          const res = await new Promise<ReserveResponse>((resolve, reject) => {
            const call = balanced.reserve(ReserveRequest.fromPartial({ orderId, items: [{ skuId: 'many-hot', quantity: 1 }] }), (err, r) => (err ? reject(err) : resolve(r)));
            call.on('status', () => peers.set(call.getPeer(), (peers.get(call.getPeer()) ?? 0) + 1));
          });
          if (res.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED) won.push(orderId);
        }
      };
      await Promise.all(Array.from({ length: 60 }, buyer));
      assert.equal(won.length, STOCK, 'exactly the stock is sold');
      assert.equal(new Set(won).size, STOCK);
      assert.equal(peers.size, 3, `calls went to ${[...peers.keys()].join(', ')}`);
      for (const [peer, calls] of peers) assert.ok(calls > ORDERS / 6, `${peer} answered ${calls} of ${ORDERS}`);
      const { stock, holding } = await checkSale(inv, 'many-hot', { won, cancelled: 0 });
      assert.deepEqual([stock.onHand, holding, stock.base, stock.pool], [STOCK, STOCK, 0, 0]);
      const found = await inv.services.reconciler.reconcile(['many-hot'], false, '');
      assert.deepEqual(found.discrepancies.map((d) => `${d.kind}: ${d.detail}`), []);
    } finally {
      [...direct, balanced].forEach((c) => c.close());
    }
  });
});
