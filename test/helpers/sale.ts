import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { ReleaseReason, ReserveOutcome } from '../../gen/inventory/v1/inventory.pb';
import { MysqlOrderArchive } from '../../store/order-archive';
import { StockRow } from '../../store/stock';
import { InventoryFixture } from './inventory';

/**
 * A flash sale for tests of operations that read one store and write another while buyers buy:
 * `callers` concurrent buyers send one-unit Reserves for one SKU until `orders` have been sent,
 * and some of them cancel or pay for what they got. `during` runs alongside from the first call
 * until the last answer (it is told when to stop). What every such test then proves is the same:
 * each unit is held by at most one acknowledged order, MySQL and Redis agree on how many are held,
 * and conservation holds (checkSale).
 */
export interface SaleOptions {
  readonly orders: number;
  readonly callers: number;
  /** Share of won orders cancelled at once (their unit goes back on sale). Default 0. */
  readonly cancelShare?: number;
  /** Share of won orders paid for at once. Default 0. */
  readonly confirmShare?: number;
  /** Hold lifetime; short ones expire during the sale. Default the server's. */
  readonly ttlSeconds?: number;
  /** A pause of each buyer after each of its orders, to stretch a sale over seconds. Default 0. */
  readonly pauseMs?: number;
  /** Work to run during the sale; `running()` turns false once every buyer has had its answer. */
  readonly during?: (running: () => boolean) => Promise<void>;
}

export interface SaleOutcome {
  /** Order ids answered RESERVED. */
  readonly won: string[];
  /** How many of them were cancelled again. */
  readonly cancelled: number;
}

export async function runSale(inv: InventoryFixture, sku: string, tag: string, options: SaleOptions): Promise<SaleOutcome> {
  let sent = 0;
  let running = true;
  const won: string[] = [];
  let cancelled = 0;
  const buyer = async () => {
    while (sent < options.orders) {
      const orderId = `${tag}-${sent++}`;
      const res = await inv.reserve(orderId, [[sku, 1]], options.ttlSeconds ? { ttlSeconds: options.ttlSeconds } : {});
      if (res.outcome !== ReserveOutcome.RESERVE_OUTCOME_RESERVED) continue;
      won.push(orderId);
      const roll = Math.random();
      // A short hold may expire first (FAILED_PRECONDITION): the order's state in Redis says what happened.
      if (roll < (options.cancelShare ?? 0)) {
        if (await refusedIfExpired(inv.release(orderId, ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT))) cancelled++;
      } else if (roll < (options.cancelShare ?? 0) + (options.confirmShare ?? 0)) {
        await refusedIfExpired(inv.confirm(orderId));
      }
      if (options.pauseMs) await new Promise((resolve) => setTimeout(resolve, options.pauseMs));
    }
  };
  const buyers = Promise.all(Array.from({ length: options.callers }, buyer)).finally(() => (running = false));
  await Promise.all([buyers, options.during?.(() => running)]);
  return { won, cancelled };
}

/** True when the call succeeded, false when it was refused because the hold had expired. */
async function refusedIfExpired(call: Promise<unknown>): Promise<boolean> {
  try {
    await call;
    return true;
  } catch (err) {
    if ((err as { code?: number }).code === status.FAILED_PRECONDITION) return false;
    throw err;
  }
}

/** Runs `step` again and again until the sale is over (at least once), with `pauseMs` between runs. */
export async function repeatWhile(running: () => boolean, step: () => Promise<unknown>, pauseMs = 0): Promise<number> {
  let runs = 0;
  do {
    await step();
    runs++;
    if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
  } while (running());
  return runs;
}

/**
 * After the sale, once the ledger writer has caught up: on_hand + shortfall = base + pool + reserved + committed
 * with every term >= 0, and the units held are exactly those of the acknowledged orders still
 * holding, in MySQL (reserved + committed) and in Redis (the partitions' `held`). Returns the totals.
 */
export async function checkSale(inv: InventoryFixture, sku: string, sale: SaleOutcome): Promise<{ stock: StockRow; holding: number }> {
  await inv.services.ledger.drain(30_000);
  const stock = (await inv.services.operator.stock([sku])).get(sku)!;
  assert.equal(stock.onHand + stock.shortfall, stock.base + stock.pool + stock.reserved + stock.committed, `conservation: ${JSON.stringify(stock)}`);
  for (const term of [stock.base, stock.pool, stock.reserved, stock.committed]) assert.ok(term >= 0, JSON.stringify(stock));
  // An order Redis forgot (its retention ended) is read from MySQL's archive.
  const archive = new MysqlOrderArchive(inv.services.mysql);
  const redisStates = await inv.services.inspector.orderStates(sale.won);
  const states = await Promise.all(redisStates.map(async (s, i) => s?.state ?? (await archive.find(sale.won[i]))?.state));
  const holding = states.filter((s) => s === 'RESERVED' || s === 'CONFIRMED').length;
  assert.equal(stock.reserved + stock.committed, holding, `MySQL holds ${stock.reserved + stock.committed}, acknowledged orders ${holding}`);
  const partitions = await inv.services.operator.listPartitions(sku, true);
  const audits = await Promise.all(partitions.map((p) => inv.services.inspector.auditPartition({ sku, partitionId: p.partitionId, shard: p.shard, epoch: p.epoch })));
  assert.equal(audits.reduce((n, a) => n + a.held, 0), holding, 'Redis partitions hold what the acknowledged orders hold');
  // Held units never exceed what is there, but for the shortfall: units orders held when a loss took them.
  assert.ok(holding <= stock.onHand + stock.shortfall, `holding ${holding} of ${stock.onHand} on hand (shortfall ${stock.shortfall})`);
  return { stock, holding };
}
