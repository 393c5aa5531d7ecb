import assert from 'node:assert/strict';
import { InFlightLimit } from '../../server/in-flight';

describe('InFlightLimit (process-wide shedding)', () => {
  it('lets calls in up to the limit, refuses the next without counting it, and admits again when one leaves', () => {
    const gate = new InFlightLimit(2);
    assert.equal(gate.tryEnter(), true);
    assert.equal(gate.tryEnter(), true);
    assert.equal(gate.tryEnter(), false);
    assert.equal(gate.inFlight, 2);
    gate.leave(5);
    assert.equal(gate.inFlight, 1);
    assert.equal(gate.tryEnter(), true);
  });

  it('never refuses with limit 0', () => {
    const gate = new InFlightLimit(0);
    for (let i = 0; i < 10_000; i++) assert.equal(gate.tryEnter(), true);
    assert.equal(gate.inFlight, 10_000);
  });

  it('hints a retry after one to two mean call durations, within 10 ms and 1 s', () => {
    const gate = new InFlightLimit(1);
    // No call measured yet: the floor.
    assert.equal(gate.retryAfterMs(() => 0), 10);
    for (let i = 0; i < 500; i++) {
      gate.tryEnter();
      gate.leave(200);
    }
    assert.equal(gate.retryAfterMs(() => 0), 200);
    assert.equal(gate.retryAfterMs(() => 0.5), 300);
    for (let i = 0; i < 500; i++) {
      gate.tryEnter();
      gate.leave(60_000);
    }
    assert.equal(gate.retryAfterMs(() => 0.99), 1000);
  });
});
