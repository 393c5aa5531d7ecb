import assert from 'node:assert/strict';
import { ReleaseReason, ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { StockMessageApplier } from '../mq/apply';
import { StockUpdate } from '../mq/types';
import { InventoryFixture, startInventory, stockApplierOf, waitFor } from './helpers/inventory';

/**
 * What a warehouse's stock message does to the stock (mq/apply.ts), against the real Redis, etcd
 * and MariaDB of the stack: each kind, exactly once per message id, stale sequences skipped, a loss
 * out of base, then the pool, then shortfall, and a message whose Redis half was interrupted
 * finished by its redelivery. The RabbitMQ side is test/mq-consumer.test.ts.
 */
describe('stock messages applied to the stock', function () {
  this.timeout(60_000);
  let inv: InventoryFixture;
  let applier: StockMessageApplier;
  let n = 0;

  before(async () => {
    inv = await startInventory('stockmsg', { TOPUP_ENABLED: 'false' });
    applier = stockApplierOf(inv);
  });
  after(() => inv.close());

  const message = (kind: StockUpdate['kind'], sku: string, quantity: number, extra: Partial<StockUpdate> = {}): StockUpdate => ({
    messageId: `m-${++n}`,
    sku,
    kind,
    quantity,
    occurredAt: new Date(),
    ...extra,
  });

  async function stock(sku: string) {
    await inv.services.ledger.drain(20_000);
    const row = (await inv.services.operator.stock([sku])).get(sku)!;
    assert.equal(row.onHand + row.shortfall, row.base + row.pool + row.reserved + row.committed, `conservation: ${JSON.stringify(row)}`);
    return row;
  }

  async function livePool(sku: string): Promise<number> {
    return (await inv.services.operator.listPartitions(sku)).reduce((a, p) => a + (p.state === 'live' ? p.avail : 0), 0);
  }

  async function assertReconciled(sku: string): Promise<void> {
    assert.deepEqual((await inv.services.reconciler.reconcile([sku], false, '')).discrepancies, []);
  }

  /** A SKU of `units`, `pooled` of them in `partitions` partitions, known to this server. */
  async function sku(name: string, units: number, pooled: number, partitions: number): Promise<void> {
    await inv.services.operator.setStock(`set-${name}`, name, units, 'count');
    if (pooled > 0) await inv.services.operator.preallocate(`pre-${name}`, name, pooled, partitions);
    await waitFor(() => inv.services.cache.partitions(name).length === partitions && inv.services.cache.sku(name) !== undefined);
  }

  it('a RECEIPT grows on_hand and base, and creates a SKU it does not know', async () => {
    assert.deepEqual(await applier.apply(message('RECEIPT', 'msg-new', 30)), { kind: 'applied', detail: 'on_hand +30' });
    const row = await stock('msg-new');
    assert.deepEqual([row.onHand, row.base], [30, 30]);
    await waitFor(() => inv.services.cache.sku('msg-new') !== undefined, 5000, 'the new SKU registered');
    assert.deepEqual((await applier.apply(message('RETURN', 'msg-new', 2))).kind, 'applied');
    assert.deepEqual([(await stock('msg-new')).onHand, (await stock('msg-new')).base], [32, 32]);
  });

  it('applies the same message once, however often it comes, and skips an older COUNT after a newer one', async () => {
    await sku('msg-dup', 100, 0, 0);
    const receipt = message('RECEIPT', 'msg-dup', 10);
    const outcomes = [];
    for (let i = 0; i < 5; i++) outcomes.push((await applier.apply(receipt)).kind);
    assert.deepEqual(outcomes, ['applied', 'skipped', 'skipped', 'skipped', 'skipped']);
    assert.equal((await stock('msg-dup')).onHand, 110);

    assert.equal((await applier.apply(message('COUNT', 'msg-dup', 90, { sequence: 7 }))).kind, 'applied');
    assert.deepEqual(await applier.apply(message('COUNT', 'msg-dup', 500, { sequence: 6 })), { kind: 'skipped', why: 'stale' });
    assert.deepEqual(await applier.apply(message('RECEIPT', 'msg-dup', 5, { sequence: 7 })), { kind: 'skipped', why: 'stale' });
    assert.equal((await stock('msg-dup')).onHand, 90);
  });

  it('takes a loss out of base, then out of the pool (partitions shrink), and only the rest is a shortfall', async () => {
    await sku('msg-loss', 400, 396, 4);
    // 4 in base, 396 pooled; 20 lost: 4 from base, 16 from the pool.
    assert.equal((await applier.apply(message('DAMAGE', 'msg-loss', 20))).kind, 'applied');
    let row = await stock('msg-loss');
    assert.deepEqual([row.onHand, row.base, row.pool, row.shortfall], [380, 0, 380, 0]);
    assert.equal(await livePool('msg-loss'), 380, 'the partitions gave up the 16 units');
    await assertReconciled('msg-loss');

    // Buyers hold 300; a loss of 100 finds 80 in the pool. The other 20 are held by orders: a
    // shortfall, raised; on_hand drops by the whole loss (it is what is physically there), and
    // on_hand + shortfall = base + pool + reserved + committed.
    for (let i = 0; i < 30; i++) assert.equal((await inv.reserve(`loss-buyer-${i}`, [['msg-loss', 10]])).outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    assert.equal((await applier.apply(message('LOSS', 'msg-loss', 100))).kind, 'applied');
    row = await stock('msg-loss');
    assert.deepEqual([row.onHand, row.base, row.pool, row.reserved, row.shortfall], [280, 0, 0, 300, 20]);
    assert.equal(await livePool('msg-loss'), 0);
    // Nothing left to sell: what was lost is not sold again.
    assert.equal((await inv.reserve('loss-late', [['msg-loss', 1]])).outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
    const found = (await inv.services.reconciler.reconcile(['msg-loss'], false, '')).discrepancies;
    assert.deepEqual(found.map((d) => [d.kind, d.actual]), [['SHORTFALL', 20]]);

    // The buyers cancel: the 20 units that are gone pay the shortfall off instead of going back on
    // sale; only the 280 that are there can be sold again.
    for (let i = 0; i < 30; i++) await inv.release(`loss-buyer-${i}`, ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT);
    row = await stock('msg-loss');
    // (The partitions were found empty and retired meanwhile: what comes back goes to base.)
    assert.deepEqual([row.onHand, row.base + row.pool, row.reserved, row.shortfall], [280, 280, 0, 0]);
    await assertReconciled('msg-loss');
  });

  it('takes the same path for a loss through AdjustStock', async () => {
    await sku('adj-loss', 100, 90, 3);
    const res = await inv.services.operator.adjustStock('adj-loss-1', 'adj-loss', -40, 'damaged');
    assert.equal(res.shortfall, 0);
    const row = await stock('adj-loss');
    assert.deepEqual([row.onHand, row.base, row.pool, row.shortfall], [60, 0, 60, 0]);
    assert.equal(await livePool('adj-loss'), 60);
    assert.equal((await inv.services.operator.adjustStock('adj-loss-1', 'adj-loss', -40, 'damaged')).replayed, true);
    assert.equal((await stock('adj-loss')).onHand, 60, 'a replay changes nothing');
    await assertReconciled('adj-loss');
  });

  it('finishes a loss whose pool shrink was interrupted when the message comes again', async () => {
    await sku('msg-crash', 50, 50, 2);
    const loss = message('LOSS', 'msg-crash', 30);
    const finish = inv.services.operator.finishIntent.bind(inv.services.operator);
    inv.services.operator.finishIntent = async () => {
      throw new Error('the process died before the pool shrink');
    };
    try {
      await assert.rejects(applier.apply(loss), /died/);
    } finally {
      inv.services.operator.finishIntent = finish;
    }
    assert.equal(await livePool('msg-crash'), 50, 'nothing shrunk yet');
    assert.equal((await applier.apply(loss)).kind, 'applied');
    assert.equal((await applier.apply(loss)).kind, 'skipped');
    const row = await stock('msg-crash');
    assert.deepEqual([row.onHand, row.pool, row.shortfall], [20, 20, 0]);
    assert.equal(await livePool('msg-crash'), 20);
    await assertReconciled('msg-crash');
  });

  it('ships a paid order: committed and on_hand drop, capped at what it has committed, and the reservation shows it', async () => {
    await sku('msg-ship', 20, 20, 1);
    await inv.reserve('ship-paid', [['msg-ship', 5]]);
    await inv.confirm('ship-paid');
    await inv.reserve('ship-unpaid', [['msg-ship', 2]]);
    const shipped = await applier.apply(message('SHIPMENT', 'msg-ship', 3, { orderId: 'ship-paid' }));
    assert.equal(shipped.kind, 'applied');
    let row = await stock('msg-ship');
    assert.deepEqual([row.onHand, row.committed, row.reserved], [17, 2, 2]);
    // More than is left to ship: capped at the 2 still committed.
    assert.equal((await applier.apply(message('SHIPMENT', 'msg-ship', 9, { orderId: 'ship-paid' }))).kind, 'applied');
    row = await stock('msg-ship');
    assert.deepEqual([row.onHand, row.committed], [15, 0]);
    const reservation = (await inv.getReservation('ship-paid')).reservation!;
    assert.deepEqual([reservation.items[0].quantity, reservation.items[0].shippedQuantity], [5, 5]);
    // A refund of shipped goods releases nothing (it is a RETURN); the order keeps its state.
    const refund = await inv.release('ship-paid', ReleaseReason.RELEASE_REASON_REFUND);
    assert.deepEqual(refund.released, []);
    await assertReconciled('msg-ship');

    const dead = await Promise.all([
      applier.apply(message('SHIPMENT', 'msg-ship', 1, { orderId: 'ship-unpaid' })),
      applier.apply(message('SHIPMENT', 'msg-ship', 1, { orderId: 'no-such-order' })),
      applier.apply(message('SHIPMENT', 'msg-ship', 1, { orderId: 'ship-paid' })),
      applier.apply(message('LOSS', 'no-such-sku', 1)),
    ]);
    assert.deepEqual(
      dead.map((o) => (o.kind === 'dead' ? o.reason.split(':')[0] : o.kind)),
      ['ORDER_NOT_PAID', 'UNKNOWN_ORDER', 'NOTHING_COMMITTED', 'UNKNOWN_SKU'],
    );
    assert.equal((await stock('msg-ship')).reserved, 2, 'the unpaid hold is untouched');
  });
});
