import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { REASON_KEY } from '../server/errors';
import { testConfig, uniqueName } from './helpers/config';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { TcpProxy } from './helpers/tcp-proxy';

const rid = (tag: string) => `${tag}-${randomBytes(4).toString('hex')}`;

type Seen = { outcome: 'RESERVED' | 'REJECTED' } | { outcome: 'FAILED'; code: grpc.status; reason: string; message: string };

/**
 * DESIGN promise 6, MySQL down (stopped: connections refused): reservations go on from the
 * partitions and the ledger waits in Redis; GetStock answers the live pool and says the totals are
 * stale; a SKU whose base was found empty keeps answering sold out at once from that verdict, and
 * one whose base MySQL cannot tell about answers UNAVAILABLE, never a remembered OUT_OF_STOCK. Once
 * MySQL is back the ledger catches up and the stores agree.
 */
describe('MySQL down', function () {
  this.timeout(120_000);
  let inv: InventoryFixture;
  let mysql: TcpProxy;

  before(async () => {
    const base = testConfig(uniqueName('mysqldown'));
    mysql = await TcpProxy.start(new URL(base.mysqlUrl).host);
    const url = new URL(base.mysqlUrl);
    url.host = mysql.address;
    inv = await startInventory('mysqldown', { MYSQL_URL: url.toString(), BREAKER_VOLUME_THRESHOLD: '5', BREAKER_RESET_MS: '300', TOPUP_THRESHOLD: '0' });
  });
  after(async () => {
    mysql.resume();
    await inv.close();
    await mysql.close();
  });

  async function reserve(orderId: string, sku: string): Promise<Seen & { ms: number }> {
    const started = Date.now();
    try {
      const res = await inv.reserve(orderId, [[sku, 1]]);
      return { outcome: res.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED ? 'RESERVED' : 'REJECTED', ms: Date.now() - started };
    } catch (err) {
      const e = err as grpc.ServiceError;
      return { outcome: 'FAILED', code: e.code, reason: String(e.metadata?.get(REASON_KEY)[0]), message: e.details, ms: Date.now() - started };
    }
  }

  it('sells on, answers stale totals, keeps sold-out verdicts, refuses to guess about base, and agrees again once back', async () => {
    const ops = inv.services.operator;
    // hot: 100 units in partitions, 200 in base. empty: 5 units, all in partitions. based: 4 in partitions, 96 in base.
    await ops.setStock(rid('s'), 'my-hot', 300, 'count');
    await ops.preallocate(rid('p'), 'my-hot', 100, 2);
    await ops.setStock(rid('s'), 'my-empty', 5, 'count');
    await ops.preallocate(rid('p'), 'my-empty', 5, 1);
    await ops.setStock(rid('s'), 'my-based', 100, 'count');
    await ops.preallocate(rid('p'), 'my-based', 4, 1);
    await waitFor(() => ['my-hot', 'my-empty', 'my-based'].every((s) => inv.services.cache.partitions(s).length > 0), 5000, 'partitions in the cache');
    // Sell my-empty out while MySQL answers: its empty base becomes this server's verdict.
    for (let i = 0; i < 6; i++) await reserve(`e-${i}`, 'my-empty');
    assert.equal((await reserve('e-last', 'my-empty')).outcome, 'REJECTED');
    const before = (await inv.getStock('my-hot')).stock[0];
    assert.equal(before.stale, false);

    mysql.pause('reset');
    const hot = await Promise.all(Array.from({ length: 60 }, (_, i) => reserve(`h-${i}`, 'my-hot')));
    assert.deepEqual(hot.filter((a) => a.outcome !== 'RESERVED'), [], 'reservations go on while MySQL is down');

    const during = (await inv.getStock('my-hot')).stock[0];
    assert.equal(during.stale, true, 'the totals say they are stale');
    assert.equal(during.totalsAsOfMs, before.totalsAsOfMs, 'as of the last read');
    assert.equal(during.onHand, 300);
    assert.equal(during.pool, before.pool - 60, 'the pool is live');

    const soldOut = await reserve('e-during', 'my-empty');
    assert.equal(soldOut.outcome, 'REJECTED', 'a SKU found empty stays sold out');
    assert.ok(soldOut.ms < 500, `answered from the verdict at once (${soldOut.ms} ms)`);

    const based = await Promise.all(Array.from({ length: 10 }, (_, i) => reserve(`b-${i}`, 'my-based')));
    assert.equal(based.filter((a) => a.outcome === 'RESERVED').length, 4, 'the pool sells');
    const refused = based.filter((a) => a.outcome !== 'RESERVED');
    for (const a of refused) {
      assert.equal(a.outcome, 'FAILED', 'never a remembered OUT_OF_STOCK while base cannot be read');
      if (a.outcome === 'FAILED') {
        assert.equal(a.code, grpc.status.UNAVAILABLE);
        assert.match(a.message, /mysql/);
      }
    }
    assert.ok((await inv.services.ledger.lag()).waiting > 0, 'the ledger waits in Redis');
    await inv.services.health.probe();
    assert.equal(inv.services.health.report().inventory, 'SERVING');

    mysql.resume();
    await waitFor(async () => !(await inv.getStock('my-hot')).stock[0].stale, 10_000, 'fresh totals');
    // The refused buyers retry with the same order ids: base is carved now.
    const retried = await Promise.all(Array.from({ length: 10 }, (_, i) => reserve(`b-${i}`, 'my-based')));
    assert.deepEqual(retried.filter((a) => a.outcome !== 'RESERVED'), [], 'retries sell from base');
    await inv.services.ledger.drain(30_000);
    for (const sku of ['my-hot', 'my-empty', 'my-based']) {
      const s = (await ops.stock([sku])).get(sku)!;
      assert.equal(s.onHand, s.base + s.pool + s.reserved + s.committed, `conservation of ${sku}: ${JSON.stringify(s)}`);
      assert.deepEqual((await inv.services.reconciler.reconcile([sku], false, '')).discrepancies, [], `${sku} reconciles`);
    }
    assert.equal((await ops.stock(['my-hot'])).get('my-hot')!.reserved, 60);
    assert.equal((await ops.stock(['my-based'])).get('my-based')!.reserved, 10);
  });
});
