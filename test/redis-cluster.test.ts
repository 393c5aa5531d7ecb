import assert from 'node:assert/strict';
import { ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { Discrepancy } from '../admin/discrepancy';
import { BreakerOpen, DependencyUnavailable } from '../kernel/dependency';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { RedisClusterFixture, startRedisCluster } from './helpers/redis-cluster';
import { SaleOutcome, checkSale, runSale } from './helpers/sale';

/**
 * The service on a real Redis Cluster of the test's own (3 masters, 1 replica each, ports
 * 7100-7105): a flash sale sells exactly its stock with its partitions on every master; a slot of
 * a shard holding partitions moves to another master mid-sale (raw SETSLOT/MIGRATE) and nothing is
 * lost or sold twice; a master SIGKILLed mid-sale fails over to its replica, selling resumes, and
 * whatever asynchronous replication lost is what Reconcile reports, nothing else.
 */
describe('Redis Cluster mode', function () {
  this.timeout(60_000);
  let cluster: RedisClusterFixture;
  let inv: InventoryFixture;
  let n = 0;
  const rid = (tag: string) => `${tag}-${++n}`;
  const STOCK = 600;
  const kinds = (found: readonly Discrepancy[]) => found.map((d) => `${d.kind}${d.partitionId ? `@${d.partitionId}` : ''}: ${d.detail}`);

  before(async () => {
    cluster = await startRedisCluster({ basePort: 7100, nodeTimeoutMs: 1000 });
    inv = await startInventory('cluster', {
      REDIS_CLUSTER: cluster.seeds.join(','),
      // Not with REDIS_NODES, should the environment name one (empty counts as unset).
      REDIS_NODES: '',
      TOPUP_ENABLED: 'false',
      LOST_WRITES_RETRY_MS: '300',
      BREAKER_RESET_MS: '300',
      HEALTH_INTERVAL_MS: '200',
    });
  });
  after(async () => {
    await inv?.close();
    await cluster?.stop();
  });

  /** A SKU of STOCK units, all of them in `partitions` partitions spread over the masters. */
  async function flashSku(sku: string, partitions = 6): Promise<void> {
    await inv.services.operator.setStock(rid('set'), sku, STOCK, 'count');
    await inv.services.operator.preallocate(rid('pre'), sku, STOCK, partitions);
    await waitFor(() => inv.services.cache.partitions(sku).length === partitions);
  }

  /** The masters (by the cluster's own CLUSTER NODES) holding the SKU's live partitions. */
  async function mastersOf(sku: string): Promise<Set<string>> {
    const parts = await inv.services.operator.listPartitions(sku);
    const masters = await Promise.all(parts.map((p) => cluster.masterOf(inv.services.shards.slot(p.shard))));
    return new Set(masters.map((m) => m.address));
  }

  it('a flash sale sells exactly its stock, its partitions on all three masters', async () => {
    await flashSku('c-sale');
    const on = await mastersOf('c-sale');
    assert.equal(on.size, 3, `partitions on ${[...on].join(', ')}`);
    assert.deepEqual(new Set(inv.services.shards.nodes()), new Set((await cluster.nodes()).filter((m) => m.master).map((m) => m.address)), 'our slot map names the cluster’s masters');
    const outcome = await runSale(inv, 'c-sale', 'sale', { orders: STOCK + 200, callers: 40 });
    assert.equal(outcome.won.length, STOCK, 'exactly the stock is sold');
    const { stock, holding } = await checkSale(inv, 'c-sale', outcome);
    assert.deepEqual([stock.onHand, holding, stock.base, stock.pool], [STOCK, STOCK, 0, 0]);
    assert.deepEqual(kinds((await inv.services.reconciler.reconcile(['c-sale'], false, '')).discrepancies), []);
    // Health and the memory watch see each master, not the cluster as one.
    const masters = [...inv.services.shards.nodes()].sort();
    const report = inv.services.health.report();
    assert.deepEqual(Object.keys(report.checks).filter((c) => c.startsWith('redis ')).sort(), masters.map((m) => `redis ${m}`));
    assert.equal(report.inventory, 'SERVING');
    await inv.services.redisMemory.check();
    const readings = inv.services.redisMemory.readings();
    assert.deepEqual(readings.map((r) => r.node).sort(), masters);
    for (const r of readings) assert.ok(r.reading && r.reading.usedBytes > 0, `memory of ${r.node} read`);
  });

  it('a shard’s slot moved to another master mid-sale loses nothing and sells nothing twice', async () => {
    await flashSku('c-move');
    const [victim] = await inv.services.operator.listPartitions('c-move');
    const slot = inv.services.shards.slot(victim.shard);
    const from = await cluster.masterOf(slot);
    const to = (await cluster.nodes()).find((m) => m.master && !m.failed && m.address !== from.address)!;
    let moved = -1;
    const outcome = await runSale(inv, 'c-move', 'move', {
      orders: STOCK + 200,
      callers: 40,
      pauseMs: 5,
      during: async () => {
        await new Promise((resolve) => setTimeout(resolve, 150));
        moved = await cluster.moveSlot(slot, to.address);
      },
    });
    assert.ok(moved > 0, `keys moved with the slot: ${moved}`);
    const { counts } = inv.services.shards.cluster!;
    assert.ok(counts.moved > 0, `script calls followed MOVED (${JSON.stringify(counts)})`);
    assert.equal((await cluster.masterOf(slot)).address, to.address, 'the slot lives on the other master now');
    assert.equal(inv.services.shards.node(victim.shard), to.address, 'our map followed the MOVED');
    assert.equal(outcome.won.length, STOCK, 'exactly the stock is sold');
    const { holding } = await checkSale(inv, 'c-move', outcome);
    assert.equal(holding, STOCK);
    assert.deepEqual(kinds((await inv.services.reconciler.reconcile(['c-move'], false, '')).discrepancies), []);
  });

  it('a script whose keys are not on a migrating slot’s source follows ASK to the target, once, leaving the map', async () => {
    const shard = 0;
    const slot = inv.services.shards.slot(shard);
    const from = await cluster.masterOf(slot);
    const to = (await cluster.nodes()).find((m) => m.master && !m.failed && m.address !== from.address)!;
    const { counts } = inv.services.shards.cluster!;
    const ref = { sku: 'c-ask', partitionId: 'p-ask', shard, epoch: 1 };
    await cluster.moveSlot(slot, to.address, async () => {
      const asked = counts.ask;
      // A new partition's key is on neither node: the source answers -ASK, the target creates it.
      assert.equal((await inv.services.gateway.createPartition(ref, 7)).created, true);
      assert.equal(counts.ask, asked + 1, 'one ASK followed');
      assert.equal(inv.services.shards.node(shard), from.address, 'ASK leaves the map as it was');
      const onTarget = await cluster.client(to.address).pipeline().asking().exists(inv.services.shards.keys.partition(shard, ref.sku, ref.partitionId)).exec();
      assert.deepEqual(onTarget?.[1], [null, 1], 'the key was made on the importing master');
    });
    assert.deepEqual(await inv.services.gateway.avail([ref]), [7], 'readable where the slot lives now');
  });

  it('plain commands on a shard go through the breaker of the master serving its slot, and no other', async () => {
    const shards = inv.services.shards;
    const shard = 0;
    // Our map is read again (an earlier test moved a slot), so both name the same master.
    await shards.cluster!.refresh();
    const master = shards.node(shard);
    assert.equal(master, (await cluster.masterOf(shards.slot(shard))).address);
    const elsewhere = Array.from({ length: shards.keys.shardCount }, (_, s) => s).find((s) => shards.node(s) !== master)!;
    const breaker = shards.cluster!.breaker(master);
    const key = `${shards.keys.tag(shard)}:breaker-probe`;
    // The master refuses writes (memory full): typed failures naming it, which open its breaker.
    await cluster.client(master).config('SET', 'maxmemory', '1');
    try {
      let refusals = 0;
      while (breaker.state !== 'open') {
        await assert.rejects(shards.client(shard).set(key, '1'), (err) => err instanceof DependencyUnavailable && err.node === master);
        assert.ok(++refusals < 5000, 'the breaker opened');
      }
      // Open: refused without being tried, even a read the master could answer, naming the master.
      await assert.rejects(shards.client(shard).get(key), (err) => err instanceof BreakerOpen && err.node === master);
      assert.equal(shards.reachable(shard), false);
      // Another master's shard is not held up by it.
      assert.equal(await shards.client(elsewhere).get(`${shards.keys.tag(elsewhere)}:breaker-probe`), null);
    } finally {
      await cluster.client(master).config('SET', 'maxmemory', '0');
    }
    await waitFor(async () => (await shards.client(shard).get(key).then(() => true, () => false)) && breaker.state === 'closed', 10_000, 'the breaker to close');
  });

  it('a master SIGKILLed mid-sale fails over to its replica; selling resumes; Reconcile reports only lost writes, if any', async () => {
    await flashSku('c-fail');
    const [victim] = await inv.services.operator.listPartitions('c-fail');
    const slot = inv.services.shards.slot(victim.shard);
    const dead = await cluster.masterOf(slot);
    let failedOverAt = 0;
    let afterFailover = 0;
    const outcome = await tolerantSale('c-fail', 'fail', STOCK + 300, 30, (won) => {
      if (failedOverAt > 0) afterFailover += won;
    }, async () => {
      await new Promise((resolve) => setTimeout(resolve, 200));
      cluster.kill(dead.address);
      const sawDown = waitFor(() => inv.services.health.report().checks[`redis ${dead.address}`]?.up === false, 10_000, 'health to see the master down');
      const promoted = await cluster.waitForFailover(dead.address, slot);
      failedOverAt = Date.now();
      assert.notEqual(promoted.address, dead.address);
      await sawDown;
      // Then health follows the cluster: the promoted replica is a master it probes, the dead one is gone.
      await waitFor(() => {
        const { checks, degraded } = inv.services.health.report();
        return checks[`redis ${promoted.address}`]?.up === true && !(`redis ${dead.address}` in checks) && !degraded.some((line) => line.includes(dead.address));
      }, 15_000, 'health to follow the failover');
    });
    assert.ok(failedOverAt > 0, 'the replica took over');
    assert.ok(inv.services.shards.cluster!.counts.resent > 0, 'calls to the dead master were sent again');
    await waitFor(() => inv.services.shards.node(victim.shard) !== dead.address && inv.services.shards.reachable(victim.shard), 10_000, 'our map to follow the failover');
    // Selling resumes on the promoted master: the victim's partition sells again (or sold out).
    const sold = outcome.won.length;
    assert.ok(afterFailover > 0 || sold === STOCK, `sales after the failover: ${afterFailover}, sold ${sold}`);
    assert.ok(sold <= STOCK, `${sold} acknowledged of ${STOCK}`);
    await inv.services.ledger.drain(20_000);
    const report = await inv.services.reconciler.reconcile(['c-fail'], false, '');
    const lost = report.discrepancies.filter((d) => d.kind === 'REDIS_LOST_WRITES');
    assert.deepEqual(kinds(report.discrepancies.filter((d) => d.kind !== 'REDIS_LOST_WRITES')), [], 'nothing but lost writes');
    for (const d of lost) assert.ok(d.expected > d.actual, `MySQL's number ${d.expected} is ahead of Redis's ${d.actual}`);
    if (lost.length === 0) {
      const { holding, stock } = await checkSale(inv, 'c-fail', outcome);
      assert.ok(holding <= stock.onHand, `${holding} held of ${stock.onHand}`);
    } else {
      const stock = (await inv.services.operator.stock(['c-fail'])).get('c-fail')!;
      assert.equal(stock.onHand + stock.shortfall, stock.base + stock.pool + stock.reserved + stock.committed, JSON.stringify(stock));
    }
  });

  /**
   * runSale's buyers, but a Reserve that fails (the master is gone, the breaker open) is sent
   * again with the same order id until it has a definite answer, as a client must: a call that
   * failed may have reserved (a timeout), and its replay says so.
   */
  async function tolerantSale(sku: string, tag: string, orders: number, callers: number, onWin: (n: number) => void, during: () => Promise<void>): Promise<SaleOutcome> {
    let sent = 0;
    const won: string[] = [];
    const buyer = async () => {
      while (sent < orders) {
        const orderId = `${tag}-${sent++}`;
        for (let attempt = 0; ; attempt++) {
          try {
            const res = await inv.reserve(orderId, [[sku, 1]]);
            if (res.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED) {
              won.push(orderId);
              onWin(1);
            }
            break;
          } catch (err) {
            if (attempt >= 200) throw err;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
    };
    await Promise.all([Promise.all(Array.from({ length: callers }, buyer)), during()]);
    return { won, cancelled: 0 };
  }
});
