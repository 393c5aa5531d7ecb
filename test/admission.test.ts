import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { SetAdmissionLimitRequest, SetAdmissionLimitResponse } from '../gen/inventory/v1/admin.pb';
import { AdmissionLimit, GetStockResponse, InventoryServiceClient, ReleaseReason, ReserveRequest, ReserveResponse } from '../gen/inventory/v1/inventory.pb';
import { FIELD_KEY, PUSHBACK_KEY, RETRY_AFTER_KEY } from '../server/errors';
import { testConfig, uniqueName } from './helpers/config';
import { expectCode, healthClient, unary } from './helpers/grpc';
import { InventoryFixture, reasonOf, startInventory, waitFor } from './helpers/inventory';

describe('admission control: per-SKU rates and in-flight shedding', function () {
  this.timeout(60_000);
  const name = uniqueName('admission');
  let inv: InventoryFixture;
  /** A second server on the same Redis, etcd and MySQL, which sheds past 2 calls in flight. */
  let other: InventoryFixture;
  let seq = 0;
  const rid = (tag: string) => `${tag}-${++seq}`;

  const setLimit = (fixture: InventoryFixture, request: Partial<SetAdmissionLimitRequest>) =>
    unary<SetAdmissionLimitResponse>(fixture.server.admin, 'setAdmissionLimit', SetAdmissionLimitRequest.fromPartial(request), fixture.server.adminAuth());
  const admissionOf = async (fixture: InventoryFixture, sku: string): Promise<AdmissionLimit | undefined> =>
    (await fixture.getStock(sku)).stock[0].admission;
  const metric = async (fixture: InventoryFixture, pattern: RegExp): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${fixture.server.app.metricsPort}/metrics`)).text();
    return Number(pattern.exec(text)?.[1] ?? 0);
  };

  before(async () => {
    inv = await startInventory('admission', {}, testConfig(name));
    other = await startInventory('admission', {}, testConfig(name, { MAX_IN_FLIGHT: '2' }));
    await inv.stock('adm-hot', 1000, 4);
    await inv.stock('adm-cold', 1000, 4);
    await inv.stock('adm-retry', 100, 1);
    await waitFor(() => other.services.cache.partitions('adm-cold').length === 4, 5000, 'the other server to see the partitions');
  });
  after(async () => {
    // The other server shares the namespace: it stops, the first one drops the namespace.
    await other?.server.close();
    await inv?.close();
  });

  it('refuses a hot SKU past its override with RESOURCE_EXHAUSTED and a retry hint, leaving other SKUs and Confirm/Release alone', async () => {
    const set = await setLimit(inv, { requestId: 'hot-limit', skuId: 'adm-hot', reservesPerSecond: 1, burst: 3 });
    assert.deepEqual(set, { limit: { reservesPerSecond: 1, burst: 3, overridden: true }, replayed: false });
    await waitFor(() => inv.services.cache.admission('adm-hot')?.burst === 3, 5000, 'the override to reach the cache');

    // Five at once against a burst of 3 (at 1/s nothing refills meanwhile): the first three pass.
    const [ok0, ok1, ok2, refused, alsoRefused] = await Promise.allSettled(
      ['hot-ok-0', 'hot-ok-1', 'hot-ok-2', 'hot-refused', 'hot-refused-2'].map((orderId) => inv.reserve(orderId, [['adm-hot', 1]])),
    );
    assert.deepEqual([ok0.status, ok1.status, ok2.status, refused.status, alsoRefused.status], ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected']);
    const err = await expectCode(Promise.reject((refused as PromiseRejectedResult).reason), grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(reasonOf(err), 'SKU_RATE_LIMITED');
    assert.equal(err.metadata.get(FIELD_KEY)[0], 'items[0].sku_id');
    assert.match(err.details, /sku adm-hot is over its admission limit of 1 Reserves per second/);
    const retryAfter = Number(err.metadata.get(RETRY_AFTER_KEY)[0]);
    assert.ok(retryAfter > 0 && retryAfter <= 1000, `retry-after-ms ${retryAfter}`);
    assert.equal(err.metadata.get(PUSHBACK_KEY)[0], String(retryAfter));
    // Nothing was done for the refused order.
    await expectCode(inv.getReservation('hot-refused'), grpc.status.NOT_FOUND);

    // A cart with the hot SKU second is refused naming it, and takes nothing from the cold one.
    const cart = await expectCode(inv.reserve('cart-refused', [['adm-cold', 2], ['adm-hot', 1]]), grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(cart.metadata.get(FIELD_KEY)[0], 'items[1].sku_id');
    await expectCode(inv.getReservation('cart-refused'), grpc.status.NOT_FOUND);

    // Another SKU sells on, far past the hot SKU's rate.
    for (let i = 0; i < 20; i++) assert.ok((await inv.reserve(`cold-${i}`, [['adm-cold', 1]])).reservation);
    // Confirm and Release of the hot SKU are never refused by its rate.
    await inv.confirm('hot-ok-0');
    await inv.release('hot-ok-1', ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT);
    await inv.release('hot-ok-0', ReleaseReason.RELEASE_REASON_REFUND);

    // 3 sold of the hot SKU and 2 of them given back (a cancel, a refund), 20 of the cold one.
    const [hot, cold] = (await inv.getStock('adm-hot', 'adm-cold')).stock;
    assert.equal(hot.pool, 1000 - 3 + 2);
    assert.equal(cold.pool, 1000 - 20);
    assert.equal(await metric(inv, /inventory_admission_refused_total\{reason="SKU_RATE_LIMITED"\} (\d+)/), 3);
  });

  it('shows the limit in effect in GetStock: the override, or the default', async () => {
    assert.deepEqual(await admissionOf(inv, 'adm-hot'), { reservesPerSecond: 1, burst: 3, overridden: true });
    assert.deepEqual(await admissionOf(inv, 'adm-cold'), { reservesPerSecond: 0, burst: 0, overridden: false });
  });

  it('reaches another server through etcd, which counts its own bucket', async () => {
    await waitFor(async () => (await admissionOf(other, 'adm-hot'))?.overridden === true, 5000, 'the other server to see the override');
    assert.deepEqual(await admissionOf(other, 'adm-hot'), { reservesPerSecond: 1, burst: 3, overridden: true });
    const call = (orderId: string) => unary<ReserveResponse>(other.server.inventory, 'reserve', ReserveRequest.fromPartial({ orderId, items: [{ skuId: 'adm-hot', quantity: 1 }] }));
    for (let i = 0; i < 3; i++) await call(`other-hot-${i}`);
    const err = await expectCode(call('other-hot-refused'), grpc.status.RESOURCE_EXHAUSTED);
    assert.equal(reasonOf(err), 'SKU_RATE_LIMITED');
  });

  it('lets a gRPC client with a retry policy wait out the refusal by itself (grpc-retry-pushback-ms)', async () => {
    await setLimit(inv, { requestId: rid('lim'), skuId: 'adm-retry', reservesPerSecond: 5, burst: 1 });
    await waitFor(() => inv.services.cache.admission('adm-retry') !== undefined, 5000, 'the override to reach the cache');
    // One retry after a 1 ms backoff of its own: it can only succeed by waiting the pushback (~200 ms
    // until the SKU's next token) instead.
    const serviceConfig = {
      methodConfig: [
        {
          name: [{ service: 'inventory.v1.InventoryService' }],
          retryPolicy: { maxAttempts: 2, initialBackoff: '0.001s', maxBackoff: '0.001s', backoffMultiplier: 1, retryableStatusCodes: [grpc.status.RESOURCE_EXHAUSTED] },
        },
      ],
    };
    const retrying = new InventoryServiceClient(inv.server.inventoryAddress, grpc.credentials.createInsecure(), { 'grpc.service_config': JSON.stringify(serviceConfig) });
    try {
      await inv.reserve('retry-first', [['adm-retry', 1]]);
      // Without a retry policy the caller sees the refusal...
      await expectCode(inv.reserve('retry-plain', [['adm-retry', 1]]), grpc.status.RESOURCE_EXHAUSTED);
      // ...with one, its retry comes after the pushback and finds a token.
      const res = await unary<ReserveResponse>(retrying, 'reserve', ReserveRequest.fromPartial({ orderId: 'retry-policy', items: [{ skuId: 'adm-retry', quantity: 1 }] }));
      assert.equal(res.reservation?.orderId, 'retry-policy');
    } finally {
      retrying.close();
    }
  });

  it('replays a SetAdmissionLimit by request id, and goes back to the default with use_default', async () => {
    const replay = await setLimit(inv, { requestId: 'hot-limit', skuId: 'adm-hot', reservesPerSecond: 1, burst: 3 });
    assert.deepEqual(replay, { limit: { reservesPerSecond: 1, burst: 3, overridden: true }, replayed: true });
    const reused = await expectCode(setLimit(inv, { requestId: 'hot-limit', skuId: 'adm-hot', reservesPerSecond: 5 }), grpc.status.INVALID_ARGUMENT);
    assert.equal(reasonOf(reused), 'IDEMPOTENCY_KEY_REUSED');

    // Burst 0: one second's worth of the rate.
    const second = await setLimit(inv, { requestId: rid('lim'), skuId: 'adm-hot', reservesPerSecond: 50 });
    assert.deepEqual(second.limit, { reservesPerSecond: 50, burst: 50, overridden: true });
    await waitFor(async () => (await admissionOf(inv, 'adm-hot'))?.reservesPerSecond === 50, 5000, 'the new rate');

    const cleared = await setLimit(inv, { requestId: rid('lim'), skuId: 'adm-hot', useDefault: true });
    assert.deepEqual(cleared.limit, { reservesPerSecond: 0, burst: 0, overridden: false });
    await waitFor(async () => (await admissionOf(inv, 'adm-hot'))?.overridden === false, 5000, 'the override to go');
    await waitFor(async () => (await admissionOf(other, 'adm-hot'))?.overridden === false, 5000, 'the other server to drop it');
    for (let i = 0; i < 10; i++) await inv.reserve(`hot-free-${i}`, [['adm-hot', 1]]);
  });

  it('answers bad SetAdmissionLimit input INVALID_ARGUMENT naming the field, and an unknown SKU NOT_FOUND, changing nothing', async () => {
    const cases: Array<[Partial<SetAdmissionLimitRequest>, string]> = [
      [{ skuId: 'adm-cold', reservesPerSecond: 5 }, 'request_id'],
      [{ requestId: rid('bad'), skuId: 'a/b', reservesPerSecond: 5 }, 'sku_id'],
      [{ requestId: rid('bad'), skuId: 'adm-cold', reservesPerSecond: -1 }, 'reserves_per_second'],
      [{ requestId: rid('bad'), skuId: 'adm-cold', reservesPerSecond: 5, burst: -2 }, 'burst'],
      [{ requestId: rid('bad'), skuId: 'adm-cold', burst: 5 }, 'burst'],
      [{ requestId: rid('bad'), skuId: 'adm-cold', reservesPerSecond: 5, useDefault: true }, 'reserves_per_second'],
      [{ requestId: rid('bad'), skuId: 'adm-cold', reservesPerSecond: 2_000_000_000 }, 'reserves_per_second'],
    ];
    for (const [request, field] of cases) {
      const err = await expectCode(setLimit(inv, request), grpc.status.INVALID_ARGUMENT);
      assert.equal(err.metadata.get(FIELD_KEY)[0], field, JSON.stringify(request));
    }
    const unknown = await expectCode(setLimit(inv, { requestId: rid('bad'), skuId: 'adm-nobody', reservesPerSecond: 5 }), grpc.status.NOT_FOUND);
    assert.equal(reasonOf(unknown), 'UNKNOWN_SKU');
    assert.equal(await inv.services.registry.getAdmission('adm-cold'), undefined);
    assert.equal(await inv.services.registry.getAdmission('adm-nobody'), undefined);
  });

  it('sheds calls past the in-flight limit with OVERLOADED and a retry hint; the shed ones change nothing, health still answers', async () => {
    const clients = Array.from({ length: 10 }, () => new InventoryServiceClient(other.server.inventoryAddress, grpc.credentials.createInsecure()));
    const health = healthClient(other.server.inventoryAddress);
    const poolOf = async () => (await unary<GetStockResponse>(clients[0], 'getStock', { skuIds: ['adm-cold'] })).stock[0].pool;
    try {
      const poolBefore = await poolOf();
      const calls = Array.from({ length: 300 }, (_, i) =>
        unary<ReserveResponse>(clients[i % clients.length], 'reserve', ReserveRequest.fromPartial({ orderId: `shed-${i}`, items: [{ skuId: 'adm-cold', quantity: 1 }] })).then(
          () => undefined,
          (err: grpc.ServiceError) => err,
        ),
      );
      const checked = unary<{ status: string }>(health, 'Check', { service: '' });
      const answers = await Promise.all(calls);
      assert.equal((await checked).status, 'SERVING');

      const shed = answers.flatMap((err, i) => (err ? [[i, err] as const] : []));
      assert.ok(shed.length > 0, 'some calls were shed');
      assert.ok(shed.length < answers.length, 'some calls got through');
      for (const [, err] of shed) {
        assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED, err.message);
        assert.equal(reasonOf(err), 'OVERLOADED');
        const retryAfter = Number(err.metadata.get(RETRY_AFTER_KEY)[0]);
        assert.ok(retryAfter >= 10 && retryAfter <= 1000, `retry-after-ms ${retryAfter}`);
        assert.equal(err.metadata.get(PUSHBACK_KEY)[0], String(retryAfter));
      }
      // Only the answered calls sold; a shed call holds nothing (one by one: under the limit).
      for (const [i] of shed) await expectCode(other.getReservation(`shed-${i}`), grpc.status.NOT_FOUND);
      const sold = answers.length - shed.length;
      assert.equal(await poolOf(), poolBefore - sold);
      assert.equal(await metric(other, /inventory_admission_refused_total\{reason="OVERLOADED"\} (\d+)/), shed.length);
      assert.equal(await metric(other, /inventory_inflight_calls (\d+)/), 0);
    } finally {
      clients.forEach((c) => c.close());
      health.close();
    }
  });
});
