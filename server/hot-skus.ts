/**
 * Which SKUs are hot in this process: the ones its Reserve calls name most, so that dashboards can
 * show the partitions and sellable units of a flash sale's SKU without a metric label per SKU of
 * the catalogue (Prometheus would drown in millions of series).
 *
 * Counts per SKU in a window of `windowMs`; the rate of a SKU is its count over the window before
 * and the current one, so it neither jumps to zero when a window starts nor remembers a sale for
 * longer than two windows. A SKU sold out stays hot while buyers keep asking for it. At most
 * `maxTracked` SKUs are counted per window (a catalogue-wide crawl cannot grow the map without
 * bound); hot SKUs are found among them. Pure: the caller passes the clock.
 */
export interface HotSku {
  readonly sku: string;
  /** Reserve calls naming the SKU per second, in this process. */
  readonly perSecond: number;
}

export class HotSkus {
  private current = new Map<string, number>();
  private previous = new Map<string, number>();
  private windowStart: number;
  private previousSpanMs = 0;

  constructor(
    private readonly clock: () => number,
    private readonly windowMs = 60_000,
    private readonly maxTracked = 10_000,
  ) {
    this.windowStart = clock();
  }

  /** Counts one Reserve naming these SKUs. O(items), no allocation once a SKU is tracked. */
  count(items: readonly { readonly sku: string }[]): void {
    const now = this.clock();
    if (now - this.windowStart >= this.windowMs) this.roll(now);
    for (let i = 0; i < items.length; i++) {
      const sku = items[i].sku;
      const n = this.current.get(sku);
      if (n !== undefined) this.current.set(sku, n + 1);
      else if (this.current.size < this.maxTracked) this.current.set(sku, 1);
    }
  }

  /** The `limit` SKUs with the highest rate (ties by name), highest first. */
  top(limit: number): HotSku[] {
    const now = this.clock();
    if (now - this.windowStart >= this.windowMs) this.roll(now);
    const spanSeconds = (this.previousSpanMs + Math.max(1, now - this.windowStart)) / 1000;
    const totals = new Map(this.previous);
    for (const [sku, n] of this.current) totals.set(sku, (totals.get(sku) ?? 0) + n);
    return [...totals]
      .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1))
      .slice(0, limit)
      .map(([sku, n]) => ({ sku, perSecond: n / spanSeconds }));
  }

  private roll(now: number): void {
    // A window with no calls at all leaves nothing behind: after two idle windows nothing is hot.
    const idleWindows = Math.floor((now - this.windowStart) / this.windowMs);
    this.previous = idleWindows === 1 ? this.current : new Map();
    this.previousSpanMs = idleWindows === 1 ? this.windowMs : 0;
    this.current = new Map();
    this.windowStart += idleWindows * this.windowMs;
  }
}
