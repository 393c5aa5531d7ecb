import assert from 'node:assert/strict';
import { runLimit } from '../../store/mysql';

describe("a MySQL transaction's run limit: its own timeout or the caller's deadline", () => {
  const now = 1_000_000;

  it('is the own timeout when the caller sets no deadline, or a later one', () => {
    assert.deepEqual(runLimit(30_000, Infinity, now), { ms: 30_000, byCaller: false });
    assert.deepEqual(runLimit(30_000, now + 60_000, now), { ms: 30_000, byCaller: false });
    assert.deepEqual(runLimit(0, Infinity, now), { ms: 0, byCaller: false });
  });

  it("never exceeds the caller's deadline, and says so when the deadline sets it", () => {
    assert.deepEqual(runLimit(30_000, now + 500, now), { ms: 500, byCaller: true });
    // No limit of its own: the caller's deadline still ends the run.
    assert.deepEqual(runLimit(0, now + 500, now), { ms: 500, byCaller: true });
    // A fraction of a millisecond left rounds up, and a deadline already passed still gives a timer.
    assert.deepEqual(runLimit(30_000, now + 0.2, now), { ms: 1, byCaller: true });
    assert.deepEqual(runLimit(30_000, now - 5, now), { ms: 1, byCaller: true });
  });

  it('is the own timeout when both end at the same moment (a MySQL timeout, not a cut by the caller)', () => {
    assert.deepEqual(runLimit(500, now + 500, now), { ms: 500, byCaller: false });
  });
});
