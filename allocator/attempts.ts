/**
 * Attempts of a Reserve. An order id may be reserved by more than one attempt: a retry that finds
 * an earlier attempt rolled back (it failed, ran out of time, or passed its give-up time and the
 * retry rolled it back) starts over as the next attempt (order-begin). Each attempt has its own name
 * in the partitions' takes hashes and the buyers' user hashes, its *taker*: the rollback of a dead
 * attempt leaves tombstones under that attempt's name, which refuse its late takes and holds, and
 * not the next attempt's. The first attempt's taker is the order id itself, so orders that never
 * needed a retry look as they always did.
 */

/** Separates the order id from the attempt number in a taker; order ids cannot contain it (kernel/ids.ts). */
const ATTEMPT_MARK = '#';

/** The taker of attempt `attempt` (1, 2, ...) of an order. */
export function takerOf(orderId: string, attempt: number): string {
  return attempt > 1 ? `${orderId}${ATTEMPT_MARK}${attempt}` : orderId;
}

/** The order id a taker belongs to. */
export function orderOfTaker(taker: string): string {
  const at = taker.indexOf(ATTEMPT_MARK);
  return at < 0 ? taker : taker.slice(0, at);
}

/** The attempt a taker names. */
export function attemptOfTaker(taker: string): number {
  const at = taker.indexOf(ATTEMPT_MARK);
  return at < 0 ? 1 : Number(taker.slice(at + 1));
}
