import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ReleaseReason, ReservationState, ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { PartitionRef } from '../allocator/gateway';
import { RestoreScripts } from '../allocator/restore-scripts';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { RedisNode, startRedisNode } from './helpers/redis-node';

/**
 * A Redis node that comes back having lost acknowledged writes (an older copy of its AOF put back
 * before a restart, as an OS crash with appendfsync everysec or a failover to a lagging replica
 * leaves it): found within seconds, stopped, restored from MySQL, never sold twice.
 */
describe('a Redis node that lost writes', function () {
  this.timeout(120_000);
  let node: RedisNode;
  let inv: InventoryFixture;
  let snapshot: string;

  before(async () => {
    node = await startRedisNode({ aof: true });
    inv = await startInventory('lostwrites', { REDIS_NODES: node.address, TOPUP_ENABLED: 'false', LOST_WRITES_RETRY_MS: '200' });
    snapshot = mkdtempSync(path.join(os.tmpdir(), 'inv-redis-snapshot-'));
  });
  after(async () => {
    await inv?.close();
    await node?.stop();
    rmSync(snapshot, { recursive: true, force: true });
  });

  const reserveOne = (orderId: string, sku: string) => inv.reserve(orderId, [[sku, 1]]);
  let n = 0;
  const availOf = async (parts: readonly PartitionRef[]) => (await inv.services.gateway.avail(parts)).reduce((a, b) => a + b, 0);
  /** A SKU of `units` on hand, all carved into `partitions` partitions through the operator (MySQL records them). */
  async function stockOf(sku: string, units: number, partitions: number): Promise<PartitionRef[]> {
    await inv.services.operator.setStock(`set-${++n}`, sku, units, 'count');
    const made = await inv.services.operator.preallocate(`pre-${++n}`, sku, units, partitions);
    await waitFor(() => inv.services.cache.partitions(sku).length === partitions);
    return made.partitions.map((p) => ({ sku, partitionId: p.partitionId, shard: p.shard, epoch: p.epoch }));
  }
  const reserved = (answers: Array<{ outcome: ReserveOutcome }>) => answers.filter((a) => a.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED).length;

  it('finds it on reconnect, restores partitions and orders from MySQL, answers replays from them and sells nothing twice', async () => {
    const sku = 'lw-sku';
    const stock = 200;
    const parts = await stockOf(sku, stock, 2);

    // Before the copy: 50 orders, all in MySQL.
    assert.equal(reserved(await Promise.all(Array.from({ length: 50 }, (_, i) => reserveOne(`a-${i}`, sku)))), 50);
    await inv.services.ledger.drain(30_000);
    cpSync(node.dir, snapshot, { recursive: true });

    // After it: 40 more, 10 of them paid and 5 cancelled; the ledger writer copies all to MySQL.
    assert.equal(reserved(await Promise.all(Array.from({ length: 40 }, (_, i) => reserveOne(`b-${i}`, sku)))), 40);
    for (let i = 0; i < 10; i++) await inv.confirm(`b-${i}`);
    for (let i = 10; i < 15; i++) await inv.release(`b-${i}`, ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT);
    await inv.services.ledger.drain(30_000);

    // The node crashes and comes back with the older copy: every b- order and change is gone from Redis.
    const restarted = Date.now();
    await node.crashAndRestart((dir) => {
      rmSync(dir, { recursive: true, force: true });
      cpSync(snapshot, dir, { recursive: true });
    });
    assert.equal(await inv.services.shards.client(0).exists(inv.services.shards.keys.order(inv.services.shards.keys.orderShard('b-20'), 'b-20')), 0, 'the node really lost b-20');

    // Found and restored on the reconnect, within seconds.
    await waitFor(
      async () => (await inv.metrics.registry.getSingleMetricAsString('inventory_redis_lost_writes_total')).includes(`node="${node.address}"} 2`),
      10_000,
      'both partitions found behind MySQL',
    );
    await waitFor(() => inv.services.lostWrites.suspectPartitions() === 0, 10_000, 'partitions restored');
    assert.ok(Date.now() - restarted < 10_000);
    await inv.services.health.probe();
    const degraded = inv.services.health.report().degraded.join('\n');
    assert.match(degraded, new RegExp(`redis ${node.address} came back having lost acknowledged writes.*2 partition\\(s\\) restored from MySQL`));
    assert.match(await inv.metrics.registry.metrics(), /inventory_redis_suspect_partitions 0/);

    // Replays of lost orders answer what MySQL recorded and take nothing.
    const before = await availOf(parts);
    assert.equal(before, stock - 50 - 35, 'Redis pools are MySQL’s again');
    const replay = await reserveOne('b-20', sku);
    assert.equal(replay.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal(replay.replayed, true);
    assert.equal(replay.reservation?.state, ReservationState.RESERVATION_STATE_RESERVED);
    const paid = await reserveOne('b-3', sku);
    assert.equal(paid.replayed, true);
    assert.equal(paid.reservation?.state, ReservationState.RESERVATION_STATE_CONFIRMED);
    const cancelled = await inv.getReservation('b-12');
    assert.equal(cancelled.reservation?.state, ReservationState.RESERVATION_STATE_RELEASED);
    assert.equal(await availOf(parts), before, 'replays took nothing');

    // Confirm and Release keep working on restored orders; a cancelled one is not released twice.
    assert.equal((await inv.confirm('b-20')).reservation?.state, ReservationState.RESERVATION_STATE_CONFIRMED);
    await inv.release('b-21', ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT);
    await inv.release('b-12', ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT).catch(() => undefined);
    assert.equal(await availOf(parts), before + 1, 'only b-21’s unit came back');

    // Sell out: every unit once, across the whole sale.
    const rest = reserved(await Promise.all(Array.from({ length: 200 }, (_, i) => reserveOne(`c-${i}`, sku))));
    assert.equal(rest, stock - 50 - 35 + 1);
    await inv.services.ledger.drain(30_000);
    const row = (await inv.services.operator.stock([sku])).get(sku)!;
    assert.equal(row.onHand, row.base + row.pool + row.reserved + row.committed, JSON.stringify(row));
    assert.equal(row.reserved + row.committed, stock, JSON.stringify(row));

    // Reconcile reports the incident with both numbers, and nothing else is off.
    const result = await inv.services.reconciler.reconcile([sku], false, '');
    const lost = result.discrepancies.filter((d) => d.kind === 'REDIS_LOST_WRITES');
    assert.equal(lost.length, 2, JSON.stringify(result.discrepancies));
    for (const d of lost) assert.ok(d.expected > d.actual, `MySQL's number ${d.expected} is ahead of Redis's ${d.actual}`);
    assert.deepEqual(result.discrepancies.filter((d) => d.kind !== 'REDIS_LOST_WRITES'), []);
  });

  it('a suspect partition sells nothing and stays registered until restored', async () => {
    const sku = 'lw-suspect';
    const [ref] = await stockOf(sku, 10, 1);
    const part = ref;
    assert.equal(reserved([await reserveOne('s-0', sku)]), 1);
    await inv.services.ledger.drain(30_000);
    // As the check does when it finds the partition behind MySQL: stop it at its number.
    const [now] = await new RestoreScripts(inv.services.shards).seqs([ref]);
    assert.equal(await new RestoreScripts(inv.services.shards).suspend(ref, now!.seq, now!.seq, 10), true);
    const refused = await reserveOne('s-1', sku);
    assert.equal(refused.outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
    assert.equal(await availOf([part]), 9, 'nothing taken');
    assert.equal((await inv.services.registry.listPartitions(sku)).length, 1, 'still registered');
    // The guard's retry restores it from MySQL, and it sells again.
    await inv.services.lostWrites.checkAll();
    assert.equal(inv.services.lostWrites.suspectPartitions(), 0);
    assert.equal(reserved([await reserveOne('s-2', sku)]), 1);
    assert.equal(await availOf([part]), 8);
  });
});
