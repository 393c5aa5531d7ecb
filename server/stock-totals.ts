import { DependencyUnavailable } from '../kernel/dependency';
import type { StockRow } from '../store/stock';

/** A SKU's totals as GetStock answers them: from MySQL now, or the last ones read while it is down. */
export interface StockTotals {
  /** Undefined when this server never read the SKU's totals. */
  readonly row: StockRow | undefined;
  /** When they were read, ms since 1970; 0 when never. */
  readonly asOfMs: number;
  readonly stale: boolean;
}

/**
 * GetStock's MySQL side with a memory: every read keeps the totals it got, and while MySQL is
 * unavailable the last ones kept answer, marked stale (DESIGN promise 6: GetStock still answers the
 * live pool and says the totals are stale). Bounded: past `capacity` SKUs the least recently read go.
 */
export class StockTotalsReader {
  private readonly last = new Map<string, { row: StockRow; at: number }>();

  constructor(
    private readonly read: (skus: string[]) => Promise<Map<string, StockRow>>,
    private readonly capacity = 100_000,
  ) {}

  async totals(skus: string[]): Promise<StockTotals[]> {
    let rows: Map<string, StockRow>;
    try {
      rows = await this.read(skus);
    } catch (err) {
      if (!(err instanceof DependencyUnavailable)) throw err;
      return skus.map((sku) => {
        const kept = this.last.get(sku);
        return { row: kept?.row, asOfMs: kept?.at ?? 0, stale: true };
      });
    }
    const at = Date.now();
    return skus.map((sku) => {
      const row = rows.get(sku);
      if (row) this.keep(sku, row, at);
      return { row, asOfMs: at, stale: false };
    });
  }

  private keep(sku: string, row: StockRow, at: number): void {
    this.last.delete(sku); // re-inserted last: the map's order is the reading order
    this.last.set(sku, { row, at });
    if (this.last.size > this.capacity) this.last.delete(this.last.keys().next().value!);
  }
}
