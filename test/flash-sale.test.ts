import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { InventoryServiceClient, ReserveOutcome, ReserveRequest, ReserveResponse, ShortageReason } from '../gen/inventory/v1/inventory.pb';
import { testConfig, uniqueName } from './helpers/config';
import { unary } from './helpers/grpc';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { startRedisNode } from './helpers/redis-node';
import { ServerProcess, spawnServerBeside } from './helpers/server-process';

/** `count` clients, each on a connection of its own (no shared subchannel). */
function clients(address: string, count: number): InventoryServiceClient[] {
  return Array.from(
    { length: count },
    () => new InventoryServiceClient(address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
  );
}

/** Fires `perClient` concurrent one-unit Reserves from every client at once; all answers. */
async function storm(buyers: InventoryServiceClient[], perClient: number, sku: string, tag: string): Promise<ReserveResponse[]> {
  const calls = buyers.flatMap((client, c) =>
    Array.from({ length: perClient }, (_, k) =>
      unary<ReserveResponse>(client, 'reserve', ReserveRequest.fromPartial({ orderId: `${tag}-${c}-${k}`, items: [{ skuId: sku, quantity: 1 }] })),
    ),
  );
  return Promise.all(calls);
}

function tally(answers: ReserveResponse[]) {
  const reserved = answers.filter((a) => a.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED).length;
  const outOfStock = answers.filter(
    (a) => a.outcome === ReserveOutcome.RESERVE_OUTCOME_REJECTED && a.shortages[0]?.reason === ShortageReason.SHORTAGE_REASON_OUT_OF_STOCK,
  ).length;
  return { reserved, outOfStock };
}

describe('flash sale', function () {
  this.timeout(120_000);

  it('sells exactly the stock to 5,000 concurrent buyers on 500 connections, then deregisters every partition', async () => {
    const inv = await startInventory('flash');
    const buyers = clients(inv.server.inventoryAddress, 500);
    try {
      const parts = await inv.stock('hot-sku', 1000, 8);
      const answers = await storm(buyers, 10, 'hot-sku', 'buyer');
      assert.deepEqual(tally(answers), { reserved: 1000, outOfStock: 4000 });
      assert.equal(await inv.availOf(parts), 0);
      await waitFor(async () => (await inv.services.registry.listPartitions('hot-sku')).length === 0, 5000, 'registry emptied');
      assert.equal(inv.services.cache.partitions('hot-sku').length, 0);
    } finally {
      buyers.forEach((b) => b.close());
      await inv.close();
    }
  });

  it('spreads a SKU’s partitions over two Redis nodes and sells exactly its stock across them', async () => {
    const second = await startRedisNode();
    const primary = testConfig(uniqueName('twonodes'));
    const inv = await startInventory('twonodes', { REDIS_NODES: `${primary.redisNodes[0]},${second.address}` });
    const buyers = clients(inv.server.inventoryAddress, 50);
    try {
      const parts = await inv.stock('spread-sku', 400, 8);
      const perNode = new Map<string, number>();
      for (const p of parts) perNode.set(p.node, (perNode.get(p.node) ?? 0) + 1);
      assert.deepEqual([...perNode.values()], [4, 4], JSON.stringify([...perNode]));
      const answers = await storm(buyers, 20, 'spread-sku', 'spread');
      assert.deepEqual(tally(answers), { reserved: 400, outOfStock: 600 });
      assert.equal(await inv.availOf(parts), 0);
      // Both nodes really held partitions and sold from them.
      for (const client of inv.services.shards.clients) {
        assert.ok((await client.keys(`${inv.config.redisPrefix}:*:p:spread-sku:*`)).length === 4);
      }
    } finally {
      buyers.forEach((b) => b.close());
      await inv.close();
      await second.stop();
    }
  });

  describe('with two server processes on the same Redis and etcd', () => {
    let inv: InventoryFixture;
    let second: ServerProcess | undefined;

    before(async () => {
      const name = uniqueName('twoproc');
      inv = await startInventory('twoproc', {}, testConfig(name));
      second = await spawnServerBeside(inv.config);
    });
    after(async () => {
      await second?.stop();
      await inv?.close();
    });

    it('sells the same SKU together, exactly once per unit, and both stop routing to exhausted partitions', async () => {
      const parts = await inv.stock('shared-sku', 1000, 8);
      const here = clients(inv.server.inventoryAddress, 100);
      const there = clients(second!.address, 100);
      try {
        // The other process learns of the partitions through its own watch.
        await waitFor(async () => (await stockOf(there[0], 'shared-sku')).partitions === 8, 5000, 'the other server to see the partitions');
        const [a, b] = await Promise.all([storm(here, 15, 'shared-sku', 'here'), storm(there, 15, 'shared-sku', 'there')]);
        const total = tally([...a, ...b]);
        assert.equal(total.reserved, 1000);
        assert.equal(total.outOfStock, 2000);
        assert.ok(tally(a).reserved > 0 && tally(b).reserved > 0, 'both servers sold');
        assert.equal(await inv.availOf(parts), 0);
        await waitFor(async () => (await stockOf(there[0], 'shared-sku')).partitions === 0, 5000, 'the other server to drop them');
        assert.equal(inv.services.cache.partitions('shared-sku').length, 0);
      } finally {
        [...here, ...there].forEach((c) => c.close());
      }
    });
  });
});

async function stockOf(client: InventoryServiceClient, sku: string) {
  const res = await unary<{ stock: Array<{ partitions: number }> }>(client, 'getStock', { skuIds: [sku] });
  return res.stock[0];
}

