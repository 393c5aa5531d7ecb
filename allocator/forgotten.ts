import { Keys, fnv1a } from './keys';

/**
 * The filter of forgotten order ids: what lets Redis forget orders (bounded memory) without a
 * late retry of a forgotten order taking stock a second time.
 *
 * When the forgetter deletes an order's record (its retention is over; the record is archived in
 * MySQL first), it sets the order id's bits in a Bloom filter of the order's shard. A Reserve of
 * an order id Redis does not know checks those bits in the same script (includes/filter.lua): all
 * set means the id may have lived before, and the Reserve asks MySQL's archive before it writes
 * anything; MySQL then answers the first life's result (a replay) or refuses the reuse. Any bit
 * clear means the id is new for sure: the hot path never waits for MySQL.
 *
 * A filter only fills up, so there is one per generation of FORGOTTEN_HORIZON: ids go into the
 * current one and the check reads the current and the previous one, and each filter expires two
 * generations after it began. An id is so remembered for at least the horizon (less a minute of
 * clock slack) after it was forgotten; later a reuse starts a new order. A filter fuller than planned costs more archive
 * reads (false positives are answered by MySQL), never a wrong answer.
 *
 * Size: bits per shard and generation (FORGOTTEN_FILTER_BITS) = 10 x orders forgotten per horizon /
 * shards gives about 1% false positives with k = 7 (includes/filter.lua).
 */
export interface ForgottenFilterOptions {
  /** Bits of one shard's filter of one generation. */
  readonly bits: number;
  /** Length of a generation: how long at least a forgotten id is remembered. */
  readonly horizonMs: number;
}

/** How far the servers' clocks may disagree: ids go into the generation of this long ago. */
const CLOCK_SLACK_MS = 60_000;

export class ForgottenFilter {
  /** The generation the cached key pairs are of, and the pairs per shard: every Reserve names them. */
  private generation = NaN;
  private pairs: Array<readonly [string, string]> = [];

  constructor(
    private readonly keys: Keys,
    readonly options: ForgottenFilterOptions,
  ) {}

  /** KEYS (current and previous generation) of a new order's check in its shard; built once per shard and generation. */
  checkKeys(shard: number, now = Date.now()): readonly [string, string] {
    const generation = Math.floor(now / this.options.horizonMs);
    if (generation !== this.generation) {
      this.generation = generation;
      this.pairs = [];
    }
    return (this.pairs[shard] ??= [this.keys.seen(shard, generation), this.keys.seen(shard, generation - 1)]);
  }

  /** ARGV of the check (h1, h2, m); `archiveAsked`: the archive answered already, skip the filter. */
  checkArgs(orderId: string, archiveAsked = false): [string | number, number, number] {
    if (archiveAsked) return ['', 0, 0];
    const [h1, h2] = orderHashes(orderId);
    return [h1, h2, this.options.bits];
  }

  /** Where and how order-forget sets an order id's bits, and how long a filter it creates lives. */
  addition(orderId: string, now = Date.now()): { key: string; args: [number, number, number]; ttlSeconds: number } {
    const shard = this.keys.orderShard(orderId);
    const generation = Math.floor((now - CLOCK_SLACK_MS) / this.options.horizonMs);
    const endsMs = (generation + 2) * this.options.horizonMs + 2 * CLOCK_SLACK_MS;
    const [h1, h2] = orderHashes(orderId);
    return { key: this.keys.seen(shard, generation), args: [h1, h2, this.options.bits], ttlSeconds: Math.ceil((endsMs - now) / 1000) };
  }
}

/** Two independent 32-bit hashes of an order id for double hashing; the second is odd, never 0. */
export function orderHashes(orderId: string): [number, number] {
  return [fnv1a(`f:${orderId}`), (fnv1a(`g:${orderId}`) | 1) >>> 0];
}
