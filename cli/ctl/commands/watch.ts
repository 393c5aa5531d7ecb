import { setTimeout as sleep } from 'node:timers/promises';
import { Command } from 'commander';
import { noAnswer } from '../failures';
import { id, wholeNumber } from '../args';
import { Ctl, withCtl } from '../context';
import { renderFields, renderTable } from '../output';
import { PARTITION_COLUMNS, PartitionView, StockView, partitionView, stockView } from '../views';
import { partitionTotals } from './partitions';

interface WatchOptions {
  interval: number;
  once?: boolean;
  untilSoldOut?: boolean;
  all?: boolean;
}

/** One refresh: the SKU's partitions and stock, and how fast it sells. */
export interface Frame {
  at: string;
  skuId: string;
  partitions: PartitionView[];
  stock: StockView;
  /** Sellable units gone since the watch started (negative after a restock). */
  soldSinceStart: number;
  /** Units sold per second over the last RATE_WINDOW_MS. */
  unitsPerSecond: number;
  soldOut: boolean;
}

/** The sold rate is measured over this long, so one slow refresh does not make it jump. */
const RATE_WINDOW_MS = 5000;
const CLEAR_SCREEN = '\x1b[H\x1b[2J';

/**
 * `watch SKU`: a live view of a SKU's partitions and sellable units, refreshed every --interval ms,
 * until Ctrl-C (exit 0), or after one frame (--once), or once nothing is left to sell
 * (--until-sold-out). With --json, one JSON frame a line.
 */
export function registerWatch(program: Command): void {
  program
    .command('watch')
    .description('live view of a SKU: its partitions, sellable units and units sold per second (Ctrl-C stops)')
    .argument('<sku>', 'SKU id', id)
    .option('--interval <ms>', 'time between refreshes', wholeNumber(100), 1000)
    .option('--once', 'print one frame and stop')
    .option('--until-sold-out', 'stop once sellable reaches 0')
    .option('--all', 'also show exhausted and drained partitions')
    .action(withCtl(async (ctl, skuId: string, opts: WatchOptions) => watch(ctl, skuId, opts)));
}

async function watch(ctl: Ctl, skuId: string, opts: WatchOptions): Promise<void> {
  const stop = new AbortController();
  const onSigint = () => stop.abort();
  process.once('SIGINT', onSigint);
  const rate = new SellRate();
  const clear = !ctl.output.json && Boolean(process.stdout.isTTY);
  try {
    while (!stop.signal.aborted) {
      const started = Date.now();
      let frame: Frame;
      try {
        frame = await refresh(ctl, skuId, Boolean(opts.all), rate, stop.signal);
      } catch (err) {
        if (stop.signal.aborted) break;
        // A failure with no answer is ridden out (the next refresh tries again); any other ends the view.
        if (opts.once || !noAnswer(err)) throw err;
        ctl.output.note(`${new Date().toISOString()} refresh failed (${err.kind}: ${err.details}); trying again`);
        await pause(opts.interval, stop.signal);
        continue;
      }
      if (ctl.output.json) process.stdout.write(`${JSON.stringify(frame)}\n`);
      else process.stdout.write(`${clear ? CLEAR_SCREEN : ''}${renderFrame(frame, opts.interval)}\n${clear ? '' : '\n'}`);
      if (opts.once || (opts.untilSoldOut && frame.soldOut)) break;
      await pause(opts.interval - (Date.now() - started), stop.signal);
    }
  } finally {
    process.removeListener('SIGINT', onSigint);
  }
}

async function refresh(ctl: Ctl, skuId: string, includeEnded: boolean, rate: SellRate, signal: AbortSignal): Promise<Frame> {
  const [listed, read] = await Promise.all([
    ctl.admin().listPartitions({ skuId, includeEnded }, { signal }),
    ctl.inventory().getStock({ skuIds: [skuId] }, { signal }),
  ]);
  const stock = stockView(read.stock[0]);
  const now = Date.now();
  rate.add(now, stock.sellable);
  return {
    at: new Date(now).toISOString(),
    skuId,
    partitions: listed.partitions.map(partitionView),
    stock,
    soldSinceStart: rate.soldSinceStart(),
    unitsPerSecond: rate.unitsPerSecond(),
    soldOut: stock.sellable === 0,
  };
}

/** Sellable units over time: how many went since the start, and how fast lately. */
export class SellRate {
  private start?: number;
  private readonly samples: Array<{ ms: number; sellable: number }> = [];

  add(ms: number, sellable: number): void {
    this.start ??= sellable;
    this.samples.push({ ms, sellable });
    // Keep the window's samples plus the one just before it, so the rate spans the whole window.
    while (this.samples.length > 2 && this.samples[1].ms <= ms - RATE_WINDOW_MS) this.samples.shift();
  }

  soldSinceStart(): number {
    const last = this.samples.at(-1);
    return this.start === undefined || last === undefined ? 0 : this.start - last.sellable;
  }

  /** Units per second, one decimal; 0 before two samples, and while restocks outpace sales. */
  unitsPerSecond(): number {
    const first = this.samples[0];
    const last = this.samples.at(-1);
    if (!first || !last || last.ms === first.ms) return 0;
    const perSecond = ((first.sellable - last.sellable) * 1000) / (last.ms - first.ms);
    return Math.max(0, Math.round(perSecond * 10) / 10);
  }
}

function renderFrame(frame: Frame, intervalMs: number): string {
  const { stock } = frame;
  return [
    `${frame.skuId} at ${frame.at} (every ${intervalMs} ms; Ctrl-C stops)`,
    renderTable(frame.partitions, PARTITION_COLUMNS),
    partitionTotals(frame.partitions),
    renderFields({
      sellable: `${stock.sellable}${frame.soldOut ? '  SOLD OUT' : ''}`,
      'pool / base': `${stock.pool} / ${stock.base}`,
      'reserved / committed': `${stock.reserved} / ${stock.committed}${stock.stale ? ' (totals stale: MySQL unreadable)' : ''}`,
      'sold since start': frame.soldSinceStart,
      'units/s': frame.unitsPerSecond,
    }),
  ].join('\n');
}

/** Waits, or ends early when Ctrl-C aborts. */
async function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (ms <= 0) return;
  await sleep(ms, undefined, { signal }).catch(() => undefined);
}
