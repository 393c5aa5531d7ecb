import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import type { Redis } from 'ioredis';
import { ReleaseReason, ReservationState, ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { orderHashes } from '../allocator/forgotten';
import { expectCode } from './helpers/grpc';
import { InventoryFixture, reasonOf, startInventory, stockApplierOf, waitFor } from './helpers/inventory';
import { checkSale, repeatWhile, runSale } from './helpers/sale';

const RETENTION_S = 2;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every key of the test's namespace with its type, and the fields of its hashes. */
async function scanNamespace(redis: Redis, prefix: string): Promise<Map<string, { type: string; fields: string[]; ttl: number }>> {
  const found = new Map<string, { type: string; fields: string[]; ttl: number }>();
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    for (const key of keys) {
      const type = await redis.type(key);
      const fields = type === 'hash' ? await redis.hkeys(key) : [];
      found.set(key, { type, fields, ttl: await redis.ttl(key) });
    }
  } while (cursor !== '0');
  return found;
}

/** The kind of a key: what follows its shard tag (`p`, `t`, `o`, `u`, `ledger`, `seen`, ...), or its name after the prefix when it has no tag (`nodemap`). */
const kindOf = (key: string) => (key.includes('}:') ? key.split('}:')[1] : key.slice(key.indexOf(':') + 1)).split(':')[0];

