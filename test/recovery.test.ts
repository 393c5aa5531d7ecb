import assert from 'node:assert/strict';
import { TakeCode } from '../allocator/codes';
import { DomainError } from '../kernel/errors';
import { fingerprint } from '../allocator/reservations';
import { Sweeper } from '../allocator/sweeper';
import { createLogger } from '../kernel/logger';
import { Metrics } from '../server/metrics';
import { Services, createServices } from '../server/services';
import { testConfig, uniqueName } from './helpers/config';
import { InventoryFixture, startInventory } from './helpers/inventory';

describe('crash recovery and expiry workers', function () {
  this.timeout(60_000);
  let inv: InventoryFixture;
  let other: Services;
  const grace = 300;

  before(async () => {
    const config = testConfig(uniqueName('recovery'), {
      SWEEP_INTERVAL_MS: '600000',
      RESERVE_TIMEOUT_MS: '200',
      RECOVERY_GRACE_MS: String(grace),
    });
    inv = await startInventory('recovery', {}, config);
    // A second server process's worth of services on the same Redis and etcd namespace.
    other = await createServices(config, createLogger('silent'), new Metrics());
  });
  after(async () => {
    for (const close of other.closers) await close();
    await inv.close();
  });

  it('rolls back a cart whose process died half way, and refuses that attempt’s late takes', async () => {
    const [a] = await inv.stock('crash-a', 10, 1);
    const [b] = await inv.stock('crash-b', 10, 1);
    const { gateway, reservations, sweeper } = inv.services;
    const items = [{ sku: 'crash-a', quantity: 2 }, { sku: 'crash-b', quantity: 3 }];
    // What a Reserve does before it dies: begin with the plan, take the first item, then nothing.
    const plan: Array<[string, string, number, number, number]> = [
      ['crash-a', a.partitionId, a.shard, a.epoch, 2],
      ['crash-b', b.partitionId, b.shard, b.epoch, 3],
    ];
    const doc = { items: items.map((i) => ({ sku: i.sku, qty: i.quantity, rel: 0, pieces: [] })), user: '', limits: {}, releases: {} };
    await gateway.begin('crashed', fingerprint(items, '', 60), plan, JSON.stringify(doc), 60, 100);
    assert.equal((await gateway.take(a, 'crashed', 2, 1)).code, TakeCode.Taken);
    assert.equal(await inv.availOf([a]), 8);

    await sweeper.sweep();
    assert.equal(await inv.availOf([a]), 8, 'left alone within the grace period');

    await new Promise((resolve) => setTimeout(resolve, grace + 50));
    await sweeper.sweep();
    assert.equal(await inv.availOf([a]), 10, 'the taken units are back');
    assert.equal(await inv.availOf([b]), 10);

    // The dead attempt's take of the second item, arriving late, is refused.
    assert.equal((await gateway.take(b, 'crashed', 3, 1)).code, TakeCode.Closed);
    assert.equal(await inv.availOf([b]), 10);

    // Rolled back, it holds nothing.
    await assert.rejects(reservations.getReservation('crashed'), (e: DomainError) => e.kind === 'RESERVATION_REJECTED');
    assert.equal(await reservations.recover('crashed'), 'gone', 'recovered exactly once');

    // A retry with the same order id starts over as the order's next attempt, and takes once.
    const retried = await reservations.reserve({ orderId: 'crashed', items, userId: '', ttlSeconds: 60 });
    assert.equal(retried.outcome, 'RESERVED');
    assert.equal(retried.replayed, false);
    assert.equal(await inv.availOf([a]), 8);
    assert.equal(await inv.availOf([b]), 7);
    // The dead attempt's late take is still refused: its tombstone names it, not the retry.
    assert.equal((await gateway.take(b, 'crashed', 3, 1)).code, TakeCode.Closed);
    assert.equal(await inv.availOf([b]), 7);
    assert.equal((await reservations.reservation('crashed')).state, 'RESERVED');
  });

  it('finishes a release whose process died after recording it', async () => {
    const [p] = await inv.stock('half-release', 10, 1);
    const { gateway, reservations } = inv.services;
    await reservations.reserve({ orderId: 'half', items: [{ sku: 'half-release', quantity: 4 }], userId: '', ttlSeconds: 0 });
    // The release is decided and recorded at the order, then the process dies before the untakes.
    const recorded = await gateway.release('half', 'r-1', 'CANCEL_BEFORE_PAYMENT', undefined, grace);
    assert.equal(recorded.code, 1);
    assert.equal(await inv.availOf([p]), 6);

    const sweeper = new Sweeper(gateway, reservations, { recoveryGraceMs: grace, reapplyAfterMs: 0 }, createLogger('silent'));
    await sweeper.sweep();
    assert.equal(await inv.availOf([p]), 10);
    await sweeper.sweep();
    assert.equal(await inv.availOf([p]), 10, 're-applying twice gives back once');
    assert.equal((await reservations.reservation('half')).state, 'RELEASED');
  });

  it('expires each due hold exactly once when two servers sweep at the same time', async () => {
    // Enough per partition that none runs dry (an empty one would send its returns to base).
    const parts = await inv.stock('sweep-sku', 400, 4);
    await other.cache.waitForRevision(inv.services.cache.revision);
    for (let i = 0; i < 40; i++) {
      await inv.services.reservations.reserve({ orderId: `sweep-${i}`, items: [{ sku: 'sweep-sku', quantity: 2 }], userId: '', ttlSeconds: 1 });
    }
    assert.equal(await inv.availOf(parts), 320);
    await new Promise((resolve) => setTimeout(resolve, 1100));

    const swept = { a: 0, b: 0 };
    const count = (who: 'a' | 'b') => (kind: string, n: number) => {
      if (kind === 'expired') swept[who] += n;
    };
    const logger = createLogger('silent');
    const opts = { recoveryGraceMs: grace };
    await Promise.all([
      new Sweeper(inv.services.gateway, inv.services.reservations, opts, logger, count('a')).sweep(),
      new Sweeper(other.gateway, other.reservations, opts, logger, count('b')).sweep(),
    ]);
    assert.equal(swept.a + swept.b, 40, JSON.stringify(swept));
    assert.equal(await inv.availOf(parts), 400);

    // The ledger holds exactly one expiry release per order.
    await inv.services.ledger.drain(20_000);
    const [rows] = await inv.services.mysql.query<any[]>(
      "SELECT order_id, COUNT(*) AS n, SUM(qty) AS units FROM ledger WHERE kind = 'release' AND reason = 'EXPIRE' AND order_id LIKE 'sweep-%' GROUP BY order_id",
    );
    assert.equal(rows.length, 40);
    assert.ok(rows.every((r) => Number(r.n) === 1 && Number(r.units) === 2), JSON.stringify(rows.slice(0, 3)));
  });
});
