import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { PartitionState, SetStockRequest } from '../gen/inventory/v1/admin.pb';
import { ReleaseReason, ReserveOutcome, StockLevel } from '../gen/inventory/v1/inventory.pb';
import { expectCode, unary } from './helpers/grpc';
import { abandonPreallocate } from './helpers/intents';
import { InventoryFixture, reasonOf, startInventory, waitFor } from './helpers/inventory';

describe('AdminService: stock, pre-allocation, drain, rebalance, reconcile', function () {
  this.timeout(60_000);
  let inv: InventoryFixture;
  let seq = 0;
  const rid = (tag: string) => `${tag}-${++seq}`;

  // The typed client, as operators call the service; raw calls only for requests it would not send.
  const raw = <T>(method: string, request: unknown) => unary<T>(inv.server.admin, method, request, inv.server.adminAuth());
  const setStock = (sku: string, onHand: number, requestId = rid('set'), perUserLimit?: number) =>
    inv.admin.setStock({ requestId, skuId: sku, onHand, reason: 'count', perUserLimit });
  const adjust = (sku: string, delta: number, requestId = rid('adj')) => inv.admin.adjustStock({ requestId, skuId: sku, delta, reason: 'received' });
  const preallocate = (sku: string, quantity: number, partitions: number, requestId = rid('pre')) =>
    inv.admin.preallocate({ requestId, skuId: sku, quantity, partitions });
  const drain = (sku: string, partitionId: string, requestId = rid('drain')) => inv.admin.drainPartition({ requestId, skuId: sku, partitionId });
  const rebalance = (sku: string, targetPool: number, partitionCount: number, requestId = rid('reb')) =>
    inv.admin.rebalance({ requestId, skuId: sku, targetPool, partitionCount });
  const list = (sku: string, includeEnded = false) => inv.admin.listPartitions({ skuId: sku, includeEnded });
  const reconcile = (skuIds: string[], repair = false, requestId = '') =>
    inv.admin.reconcile({ skuIds, repair, requestId: repair ? requestId || rid('rec') : requestId });

  /** The SKU's totals once the ledger writer has applied everything. */
  async function settled(sku: string): Promise<StockLevel> {
    await inv.services.ledger.drain(20_000);
    return (await inv.getStock(sku)).stock[0];
  }

  function assertConserved(s: StockLevel) {
    assert.equal(s.onHand + s.shortfall, s.base + s.pool + s.reserved + s.committed, JSON.stringify(s));
    for (const term of [s.base, s.pool, s.reserved, s.committed]) assert.ok(term >= 0, JSON.stringify(s));
  }

  before(async () => {
    inv = await startInventory('admin', { SWEEP_INTERVAL_MS: '100', TOPUP_THRESHOLD: '0', INTENT_RECOVERY_MS: '600000' });
  });
  after(() => inv.close());

  it('sets and adjusts on_hand once per request id, and records a loss beyond base as a shortfall', async () => {
    const first = await setStock('adm-a', 100, 'set-a-1', 3);
    assert.deepEqual([first.change!.stock!.onHand, first.change!.stock!.base, first.change!.replayed], [100, 100, false]);
    const replay = await setStock('adm-a', 100, 'set-a-1', 3);
    assert.equal(replay.change!.replayed, true);
    assert.equal(replay.change!.stock!.onHand, 100);
    const reused = await expectCode(setStock('adm-a', 50, 'set-a-1', 3), status.INVALID_ARGUMENT);
    assert.equal(reasonOf(reused), 'IDEMPOTENCY_KEY_REUSED');

    assert.equal((await adjust('adm-a', 20)).change!.stock!.onHand, 120);
    // More than is there: on_hand drops by the whole loss and goes negative, the 30 a shortfall,
    // raised (Reconcile reports both) rather than clamped away.
    const loss = await adjust('adm-a', -150);
    assert.equal(loss.change!.shortfall, 30);
    assert.deepEqual([loss.change!.stock!.onHand, loss.change!.stock!.base, loss.change!.stock!.shortfall], [-30, 0, 30]);
    // The SKU is known to the servers, with its per-user limit.
    await waitFor(() => inv.services.cache.sku('adm-a')?.perUserLimit === 3);
  });

  it('pre-allocates base into registered partitions, refuses more than base, and replays once', async () => {
    await setStock('adm-b', 50);
    const res = await preallocate('adm-b', 40, 4, 'pre-b-1');
    assert.equal(res.partitions.length, 4);
    assert.deepEqual(res.partitions.map((p) => p.avail), [10, 10, 10, 10]);
    assert.ok(res.partitions.every((p) => p.state === PartitionState.PARTITION_STATE_LIVE));
    assert.deepEqual([res.stock!.base, res.stock!.pool], [10, 40]);
    const replay = await preallocate('adm-b', 40, 4, 'pre-b-1');
    assert.equal(replay.replayed, true);
    assert.deepEqual(replay.partitions.map((p) => p.partitionId), res.partitions.map((p) => p.partitionId));
    const short = await expectCode(preallocate('adm-b', 11, 1), status.FAILED_PRECONDITION);
    assert.equal(reasonOf(short), 'INSUFFICIENT_BASE');
    await waitFor(() => inv.services.cache.partitions('adm-b').length === 4);
    assert.equal((await list('adm-b')).partitions.length, 4);
    assertConserved(await settled('adm-b'));
  });

  it('keeps on_hand = base + pool + reserved + committed through reserves, confirms, releases and expiries', async () => {
    await setStock('adm-c', 30);
    await preallocate('adm-c', 30, 3);
    await waitFor(() => inv.services.cache.partitions('adm-c').length === 3);
    await inv.reserve('c-1', [['adm-c', 5]]);
    await inv.reserve('c-2', [['adm-c', 4]]);
    await inv.reserve('c-3', [['adm-c', 2]], { ttlSeconds: 1 });
    await inv.confirm('c-1');
    await inv.release('c-1', ReleaseReason.RELEASE_REASON_REFUND, [['adm-c', 2]]);
    await inv.release('c-2', ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT);
    await waitFor(async () => (await inv.getReservation('c-3')).reservation?.state === 4, 5000, 'expiry');
    const s = await settled('adm-c');
    assertConserved(s);
    assert.deepEqual([s.onHand, s.reserved, s.committed, s.pool + s.base], [30, 0, 3, 27]);
    assert.deepEqual((await reconcile(['adm-c'])).discrepancies, []);
  });

  it('drains a partition back to base and deregisters it, once', async () => {
    await setStock('adm-d', 20);
    const [p] = (await preallocate('adm-d', 20, 2)).partitions;
    await waitFor(() => inv.services.cache.partitions('adm-d').length === 2);
    // Less than one partition holds, so neither is exhausted and p has something to drain.
    await inv.reserve('d-1', [['adm-d', 4]]);
    const before = (await list('adm-d', true)).partitions.find((x) => x.partitionId === p.partitionId)!;
    const res = await drain('adm-d', p.partitionId, 'drain-d-1');
    assert.equal(res.returned, before.avail);
    assert.equal(res.partition?.state, PartitionState.PARTITION_STATE_DRAINED);
    assert.equal((await drain('adm-d', p.partitionId, 'drain-d-1')).replayed, true);
    await waitFor(() => !inv.services.cache.partitions('adm-d').some((x) => x.partitionId === p.partitionId));
    // Releasing what the order took from the drained partition goes to base, never back into it.
    await inv.release('d-1', ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT);
    assert.equal((await list('adm-d', true)).partitions.find((x) => x.partitionId === p.partitionId)?.avail, 0);
    const s = await settled('adm-d');
    assertConserved(s);
    assert.equal(s.reserved, 0);
    assert.deepEqual((await reconcile(['adm-d'])).discrepancies, []);
    await expectCode(drain('adm-d', 'no-such-partition'), status.NOT_FOUND);
  });

  it('grows, shrinks and re-splits a SKU while Reserves run, losing and doubling nothing', async () => {
    await setStock('adm-r', 2000);
    await preallocate('adm-r', 200, 2);
    await waitFor(() => inv.services.cache.partitions('adm-r').length === 2);
    let stop = false;
    let n = 0;
    let reserved = 0;
    const buyers = Array.from({ length: 8 }, async () => {
      while (!stop) {
        const res = await inv.reserve(`r-${n++}`, [['adm-r', 1]]);
        if (res.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED) reserved++;
      }
    });
    try {
      const grown = await rebalance('adm-r', 600, 4);
      assert.equal(grown.after.length, 4);
      const split = await rebalance('adm-r', 600, 8);
      assert.equal(split.after.length, 8);
      const shrunk = await rebalance('adm-r', 100, 2);
      assert.equal(shrunk.after.reduce((a, p) => a + p.avail, 0) <= 100, true);
    } finally {
      stop = true;
      await Promise.all(buyers);
    }
    assert.ok(reserved > 0);
    const s = await settled('adm-r');
    assertConserved(s);
    assert.equal(s.onHand, 2000);
    assert.equal(s.reserved, reserved, 'every sold unit is held exactly once');
    assert.deepEqual((await reconcile(['adm-r'])).discrepancies, []);
  });

  it('finishes a pre-allocation that a process left between MySQL and Redis', async () => {
    await setStock('adm-i', 10);
    await abandonPreallocate(inv, 'pre-i-1', 'adm-i', 10, 2);
    assert.equal(inv.services.cache.partitions('adm-i').length, 0);
    assert.equal(await inv.services.operator.recoverIntents(0), 1);
    await waitFor(() => inv.services.cache.partitions('adm-i').length === 2);
    const replay = await preallocate('adm-i', 10, 2, 'pre-i-1');
    assert.equal(replay.replayed, true);
    assert.deepEqual(replay.partitions.map((p) => p.avail), [5, 5]);
    assertConserved(await settled('adm-i'));
    assert.deepEqual((await reconcile(['adm-i'])).discrepancies, []);
  });

  it('tops a SKU up from base when its partitions run dry, and the Reserve waits for it', async () => {
    await setStock('adm-t', 30);
    await preallocate('adm-t', 5, 1);
    await waitFor(() => inv.services.cache.partitions('adm-t').length === 1);
    const res = await inv.reserve('t-1', [['adm-t', 8]]);
    assert.equal(res.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED, JSON.stringify(res.shortages));
    const s = await settled('adm-t');
    assertConserved(s);
    assert.equal(s.reserved, 8);
    const all = await inv.reserve('t-2', [['adm-t', 22]]);
    assert.equal(all.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED, JSON.stringify(all.shortages));
    const none = await inv.reserve('t-3', [['adm-t', 1]]);
    assert.equal(none.outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
    assertConserved(await settled('adm-t'));
  });

  it('reports and repairs what Reconcile can fix safely', async () => {
    await setStock('adm-x', 10);
    const [p] = (await preallocate('adm-x', 10, 1)).partitions;
    await waitFor(() => inv.services.cache.partitions('adm-x').length === 1);
    // A Redis failover lost 3 units of the partition, and its registration vanished.
    const { shards } = inv.services;
    const shard = inv.services.cache.partitions('adm-x')[0].shard;
    await shards.client(shard).hincrby(shards.keys.partition(shard, 'adm-x', p.partitionId), 'avail', -3);
    await inv.services.registry.removePartition('adm-x', p.partitionId, p.epoch);
    const found = await reconcile(['adm-x']);
    assert.deepEqual(found.discrepancies.map((d) => d.kind).sort(), ['POOL_MISMATCH', 'UNREGISTERED_PARTITION']);
    const repaired = await reconcile(['adm-x'], true);
    assert.ok(repaired.discrepancies.every((d) => d.repaired));
    assert.deepEqual((await reconcile(['adm-x'])).discrepancies, []);
    const s = await settled('adm-x');
    assertConserved(s);
    assert.deepEqual([s.pool, s.base], [7, 3]);
  });

  it('answers INVALID_ARGUMENT naming the field', async () => {
    const cases: Array<[() => Promise<unknown>, string]> = [
      [() => setStock('bad{sku}', 1), 'sku_id'],
      [() => setStock('ok', -1), 'on_hand'],
      // Without a request id, which the client would have generated.
      [() => raw('setStock', SetStockRequest.fromPartial({ skuId: 'ok', onHand: 1 })), 'request_id'],
      [() => adjust('ok', 0), 'delta'],
      [() => preallocate('ok', 0, 1), 'quantity'],
      [() => preallocate('ok', 10, 300), 'partitions'],
      [() => rebalance('ok', -5, 1), 'target_pool'],
      [() => inv.admin.rebalance({ requestId: 'r', skuId: 'ok', targetPool: 5, redisNodes: ['10.0.0.1:1'] }), 'redis_nodes'],
      [() => reconcile(['ok'], true, 'bad id'), 'request_id'],
    ];
    for (const [call, field] of cases) {
      const err = await expectCode(call(), status.INVALID_ARGUMENT);
      assert.equal(err.metadata.get('inventory-error-field')[0], field, err.message);
    }
  });
});