describe('bounded Redis: the retention of orders and what ends with them', function () {
  this.timeout(90_000);
  let inv: InventoryFixture;
  let redis: Redis;

  before(async () => {
    inv = await startInventory('retention', {
      ORDER_RETENTION_SECONDS: String(RETENTION_S),
      RESERVE_TIMEOUT_MS: '1000',
      // The test drives the workers itself.
      FORGET_INTERVAL_MS: '600000',
      SWEEP_INTERVAL_MS: '600000',
      // A small filter, so the false-positive test meets some.
      FORGOTTEN_FILTER_BITS: '64',
      TOPUP_ENABLED: 'false',
    });
    redis = inv.services.shards.client(0) as Redis;
  });
  after(() => inv?.close());

  /** Past the retention of everything that ended so far, expired what is due, and forgotten. */
  async function forgetAll(): Promise<void> {
    await sleep(RETENTION_S * 1000 + 200);
    await inv.services.sweeper.sweep();
    await sleep(RETENTION_S * 1000 + 200);
    await inv.services.sweeper.sweep();
    await inv.services.forgetter.forget();
  }

  it('after retention no key of a confirmed, a released, an expired or a rejected order is left, nor the sold-out partition; replays answer from the archive and take nothing', async () => {
    const limited = await inv.stock('ret-a', 10, 2, 5);
    const soldOut = await inv.stock('ret-b', 3, 1);
    const orders = ['ret-conf', 'ret-rel', 'ret-exp', 'ret-b-all', 'ret-b-late'];
    assert.equal((await inv.reserve('ret-conf', [['ret-a', 2]], { userId: 'u1' })).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    await inv.confirm('ret-conf');
    assert.equal((await inv.reserve('ret-rel', [['ret-a', 1]], { userId: 'u1' })).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    await inv.release('ret-rel', ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT, [], 'cancel-1');
    assert.equal((await inv.reserve('ret-exp', [['ret-a', 1]], { userId: 'u2', ttlSeconds: 1 })).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal((await inv.reserve('ret-b-all', [['ret-b', 3]])).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    await inv.confirm('ret-b-all');
    await waitFor(() => inv.services.cache.partitions('ret-b').length === 0, 5000, 'the sold-out partition to leave the registry');
    const late = await inv.reserve('ret-b-late', [['ret-b', 1]]);
    assert.equal(late.outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);

    await forgetAll();
    const availBefore = await inv.availOf(limited);
    assert.equal(availBefore, 10 - 2, 'the expired hold came back; the confirmed units stay sold');

    const keys = await scanNamespace(redis, inv.config.redisPrefix);
    const liveA = new Set(limited.map((p) => inv.services.shards.keys.partition(p.shard, 'ret-a', p.partitionId)));
    for (const [key, { type, fields, ttl }] of keys) {
      const kind = kindOf(key);
      assert.ok(!['o', 't', 'u', 'forget', 'expiry', 'pending', 'releasing'].includes(kind), `${key} (${type}: ${fields.join(',')}) should be gone`);
      if (kind === 'p') assert.ok(liveA.has(key), `${key}: only the live partitions stay, not the sold-out one`);
      if (kind === 'seen' || kind === 'ev') assert.ok(ttl > 0, `${key} ends by itself`);
      for (const order of orders) assert.ok(!key.includes(order) && !fields.some((f) => f.includes(order)), `${key} still names ${order}`);
    }
    assert.equal(keys.has(inv.services.shards.keys.partition(soldOut[0].shard, 'ret-b', soldOut[0].partitionId)), false);

    // Replays answer the first result from MySQL's archive, and take nothing.
    const replay = await inv.reserve('ret-conf', [['ret-a', 2]], { userId: 'u1' });
    assert.equal(replay.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal(replay.replayed, true);
    assert.equal(replay.reservation?.state, ReservationState.RESERVATION_STATE_CONFIRMED);
    const rejected = await inv.reserve('ret-b-late', [['ret-b', 1]]);
    assert.equal(rejected.replayed, true);
    assert.deepEqual(rejected.shortages, late.shortages);
    assert.equal((await inv.confirm('ret-conf')).replayed, true);
    const cancelled = await inv.release('ret-rel', ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT, [], 'cancel-1');
    assert.equal(cancelled.replayed, true);
    assert.equal((await inv.getReservation('ret-exp')).reservation?.state, ReservationState.RESERVATION_STATE_EXPIRED);
    const refund = await expectCode(inv.release('ret-conf', ReleaseReason.RELEASE_REASON_REFUND, [], 'refund-1'), status.FAILED_PRECONDITION);
    assert.equal(reasonOf(refund), 'RETENTION_ENDED');
    assert.equal(await inv.availOf(limited), availBefore, 'no replay took a unit');
    const shard = inv.services.shards.keys.orderShard('ret-conf');
    assert.equal(await redis.exists(inv.services.shards.keys.order(shard, 'ret-conf')), 0, 'a replay does not bring the record back');
  });

  it('a reused order id whose first life ended is refused, naming the field, and takes nothing', async () => {
    const parts = await inv.stock('ret-c', 6, 1);
    assert.equal((await inv.reserve('ret-reuse', [['ret-c', 1]])).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    await inv.confirm('ret-reuse');
    await forgetAll();
    const before = await inv.availOf(parts);
    const reused = await expectCode(inv.reserve('ret-reuse', [['ret-c', 2]]), status.INVALID_ARGUMENT);
    assert.equal(reasonOf(reused), 'IDEMPOTENCY_KEY_REUSED');
    assert.equal(reused.metadata.get('inventory-error-field')[0], 'order_id');
    assert.match(reused.message, /archived.*never reused/);
    assert.equal(await inv.availOf(parts), before);
  });

  it('a shipment of a paid order past its retention is applied from the archive, once, and Reconcile stays clean', async () => {
    await inv.services.operator.setStock('ret-ship-set', 'ret-ship', 20, 'count');
    await inv.services.operator.preallocate('ret-ship-pre', 'ret-ship', 20, 1);
    await waitFor(() => inv.services.cache.partitions('ret-ship').length === 1);
    assert.equal((await inv.reserve('ret-shipped', [['ret-ship', 4]])).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    await inv.confirm('ret-shipped');
    await forgetAll();
    assert.equal(await redis.exists(inv.services.shards.keys.order(inv.services.shards.keys.orderShard('ret-shipped'), 'ret-shipped')), 0);
    const applier = stockApplierOf(inv);
    const shipment = { messageId: 'ret-ship-m1', sku: 'ret-ship', kind: 'SHIPMENT' as const, quantity: 3, orderId: 'ret-shipped', occurredAt: new Date() };
    const first = await applier.apply(shipment);
    assert.equal(first.kind, 'applied', JSON.stringify(first));
    assert.equal((await applier.apply(shipment)).kind, 'skipped', 'a redelivery changes nothing');
    // A second message for more than is left is capped at the one unit still committed.
    assert.equal((await applier.apply({ ...shipment, messageId: 'ret-ship-m2', quantity: 5 })).kind, 'applied');
    const third = await applier.apply({ ...shipment, messageId: 'ret-ship-m3', quantity: 1 });
    assert.equal(third.kind === 'dead' && third.reason.split(':')[0], 'NOTHING_COMMITTED');
    await inv.services.ledger.drain(10_000);
    const row = (await inv.services.operator.stock(['ret-ship'])).get('ret-ship')!;
    assert.deepEqual([row.onHand, row.committed, row.reserved], [16, 0, 0]);
    const read = await inv.getReservation('ret-shipped');
    assert.deepEqual([read.reservation?.items[0].quantity, read.reservation?.items[0].shippedQuantity], [4, 4]);
    const found = await inv.services.reconciler.reconcile(['ret-ship'], false, '');
    assert.deepEqual(found.discrepancies.map((d) => `${d.kind}: ${d.detail}`), []);
  });

  it('the allowance a per-user limit counts ends with the retention of its orders', async () => {
    await inv.stock('ret-d', 10, 1, 2);
    assert.equal((await inv.reserve('ret-d1', [['ret-d', 2]], { userId: 'buyer' })).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    await inv.confirm('ret-d1');
    const over = await inv.reserve('ret-d2', [['ret-d', 1]], { userId: 'buyer' });
    assert.equal(over.outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED, 'the limit counts what the buyer bought');
    await forgetAll();
    assert.equal((await inv.reserve('ret-d3', [['ret-d', 2]], { userId: 'buyer' })).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
  });

  it('new order ids the filter of forgotten ids takes for old ones are asked of the archive and reserve normally', async () => {
    // A nearly full filter: many false positives among new ids.
    const parts = await inv.stock('ret-e', 400, 4);
    // 150 orders over 16 shards fill about 2/3 of each 64-bit filter: a few in a hundred new ids look old.
    for (let i = 0; i < 150; i++) {
      await inv.reserve(`ret-fill-${i}`, [['ret-e', 1]]);
      await inv.confirm(`ret-fill-${i}`);
    }
    await forgetAll();
    const fresh = Array.from({ length: 100 }, (_, i) => `ret-new-${i}`);
    const { filter, shards } = inv.services.gateway;
    const looksOld = await Promise.all(
      fresh.map(async (id) => {
        const [h1, h2] = orderHashes(id);
        const [current, previous] = filter.checkKeys(shards.keys.orderShard(id));
        for (const key of [current, previous]) {
          let all = true;
          for (let i = 0; i < 7 && all; i++) all = (await redis.getbit(key, (h1 + i * h2) % filter.options.bits)) === 1;
          if (all) return true;
        }
        return false;
      }),
    );
    assert.ok(looksOld.filter(Boolean).length > 0, 'the test needs false positives to mean something');
    const before = await inv.availOf(parts);
    for (const id of fresh) {
      const res = await inv.reserve(id, [['ret-e', 1]]);
      assert.equal(res.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED, id);
      assert.equal(res.replayed, false, id);
    }
    assert.equal(await inv.availOf(parts), before - fresh.length);
  });

  it('forgetting while a flash sale runs sells nothing twice (DESIGN promise 7)', async () => {
    await inv.services.operator.setStock('ret-sale-set', 'ret-sale', 150, 'count');
    await inv.services.operator.preallocate('ret-sale-pre', 'ret-sale', 150, 4);
    await waitFor(() => inv.services.cache.partitions('ret-sale').length === 4);
    let forgottenDuringSale = 0;
    // About 7 s of buying: orders of its first seconds end, pass their retention and are forgotten
    // while later buyers take from the same partitions.
    const sale = await runSale(inv, 'ret-sale', 'ret-sale', {
      orders: 840,
      callers: 24,
      pauseMs: 200,
      cancelShare: 0.3,
      confirmShare: 0.5,
      ttlSeconds: 1,
      during: async (running) =>
        void (await repeatWhile(
          running,
          async () => {
            await inv.services.sweeper.sweep();
            forgottenDuringSale += (await inv.services.forgetter.forget()).orders;
          },
          100,
        )),
    });
    assert.ok(forgottenDuringSale > 10, `${forgottenDuringSale} orders forgotten during the sale`);
    await sleep(RETENTION_S * 1000 + 1200);
    await inv.services.sweeper.sweep();
    const { holding } = await checkSale(inv, 'ret-sale', sale);
    assert.ok(holding <= 150);
    const confirmed = (await inv.services.operator.stock(['ret-sale'])).get('ret-sale')!.committed;
    assert.ok(confirmed > 0);
  });
});
