import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { ReserveOutcome, ReserveRequest, ReserveResponse } from '../gen/inventory/v1/inventory.pb';
import { TakeCode } from '../allocator/codes';
import { oneItemDoc } from '../allocator/doc';
import { CreatedPartition } from '../allocator/partitions';
import { fingerprint } from '../allocator/reservations';
import { testConfig, uniqueName } from './helpers/config';
import { expectCode, unary } from './helpers/grpc';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { TcpProxy } from './helpers/tcp-proxy';

/**
 * A Reserve that fails or runs out of time half way can be retried with the same order id: the
 * retry gets a real answer (RESERVED, or a real REJECTED), never ABORTED, and every unit is counted
 * once. The server has two Redis "nodes", the stack's Redis directly and the same Redis through a
 * proxy the test stalls or cuts: partitions on the second node become unreachable while the order
 * records (on shards of the first node) stay reachable.
 */
describe('retrying a failed or timed-out Reserve with the same order id', function () {
  this.timeout(60_000);
  let inv: InventoryFixture;
  let proxy: TcpProxy;
  let direct: string;

  before(async () => {
    direct = testConfig(uniqueName('retry')).redisNodes[0];
    proxy = await TcpProxy.start(direct);
    inv = await startInventory('retry', {
      REDIS_NODES: `${direct},${proxy.address}`,
      REDIS_COMMAND_TIMEOUT_MS: '500',
      RESERVE_TIMEOUT_MS: '3000',
      RECOVERY_GRACE_MS: '60000',
    });
  });
  afterEach(() => proxy.resume());
  after(async () => {
    proxy.resume();
    await inv.close();
  });

  /** A SKU with one partition of `units` on one node (`direct` or the proxied one). */
  async function stockOn(sku: string, units: number, node: string): Promise<CreatedPartition> {
    await inv.services.registry.putSku(sku, { perUserLimit: 0 });
    const [p] = await inv.services.partitions.create(sku, units, 1, [node]);
    await waitFor(() => inv.services.cache.partitions(sku).length === 1, 5000, `${sku} in the cache`);
    return p;
  }

  /** Waits until the server's script connection through the proxy is up again (it backs off while cut). */
  async function reconnected(): Promise<void> {
    const pipe = inv.services.gateway.shards.pipes[1];
    await waitFor(() => pipe.connect().then(() => true, () => false), 10_000, 'the script connection back');
  }

  /** An order id whose record lives on a shard of the directly reached node. */
  function orderOnDirectNode(base: string): string {
    const keys = inv.services.gateway.shards;
    for (let i = 0; ; i++) {
      const id = `${base}-${i}`;
      if (keys.node(keys.keys.orderShard(id)) === direct) return id;
    }
  }

  /** Units the ledger holds for an order per SKU (takes less releases), once the writer caught up. */
  async function ledgerHeld(orderId: string): Promise<Record<string, number>> {
    await inv.services.ledger.drain(20_000);
    const [rows] = await inv.services.mysql.query<any[]>(
      "SELECT sku_id, SUM(CASE WHEN kind = 'take' THEN qty WHEN kind = 'release' THEN -qty ELSE 0 END) AS held FROM ledger WHERE order_id = ? GROUP BY sku_id",
      [orderId],
    );
    return Object.fromEntries(rows.map((r) => [r.sku_id, Number(r.held)]));
  }

  const reserveCall = (orderId: string, items: Array<[string, number]>, options: grpc.CallOptions = {}) =>
    unary<ReserveResponse>(
      inv.server.inventory,
      'reserve',
      ReserveRequest.fromPartial({ orderId, items: items.map(([skuId, quantity]) => ({ skuId, quantity })) }),
      new grpc.Metadata(),
      options,
    );

  it('a Reserve cut off from a partition half way answers UNAVAILABLE; its retry right after the blip reserves, each unit once', async () => {
    const a = await stockOn('blip-a', 10, direct);
    const b = await stockOn('blip-b', 10, proxy.address);
    const orderId = orderOnDirectNode('blip');
    const items: Array<[string, number]> = [['blip-a', 2], ['blip-b', 3]];

    proxy.pause('reset');
    // Begin and the take of blip-a go through; the take of blip-b cannot.
    await expectCode(reserveCall(orderId, items), grpc.status.UNAVAILABLE);
    proxy.resume();
    await reconnected();

    const retried = await reserveCall(orderId, items);
    assert.equal(retried.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal(retried.replayed, false);
    assert.equal(await inv.availOf([a]), 8);
    assert.equal(await inv.availOf([b]), 7);
    const held = await inv.services.inspector.auditPartition(a);
    assert.equal(held.held, 2, 'partition avail + held add up');
    assert.deepEqual(await ledgerHeld(orderId), { 'blip-a': 2, 'blip-b': 3 });

    const replay = await reserveCall(orderId, items);
    assert.equal(replay.replayed, true);
    assert.equal(await inv.availOf([a]), 8);
  });

  it('a Reserve whose deadline runs out answers DEADLINE_EXCEEDED, and its retry gets a real answer, not a remembered OUT_OF_STOCK', async () => {
    const p = await stockOn('late', 5, proxy.address);
    const orderId = orderOnDirectNode('late');

    proxy.pause('blackhole');
    await expectCode(reserveCall(orderId, [['late', 2]], { deadline: Date.now() + 300 }), grpc.status.DEADLINE_EXCEEDED);
    proxy.resume();
    await reconnected();

    const retried = await reserveCall(orderId, [['late', 2]], { deadline: Date.now() + 10_000 });
    assert.equal(retried.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    // Whatever the dead attempt's stalled take did once the proxy let it through, it is given back.
    await waitFor(async () => (await inv.availOf([p])) === 3, 5000, 'the first attempt given back');
    assert.deepEqual(await ledgerHeld(orderId), { late: 2 });

    // A real shortage is still remembered.
    const short = await reserveCall(orderOnDirectNode('late-short'), [['late', 4]]);
    assert.equal(short.outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
  });

  it('a retry while the first attempt is live waits for it and answers its result, taking nothing more', async () => {
    const p = await stockOn('live', 10, direct);
    const orderId = 'live-1';
    const { gateway, reservations } = inv.services;
    const items = [{ sku: 'live', quantity: 2 }];
    // The first attempt, on "another server": begun with 2 s to go, took its units, not answered yet.
    const plan: Array<[string, string, number, number, number]> = [['live', p.partitionId, p.shard, p.epoch, 2]];
    const begun = await gateway.begin(orderId, fingerprint(items, '', 1800), plan, oneItemDoc('live', 2, ''), 1800, 2000);
    assert.equal(begun.kind, 'new');
    assert.equal((await gateway.take(p, orderId, 2, 1)).code, TakeCode.Taken);

    const retry = reservations.reserve({ orderId, items, userId: '', ttlSeconds: 0 }, { deadline: Date.now() + 5000, cancelled: false });
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.notEqual(await gateway.commit(orderId, 1, 'RESERVED', oneItemDoc('live', 2, '', p)), undefined);

    const answer = await retry;
    assert.equal(answer.outcome, 'RESERVED');
    assert.equal(answer.replayed, true);
    assert.equal(await inv.availOf([p]), 8);
  });

  it('a retry rolls back an attempt that passed its give-up time on the spot and starts over; that attempt’s late take is refused', async () => {
    const p = await stockOn('dead', 10, direct);
    const orderId = 'dead-1';
    const { gateway, reservations } = inv.services;
    const items = [{ sku: 'dead', quantity: 2 }];
    const plan: Array<[string, string, number, number, number]> = [['dead', p.partitionId, p.shard, p.epoch, 2]];
    await gateway.begin(orderId, fingerprint(items, '', 1800), plan, oneItemDoc('dead', 2, ''), 1800, 300);
    assert.equal((await gateway.take(p, orderId, 2, 1)).code, TakeCode.Taken);

    const answer = await reservations.reserve({ orderId, items, userId: '', ttlSeconds: 0 }, { deadline: Date.now() + 5000, cancelled: false });
    assert.equal(answer.outcome, 'RESERVED');
    assert.equal(answer.replayed, false);
    assert.equal(await inv.availOf([p]), 8, 'the dead attempt’s 2 given back, the retry’s 2 taken');
    // The dead attempt's take, resent late, changes nothing (it answers its first run).
    assert.notEqual((await gateway.take(p, orderId, 2, 1)).code, TakeCode.Taken);
    assert.equal(await inv.availOf([p]), 8);
    assert.deepEqual(await ledgerHeld(orderId), { dead: 2 });
  });

  it('a call cancelled by its client starts no new step', async () => {
    const p = await stockOn('gone', 10, direct);
    const orderId = 'gone-1';
    const { gateway } = inv.services;
    const items = [{ sku: 'gone', quantity: 2 }];
    const plan: Array<[string, string, number, number, number]> = [['gone', p.partitionId, p.shard, p.epoch, 2]];
    // A live attempt with 800 ms to go: a retry waits for it, and would roll it back after that.
    await gateway.begin(orderId, fingerprint(items, '', 1800), plan, oneItemDoc('gone', 2, ''), 1800, 800);

    const call = inv.server.inventory as unknown as Record<string, Function>;
    const cancelled = new Promise<grpc.ServiceError>((resolve) => {
      const c = call.reserve.call(
        inv.server.inventory,
        ReserveRequest.fromPartial({ orderId, items: [{ skuId: 'gone', quantity: 2 }] }),
        new grpc.Metadata(),
        {},
        (err: grpc.ServiceError) => resolve(err),
      );
      setTimeout(() => c.cancel(), 200);
    });
    assert.equal((await cancelled).code, grpc.status.CANCELLED);

    // Past the attempt's give-up time, the cancelled call neither rolled it back nor began another.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const fields = await gateway.order(orderId);
    assert.equal(fields?.state, 'PENDING');
    assert.equal(fields?.att, '1');
    assert.equal(await inv.availOf([p]), 10);
  });
});
