import assert from 'node:assert/strict';
import { attemptOfTaker, orderOfTaker, takerOf } from '../../allocator/attempts';
import { NO_CALLER, callerGone, isCut } from '../../kernel/caller';
import { ID_PATTERN } from '../../kernel/ids';

describe('Reserve attempts and the caller check', () => {
  it('names the first attempt by the order id and later ones apart, and reads them back', () => {
    assert.equal(takerOf('o-1', 1), 'o-1');
    assert.equal(takerOf('o-1', 3), 'o-1#3');
    assert.equal(orderOfTaker('o-1#3'), 'o-1');
    assert.equal(orderOfTaker('o-1'), 'o-1');
    assert.equal(attemptOfTaker('o-1#3'), 3);
    assert.equal(attemptOfTaker('o-1'), 1);
    // No order id can look like another order's later attempt.
    assert.equal(ID_PATTERN.test('o-1#3'), false);
  });

  it('says when the caller has gone: deadline before cancellation, the work’s own limit too', () => {
    assert.equal(callerGone(NO_CALLER, 'x'), undefined);
    assert.equal(callerGone({ deadline: Date.now() + 10_000, cancelled: false }, 'x'), undefined);
    assert.equal(callerGone({ deadline: Date.now() + 10_000, cancelled: true }, 'x')?.kind, 'CANCELLED');
    // grpc-js reports a call past its deadline as cancelled too: that is a deadline.
    assert.equal(callerGone({ deadline: Date.now() - 1, cancelled: true }, 'x')?.kind, 'DEADLINE_EXCEEDED');
    const own = callerGone({ deadline: Infinity, cancelled: false }, 'x', Date.now() - 1);
    assert.equal(own?.kind, 'DEADLINE_EXCEEDED');
    assert.ok(isCut(own));
    assert.equal(isCut(new Error('x')), false);
  });
});
