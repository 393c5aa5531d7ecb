/**
 * A compact latency histogram, HDR-like: values in microseconds, exact below 128 µs, then 64
 * log-linear sub-buckets per power of two (under 1.6% relative error), up to ~35 minutes. One
 * Uint32Array of 1,728 counters per histogram; merging is adding arrays, so load generators send
 * theirs (sparse) to the orchestrator and it adds them up.
 */
const SUB = 64;
const DIRECT = 2 * SUB; // values below this are their own bucket
const MAX_EXP = 31;
export const BUCKETS = DIRECT + (MAX_EXP - 7 + 1) * SUB;

export class Histogram {
  readonly counts = new Uint32Array(BUCKETS);
  total = 0;
  max = 0;

  /** Records one value in microseconds (fractions are truncated). */
  record(micros: number): void {
    const v = micros < 0 ? 0 : micros >= 2 ** MAX_EXP ? 2 ** MAX_EXP - 1 : Math.floor(micros);
    this.counts[bucketOf(v)]++;
    this.total++;
    if (v > this.max) this.max = v;
  }

  /** The value at quantile q (0..1), in microseconds: the middle of its bucket, capped at max. */
  quantile(q: number): number {
    if (this.total === 0) return 0;
    const rank = Math.max(1, Math.ceil(q * this.total));
    let seen = 0;
    for (let i = 0; i < BUCKETS; i++) {
      seen += this.counts[i];
      if (seen >= rank) return Math.min(valueOf(i), this.max);
    }
    return this.max;
  }

  add(other: Histogram | SparseHistogram): void {
    if (other instanceof Histogram) {
      for (let i = 0; i < BUCKETS; i++) this.counts[i] += other.counts[i];
    } else {
      for (const [i, n] of other.buckets) this.counts[i] += n;
    }
    this.total += other.total;
    this.max = Math.max(this.max, other.max);
  }

  toSparse(): SparseHistogram {
    const buckets: Array<[number, number]> = [];
    for (let i = 0; i < BUCKETS; i++) if (this.counts[i] > 0) buckets.push([i, this.counts[i]]);
    return { total: this.total, max: this.max, buckets };
  }

  static fromSparse(sparse: SparseHistogram): Histogram {
    const h = new Histogram();
    h.add(sparse);
    return h;
  }
}

/** The wire form: only the buckets that counted something. */
export interface SparseHistogram {
  readonly total: number;
  readonly max: number;
  readonly buckets: ReadonlyArray<readonly [number, number]>;
}

function bucketOf(v: number): number {
  if (v < DIRECT) return v;
  const msb = 31 - Math.clz32(v); // >= 7
  const sub = v >>> (msb - 6); // 64..127
  return DIRECT + (msb - 7) * SUB + (sub - SUB);
}

/** The middle of a bucket. */
function valueOf(index: number): number {
  if (index < DIRECT) return index;
  const k = index - DIRECT;
  const shift = Math.floor(k / SUB) + 1; // msb - 6
  const sub = SUB + (k % SUB);
  return (sub << shift) + (1 << shift) / 2;
}
