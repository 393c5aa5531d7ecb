import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import { InventoryServiceClient, ReserveOutcome, ReserveRequest, ReserveResponse } from '../gen/inventory/v1/inventory.pb';
import { TakeCode } from '../allocator/codes';
import { PartitionRef } from '../allocator/gateway';
import { fingerprint } from '../allocator/reservations';
import { Sweeper, SweeperOptions } from '../allocator/sweeper';
import { createLogger } from '../kernel/logger';
import { Metrics } from '../server/metrics';
import { readStock } from '../store/stock';
import { testConfig, uniqueName } from './helpers/config';
import { unary } from './helpers/grpc';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { ServerProcess, spawnServerBeside } from './helpers/server-process';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Redis index (one shard: shard 0) members, oldest first. */
async function indexOf(inv: InventoryFixture, index: 'pending' | 'expiry'): Promise<string[]> {
  return inv.services.shards.client(0).zrange(inv.services.shards.keys[index](0), 0, -1);
}

/** A sweeper of the test's own services with small pages; counts what it rolled back and expired. */
function pagedSweeper(inv: InventoryFixture, options: SweeperOptions) {
  const swept = { recovered: 0, expired: 0 };
  const sweeper = new Sweeper(inv.services.gateway, inv.services.reservations, options, createLogger('silent'), (kind, n) => {
    if (kind === 'recovered' || kind === 'expired') swept[kind] += n;
  });
  return { sweeper, swept };
}

describe('crash recovery and expiry page through a shard’s indexes', function () {
  this.timeout(60_000);
  let inv: InventoryFixture;
  const grace = 300;

  before(async () => {
    // One shard, so every order lands in the same pending and expiry indexes.
    inv = await startInventory('paging', { REDIS_SHARDS: '1', SWEEP_INTERVAL_MS: '600000', RESERVE_TIMEOUT_MS: '200', RECOVERY_GRACE_MS: String(grace) });
  });
  after(async () => {
    await inv.close();
  });

  /** What a Reserve of two items leaves when its process dies: begun with its plan, the first item taken (2 units), no commit. */
  async function crashedCart(orderId: string, a: PartitionRef, b: PartitionRef): Promise<void> {
    const items = [{ sku: a.sku, quantity: 2 }, { sku: b.sku, quantity: 3 }];
    const plan: Array<[string, string, number, number, number]> = [
      [a.sku, a.partitionId, a.shard, a.epoch, 2],
      [b.sku, b.partitionId, b.shard, b.epoch, 3],
    ];
    const doc = { items: items.map((i) => ({ sku: i.sku, qty: i.quantity, rel: 0, pieces: [] })), user: '', limits: {}, releases: {} };
    await inv.services.gateway.begin(orderId, fingerprint(items, '', 60), plan, JSON.stringify(doc), 60, 100);
    assert.equal((await inv.services.gateway.take(a, orderId, 2, 1)).code, TakeCode.Taken);
  }

  it('rolls back, in one sweep, more stuck carts than a page holds', async () => {
    const [a] = await inv.stock('page-a', 100, 1);
    const [b] = await inv.stock('page-b', 100, 1);
    const carts = Array.from({ length: 23 }, (_, i) => `page-cart-${i}`);
    for (const orderId of carts) await crashedCart(orderId, a, b);
    assert.equal(await inv.availOf([a]), 100 - 2 * carts.length);
    assert.equal((await indexOf(inv, 'pending')).length, carts.length);

    await sleep(grace + 50);
    const { sweeper, swept } = pagedSweeper(inv, { recoveryGraceMs: grace, batch: 5 });
    await sweeper.sweep();
    assert.equal(swept.recovered, carts.length);
    assert.deepEqual(await indexOf(inv, 'pending'), []);
    assert.equal(await inv.availOf([a]), 100, 'every taken unit is back');
    assert.equal(await inv.availOf([b]), 100);
    for (const orderId of carts) assert.equal((await inv.services.gateway.order(orderId))?.state, 'REJECTED');
  });

  it('removes stale pending entries (order no longer PENDING, or gone) so they never hide the stuck carts behind them', async () => {
    const [a] = await inv.stock('stale-a', 100, 1);
    const [b] = await inv.stock('stale-b', 100, 1);
    const { reservations } = inv.services;
    // Orders that a server before this fix left in `pending`, oldest in the index: one rolled back
    // by recovery, one reserved, one rejected, and orders whose records are gone. More than a page.
    await crashedCart('stale-recovered', a, b);
    await sleep(grace + 50);
    assert.equal(await reservations.recover('stale-recovered'), 'done');
    await reservations.reserve({ orderId: 'stale-reserved', items: [{ sku: 'stale-a', quantity: 1 }], userId: '', ttlSeconds: 60 });
    const rejected = await reservations.reserve({ orderId: 'stale-rejected', items: [{ sku: 'stale-b', quantity: 1000 }], userId: '', ttlSeconds: 60 });
    assert.equal(rejected.outcome, 'REJECTED');
    const stale = ['stale-recovered', 'stale-reserved', 'stale-rejected', 'stale-gone-1', 'stale-gone-2', 'stale-gone-3'];
    await inv.services.shards.client(0).zadd(inv.services.shards.keys.pending(0), ...stale.flatMap((id, i) => [i + 1, id]));

    const carts = ['stale-cart-1', 'stale-cart-2', 'stale-cart-3', 'stale-cart-4'];
    for (const orderId of carts) await crashedCart(orderId, a, b);
    await sleep(grace + 50);
    const { sweeper, swept } = pagedSweeper(inv, { recoveryGraceMs: grace, batch: 5 });
    await sweeper.sweep();
    assert.equal(swept.recovered, carts.length);
    assert.deepEqual(await indexOf(inv, 'pending'), []);
    assert.equal(await inv.availOf([a]), 99, 'every unit is back but the one stale-reserved holds');
    assert.equal(await inv.availOf([b]), 100);
    assert.equal((await inv.services.gateway.order('stale-reserved'))?.state, 'RESERVED', 'a stale entry’s order is left alone');
  });

  it('removes stale expiry entries and keeps a hold that is not due yet, neither hiding the due holds', async () => {
    const parts = await inv.stock('expiry-a', 100, 1);
    const { reservations } = inv.services;
    const hold = (orderId: string, ttlSeconds: number) =>
      reservations.reserve({ orderId, items: [{ sku: 'expiry-a', quantity: 1 }], userId: '', ttlSeconds });
    await hold('expiry-later', 60);
    await hold('expiry-released', 60);
    await reservations.release('expiry-released', 'CANCEL_BEFORE_PAYMENT', undefined, 'r-1');
    const due = ['expiry-due-1', 'expiry-due-2', 'expiry-due-3'];
    for (const orderId of due) await hold(orderId, 1);
    // At the head of `expiry`: a hold not due for a minute (as a sweeper whose clock runs far ahead
    // would find it), then entries whose orders are released or gone. More than a page.
    const head = ['expiry-later', 'expiry-released', 'expiry-gone-1', 'expiry-gone-2', 'expiry-gone-3', 'expiry-gone-4'];
    await inv.services.shards.client(0).zadd(inv.services.shards.keys.expiry(0), ...head.flatMap((id, i) => [i + 1, id]));
    assert.equal(await inv.availOf(parts), 96);

    await sleep(1100);
    const { sweeper, swept } = pagedSweeper(inv, { recoveryGraceMs: grace, batch: 5 });
    await sweeper.sweep();
    assert.equal(swept.expired, due.length);
    const left = (await indexOf(inv, 'expiry')).filter((id) => id.startsWith('expiry-'));
    assert.deepEqual(left, ['expiry-later'], 'only the hold that is not due keeps its entry');
    assert.equal((await inv.services.gateway.order('expiry-later'))?.state, 'RESERVED');
    for (const orderId of due) assert.equal((await inv.services.gateway.order(orderId))?.state, 'EXPIRED');
    assert.equal(await inv.availOf(parts), 99);
  });
});

