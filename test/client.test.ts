import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import {
  AdminClient,
  CancelledError,
  DeadlineExceededError,
  FailedPreconditionError,
  IdempotencyKeyReusedError,
  InvalidArgumentError,
  InventoryClient,
  InventoryError,
  NotFoundError,
  PartitionState,
  RateLimitedError,
  ReleaseReason,
  ReservationEndedError,
  ReservationState,
  ReserveOutcome,
  RetryEvent,
  UnauthenticatedError,
  UnknownSkuError,
} from '../client';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { TcpProxy } from './helpers/tcp-proxy';

/** Rejects with an InventoryError of `type`; returns it for more checks. */
async function rejectsWith<E extends InventoryError>(promise: Promise<unknown>, type: abstract new (...args: any[]) => E): Promise<E> {
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
  let proxy: TcpProxy;
  let client: InventoryClient;
  let admin: AdminClient;
  const opened: Array<{ close(): void }> = [];
  const livePartitions = async (sku: string) => (await admin.listPartitions({ skuId: sku })).partitions;
  const poolOf = async (sku: string) => (await client.getStock({ skuIds: [sku] })).stock[0].pool;

  /** Stocks a SKU through AdminService and waits until the server routes to its partitions. */
  async function stock(sku: string, onHand: number, pool: number, partitions: number): Promise<void> {
    await admin.setStock({ skuId: sku, onHand, reason: 'count' });
    await admin.preallocate({ skuId: sku, quantity: pool, partitions });
    await waitFor(() => inv.services.cache.partitions(sku).length === partitions, 5000, `${sku}'s partitions in the cache`);
  }

  /** A client through the proxy, connected, with short waits, and the retries it made. */
  async function proxied(options: Partial<ConstructorParameters<typeof InventoryClient>[0]> = {}): Promise<{ c: InventoryClient; retries: RetryEvent[] }> {
    const retries: RetryEvent[] = [];
    const c = new InventoryClient({
      address: proxy.address,
      retry: { initialBackoffMs: 20, maxBackoffMs: 200 },
      onRetry: (event) => retries.push(event),
      // Its own connections: grpc-js otherwise shares them (and their reconnect backoff) between clients.
      channelOptions: { 'grpc.use_local_subchannel_pool': 1 },
      ...options,
    });
    opened.push(c);
    await c.getStock({ skuIds: ['c-phone'] });
    return { c, retries };
  }

  before(async () => {
    inv = await startInventory('client');
    proxy = await TcpProxy.start(inv.server.inventoryAddress);
    client = new InventoryClient({ address: inv.server.inventoryAddress });
    admin = new AdminClient({ address: inv.server.adminAddress, token: inv.config.adminToken });
    await stock('c-phone', 100, 60, 2);
  });
  beforeEach(() => proxy.resume());
  after(async () => {
    for (const c of [client, admin, ...opened]) c?.close();
    await proxy?.close();
    await inv?.close();
  });

  it('runs an order through reserve, getReservation, confirm, release and getStock', async () => {
    const before = await poolOf('c-phone');
    const reserved = await client.reserve({ orderId: 'c-o1', items: [{ skuId: 'c-phone', quantity: 2 }] });
    assert.equal(reserved.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal(reserved.replayed, false);
    const read = await client.getReservation({ orderId: 'c-o1' });
    assert.equal(read.reservation?.state, ReservationState.RESERVATION_STATE_RESERVED);
    const confirmed = await client.confirm({ orderId: 'c-o1' });
    assert.equal(confirmed.reservation?.state, ReservationState.RESERVATION_STATE_CONFIRMED);
    const released = await client.release({ orderId: 'c-o1', reason: ReleaseReason.RELEASE_REASON_REFUND, items: [{ skuId: 'c-phone', quantity: 1 }] });
    assert.deepEqual(released.released, [{ skuId: 'c-phone', quantity: 1 }]);
    const [level] = (await client.getStock({ skuIds: ['c-phone'] })).stock;
    assert.equal(level.skuId, 'c-phone');
    assert.equal(level.onHand, 100);
    assert.equal(level.pool, before - 1, 'two held, one given back to the pool');
  });

  it('maps the server reason and field into typed errors, and does not retry them', async () => {
    const { c, retries } = await proxied();
    const bad = await rejectsWith(c.reserve({ orderId: 'c-bad', items: [{ skuId: 'c-phone', quantity: 0 }] }), InvalidArgumentError);
    assert.equal(bad.code, status.INVALID_ARGUMENT);
    assert.equal(bad.reason, 'INVALID_FIELD');
    assert.equal(bad.field, 'items[0].quantity');
    assert.equal(bad.attempts, 1);

    const unknown = await rejectsWith(c.reserve({ orderId: 'c-unknown', items: [{ skuId: 'c-nothing', quantity: 1 }] }), UnknownSkuError);
    assert.equal(unknown.code, status.NOT_FOUND);
    assert.equal(unknown.reason, 'UNKNOWN_SKU');

    const missing = await rejectsWith(c.getReservation({ orderId: 'c-never' }), NotFoundError);
    assert.equal(missing.reason, 'RESERVATION_NOT_FOUND');

    await c.reserve({ orderId: 'c-reuse', items: [{ skuId: 'c-phone', quantity: 1 }] });
    const reused = await rejectsWith(c.reserve({ orderId: 'c-reuse', items: [{ skuId: 'c-phone', quantity: 2 }] }), IdempotencyKeyReusedError);
    assert.equal(reused.field, 'order_id');

    await c.release({ orderId: 'c-reuse', reason: ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT });
    const ended = await rejectsWith(c.confirm({ orderId: 'c-reuse' }), ReservationEndedError);
    assert.equal(ended.reason, 'ALREADY_RELEASED');
    assert.equal(ended.code, status.FAILED_PRECONDITION);

    assert.deepEqual(retries, [], 'no answer of the server was retried');
  });

  it('retries a Reserve whose connection dropped after the server applied it: same order id, deducted once', async () => {
    const { c, retries } = await proxied();
    const before = await poolOf('c-phone');
    proxy.pause('hold-replies');
    const reserving = c.reserve({ orderId: 'c-dropped', items: [{ skuId: 'c-phone', quantity: 3 }] }, { timeoutMs: 20_000 });
    // The request reached the server and ran; only its answer is held. Then the connection drops.
    await waitFor(async () => (await inv.services.inspector.orderStates(['c-dropped']))[0]?.state === 'RESERVED', 5000, 'the Reserve to be applied');
    proxy.pause('reset');
    proxy.resume();
    const res = await reserving;
    assert.equal(res.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal(res.replayed, true, 'the retry was answered with the first answer');
    assert.ok(retries.length >= 1, 'retried');
    assert.ok(retries.every((r) => r.error.kind === 'UNAVAILABLE' && r.method === '/inventory.v1.InventoryService/Reserve'));
    assert.equal(await poolOf('c-phone'), before - 3, 'three units taken, once');
  });

  it('gives up at the call deadline, having retried attempts cut by the attempt deadline', async () => {
    const { c, retries } = await proxied({ attemptTimeoutMs: 150 });
    proxy.pause('blackhole');
    const started = Date.now();
    const err = await rejectsWith(c.getStock({ skuIds: ['c-phone'] }, { timeoutMs: 700 }), DeadlineExceededError);
    const took = Date.now() - started;
    // Never past the deadline; before it by at most a wait plus MIN_ATTEMPT_MS it did not start.
    assert.ok(took >= 450 && took < 800, `ended by the deadline, after ${took} ms`);
    assert.ok(err.attempts >= 3, `${err.attempts} attempts of at most 150 ms in 700 ms`);
    assert.equal(retries.length, err.attempts - 1);
    assert.ok(retries.every((r) => r.error.kind === 'DEADLINE_EXCEEDED'));
  });

  it('fails with UnavailableError after its attempts when the server cannot be reached', async () => {
    const { c, retries } = await proxied({ retry: { maxAttempts: 3, initialBackoffMs: 10 } });
    proxy.pause('reset');
    const err = await rejectsWith(c.getReservation({ orderId: 'c-o1' }), InventoryError);
    assert.equal(err.kind, 'UNAVAILABLE');
    assert.equal(err.attempts, 3);
    assert.equal(retries.length, 2);
  });

  it('retries RESOURCE_EXHAUSTED after the server hint, or hands it over with the hint', async () => {
    await stock('c-hot', 20, 20, 1);
    await admin.setAdmissionLimit({ skuId: 'c-hot', reservesPerSecond: 2, burst: 1 });
    await waitFor(() => inv.services.cache.admission('c-hot')?.burst === 1, 5000, 'the override to reach the cache');

    const { c: patient, retries } = await proxied();
    await patient.reserve({ orderId: 'c-hot-1', items: [{ skuId: 'c-hot', quantity: 1 }] });
    const started = Date.now();
    const second = await patient.reserve({ orderId: 'c-hot-2', items: [{ skuId: 'c-hot', quantity: 1 }] });
    assert.equal(second.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal(retries.length, 1);
    const [retry] = retries;
    assert.ok(retry.error instanceof RateLimitedError);
    assert.ok(retry.error.retryAfterMs! > 0 && retry.delayMs >= retry.error.retryAfterMs!, JSON.stringify({ hint: retry.error.retryAfterMs, delay: retry.delayMs }));
    assert.ok(Date.now() - started >= retry.error.retryAfterMs!, 'waited the hint out');

    const { c: hasty } = await proxied({ retry: { honourPushback: false } });
    const limited = await rejectsWith(hasty.reserve({ orderId: 'c-hot-3', items: [{ skuId: 'c-hot', quantity: 1 }] }), RateLimitedError);
    assert.equal(limited.reason, 'SKU_RATE_LIMITED');
    assert.equal(limited.field, 'items[0].sku_id');
    assert.ok(limited.retryAfterMs! > 0);
    assert.equal(limited.attempts, 1);
  });

  it('cancels a call, retries included, when its AbortSignal fires', async () => {
    const { c } = await proxied();
    const early = new AbortController();
    early.abort();
    const before = await rejectsWith(c.getStock({ skuIds: ['c-phone'] }, { signal: early.signal }), CancelledError);
    assert.equal(before.attempts, 0, 'nothing was sent');

    proxy.pause('blackhole');
    const later = new AbortController();
    const started = Date.now();
    setTimeout(() => later.abort(), 200);
    const err = await rejectsWith(c.getStock({ skuIds: ['c-phone'] }, { signal: later.signal, timeoutMs: 10_000 }), CancelledError);
    assert.equal(err.code, status.CANCELLED);
    assert.ok(Date.now() - started < 2000, 'at once, not at the deadline');
  });

  it('spreads calls round robin over several addresses, and keeps calling the live one when the other goes', async () => {
    const c = new InventoryClient({ address: [inv.server.inventoryAddress, proxy.address], channelOptions: { 'grpc.use_local_subchannel_pool': 1 } });
    opened.push(c);
    for (let i = 0; i < 6; i++) await c.getStock({ skuIds: ['c-phone'] });
    assert.ok(proxy.connections >= 1, 'connected to the proxied address too');
    proxy.pause('reset');
    for (let i = 0; i < 6; i++) assert.equal((await c.getStock({ skuIds: ['c-phone'] })).stock.length, 1);
  });

  it('AdminClient: every call, with the token, a request id generated and returned, and replays by it', async () => {
    const set = await admin.setStock({ skuId: 'c-adm', onHand: 50, reason: 'count', perUserLimit: 5 });
    assert.match(set.requestId, /^[A-Za-z0-9._:-]{1,128}$/);
    assert.equal(set.change?.stock?.onHand, 50);
    const again = await admin.setStock({ requestId: set.requestId, skuId: 'c-adm', onHand: 50, reason: 'count', perUserLimit: 5 });
    assert.equal(again.change?.replayed, true, 'the same request id applies once');
    assert.equal(again.requestId, set.requestId);

    const adjusted = await admin.adjustStock({ skuId: 'c-adm', delta: 10, reason: 'received' });
    assert.equal(adjusted.change?.stock?.onHand, 60);
    assert.notEqual(adjusted.requestId, set.requestId);

    const pre = await admin.preallocate({ skuId: 'c-adm', quantity: 30, partitions: 3 });
    assert.equal(pre.partitions.length, 3);
    const listed = await admin.listPartitions({ skuId: 'c-adm' });
    assert.equal(listed.partitions.length, 3);
    assert.ok(listed.partitions.every((p) => p.state === PartitionState.PARTITION_STATE_LIVE));

    const drained = await admin.drainPartition({ skuId: 'c-adm', partitionId: listed.partitions[0].partitionId });
    assert.equal(drained.returned, 10);
    const rebalanced = await admin.rebalance({ skuId: 'c-adm', targetPool: 40, partitionCount: 2 });
    assert.equal(rebalanced.after.reduce((n, p) => n + p.avail, 0), 40);
    assert.equal((await livePartitions('c-adm')).length, 2);

    await inv.services.ledger.drain(20_000);
    const report = await admin.reconcile({ skuIds: ['c-adm'] });
    assert.equal(report.skusChecked, 1);
    assert.deepEqual(report.discrepancies, []);

    const limit = await admin.setAdmissionLimit({ skuId: 'c-adm', reservesPerSecond: 100 });
    assert.deepEqual(limit.limit, { reservesPerSecond: 100, burst: 100, overridden: true });

    const short = await rejectsWith(admin.preallocate({ skuId: 'c-adm', quantity: 1000, partitions: 1 }), FailedPreconditionError);
    assert.equal(short.reason, 'INSUFFICIENT_BASE');
    assert.match(short.requestId ?? '', /^[A-Za-z0-9._:-]{1,128}$/, 'the error names the request id to send it again with');
  });

  it('AdminClient: a wrong token is UnauthenticatedError; no token is refused before any call', async () => {
    const intruder = new AdminClient({ address: inv.server.adminAddress, token: 'wrong-token' });
    opened.push(intruder);
    const err = await rejectsWith(intruder.listPartitions({ skuId: 'c-phone' }), UnauthenticatedError);
    assert.equal(err.reason, 'UNAUTHENTICATED');
    assert.throws(() => new AdminClient({ address: inv.server.adminAddress, token: '' }), /AdminClient\.token/);
  });
});
