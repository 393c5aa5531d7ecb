import assert from 'node:assert/strict';
import { HotSkus } from '../../server/hot-skus';

describe('HotSkus', () => {
  let now: number;
  const clock = () => now;
  const order = (...skus: string[]) => skus.map((sku) => ({ sku }));

  beforeEach(() => (now = 1_000_000));

  it('ranks SKUs by Reserve calls per second, highest first, ties by name', () => {
    const hot = new HotSkus(clock, 10_000);
    for (let i = 0; i < 30; i++) hot.count(order('phone'));
    for (let i = 0; i < 10; i++) hot.count(order('case', 'cable'));
    now += 5000;
    assert.deepEqual(hot.top(3), [
      { sku: 'phone', perSecond: 6 },
      { sku: 'cable', perSecond: 2 },
      { sku: 'case', perSecond: 2 },
    ]);
    assert.deepEqual(hot.top(1).map((s) => s.sku), ['phone']);
  });

  it('keeps the last full window in the rate, so it does not drop to zero when a window starts', () => {
    const hot = new HotSkus(clock, 10_000);
    for (let i = 0; i < 100; i++) hot.count(order('phone'));
    now += 10_000;
    hot.count(order('phone'));
    now += 1000;
    // 101 calls over the 10 s window and 1 s of the next one.
    assert.equal(hot.top(1)[0].perSecond, 101 / 11);
  });

  it('forgets a SKU nobody asked for during two windows', () => {
    const hot = new HotSkus(clock, 10_000);
    hot.count(order('phone'));
    now += 15_000;
    assert.equal(hot.top(5).length, 1, 'still in the previous window');
    now += 10_000;
    assert.deepEqual(hot.top(5), []);
  });

  it('counts at most maxTracked SKUs per window, the ones seen first', () => {
    const hot = new HotSkus(clock, 10_000, 2);
    hot.count(order('a', 'b', 'c'));
    hot.count(order('c'));
    hot.count(order('a'));
    now += 1000;
    assert.deepEqual(hot.top(5).map((s) => s.sku), ['a', 'b']);
  });
});
