import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import {
  AdminClient,
  IdempotencyKeyReusedError,
  InvalidArgumentError,
  InventoryClient,
  InventoryError,
  NotFoundError,
  PartitionState,
  ReleaseReason,
  ReservationEndedError,
  ReservationState,
  ReserveOutcome,
  UnauthenticatedError,
  UnknownSkuError,
} from '../client';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';

/** Rejects with an InventoryError of `type`; returns it for more checks. */
async function rejectsWith<E extends InventoryError>(promise: Promise<unknown>, type: new (...args: any[]) => E): Promise<E> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof type, `expected ${type.name}, got ${String(err)}`);
    return err;
  }
  throw new Error(`expected ${type.name}, but the call succeeded`);
}

describe('client/: InventoryClient and AdminClient against a real server', function () {
  this.timeout(60_000);
  let inv: InventoryFixture;
  let client: InventoryClient;
  let admin: AdminClient;

  before(async () => {
    inv = await startInventory('client');
    client = new InventoryClient({ address: inv.server.inventoryAddress });
    admin = new AdminClient({ address: inv.server.adminAddress, token: inv.config.adminToken });
  });
  after(async () => {
    client?.close();
    admin?.close();
    await inv?.close();
  });

  it('runs an order through reserve, getReservation, confirm, release and getStock', async () => {
    const set = await admin.setStock({ skuId: 'c-phone', onHand: 10, reason: 'count' });
    assert.ok(set.requestId.length > 0, 'a request id was generated');
    const pre = await admin.preallocate({ skuId: 'c-phone', quantity: 6, partitions: 2 });
    assert.equal(pre.partitions.length, 2);
    await waitFor(() => inv.services.cache.partitions('c-phone').length === 2);

    const reserved = await client.reserve({ orderId: 'c-o1', items: [{ skuId: 'c-phone', quantity: 2 }] });
    assert.equal(reserved.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    const read = await client.getReservation({ orderId: 'c-o1' });
    assert.equal(read.reservation?.state, ReservationState.RESERVATION_STATE_RESERVED);
    const confirmed = await client.confirm({ orderId: 'c-o1' });
    assert.equal(confirmed.reservation?.state, ReservationState.RESERVATION_STATE_CONFIRMED);
    const released = await client.release({ orderId: 'c-o1', reason: ReleaseReason.RELEASE_REASON_REFUND, items: [{ skuId: 'c-phone', quantity: 1 }] });
    assert.deepEqual(released.released, [{ skuId: 'c-phone', quantity: 1 }]);
    const stock = await client.getStock({ skuIds: ['c-phone'] });
    assert.equal(stock.stock[0].onHand, 10);
  });

  it('maps the server reason and field into typed errors', async () => {
    const bad = await rejectsWith(client.reserve({ orderId: 'c-bad', items: [{ skuId: 'c-phone', quantity: 0 }] }), InvalidArgumentError);
    assert.equal(bad.code, status.INVALID_ARGUMENT);
    assert.equal(bad.reason, 'INVALID_FIELD');
    assert.equal(bad.field, 'items[0].quantity');
    assert.equal(bad.attempts, 1, 'not retried');

    const unknown = await rejectsWith(client.reserve({ orderId: 'c-unknown', items: [{ skuId: 'c-nothing', quantity: 1 }] }), UnknownSkuError);
    assert.equal(unknown.reason, 'UNKNOWN_SKU');
    assert.equal(unknown.kind, 'UNKNOWN_SKU');

    await rejectsWith(client.getReservation({ orderId: 'c-never' }), NotFoundError);

    await client.reserve({ orderId: 'c-reuse', items: [{ skuId: 'c-phone', quantity: 1 }] });
    const reused = await rejectsWith(client.reserve({ orderId: 'c-reuse', items: [{ skuId: 'c-phone', quantity: 2 }] }), IdempotencyKeyReusedError);
    assert.equal(reused.field, 'order_id');

    await client.release({ orderId: 'c-reuse', reason: ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT });
    const ended = await rejectsWith(client.confirm({ orderId: 'c-reuse' }), ReservationEndedError);
    assert.equal(ended.reason, 'ALREADY_RELEASED');
  });

  it('AdminClient sends the token, and a wrong one is UnauthenticatedError', async () => {
    const intruder = new AdminClient({ address: inv.server.adminAddress, token: 'wrong' });
    try {
      const err = await rejectsWith(intruder.listPartitions({ skuId: 'c-phone' }), UnauthenticatedError);
      assert.equal(err.reason, 'UNAUTHENTICATED');
    } finally {
      intruder.close();
    }
    const listed = await admin.listPartitions({ skuId: 'c-phone' });
    assert.ok(listed.partitions.every((p) => p.state === PartitionState.PARTITION_STATE_LIVE));
  });
});