describe('crash recovery after a server process is killed mid-sale', function () {
  this.timeout(60_000);

  it('rolls back every cart the killed server left, more than one sweep reads, and the units add up', async () => {
    const env = { REDIS_SHARDS: '1', RESERVE_TIMEOUT_MS: '500', RECOVERY_GRACE_MS: '1000' };
    // The test's own services sweep only when told to, and run the ledger writer.
    const inv = await startInventory('killed', {}, testConfig(uniqueName('killed'), { ...env, SWEEP_INTERVAL_MS: '600000' }));
    let server: ServerProcess | undefined;
    const buyers: InventoryServiceClient[] = [];
    try {
      const skus = ['killed-a', 'killed-b'];
      const stock = 10_000;
      const partitions: PartitionRef[] = [];
      for (const sku of skus) {
        await inv.services.operator.setStock(`set-${sku}`, sku, stock, 'count');
        partitions.push(...(await inv.services.operator.preallocate(`pre-${sku}`, sku, stock, 4)).partitions);
      }
      server = await spawnServerBeside(inv.config, { ...env, LEDGER_WRITER: 'off' });
      for (let i = 0; i < 20; i++) {
        buyers.push(new InventoryServiceClient(server.address, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
      }
      await waitFor(
        async () => {
          const res = await unary<{ stock: Array<{ partitions: number }> }>(buyers[0], 'getStock', { skuIds: skus });
          return res.stock.every((s) => s.partitions === 4);
        },
        5000,
        'the server to see the partitions',
      );

      // Two-item carts (several round trips each), all at once; SIGKILL once a few are answered.
      const carts = Array.from({ length: 400 }, (_, i) => ({
        orderId: `killed-cart-${i}`,
        items: [{ skuId: 'killed-a', quantity: 1 }, { skuId: 'killed-b', quantity: 2 }],
      }));
      let answered = 0;
      const answers = carts.map((cart, i) =>
        unary<ReserveResponse>(buyers[i % buyers.length], 'reserve', ReserveRequest.fromPartial(cart), new grpc.Metadata(), {
          deadline: Date.now() + 10_000,
        })
          .catch(() => undefined)
          .finally(() => answered++),
      );
      // SIGKILL while carts are half way (recorded PENDING, not answered): a moment of the sale, not its start or end.
      await waitFor(async () => answered >= 20 && (await inv.services.shards.client(0).zcard(inv.services.shards.keys.pending(0))) >= 20, 10_000, 'carts half way');
      server.child.kill('SIGKILL');
      const first = await Promise.all(answers);

      const stuck = await indexOf(inv, 'pending');
      const batch = Math.max(1, Math.floor(stuck.length / 4));
      assert.ok(stuck.length > batch, `${stuck.length} carts left pending, more than a page of ${batch}`);

      await sleep(1100);
      // The gauge an operator would watch: the oldest stuck cart is past the grace, then gone.
      const metrics = new Metrics();
      metrics.observeRecovery(inv.services.sweeper);
      const oldestPending = async () => {
        const gauge = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'inventory_recovery_oldest_pending_seconds');
        return gauge?.values.find((v) => v.labels.shard === '0')?.value;
      };
      assert.ok((await oldestPending())! >= 1, 'the oldest pending cart is older than the grace');

      // Reconcile reports the units those carts hold (some died before taking anything) before the
      // worker gets to them: each order it names is a stuck one, and the units add up per SKU.
      const stuckUnits = new Map<string, number>(skus.map((sku) => [sku, 0]));
      for (const p of partitions) {
        for (const [orderId, units] of await inv.services.inspector.holdersOf(p)) {
          if (stuck.includes(orderId)) stuckUnits.set(p.sku, stuckUnits.get(p.sku)! + units);
        }
      }
      const before = (await inv.services.reconciler.reconcile(skus, false, '')).discrepancies;
      assert.ok(before.every((d) => d.kind === 'STUCK_ORDER' && (d.orderId === '' || stuck.includes(d.orderId))), JSON.stringify(before.slice(0, 3)));
      const reported = new Map<string, number>(skus.map((sku) => [sku, 0]));
      for (const d of before) reported.set(d.sku, reported.get(d.sku)! + d.actual);
      assert.deepEqual(reported, stuckUnits);

      // One page a sweep, smaller than the carts left: it takes several sweeps, each one further on
      // (before the fix, the rolled-back carts stayed at the head and every sweep read them again).
      const { sweeper, swept } = pagedSweeper(inv, { recoveryGraceMs: 1000, batch, pagesPerRound: 1 });
      const sweeps = Math.ceil(stuck.length / batch);
      for (let i = 0; i < sweeps; i++) await sweeper.sweep();
      assert.equal(swept.recovered, stuck.length, `${sweeps} sweeps of one page of ${batch}`);
      assert.deepEqual(await indexOf(inv, 'pending'), []);
      assert.equal(await oldestPending(), 0);
      for (const orderId of stuck) {
        const order = await inv.services.gateway.order(orderId);
        assert.deepEqual([order?.state, order?.answer], ['REJECTED', 'RECOVERED'], orderId);
      }

      // A buyer whose call failed asks again (Reserve is idempotent): a cart the server committed
      // before dying is answered RESERVED, a rolled-back one ABORTED, one that never got far is new.
      const reserved = new Set<number>();
      for (const [i, res] of first.entries()) {
        if (res?.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED) reserved.add(i);
        if (res) continue;
        const again = await inv.reserve(carts[i].orderId, [['killed-a', 1], ['killed-b', 2]]).catch((err: grpc.ServiceError) => err);
        if ('outcome' in again && again.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED) reserved.add(i);
        else if (!('outcome' in again)) assert.equal(again.code, grpc.status.ABORTED, again.message);
      }
      assert.ok(reserved.size > 0);
      const held: Record<string, number> = { 'killed-a': reserved.size, 'killed-b': 2 * reserved.size };

      const avail = await inv.services.gateway.avail(partitions);
      for (const sku of skus) {
        const live = avail.filter((_, i) => partitions[i].sku === sku).reduce((x, y) => x + y, 0);
        assert.equal(live + held[sku], stock, `${sku}: live ${live} + held ${held[sku]}`);
      }
      await inv.services.ledger.drain(20_000);
      const rows = await readStock(inv.services.mysql, skus);
      for (const sku of skus) {
        const row = rows.get(sku)!;
        assert.equal(row.onHand, stock, sku);
        assert.equal(row.base + row.pool + row.reserved + row.committed, row.onHand, JSON.stringify(row));
        assert.equal(row.reserved, held[sku], JSON.stringify(row));
      }
      assert.deepEqual((await inv.services.reconciler.reconcile(skus, false, '')).discrepancies, []);
    } finally {
      buyers.forEach((b) => b.close());
      await server?.stop();
      await inv.close();
    }
  });
});
