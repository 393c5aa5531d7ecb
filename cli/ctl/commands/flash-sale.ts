import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { InventoryError } from '../../../client';
import { id, wholeNumber } from '../args';
import { Ctl, withCtl } from '../context';
import { CtlFailure, ExitCode } from '../exit-codes';
import { renderTable } from '../output';
import { PARTITION_COLUMNS, PartitionView, STOCK_COLUMNS, StockView, stockView } from '../views';
import { listPartitions, partitionTotals } from './partitions';

interface PrepareOptions {
  units: number;
  partitions: number;
  perUserLimit?: number;
  requestId?: string;
  verifyTimeout: number;
}

/** One step of the preparation: what was done, or why nothing had to be. */
interface Step {
  step: 'stock' | 'pool';
  action: string;
  requestId: string | null;
  replayed: boolean;
}

/** What the verification compares: the pool and partitions wanted, and what the server says. */
interface Checks {
  pool: { want: number; got: number };
  partitions: { want: number; got: number };
  liveAvail: { want: number; got: number };
  livePartitions: { want: number; got: number };
}

const VERIFY_POLL_MS = 200;

/**
 * `flash-sale prepare SKU --units N --partitions P`: make exactly N units sellable from P partitions,
 * in one step: stock the SKU so base + pool covers N (SetStock for a new SKU or a new per-user
 * limit, AdjustStock for the units missing), carve the pool (Preallocate from nothing, Rebalance
 * otherwise), then check with GetStock and ListPartitions that the pool holds N in P partitions.
 * Steps already true are skipped and the others run under ids derived from one printed request id,
 * so running it again (with or without that id) changes nothing more. Exit code 4 when the
 * check fails (say, buyers were already buying).
 */
export function registerFlashSale(program: Command): void {
  program
    .command('flash-sale')
    .description('flash sales')
    .command('prepare')
    .description('stock a SKU, split N units over P partitions and verify, in one step (safe to run again)')
    .argument('<sku>', 'SKU id', id)
    .requiredOption('--units <n>', 'units to put on sale', wholeNumber(1))
    .requiredOption('--partitions <p>', 'partitions to spread them over', wholeNumber(1, 256))
    .option('--per-user-limit <n>', 'units one buyer may hold or buy (0: no limit)', wholeNumber(0))
    .option('--request-id <id>', 'base of the steps\' idempotency keys: <id>.stock, <id>.pool (default: a new one, printed)', id)
    .option('--verify-timeout <ms>', 'how long the check waits for the partitions to show', wholeNumber(0), 10_000)
    .action(withCtl(async (ctl, skuId: string, opts: PrepareOptions) => prepare(ctl, skuId, opts)));
}

async function prepare(ctl: Ctl, skuId: string, opts: PrepareOptions): Promise<ExitCode> {
  const base = ctl.adminRequestId(opts.requestId);
  const progress = ctl.progress(3, `flash-sale ${skuId}`);
  const steps: Step[] = [];
  let verified: { ok: boolean; checks: Checks; partitions: PartitionView[]; stock: StockView };
  try {
    steps.push(await stockStep(ctl, skuId, opts, ctl.stepId(base, 'stock')));
    progress.tick('stocked');
    steps.push(await poolStep(ctl, skuId, opts, ctl.stepId(base, 'pool')));
    progress.tick('carved');
    verified = await verify(ctl, skuId, opts);
    progress.tick(verified.ok ? 'verified' : 'NOT verified');
  } finally {
    progress.stop();
  }
  const data = { skuId, requestId: base, steps, verified: verified.ok, checks: verified.checks, partitions: verified.partitions, stock: verified.stock };
  ctl.output.result(data, () =>
    [
      renderTable(steps, [
        { header: 'step', cell: (s) => s.step },
        { header: 'done', cell: (s) => s.action + (s.replayed ? ' (replayed: applied before)' : '') },
        { header: 'request id', cell: (s) => s.requestId ?? '-' },
      ]),
      renderTable(verified.partitions, PARTITION_COLUMNS),
      partitionTotals(verified.partitions),
      renderTable([verified.stock], STOCK_COLUMNS),
      verified.ok
        ? `verified: ${opts.units} units in ${opts.partitions} partitions, ready to sell`
        : `NOT verified: ${Object.entries(verified.checks)
            .filter(([, c]) => c.want !== c.got)
            .map(([name, c]) => `${name} is ${c.got}, want ${c.want}`)
            .join('; ')}`,
    ].join('\n'),
  );
  return verified.ok ? ExitCode.OK : ExitCode.DIFFERENCES;
}

