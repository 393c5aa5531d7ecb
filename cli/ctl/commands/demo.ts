import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { InventoryError, ReserveOutcome, ShortageReason } from '../../../client';
import { id, wholeNumber } from '../args';
import { Ctl, withCtl } from '../context';
import { renderFields } from '../output';

interface BuyOptions {
  buyers: number;
  quantity: number;
  rate: number;
  concurrency: number;
  confirm?: boolean;
  requestId?: string;
}

/** How the buyers fared. */
interface Tally {
  reserved: number;
  confirmed: number;
  outOfStock: number;
  userLimit: number;
  failed: Record<string, number>;
  unitsReserved: number;
}

/**
 * `demo buy SKU --buyers N`: a development aid, not an operator's tool. N buyers each Reserve (and
 * with --confirm, pay for) an order, at --rate buyers a second, so that `watch` has a sale to show
 * without writing JSON. Order ids are <id>.<n>, so a repeat with the same --request-id buys nothing
 * twice.
 */
export function registerDemo(program: Command): void {
  program
    .command('demo')
    .description('development aids for trying the system (not for production)')
    .command('buy')
    .description('simulate buyers: each one Reserves an order of the SKU (load for `watch`)')
    .argument('<sku>', 'SKU id', id)
    .option('--buyers <n>', 'buyers, one order each', wholeNumber(1, 1_000_000), 100)
    .option('--quantity <q>', 'units per order', wholeNumber(1, 1000), 1)
    .option('--rate <n>', 'buyers starting per second', wholeNumber(1, 100_000), 20)
    .option('--concurrency <n>', 'orders in flight at most', wholeNumber(1, 10_000), 50)
    .option('--confirm', 'also Confirm each reserved order (payment)')
    .option('--request-id <id>', 'base of the order ids, <id>.<n> (default: a new one, printed)', id)
    .action(withCtl(async (ctl, skuId: string, opts: BuyOptions) => buy(ctl, skuId, opts)));
}

async function buy(ctl: Ctl, skuId: string, opts: BuyOptions): Promise<void> {
  const base = ctl.requestId(opts.requestId);
  const tally: Tally = { reserved: 0, confirmed: 0, outOfStock: 0, userLimit: 0, failed: {}, unitsReserved: 0 };
  const progress = ctl.progress(opts.buyers, `buyers of ${skuId}`);
  const inFlight = new Set<Promise<void>>();
  let firstFailure: InventoryError | undefined;
  const started = Date.now();
  try {
    for (let n = 1; n <= opts.buyers; n++) {
      await sleep(Math.max(0, started + ((n - 1) * 1000) / opts.rate - Date.now()));
      if (inFlight.size >= opts.concurrency) await Promise.race(inFlight);
      const orderId = ctl.stepId(base, String(n));
      const one = buyOne(ctl, skuId, orderId, ctl.stepId(base, `u${n}`), opts, tally)
        .catch((err: unknown) => {
          if (!(err instanceof InventoryError)) throw err;
          firstFailure ??= err;
          tally.failed[err.kind] = (tally.failed[err.kind] ?? 0) + 1;
        })
        .finally(() => {
          inFlight.delete(one);
          progress.tick(orderId);
        });
      inFlight.add(one);
    }
    await Promise.all(inFlight);
  } finally {
    progress.stop();
  }
  const failed = Object.values(tally.failed).reduce((a, b) => a + b, 0);
  // Every buyer failing is the server's failure, not a sale: let its exit code say so.
  if (firstFailure && failed === opts.buyers) throw firstFailure;
  const seconds = (Date.now() - started) / 1000;
  ctl.output.result({ skuId, orderIdPrefix: `${base}.`, buyers: opts.buyers, seconds, ...tally }, () =>
    renderFields({
      buyers: opts.buyers,
      reserved: `${tally.reserved} orders, ${tally.unitsReserved} units`,
      ...(opts.confirm ? { confirmed: tally.confirmed } : {}),
      'rejected: out of stock': tally.outOfStock,
      'rejected: per-user limit': tally.userLimit,
      failed: failed === 0 ? 0 : Object.entries(tally.failed).map(([kind, count]) => `${kind} ${count}`).join(', '),
      'order ids': `${base}.1 .. ${base}.${opts.buyers}`,
      seconds: seconds.toFixed(1),
    }),
  );
}

async function buyOne(ctl: Ctl, skuId: string, orderId: string, userId: string, opts: BuyOptions, tally: Tally): Promise<void> {
  const res = await ctl.inventory().reserve({ orderId, userId, items: [{ skuId, quantity: opts.quantity }] });
  if (res.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED) {
    tally.reserved++;
    tally.unitsReserved += opts.quantity;
    if (opts.confirm) {
      await ctl.inventory().confirm({ orderId });
      tally.confirmed++;
    }
    return;
  }
  const reasons = res.shortages.map((s) => s.reason);
  if (reasons.includes(ShortageReason.SHORTAGE_REASON_USER_LIMIT)) tally.userLimit++;
  else tally.outOfStock++;
}
