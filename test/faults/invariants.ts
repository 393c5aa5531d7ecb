import assert from 'node:assert/strict';
import type { RowDataPacket } from 'mysql2/promise';
import { InventoryFixture } from '../helpers/inventory';
import type { OrderLoad, OrderRecord } from './load';

/**
 * What must hold after a fault, once everything is healed and the ledger caught up, for the orders
 * a load sent. Each check throws with what it found; `checkInvariants` answers the names of those
 * that held, for the table.
 */
export interface InvariantOptions {
  readonly skus: readonly string[];
  /**
   * Redis lost acknowledged writes MySQL never received (a crash that lost its last second): Reconcile
   * must report REDIS_LOST_WRITES for them, and the orders acknowledged in that window are excused
   * from the per-order checks (the design says they cannot be restored, only reported).
   */
  readonly lostWrites?: boolean;
}

const HOLDING = new Set(['RESERVED', 'CONFIRMED']);

export async function checkInvariants(inv: InventoryFixture, load: OrderLoad, options: InvariantOptions): Promise<string[]> {
  const held: string[] = [];
  const check = async (name: string, body: () => Promise<void> | void) => {
    await body();
    held.push(name);
  };
  const orders = [...load.orders.values()];

  await check('every order answered', () => {
    const open = orders.filter((o) => !o.final || o.final === 'NO_ANSWER' || o.final === 'ERROR');
    assert.deepEqual(open.slice(0, 5).map((o) => `${o.orderId}: ${o.final ?? 'in progress'} (${o.lastFailure})`), [], `${open.length} order(s) without a definite answer`);
  });
  await check('no INTERNAL/UNKNOWN', () => {
    const bad = load.attempts.filter((a) => /^(INTERNAL|UNKNOWN)\//.test(a.answer));
    assert.deepEqual(bad.slice(0, 5).map((a) => `${a.op} ${a.orderId}: ${a.answer} ${a.message}`), [], `${bad.length} INTERNAL/UNKNOWN answer(s)`);
  });
  await check('no wrong REJECTED', () => {
    // Every scenario stocks far more than its load buys: a rejection is a shortage made up by a fault.
    const rejected = orders.filter((o) => o.final === 'REJECTED');
    assert.deepEqual(rejected.slice(0, 5).map((o) => o.orderId), [], `${rejected.length} order(s) REJECTED with stock left`);
  });

  await inv.services.ledger.drain(60_000);
  const report = await inv.services.reconciler.reconcile([...options.skus], false, '');
  const lost = report.discrepancies.filter((d) => d.kind === 'REDIS_LOST_WRITES');
  if (options.lostWrites) {
    await check('lost writes reported by Reconcile (REDIS_LOST_WRITES, MySQL seq ahead of Redis seq)', () => {
      assert.ok(lost.length > 0, 'Reconcile reports the lost writes');
      for (const d of lost) assert.ok(d.expected > d.actual, `MySQL's seq ${d.expected} is ahead of Redis's ${d.actual}`);
    });
  }
  await check('Reconcile clean', () => {
    const others = options.lostWrites ? report.discrepancies.filter((d) => d.kind !== 'REDIS_LOST_WRITES') : report.discrepancies;
    assert.deepEqual(others, [], 'Reconcile finds nothing');
  });

  const stocks = await inv.services.operator.stock([...options.skus]);
  await check('conservation', () => {
    for (const [sku, s] of stocks) {
      assert.equal(s.onHand + s.shortfall, s.base + s.pool + s.reserved + s.committed, `conservation of ${sku}: ${JSON.stringify(s)}`);
      for (const term of [s.base, s.pool, s.reserved, s.committed]) assert.ok(term >= 0, `${sku}: ${JSON.stringify(s)}`);
    }
  });
  if (options.lostWrites) return held;

  const bySku = (sku: string, ...finals: string[]) => orders.filter((o) => o.sku === sku && finals.includes(o.final!)).length;
  await check('MySQL holds = acknowledged (reserved, committed)', () => {
    for (const [sku, s] of stocks) {
      assert.equal(s.reserved, bySku(sku, 'RESERVED'), `${sku}: MySQL reserved ${s.reserved}, acknowledged unpaid holds ${bySku(sku, 'RESERVED')}`);
      assert.equal(s.committed, bySku(sku, 'CONFIRMED'), `${sku}: MySQL committed ${s.committed}, acknowledged paid orders ${bySku(sku, 'CONFIRMED')}`);
    }
  });
  await check('Redis partitions hold = acknowledged', async () => {
    for (const sku of options.skus) {
      const partitions = await inv.services.operator.listPartitions(sku, true);
      const audits = await Promise.all(partitions.map((p) => inv.services.inspector.auditPartition({ sku, partitionId: p.partitionId, shard: p.shard, epoch: p.epoch })));
      const inRedis = audits.reduce((n, a) => n + a.held, 0);
      assert.equal(inRedis, bySku(sku, 'RESERVED', 'CONFIRMED'), `${sku}: Redis partitions hold ${inRedis}`);
    }
  });
  await check('each acknowledged order once in the ledger', () => ledgerHoldsPerOrder(inv, options.skus, orders));
  await check('order states as acknowledged', async () => {
    const acknowledged = orders.filter((o) => HOLDING.has(o.final!) || o.final === 'RELEASED');
    const states = await inv.services.inspector.orderStates(acknowledged.map((o) => o.orderId));
    const wrong = acknowledged.filter((o, i) => states[i]?.state !== o.final).map((o, i) => `${o.orderId}: ${o.final}, Redis ${states[i]?.state}`);
    assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} order(s) in another state than acknowledged`);
  });
  return held;
}

/**
 * The ledger's net units in reserved + committed per order: 1 for each order acknowledged as held,
 * 0 for released ones and for every order id nobody was told was reserved (a take rolled back).
 * A unit taken twice for one order, or a take missing, shows here.
 */
async function ledgerHoldsPerOrder(inv: InventoryFixture, skus: readonly string[], orders: readonly OrderRecord[]): Promise<void> {
  const [rows] = await inv.services.mysql.query<RowDataPacket[]>(
    `SELECT order_id,
            SUM(CASE WHEN to_bucket IN ('reserved','committed') THEN qty ELSE 0 END)
          - SUM(CASE WHEN from_bucket IN ('reserved','committed') THEN qty ELSE 0 END) AS held,
            SUM(CASE WHEN kind = 'take' THEN 1 ELSE 0 END) AS takes
       FROM ledger WHERE sku_id IN (?) AND order_id IS NOT NULL GROUP BY order_id`,
    [skus],
  );
  const ledger = new Map(rows.map((r) => [String(r.order_id), { held: Number(r.held), takes: Number(r.takes) }]));
  const wrong: string[] = [];
  for (const o of orders) {
    const expected = HOLDING.has(o.final!) ? 1 : 0;
    const found = ledger.get(o.orderId) ?? { held: 0, takes: 0 };
    if (found.held !== expected) wrong.push(`${o.orderId} (${o.final}): ledger holds ${found.held}, expected ${expected}`);
    if (o.final !== 'REJECTED' && found.takes === 0) wrong.push(`${o.orderId} (${o.final}): no take in the ledger`);
    ledger.delete(o.orderId);
  }
  for (const [orderId, found] of ledger) if (found.held !== 0) wrong.push(`${orderId}: not an order of the load, holds ${found.held}`);
  assert.deepEqual(wrong.slice(0, 5), [], `${wrong.length} order(s) off in the ledger`);
}
