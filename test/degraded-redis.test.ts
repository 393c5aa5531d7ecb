import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { loadConfig } from '../server/config';
import { REASON_KEY } from '../server/errors';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { RedisNode, startRedisNode } from './helpers/redis-node';
import { TcpProxy } from './helpers/tcp-proxy';

const rid = (tag: string) => `${tag}-${randomBytes(4).toString('hex')}`;

interface Answer {
  readonly orderId: string;
  readonly outcome: 'RESERVED' | 'REJECTED' | 'FAILED';
  readonly code?: grpc.status;
  readonly reason?: string;
  readonly message?: string;
  readonly ms: number;
}

/**
 * DESIGN promise 6, a Redis node down: Reserves route to the SKU's partitions on the other nodes, a
 * top-up carves new stock there from base, orders whose record lives on the dead node fail fast with
 * UNAVAILABLE naming it, nothing is remembered as sold out, and once the node is back its orders sell
 * again and the stores agree (Reconcile clean).
 */
describe('a Redis node down (one of two)', function () {
  this.timeout(120_000);
  const nodeA = loadConfig().redisNodes[0];
  let nodeB: RedisNode;
  let inv: InventoryFixture;
  let killed = false;

  beforeEach(async () => {
    nodeB = await startRedisNode({ aof: true });
    killed = false;
    inv = await startInventory('nodedown', {
      REDIS_NODES: `${nodeA},${nodeB.address}`,
      REDIS_COMMAND_TIMEOUT_MS: '500',
      BREAKER_VOLUME_THRESHOLD: '5',
      BREAKER_RESET_MS: '300',
    });
  });

  afterEach(async () => {
    if (killed) await nodeB.restart();
    await inv?.close();
    await nodeB?.stop();
  });

  const shards = () => inv.services.shards;
  const onNode = (orderId: string) => shards().node(shards().keys.orderShard(orderId));
  const ordersOn = (node: string, tag: string, count: number) => {
    const ids: string[] = [];
    for (let i = 0; ids.length < count; i++) if (onNode(`${tag}-${i}`) === node) ids.push(`${tag}-${i}`);
    return ids;
  };

  async function reserveAll(orderIds: readonly string[], sku: string, callers = 16): Promise<Answer[]> {
    const answers: Answer[] = [];
    let next = 0;
    const caller = async () => {
      while (next < orderIds.length) {
        const orderId = orderIds[next++];
        const started = Date.now();
        try {
          const res = await inv.reserve(orderId, [[sku, 1]]);
          answers.push({ orderId, outcome: res.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED ? 'RESERVED' : 'REJECTED', ms: Date.now() - started });
        } catch (err) {
          const e = err as grpc.ServiceError;
          answers.push({ orderId, outcome: 'FAILED', code: e.code, reason: String(e.metadata?.get(REASON_KEY)[0]), message: e.details, ms: Date.now() - started });
        }
      }
    };
    await Promise.all(Array.from({ length: callers }, caller));
    return answers;
  }

  async function killB(): Promise<void> {
    await nodeB.kill();
    killed = true;
    await waitFor(() => !shards().reachable(1), 5000, 'the script connection to notice node B is gone');
  }

  async function restartB(): Promise<void> {
    await nodeB.restart();
    killed = false;
  }

  /** After the node is back and the ledger caught up: conservation, and Reconcile finds nothing. */
  async function assertStoresAgree(sku: string): Promise<void> {
    await waitFor(() => shards().breakers[1].state === 'closed' || shards().reachable(1), 10_000, 'node B reachable again');
    await inv.services.ledger.drain(30_000);
    const stock = (await inv.services.operator.stock([sku])).get(sku)!;
    assert.equal(stock.onHand, stock.base + stock.pool + stock.reserved + stock.committed, `conservation: ${JSON.stringify(stock)}`);
    const report = await inv.services.reconciler.reconcile([sku], false, '');
    assert.deepEqual(report.discrepancies, [], 'Reconcile finds nothing');
  }

  it('routes Reserves around the dead node, fails its own orders fast naming it, opens its breaker, and sells them again once it is back', async () => {
    const sku = 'nd-hot';
    await inv.services.operator.setStock(rid('set'), sku, 1000, 'count');
    await inv.services.operator.preallocate(rid('pre'), sku, 400, 4);
    await waitFor(() => inv.services.cache.partitions(sku).length === 4, 5000, 'the partitions in the cache');
    const placed = inv.services.cache.partitions(sku).map((p) => shards().node(p.shard));
    assert.deepEqual([...new Set(placed)].sort(), [nodeA, nodeB.address].sort(), 'partitions on both nodes');

    await killB();
    const onA = ordersOn(nodeA, 'a', 150);
    const onB = ordersOn(nodeB.address, 'b', 60);
    const answers = await reserveAll([...onA, ...onB], sku);

    const byOrder = new Map(answers.map((a) => [a.orderId, a]));
    const failedOnA = onA.map((id) => byOrder.get(id)!).filter((a) => a.outcome !== 'RESERVED');
    assert.deepEqual(failedOnA, [], 'every order whose record is on the live node is reserved');
    for (const id of onB) {
      const a = byOrder.get(id)!;
      assert.equal(a.outcome, 'FAILED', `${id} answered ${a.outcome}`);
      assert.equal(a.code, grpc.status.UNAVAILABLE);
      assert.equal(a.reason, 'DEPENDENCY_UNAVAILABLE');
      assert.match(a.message!, new RegExp(`redis ${nodeB.address.replace(/\./g, '\\.')}`));
    }
    assert.equal(answers.filter((a) => a.outcome === 'REJECTED').length, 0, 'nothing is remembered as sold out');

    assert.equal(shards().breakers[1].state, 'open', 'node B\'s breaker opened');
    const lastB = await reserveAll([onB[0]], sku, 1);
    assert.equal(lastB[0].code, grpc.status.UNAVAILABLE);
    assert.match(lastB[0].message!, /circuit breaker open/);
    assert.ok(lastB[0].ms < 200, `an open breaker answers at once (${lastB[0].ms} ms)`);
    const metrics = await inv.metrics.registry.metrics();
    assert.match(metrics, new RegExp(`inventory_breaker_state\\{dependency="redis",node="${nodeB.address}"\\} 2`));
    assert.match(metrics, new RegExp(`inventory_breaker_state\\{dependency="redis",node="${nodeA}"\\} 0`));

    await inv.services.health.probe();
    const health = inv.services.health.report();
    assert.equal(health.inventory, 'SERVING');
    assert.ok(health.degraded.some((line) => line.includes(nodeB.address)), health.degraded.join('; '));
    await inv.services.sweeper.sweep(); // the shards of the live node are swept; the dead node's skipped

    await restartB();
    // The same order ids, retried: safe (nothing of them was written), and they sell now.
    await waitFor(async () => (await reserveAll([onB[0]], sku, 1))[0].outcome === 'RESERVED', 10_000, 'an order of node B to sell again');
    const retried = await reserveAll(onB.slice(1), sku);
    assert.deepEqual(retried.filter((a) => a.outcome !== 'RESERVED'), [], 'every retried order of node B is reserved');
    assert.equal(shards().breakers[1].state, 'closed');
    await assertStoresAgree(sku);
    const stock = (await inv.services.operator.stock([sku])).get(sku)!;
    assert.equal(stock.reserved, onA.length + onB.length, 'each order holds its unit once');
  });

  it('sells a SKU whose every partition is on the dead node from base, carved onto the live node', async () => {
    const sku = 'nd-moved';
    await inv.services.operator.setStock(rid('set'), sku, 500, 'count');
    await inv.services.operator.rebalance(rid('reb'), sku, 100, 2, [nodeB.address]);
    await waitFor(() => inv.services.cache.partitions(sku).length === 2, 5000, 'the partitions in the cache');
    assert.ok(inv.services.cache.partitions(sku).every((p) => shards().node(p.shard) === nodeB.address));

    await killB();
    const onA = ordersOn(nodeA, 'm', 80);
    const answers = await reserveAll(onA, sku, 8);
    assert.deepEqual(answers.filter((a) => a.outcome !== 'RESERVED'), [], 'sold from new partitions on the live node');
    const live = inv.services.cache.partitions(sku).filter((p) => shards().node(p.shard) === nodeA);
    assert.ok(live.length > 0, 'the top-up placed its partitions on the live node');

    await restartB();
    await assertStoresAgree(sku);
  });
});

