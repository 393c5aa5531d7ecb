import assert from 'node:assert/strict';
import { Discrepancy } from '../admin/discrepancy';
import { StockUpdate } from '../mq/types';
import { abandonPreallocate } from './helpers/intents';
import { InventoryFixture, startInventory, stockApplierOf, waitFor } from './helpers/inventory';
import { SaleOptions, checkSale, repeatWhile, runSale } from './helpers/sale';

/**
 * DESIGN promise 7: every operation that reads one store and writes another is safe while Reserves
 * and Releases run. Each test runs a flash sale (a SKU of 2,000 units, 1,000 of them pre-allocated
 * in 8 partitions, one-unit Reserves from 200 callers, so top-ups carve the rest from base while it
 * sells) with one such operation called again and again, and checks that nothing was sold twice:
 * every held unit belongs to exactly one acknowledged order, MySQL and Redis agree on them, and
 * on_hand = base + pool + reserved + committed. docs/consistency.md says why each is safe.
 */
describe('operations across stores during a flash sale', function () {
  this.timeout(180_000);
  let inv: InventoryFixture;
  let n = 0;
  const rid = (tag: string) => `${tag}-${++n}`;
  const sale: Omit<SaleOptions, 'during'> = { orders: 6000, callers: 200 };

  before(async () => {
    inv = await startInventory('xstore', { SWEEP_INTERVAL_MS: '100', RECOVERY_GRACE_MS: '3000', RESERVE_TIMEOUT_MS: '2000', INTENT_RECOVERY_MS: '500' });
  });
  after(() => inv.close());

  /** A SKU of `units`, `pooled` of them in `partitions` partitions, known to this server. */
  async function flashSku(sku: string, units = 2000, pooled = 1000, partitions = 8): Promise<void> {
    await inv.services.operator.setStock(rid('set'), sku, units, 'count');
    await inv.services.operator.preallocate(rid('pre'), sku, pooled, partitions);
    await waitFor(() => inv.services.cache.partitions(sku).length === partitions);
  }

  const reconcile = (sku: string, repair = false) => inv.services.reconciler.reconcile([sku], repair, repair ? rid('rec') : '');
  const kinds = (found: readonly Discrepancy[]) => found.map((d) => `${d.kind}${d.partitionId ? `@${d.partitionId}` : ''}: ${d.detail}`);

  async function assertCleanDryRun(sku: string): Promise<void> {
    assert.deepEqual(kinds((await reconcile(sku)).discrepancies), []);
  }

  it('Reconcile with repair, called continuously, sells exactly the stock and repairs nothing', async () => {
    await flashSku('x-rec');
    const reports: Discrepancy[] = [];
    const outcome = await runSale(inv, 'x-rec', 'rec', {
      ...sale,
      during: async (running) => void (await repeatWhile(running, async () => reports.push(...(await reconcile('x-rec', true)).discrepancies))),
    });
    assert.deepEqual(kinds(reports), []);
    assert.equal(outcome.won.length, 2000, 'exactly the stock is sold');
    const { stock, holding } = await checkSale(inv, 'x-rec', outcome);
    assert.deepEqual([stock.onHand, holding, stock.base, stock.pool], [2000, 2000, 0, 0]);
    await assertCleanDryRun('x-rec');
  });

  it('a dry run during a sale with cancels, payments and expiring holds reports nothing', async () => {
    await flashSku('x-dry');
    const reports: Discrepancy[] = [];
    let runs = 0;
    const outcome = await runSale(inv, 'x-dry', 'dry', {
      ...sale,
      cancelShare: 0.1,
      confirmShare: 0.3,
      ttlSeconds: 1,
      during: async (running) => {
        runs = await repeatWhile(running, async () => reports.push(...(await reconcile('x-dry')).discrepancies));
      },
    });
    assert.ok(runs > 1, `${runs} dry runs during the sale`);
    assert.deepEqual(kinds(reports), []);
    // Unpaid holds expire (the sweeper runs every 100 ms) and their units sell again.
    await waitFor(async () => (await inv.services.operator.stock(['x-dry'])).get('x-dry')!.reserved === 0, 10_000, 'holds expired');
    await checkSale(inv, 'x-dry', outcome);
    await assertCleanDryRun('x-dry');
  });

  it('finds and repairs a real discrepancy during the sale: units removed behind its back, a registration deleted', async () => {
    await flashSku('x-real');
    const { shards, registry, inspector } = inv.services;
    const [victim, unlisted] = inv.services.cache.partitions('x-real');
    const reports: Discrepancy[] = [];
    const outcome = await runSale(inv, 'x-real', 'real', {
      ...sale,
      during: async (running) => {
        // Within the first moments of the sale, while both partitions still have units.
        await shards.client(victim.shard).hincrby(shards.keys.partition(victim.shard, 'x-real', victim.partitionId), 'avail', -5);
        await registry.removePartition('x-real', unlisted.partitionId, unlisted.epoch);
        await repeatWhile(running, async () => reports.push(...(await reconcile('x-real', true)).discrepancies), 20);
      },
    });
    const pool = reports.find((d) => d.kind === 'POOL_MISMATCH' && d.partitionId === victim.partitionId);
    assert.ok(pool?.repaired, kinds(reports).join('\n'));
    assert.deepEqual([pool.expected - pool.actual], [5]);
    const unregistered = reports.find((d) => d.kind === 'UNREGISTERED_PARTITION' && d.partitionId === unlisted.partitionId);
    assert.ok(unregistered?.repaired, kinds(reports).join('\n'));
    assert.deepEqual(
      reports.filter((d) => d !== pool && d !== unregistered),
      [],
      'nothing else is reported, and each difference is repaired once',
    );
    // The 5 units went back to base and sell again: a last wave of buyers, once the empty-base verdict is old.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const last = await runSale(inv, 'x-real', 'real-last', { orders: 200, callers: 20 });
    const won = { won: [...outcome.won, ...last.won], cancelled: 0 };
    const { stock, holding } = await checkSale(inv, 'x-real', won);
    assert.deepEqual([holding, stock.base, stock.pool], [2000, 0, 0]);
    assert.equal((await inspector.auditPartition(victim)).fix, 1, 'repaired exactly once');
    await assertCleanDryRun('x-real');
  });

  it('AdjustStock and SetStock during the sale: receipts sell, losses come out of base, nothing sells twice', async () => {
    await flashSku('x-adj');
    const deltas = [300, -50, 120, -20];
    const outcome = await runSale(inv, 'x-adj', 'adj', {
      ...sale,
      during: async (running) => {
        for (const delta of deltas) await inv.services.operator.adjustStock(rid('adj'), 'x-adj', delta, 'during the sale');
        await repeatWhile(running, () => inv.services.operator.setStock(rid('set'), 'x-adj', 2350, 'count'), 20);
      },
    });
    const { stock, holding } = await checkSale(inv, 'x-adj', outcome);
    assert.equal(stock.onHand, 2350, 'the last stock-take stands');
    assert.equal(holding, outcome.won.length);
    // A loss that found base already carved into partitions is a shortfall, raised, never clamped away.
    const found = (await reconcile('x-adj')).discrepancies;
    assert.deepEqual(found.map((d) => [d.kind, d.actual]), stock.shortfall > 0 ? [['SHORTFALL', stock.shortfall]] : []);
  });

  it('warehouse messages during the sale: receipts sell, losses shrink the pool, nothing sells twice', async () => {
    await flashSku('x-msg');
    const applier = stockApplierOf(inv);
    let m = 0;
    const send = (kind: StockUpdate['kind'], quantity: number) =>
      applier.apply({ messageId: `x-msg-${++m}`, sku: 'x-msg', kind, quantity, occurredAt: new Date(), sequence: m });
    const outcome = await runSale(inv, 'x-msg', 'msg', {
      ...sale,
      during: async (running) => {
        await repeatWhile(running, async () => {
          await send('RECEIPT', 40);
          await send('LOSS', 30);
          await send('DAMAGE', 5);
        }, 10);
      },
    });
    const { stock, holding } = await checkSale(inv, 'x-msg', outcome);
    assert.equal(holding, outcome.won.length);
    const [[applied]] = await inv.services.mysql.query<any[]>("SELECT COUNT(*) AS n FROM stock_messages WHERE sku_id = 'x-msg' AND outcome = 'applied'");
    assert.equal(Number(applied.n), m, 'every message applied once');
    // Losses the base and pool could not cover (all sold) are shortfalls, raised; nothing else differs.
    const found = (await reconcile('x-msg')).discrepancies;
    assert.deepEqual(found.map((d) => [d.kind, d.actual]), stock.shortfall > 0 ? [['SHORTFALL', stock.shortfall]] : []);
  });

  it('Rebalance and DrainPartition during the sale lose and double nothing', async () => {
    await flashSku('x-reb');
    const outcome = await runSale(inv, 'x-reb', 'reb', {
      ...sale,
      during: async (running) => {
        await repeatWhile(running, async () => {
          await inv.services.operator.rebalance(rid('reb'), 'x-reb', 400, 6, []);
          const [p] = await inv.services.operator.listPartitions('x-reb');
          if (p) await inv.services.operator.drainPartition(rid('drain'), 'x-reb', p.partitionId);
        });
      },
    });
    const { stock, holding } = await checkSale(inv, 'x-reb', outcome);
    assert.equal(stock.onHand, 2000);
    assert.equal(holding, outcome.won.length);
    await assertCleanDryRun('x-reb');
  });

  it('the recovery worker finishes an operation a process left between MySQL and Redis, during the sale', async () => {
    await flashSku('x-int');
    const outcome = await runSale(inv, 'x-int', 'int', {
      ...sale,
      during: async (running) => {
        await abandonPreallocate(inv, 'pre-int-dead', 'x-int', 200, 2);
        await repeatWhile(running, () => inv.services.operator.recoverIntents(500), 50);
      },
    });
    const { stock, holding } = await checkSale(inv, 'x-int', outcome);
    assert.equal(holding, outcome.won.length);
    assert.deepEqual([stock.onHand, holding], [2000, 2000], 'the recovered partitions sold too');
    await assertCleanDryRun('x-int');
  });
});
