/**
 * Per-SKU admission for Reserve: a token bucket per SKU, refilled at the SKU's rate and holding at
 * most its burst. Pure (the caller passes the clock), so it is tested without a server.
 *
 * A token bucket rather than a sliding window: two numbers per SKU and O(1) per call, a burst the
 * operator sets apart from the rate, and an exact retry hint (the time until the next token). A
 * sliding-window log keeps a timestamp per admitted call; a windowed counter lets twice the rate
 * through across a window edge.
 *
 * No timer per SKU: buckets are created on a SKU's first limited Reserve and brought up to date on
 * each call from the time that passed. Once in a while (every `sweepEveryMs`, on the call path)
 * the buckets that have filled up again are dropped: a full bucket is exactly a fresh one, so
 * forgetting it loses nothing, and memory stays bounded by the SKUs limited in the last refill time.
 */

/** A SKU's rate: Reserves admitted per second (0 = unlimited) and the bucket's size. */
export interface RateLimit {
  readonly reservesPerSecond: number;
  readonly burst: number;
}

/** Why an order was refused: its first SKU over the rate, and when a token will be there. */
export interface RateRefusal {
  /** Index of the item in the order. */
  readonly index: number;
  readonly sku: string;
  readonly retryAfterMs: number;
}

export const UNLIMITED: RateLimit = Object.freeze({ reservesPerSecond: 0, burst: 0 });

interface Bucket {
  /** The limit the tokens were counted under (compared by identity: a changed limit is a new object). */
  limit: RateLimit;
  tokens: number;
  /** When `tokens` was last brought up to date, on the caller's clock (ms). */
  at: number;
}

export class SkuRateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private sweptAt = 0;

  /**
   * @param limitOf the SKU's limit now; called once per item per call, so it must be cheap and
   *   answer the same object while the limit is unchanged (a new object resizes the bucket).
   */
  constructor(private readonly limitOf: (sku: string) => RateLimit, private readonly sweepEveryMs = 1000) {}

  /**
   * Takes one token from the bucket of every SKU of the order, or none at all: if any SKU is over
   * its rate the order is refused and the others keep their tokens. `now` is in ms, monotonic.
   * Allocates only for a refusal.
   */
  admit(items: readonly { readonly sku: string }[], now: number): RateRefusal | undefined {
    if (now - this.sweptAt >= this.sweepEveryMs) this.sweep(now);
    let limited = 0;
    for (let i = 0; i < items.length; i++) {
      const bucket = this.current(items[i].sku, now);
      if (bucket === undefined) continue;
      if (bucket.tokens < 1) {
        const retryAfterMs = Math.max(1, Math.ceil(((1 - bucket.tokens) * 1000) / bucket.limit.reservesPerSecond));
        return { index: i, sku: items[i].sku, retryAfterMs };
      }
      if (items.length === 1) {
        bucket.tokens -= 1;
        return undefined;
      }
      limited++;
    }
    if (limited > 0) {
      // Every limited SKU had a token: take them now (current() is up to date, no refill needed).
      for (let i = 0; i < items.length; i++) {
        const bucket = this.buckets.get(items[i].sku);
        if (bucket !== undefined && bucket.limit.reservesPerSecond > 0) bucket.tokens -= 1;
      }
    }
    return undefined;
  }

  /** SKUs with a bucket (for tests and metrics). */
  get tracked(): number {
    return this.buckets.size;
  }

  /** The SKU's bucket refilled up to `now`, created full on first use; undefined when unlimited. */
  private current(sku: string, now: number): Bucket | undefined {
    const limit = this.limitOf(sku);
    if (!(limit.reservesPerSecond > 0)) return undefined;
    const capacity = capacityOf(limit);
    let bucket = this.buckets.get(sku);
    if (bucket === undefined) {
      bucket = { limit, tokens: capacity, at: now };
      this.buckets.set(sku, bucket);
      return bucket;
    }
    if (bucket.limit !== limit) {
      bucket.limit = limit;
      if (bucket.tokens > capacity) bucket.tokens = capacity;
    }
    const elapsed = now - bucket.at;
    if (elapsed > 0) {
      const tokens = bucket.tokens + (elapsed * limit.reservesPerSecond) / 1000;
      bucket.tokens = tokens < capacity ? tokens : capacity;
      bucket.at = now;
    }
    return bucket;
  }

  /** Drops every bucket that is full by now (or whose SKU is no longer limited). */
  private sweep(now: number): void {
    this.sweptAt = now;
    for (const [sku, bucket] of this.buckets) {
      const { reservesPerSecond } = bucket.limit;
      if (!(reservesPerSecond > 0) || bucket.tokens + ((now - bucket.at) * reservesPerSecond) / 1000 >= capacityOf(bucket.limit)) {
        this.buckets.delete(sku);
      }
    }
  }
}

/** A bucket holds at least one token, or a limited SKU would never sell. */
function capacityOf(limit: RateLimit): number {
  return limit.burst >= 1 ? limit.burst : 1;
}