/**
 * A call that timed out may have been applied (DEPENDENCY_TIMEOUT): the Reserve's script ran in
 * Redis but its answer never came back. Its retry with the same order id is safe: it answers the
 * first outcome as a replay and the unit is taken once.
 */
describe('a Reserve whose answer from Redis was lost', function () {
  this.timeout(60_000);
  let proxy: TcpProxy;
  let inv: InventoryFixture;

  before(async () => {
    proxy = await TcpProxy.start(loadConfig().redisNodes[0]);
    inv = await startInventory('lostreply', { REDIS_NODES: proxy.address, REDIS_COMMAND_TIMEOUT_MS: '300' });
  });
  after(async () => {
    proxy.resume();
    await inv.close();
    await proxy.close();
  });

  it('answers UNAVAILABLE (DEPENDENCY_TIMEOUT), and its retry replays the reservation, the unit taken once', async () => {
    const parts = await inv.stock('lr-sku', 10, 1);
    await inv.reserve('lr-warm', [['lr-sku', 1]]);
    // An order whose record shares the partition's shard: its Reserve is one script (order-reserve).
    const keys = inv.services.shards.keys;
    let orderId = '';
    for (let i = 0; !orderId; i++) if (keys.orderShard(`lr-${i}`) === parts[0].shard) orderId = `lr-${i}`;
    proxy.pause('hold-replies');
    const first = await inv.reserve(orderId, [['lr-sku', 1]]).then(
      () => undefined,
      (err: grpc.ServiceError) => err,
    );
    assert.ok(first, 'the call failed');
    assert.equal(first.code, grpc.status.UNAVAILABLE);
    assert.equal(first.metadata.get(REASON_KEY)[0], 'DEPENDENCY_TIMEOUT');
    proxy.resume();
    assert.equal(await inv.availOf(parts), 8, 'the script ran: the unit is taken');
    const retry = await inv.reserve(orderId, [['lr-sku', 1]]);
    assert.equal(retry.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal(retry.replayed, true, 'the first outcome, replayed');
    assert.equal(await inv.availOf(parts), 8, 'taken once');
  });
});
