import assert from 'node:assert/strict';
import { RateLimit, SkuRateLimiter, UNLIMITED } from '../../server/rate-limiter';

const one = (sku: string) => [{ sku }];

/** A limiter over a table of limits the test changes; SKUs not in it are unlimited. */
function limiterOf(limits: Record<string, RateLimit>, sweepEveryMs = 1000) {
  return new SkuRateLimiter((sku) => limits[sku] ?? UNLIMITED, sweepEveryMs);
}

/** Admits `n` Reserves of one SKU at the same instant; answers how many got through. */
function admitted(limiter: SkuRateLimiter, sku: string, n: number, now: number): number {
  let ok = 0;
  for (let i = 0; i < n; i++) if (limiter.admit(one(sku), now) === undefined) ok++;
  return ok;
}

describe('SkuRateLimiter (per-SKU token buckets)', () => {
  it('admits the burst at once, then refuses with the time until the next token', () => {
    const limiter = limiterOf({ hot: { reservesPerSecond: 10, burst: 5 } });
    assert.equal(admitted(limiter, 'hot', 5, 1000), 5);
    const refusal = limiter.admit(one('hot'), 1000);
    assert.deepEqual(refusal, { index: 0, sku: 'hot', retryAfterMs: 100 });
    // Half a token later, half the wait is left.
    assert.equal(limiter.admit(one('hot'), 1050)?.retryAfterMs, 50);
  });

  it('refills at the rate and never holds more than the burst', () => {
    const limiter = limiterOf({ hot: { reservesPerSecond: 10, burst: 5 } });
    assert.equal(admitted(limiter, 'hot', 5, 0), 5);
    // 300 ms at 10/s: 3 tokens.
    assert.equal(admitted(limiter, 'hot', 10, 300), 3);
    // A long quiet spell fills the bucket to the burst, no more.
    assert.equal(admitted(limiter, 'hot', 100, 60_000), 5);
    // Over one steady second, the rate: 10 calls spread 100 ms apart all pass, an 11th at once does not.
    let ok = 0;
    for (let t = 60_100; t <= 61_000; t += 100) if (limiter.admit(one('hot'), t) === undefined) ok++;
    assert.equal(ok, 10);
    assert.notEqual(limiter.admit(one('hot'), 61_000), undefined);
  });

  it('leaves unlimited SKUs alone and keeps no state for them', () => {
    const limiter = limiterOf({ hot: { reservesPerSecond: 1, burst: 1 } });
    assert.equal(admitted(limiter, 'cold', 10_000, 0), 10_000);
    assert.equal(limiter.tracked, 0);
    assert.equal(admitted(limiter, 'hot', 3, 0), 1);
    assert.equal(limiter.tracked, 1);
  });

  it('keeps one SKU over its rate from touching another', () => {
    const limiter = limiterOf({ a: { reservesPerSecond: 1, burst: 1 }, b: { reservesPerSecond: 1, burst: 2 } });
    assert.equal(admitted(limiter, 'a', 5, 0), 1);
    assert.equal(admitted(limiter, 'b', 5, 0), 2);
  });

  it('refuses a cart when any SKU is over its rate and takes nothing from the others then', () => {
    const limiter = limiterOf({ a: { reservesPerSecond: 1, burst: 2 }, b: { reservesPerSecond: 1, burst: 1 } });
    assert.equal(limiter.admit([{ sku: 'a' }, { sku: 'free' }, { sku: 'b' }], 0), undefined);
    // b is empty now: the cart is refused, naming b by its place in the order...
    assert.deepEqual(limiter.admit([{ sku: 'a' }, { sku: 'free' }, { sku: 'b' }], 0), { index: 2, sku: 'b', retryAfterMs: 1000 });
    // ...and a kept the token the refused cart would have taken.
    assert.equal(admitted(limiter, 'a', 5, 0), 1);
  });

  it('applies a changed limit at once, cutting the tokens to the new burst', () => {
    const limits: Record<string, RateLimit> = { hot: { reservesPerSecond: 100, burst: 100 } };
    const limiter = limiterOf(limits);
    assert.equal(admitted(limiter, 'hot', 10, 0), 10);
    limits.hot = { reservesPerSecond: 1, burst: 3 };
    assert.equal(admitted(limiter, 'hot', 10, 0), 3);
    assert.equal(limiter.admit(one('hot'), 0)?.retryAfterMs, 1000);
    delete limits.hot;
    assert.equal(admitted(limiter, 'hot', 10, 0), 10);
  });

  it('treats a burst below one as one, so a limited SKU still sells', () => {
    const limiter = limiterOf({ hot: { reservesPerSecond: 2, burst: 0 } });
    assert.equal(admitted(limiter, 'hot', 5, 0), 1);
    assert.equal(admitted(limiter, 'hot', 5, 500), 1);
  });

  it('forgets buckets that have filled up again, so memory stays bounded by the SKUs recently limited', () => {
    const limit = { reservesPerSecond: 1, burst: 10 };
    const limiter = new SkuRateLimiter(() => limit, 500);
    for (let i = 0; i < 1000; i++) limiter.admit(one(`sku-${i}`), 0);
    assert.equal(limiter.tracked, 1000);
    // The sweep at 500 ms finds every bucket at 9.5 tokens, not full: it keeps them.
    limiter.admit(one('sku-0'), 500);
    assert.equal(limiter.tracked, 1000);
    // At 1 s the untouched ones are full again: the sweep drops every one but the one used at 500 ms.
    limiter.admit(one('sku-0'), 1000);
    assert.equal(limiter.tracked, 1);
    // A forgotten SKU starts again with a full bucket, exactly what it had.
    assert.equal(admitted(limiter, 'sku-1', 20, 1000), 10);
  });
});
