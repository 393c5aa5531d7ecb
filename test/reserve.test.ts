import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import {
  ReleaseReason,
  ReservationState,
  ReserveOutcome,
  ShortageReason,
} from '../gen/inventory/v1/inventory.pb';
import { FIELD_KEY } from '../server/errors';
import { expectCode } from './helpers/grpc';
import { InventoryFixture, reasonOf, startInventory, waitFor } from './helpers/inventory';

const { RELEASE_REASON_CANCEL_BEFORE_PAYMENT: CANCEL, RELEASE_REASON_REFUND: REFUND, RELEASE_REASON_CANCEL_AFTER_PAYMENT: CANCEL_PAID } =
  ReleaseReason;

describe('Reserve, Confirm, Release', () => {
  let inv: InventoryFixture;
  before(async () => {
    inv = await startInventory('reserve', { SWEEP_INTERVAL_MS: '100' });
  });
  after(() => inv.close());

  it('reserves, and a replay returns the first answer without taking again', async () => {
    const parts = await inv.stock('replay-sku', 10, 2);
    const first = await inv.reserve('order-replay', [['replay-sku', 3]]);
    assert.equal(first.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal(first.replayed, false);
    assert.equal(first.reservation?.state, ReservationState.RESERVATION_STATE_RESERVED);
    assert.equal(first.reservation?.items[0].pieces.reduce((n, p) => n + p.quantity, 0), 3);

    const again = await inv.reserve('order-replay', [['replay-sku', 3]]);
    assert.equal(again.replayed, true);
    assert.deepEqual(again.reservation, first.reservation);
    assert.equal(await inv.availOf(parts), 7);
  });

  it('rejects a replay that asks for something else, naming the reason', async () => {
    await inv.stock('changed-sku', 10, 1);
    await inv.reserve('order-changed', [['changed-sku', 1]]);
    const err = await expectCode(inv.reserve('order-changed', [['changed-sku', 2]]), status.INVALID_ARGUMENT);
    assert.equal(reasonOf(err), 'IDEMPOTENCY_KEY_REUSED');
    assert.equal(err.metadata.get(FIELD_KEY)[0], 'order_id');
  });

  it('deducts once for concurrent duplicates and answers them all the same', async () => {
    const parts = await inv.stock('dup-sku', 100, 4);
    const answers = await Promise.all(Array.from({ length: 20 }, () => inv.reserve('order-dup', [['dup-sku', 5]])));
    assert.ok(answers.every((a) => a.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED));
    assert.equal(answers.filter((a) => !a.replayed).length, 1);
    assert.equal(await inv.availOf(parts), 95);
  });

  it('splits an item over partitions when none has enough alone', async () => {
    const parts = await inv.stock('split-sku', 9, 3);
    const res = await inv.reserve('order-split', [['split-sku', 8]]);
    assert.equal(res.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.ok(res.reservation!.items[0].pieces.length >= 3, 'taken from all three partitions');
    assert.equal(await inv.availOf(parts), 1);
  });

  it('reserves a one-item order in one script from a partition in its own shard, and falls back when that one is short', async () => {
    // 16 partitions of 10 units: one in every shard (REDIS_SHARDS=16).
    const parts = await inv.stock('here-sku', 160, 16);
    const shardOf = new Map(parts.map((p) => [p.partitionId, p.shard]));
    const { keys } = inv.services.shards;

    const one = await inv.reserve('order-here-1', [['here-sku', 2]]);
    assert.equal(one.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    const [piece] = one.reservation!.items[0].pieces;
    assert.equal(one.reservation!.items[0].pieces.length, 1);
    assert.equal(shardOf.get(piece.partitionId), keys.orderShard('order-here-1'), 'taken in the order’s own shard');
    const fused = await inv.services.gateway.order('order-here-1');
    assert.equal(fused?.state, 'RESERVED');
    assert.equal(fused?.plan, undefined, 'order-reserve did it all: no plan was ever recorded for recovery');

    // More than the order's own partition holds: opened PENDING with a plan, then the general path.
    const big = await inv.reserve('order-here-2', [['here-sku', 12]]);
    assert.equal(big.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    const pieces = big.reservation!.items[0].pieces;
    assert.ok(pieces.length >= 2);
    assert.equal(shardOf.get(pieces[0].partitionId), keys.orderShard('order-here-2'), 'its own partition first');
    assert.equal(pieces.reduce((n, p) => n + p.quantity, 0), 12);
    assert.notEqual((await inv.services.gateway.order('order-here-2'))?.plan, undefined);

    const replay = await inv.reserve('order-here-1', [['here-sku', 2]]);
    assert.equal(replay.replayed, true);
    assert.deepEqual(replay.reservation, one.reservation);
    assert.equal(await inv.availOf(parts), 160 - 2 - 12);
  });

  it('rejects a one-item order for a sold-out SKU in one script, remembered for replays', async () => {
    // Known, but no live partition and nothing in base: what a flash sale looks like once sold out.
    await inv.services.registry.putSku('gone-sku', { perUserLimit: 0 });
    await waitFor(() => inv.services.cache.sku('gone-sku') !== undefined);

    const res = await inv.reserve('order-gone', [['gone-sku', 2]]);
    assert.equal(res.outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
    assert.deepEqual(
      res.shortages.map((s) => [s.skuId, s.reason, s.requested, s.available]),
      [['gone-sku', ShortageReason.SHORTAGE_REASON_OUT_OF_STOCK, 2, 0]],
    );
    const stored = await inv.services.gateway.order('order-gone');
    assert.equal(stored?.state, 'REJECTED');
    assert.equal(stored?.plan, undefined, 'never PENDING: nothing for recovery to do');
    const { shards } = inv.services;
    const shard = shards.keys.orderShard('order-gone');
    assert.equal(await shards.client(shard).zscore(shards.keys.pending(shard), 'order-gone'), null);
    assert.ok(Number(await shards.client(shard).zscore(shards.keys.forget(shard), 'order-gone')) > Date.now(), 'kept for the retention only');

    const replay = await inv.reserve('order-gone', [['gone-sku', 2]]);
    assert.equal(replay.replayed, true);
    assert.deepEqual(replay.shortages, res.shortages);
    const other = await expectCode(inv.reserve('order-gone', [['gone-sku', 3]]), status.INVALID_ARGUMENT);
    assert.equal(reasonOf(other), 'IDEMPOTENCY_KEY_REUSED');
    await expectCode(inv.getReservation('order-gone'), status.FAILED_PRECONDITION);
    await expectCode(inv.confirm('order-gone'), status.FAILED_PRECONDITION);
    await expectCode(inv.release('order-gone', CANCEL), status.FAILED_PRECONDITION);
  });

  it('takes nothing when the last item of a cart is short, and names that SKU', async () => {
    const a = await inv.stock('cart-a', 5, 1);
    const b = await inv.stock('cart-b', 5, 1);
    const c = await inv.stock('cart-c', 2, 1);
    const res = await inv.reserve('order-cart', [['cart-a', 2], ['cart-b', 3], ['cart-c', 3]]);
    assert.equal(res.outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
    assert.deepEqual(
      res.shortages.map((s) => [s.skuId, s.reason, s.requested, s.available]),
      [['cart-c', ShortageReason.SHORTAGE_REASON_OUT_OF_STOCK, 3, 2]],
    );
    assert.equal(await inv.availOf(a), 5);
    assert.equal(await inv.availOf(b), 5);
    assert.equal(await inv.availOf(c), 2);
    // The rejection is remembered: a replay answers the same.
    const replay = await inv.reserve('order-cart', [['cart-a', 2], ['cart-b', 3], ['cart-c', 3]]);
    assert.equal(replay.outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
    assert.equal(replay.replayed, true);
    await expectCode(inv.getReservation('order-cart'), status.FAILED_PRECONDITION);
  });

  it('answers NOT_FOUND for an unknown SKU, and leaves nothing behind', async () => {
    await inv.stock('known-sku', 5, 1);
    const err = await expectCode(inv.reserve('order-unknown', [['known-sku', 1], ['no-such-sku', 1]]), status.NOT_FOUND);
    assert.equal(reasonOf(err), 'UNKNOWN_SKU');
    await expectCode(inv.getReservation('order-unknown'), status.NOT_FOUND);
  });

  it('releases part of an order, caps at what was reserved, and applies a replayed release once', async () => {
    const parts = await inv.stock('rel-sku', 10, 2);
    await inv.stock('rel-other', 10, 1);
    await inv.reserve('order-rel', [['rel-sku', 4], ['rel-other', 1]]);

    const partial = await inv.release('order-rel', CANCEL, [['rel-sku', 1]], 'cancel-1');
    assert.deepEqual(partial.released.map((i) => [i.skuId, i.quantity]), [['rel-sku', 1]]);
    assert.equal(partial.reservation?.state, ReservationState.RESERVATION_STATE_RESERVED);
    assert.equal(await inv.availOf(parts), 7);

    const replay = await inv.release('order-rel', CANCEL, [['rel-sku', 1]], 'cancel-1');
    assert.equal(replay.replayed, true);
    assert.equal(await inv.availOf(parts), 7);

    const capped = await inv.release('order-rel', CANCEL, [['rel-sku', 50]], 'cancel-2');
    assert.deepEqual(capped.released.map((i) => [i.skuId, i.quantity]), [['rel-sku', 3]]);
    assert.equal(capped.reservation?.items.find((i) => i.skuId === 'rel-sku')?.releasedQuantity, 4);
    assert.equal(await inv.availOf(parts), 10);

    const beyond = await inv.release('order-rel', CANCEL, [['rel-sku', 1]], 'cancel-3');
    assert.deepEqual(beyond.released.map((i) => i.quantity), []);
    assert.equal(await inv.availOf(parts), 10);

    const rest = await inv.release('order-rel', CANCEL);
    assert.equal(rest.reservation?.state, ReservationState.RESERVATION_STATE_RELEASED);
    const err = await expectCode(inv.release('order-rel', CANCEL, [], 'cancel-4'), status.FAILED_PRECONDITION);
    assert.equal(reasonOf(err), 'ALREADY_RELEASED');

    const unknownItem = await expectCode(inv.release('order-rel', CANCEL, [['other', 1]], 'c5'), status.FAILED_PRECONDITION);
    assert.equal(reasonOf(unknownItem), 'ALREADY_RELEASED');
  });

  it('refuses to release an item that is not in the order', async () => {
    await inv.stock('item-sku', 5, 1);
    await inv.reserve('order-item', [['item-sku', 1]]);
    const err = await expectCode(inv.release('order-item', CANCEL, [['not-in-order', 1]]), status.INVALID_ARGUMENT);
    assert.equal(reasonOf(err), 'UNKNOWN_ITEM');
  });

  it('confirms once; a confirmed order is refunded, not cancelled as unpaid', async () => {
    const parts = await inv.stock('pay-sku', 5, 1);
    await inv.reserve('order-pay', [['pay-sku', 2]]);
    const confirmed = await inv.confirm('order-pay');
    assert.equal(confirmed.reservation?.state, ReservationState.RESERVATION_STATE_CONFIRMED);
    assert.equal(confirmed.reservation?.expiresAtMs, 0);
    assert.equal((await inv.confirm('order-pay')).replayed, true);

    const err = await expectCode(inv.release('order-pay', CANCEL), status.FAILED_PRECONDITION);
    assert.equal(reasonOf(err), 'ALREADY_CONFIRMED');
    const refund = await inv.release('order-pay', REFUND, [['pay-sku', 1]]);
    assert.deepEqual(refund.released.map((i) => i.quantity), [1]);
    assert.equal(refund.reservation?.state, ReservationState.RESERVATION_STATE_CONFIRMED);
    assert.equal(await inv.availOf(parts), 4);
    await expectCode(inv.confirm('order-none'), status.NOT_FOUND);
  });

  it('lets exactly one of a racing confirm and cancel win', async () => {
    await inv.stock('race-sku', 200, 4);
    for (let i = 0; i < 20; i++) {
      const order = `order-race-${i}`;
      await inv.reserve(order, [['race-sku', 1]]);
      const [confirm, cancel] = await Promise.allSettled([inv.confirm(order), inv.release(order, CANCEL)]);
      assert.ok((confirm.status === 'fulfilled') !== (cancel.status === 'fulfilled'), `exactly one wins (${order})`);
      const state = (await inv.getReservation(order)).reservation?.state;
      if (confirm.status === 'fulfilled') {
        assert.equal(state, ReservationState.RESERVATION_STATE_CONFIRMED);
        assert.equal(reasonOf((cancel as PromiseRejectedResult).reason), 'ALREADY_CONFIRMED');
      } else {
        assert.equal(state, ReservationState.RESERVATION_STATE_RELEASED);
        assert.equal(reasonOf((confirm as PromiseRejectedResult).reason), 'ALREADY_RELEASED');
      }
    }
  });

  it('expires an unpaid hold after its TTL on the Redis clock, and the stock returns to sale', async () => {
    const parts = await inv.stock('ttl-sku', 3, 1);
    const res = await inv.reserve('order-ttl', [['ttl-sku', 3]], { ttlSeconds: 1 });
    const r = res.reservation!;
    assert.ok(r.expiresAtMs - r.createdAtMs >= 1000 && r.expiresAtMs - r.createdAtMs < 1100);
    // Exhausted by the hold, the partition is gone; expiry must return the units to base, not to it.
    await waitFor(async () => (await inv.getReservation('order-ttl')).reservation?.state === ReservationState.RESERVATION_STATE_EXPIRED, 5000, 'expiry');
    assert.equal(await inv.availOf(parts), 0);
    const err = await expectCode(inv.confirm('order-ttl'), status.FAILED_PRECONDITION);
    assert.equal(reasonOf(err), 'ALREADY_EXPIRED');
  });

  it('returns an expired hold to a live partition', async () => {
    const parts = await inv.stock('ttl-live', 10, 1);
    await inv.reserve('order-ttl-live', [['ttl-live', 4]], { ttlSeconds: 1 });
    assert.equal(await inv.availOf(parts), 6);
    await waitFor(async () => (await inv.availOf(parts)) === 10, 5000, 'units back in the partition');
  });

  it('enforces a per-user limit across orders, and gives the allowance back on release', async () => {
    await inv.stock('limited', 100, 2, 3);
    const user = { userId: 'buyer-7' };
    assert.equal((await inv.reserve('lim-1', [['limited', 2]], user)).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    const over = await inv.reserve('lim-2', [['limited', 2]], user);
    assert.equal(over.outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
    assert.deepEqual(over.shortages.map((s) => [s.skuId, s.reason, s.available]), [['limited', ShortageReason.SHORTAGE_REASON_USER_LIMIT, 1]]);
    assert.equal((await inv.reserve('lim-3', [['limited', 1]], user)).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    // Another buyer is not affected; an anonymous order is not limited.
    assert.equal((await inv.reserve('lim-4', [['limited', 3]], { userId: 'buyer-8' })).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal((await inv.reserve('lim-5', [['limited', 5]])).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    // Paid units still count; cancelled ones do not.
    await inv.confirm('lim-1');
    await inv.release('lim-3', CANCEL);
    assert.equal((await inv.reserve('lim-6', [['limited', 1]], user)).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal((await inv.reserve('lim-7', [['limited', 1]], user)).outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
    await inv.release('lim-1', CANCEL_PAID);
    assert.equal((await inv.reserve('lim-8', [['limited', 2]], user)).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
  });

  it('reports the live pool and partitions per SKU', async () => {
    await inv.stock('stock-sku', 12, 3, 2);
    await inv.reserve('order-stock', [['stock-sku', 5]]);
    const { stock } = await inv.getStock('stock-sku');
    assert.equal(stock[0].pool, 7);
    assert.equal(stock[0].sellable, 7);
    assert.equal(stock[0].perUserLimit, 2);
    assert.ok(stock[0].partitions >= 2);
    await expectCode(inv.getStock('stock-sku', 'nope'), status.NOT_FOUND);
  });

  it('answers INVALID_ARGUMENT naming the field, and changes nothing', async () => {
    const parts = await inv.stock('valid-sku', 5, 1);
    const cases: Array<[Promise<unknown>, string]> = [
      [inv.reserve('', [['valid-sku', 1]]), 'order_id'],
      [inv.reserve('bad{tag}', [['valid-sku', 1]]), 'order_id'],
      [inv.reserve('v-1', []), 'items'],
      [inv.reserve('v-2', [['valid-sku', 0]]), 'items[0].quantity'],
      [inv.reserve('v-3', [['valid-sku', 1], ['valid-sku', 1]]), 'items[1].sku_id'],
      [inv.reserve('v-4', [['valid-sku', 1]], { userId: 'has space' }), 'user_id'],
      [inv.reserve('v-5', [['valid-sku', 1]], { ttlSeconds: 10_000_000 }), 'ttl_seconds'],
      [inv.confirm(''), 'order_id'],
      [inv.release('v-6', ReleaseReason.RELEASE_REASON_UNSPECIFIED), 'reason'],
      [inv.release('v-7', ReleaseReason.RELEASE_REASON_RECOVERY), 'reason'],
      [inv.getStock(), 'sku_ids'],
    ];
    for (const [call, field] of cases) {
      const err = await expectCode(call, status.INVALID_ARGUMENT);
      assert.equal(err.metadata.get(FIELD_KEY)[0], field, err.message);
    }
    assert.equal(await inv.availOf(parts), 5);
    await expectCode(inv.getReservation('v-1'), status.NOT_FOUND);
  });
});
