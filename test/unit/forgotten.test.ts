import assert from 'node:assert/strict';
import { ForgottenFilter, orderHashes } from '../../allocator/forgotten';
import { Keys } from '../../allocator/keys';

const HOUR = 3_600_000;

describe('the filter of forgotten order ids: generations and keys', () => {
  const keys = new Keys('t', 16);
  const filter = new ForgottenFilter(keys, { bits: 1 << 20, horizonMs: 24 * HOUR });
  const day = (n: number) => n * 24 * HOUR;

  it('a check reads the current and the previous generation of the order shard', () => {
    const [current, previous] = filter.checkKeys(3, day(100) + HOUR);
    assert.equal(current, keys.seen(3, 100));
    assert.equal(previous, keys.seen(3, 99));
  });

  it('an id forgotten at any time is checked for a horizon after (less the minute of clock slack), and its filter lives that long', () => {
    for (const at of [day(100) + 30_000, day(100) + HOUR, day(100) + day(1) - 1]) {
      const { key, ttlSeconds } = filter.addition('order-7', at);
      // Every check until one horizon later reads the key the id went into...
      for (const later of [at, at + day(1) / 2, at + day(1) - 60_000]) assert.ok(filter.checkKeys(keys.orderShard('order-7'), later).includes(key), `${at} -> ${later}`);
      // ...and the key lives at least that long.
      assert.ok(ttlSeconds * 1000 >= day(1), `ttl ${ttlSeconds} s`);
    }
  });

  it('writes into the generation of a minute ago, so a server whose clock runs behind still checks it', () => {
    const justAfter = day(100) + 10_000;
    const { key } = filter.addition('order-8', justAfter);
    assert.equal(key, keys.seen(keys.orderShard('order-8'), 99));
    assert.ok(filter.checkKeys(keys.orderShard('order-8'), day(100) - 30_000).includes(key), 'a clock 40 s behind');
  });

  it('a filter ends: no generation is kept past three horizons', () => {
    const { ttlSeconds } = filter.addition('order-9', day(100) + HOUR);
    assert.ok(ttlSeconds * 1000 <= day(3), `ttl ${ttlSeconds} s`);
  });

  it('the check of an order the archive already answered skips the filter', () => {
    assert.deepEqual(filter.checkArgs('order-1', true), ['', 0, 0]);
    const [h1, h2, m] = filter.checkArgs('order-1');
    assert.deepEqual([h1, h2, m], [...orderHashes('order-1'), 1 << 20]);
  });

  it('the two hashes differ per id and the step is odd, so the k positions of an id are distinct', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const [h1, h2] = orderHashes(`o-${i}`);
      assert.equal(h2 % 2, 1);
      assert.ok(h1 >= 0 && h2 > 0 && h1 < 2 ** 32 && h2 < 2 ** 32);
      seen.add(`${h1}:${h2}`);
      const m = 64;
      // With m a power of two and an odd step, positions h1 + i*h2 mod m repeat only after m steps.
      const positions = new Set(Array.from({ length: 7 }, (_, k) => (h1 + k * h2) % m));
      assert.equal(positions.size, 7);
    }
    assert.equal(seen.size, 1000);
  });
});