/** The SKU's stock now, or undefined for a SKU the inventory does not know yet. */
async function currentStock(ctl: Ctl, skuId: string): Promise<StockView | undefined> {
  try {
    const res = await ctl.inventory().getStock({ skuIds: [skuId] });
    return stockView(res.stock[0]);
  } catch (err) {
    if (err instanceof InventoryError && err.kind === 'UNKNOWN_SKU') return undefined;
    throw err;
  }
}

async function stockStep(ctl: Ctl, skuId: string, opts: PrepareOptions, requestId: string): Promise<Step> {
  const stock = await currentStock(ctl, skuId);
  const reason = `inventoryctl flash-sale prepare ${opts.units} in ${opts.partitions}`;
  if (stock === undefined) {
    const res = await ctl.admin().setStock({ requestId, skuId, onHand: opts.units, reason, perUserLimit: opts.perUserLimit });
    return { step: 'stock', action: `new SKU: on_hand set to ${opts.units}`, requestId, replayed: res.change?.replayed ?? false };
  }
  // SetStock below writes an absolute on_hand computed from these totals: they must be current.
  if (stock.stale) throw new CtlFailure(ExitCode.UNREACHABLE, `${skuId}: the server's totals are stale (MySQL unreadable); prepare again once it is back`);
  const missing = Math.max(0, opts.units - stock.sellable);
  if (opts.perUserLimit !== undefined && opts.perUserLimit !== stock.perUserLimit) {
    const onHand = stock.onHand + missing;
    const res = await ctl.admin().setStock({ requestId, skuId, onHand, reason, perUserLimit: opts.perUserLimit });
    return { step: 'stock', action: `on_hand ${stock.onHand} -> ${onHand}, per-user limit ${opts.perUserLimit}`, requestId, replayed: res.change?.replayed ?? false };
  }
  if (missing > 0) {
    const res = await ctl.admin().adjustStock({ requestId, skuId, delta: missing, reason });
    return { step: 'stock', action: `on_hand +${missing} (sellable was ${stock.sellable})`, requestId, replayed: res.change?.replayed ?? false };
  }
  return { step: 'stock', action: `nothing to do: sellable ${stock.sellable} covers ${opts.units}`, requestId: null, replayed: false };
}

async function poolStep(ctl: Ctl, skuId: string, opts: PrepareOptions, requestId: string): Promise<Step> {
  const stock = await currentStock(ctl, skuId);
  const live = (await listPartitions(ctl, skuId, false)).filter((p) => p.state === 'LIVE');
  const avail = live.reduce((sum, p) => sum + p.avail, 0);
  if (live.length === opts.partitions && avail === opts.units && stock?.pool === opts.units) {
    return { step: 'pool', action: `nothing to do: ${opts.units} units in ${opts.partitions} partitions already`, requestId: null, replayed: false };
  }
  if (live.length === 0 && (stock?.pool ?? 0) === 0) {
    const res = await ctl.admin().preallocate({ requestId, skuId, quantity: opts.units, partitions: opts.partitions });
    return { step: 'pool', action: `preallocated ${opts.units} units into ${opts.partitions} partitions`, requestId, replayed: res.replayed };
  }
  const res = await ctl.admin().rebalance({ requestId, skuId, targetPool: opts.units, partitionCount: opts.partitions });
  return { step: 'pool', action: `rebalanced ${live.length} partitions (${avail} units) into ${opts.partitions} (${opts.units} units)`, requestId, replayed: res.replayed };
}

/** Polls until GetStock and ListPartitions agree that the pool holds N units in P partitions, or time is up. */
async function verify(ctl: Ctl, skuId: string, opts: PrepareOptions): Promise<{ ok: boolean; checks: Checks; partitions: PartitionView[]; stock: StockView }> {
  const deadline = Date.now() + opts.verifyTimeout;
  for (;;) {
    const [partitions, res] = await Promise.all([listPartitions(ctl, skuId, false), ctl.inventory().getStock({ skuIds: [skuId] })]);
    const stock = stockView(res.stock[0]);
    const live = partitions.filter((p) => p.state === 'LIVE');
    const checks: Checks = {
      pool: { want: opts.units, got: stock.pool },
      partitions: { want: opts.partitions, got: stock.partitions },
      liveAvail: { want: opts.units, got: live.reduce((sum, p) => sum + p.avail, 0) },
      livePartitions: { want: opts.partitions, got: live.length },
    };
    const ok = Object.values(checks).every((c) => c.want === c.got);
    if (ok || Date.now() >= deadline) return { ok, checks, partitions, stock };
    await sleep(VERIFY_POLL_MS);
  }
}
