import { orderOfTaker } from '../allocator/attempts';
import { PartitionRef } from '../allocator/gateway';
import { PartitionInspector } from '../allocator/inspector';
import { SkuCheck, stayForCheck } from './discrepancy';

/**
 * Reconcile's look at who holds a SKU's units: every order with units taken and not released, from
 * the partitions' takes hashes, against the order's own record. Two kinds of holder are wrong:
 *   - STUCK_ORDER: a Reserve never answered (PENDING past the recovery grace: its process died);
 *     the recovery worker rolls these back, and a repair does it at once;
 *   - ORPHANED_HOLD: the order is gone, or ended (released, expired, rejected) past the grace with
 *     no release of it still being applied, yet units are still taken in its name. Reported for an
 *     operator: whether they were paid for is no longer known.
 * Orders in the middle of something (a Reserve within its grace, a release being applied) are
 * left alone, and every finding is read twice (the order, then its takes again), so a dry run
 * during a sale reports nothing that was merely in flight.
 */

/** At most this many orders of one kind are listed per SKU; the rest are counted in one more line. */
const LISTED = 50;

const ENDED = new Set(['RELEASED', 'EXPIRED', 'REJECTED']);

export async function checkHolders(
  check: SkuCheck,
  inspector: PartitionInspector,
  partitions: readonly PartitionRef[],
  recoveryGraceMs: number,
  recover: (orderId: string) => Promise<boolean>,
): Promise<void> {
  if (partitions.length === 0) return;
  // Holders are attempts (allocator/attempts.ts): a retry's takes are under '<order>#<n>'.
  const holds = new Map<string, Array<[PartitionRef, number]>>();
  for (const p of partitions) {
    for (const [taker, units] of await inspector.holdersOf(p)) {
      let list = holds.get(taker);
      if (!list) holds.set(taker, (list = []));
      list.push([p, units]);
    }
  }
  const takers = [...holds.keys()];
  const states = await inspector.orderStates(takers.map(orderOfTaker));
  const now = await inspector.redisTimeMs(partitions[0].shard);

  const stuck: Array<[string, number]> = [];
  const orphaned: Array<[string, number, string]> = [];
  for (let i = 0; i < takers.length; i++) {
    const taker = takers[i];
    const orderId = orderOfTaker(taker);
    const state = states[i];
    if (state?.state === 'PENDING') {
      if (now - state.created >= recoveryGraceMs) stuck.push([orderId, await stillHeld(inspector, taker, holds.get(taker)!)]);
      continue;
    }
    if (state && !(ENDED.has(state.state) && now - state.ended >= recoveryGraceMs)) continue;
    if (state && (await inspector.releaseUnfinished(orderId))) continue;
    const units = await stillHeld(inspector, taker, holds.get(taker)!);
    if (units > 0) orphaned.push([orderId, units, state ? `order ${orderId} is ${state.state} yet still holds units` : `order ${orderId} no longer exists yet units are taken in its name`]);
  }

  const stuckHolding = stuck.filter(([, units]) => units > 0);
  const rolledBack = new Set<string>();
  if (check.repair) {
    for (const [orderId] of stuckHolding) {
      stayForCheck(check, `before rolling back order ${orderId}`);
      await recover(orderId);
      const [after] = await inspector.orderStates([orderId]);
      if (after?.state !== 'PENDING') rolledBack.add(orderId);
    }
  }
  reportEach(check, 'STUCK_ORDER', stuckHolding, ([orderId, units]) => ({
    detail: `order ${orderId} was never answered (PENDING past the recovery grace) and holds ${units} units${rolledBack.has(orderId) ? '; rolled back' : ''}`,
    repaired: rolledBack.has(orderId),
  }));
  reportEach(check, 'ORPHANED_HOLD', orphaned, ([, , detail]) => ({ detail: `${detail}; check it and release by hand`, repaired: false }));
}

/** Units the attempt (`taker`) holds of these partitions now (read again after its record). */
async function stillHeld(inspector: PartitionInspector, taker: string, holds: Array<[PartitionRef, number]>): Promise<number> {
  let units = 0;
  for (const [p] of holds) units += Math.max(0, await inspector.heldBy(p, taker));
  return units;
}

/** One discrepancy per order, the first LISTED of them, and one line counting the rest. */
function reportEach<T extends [string, number, ...unknown[]]>(
  check: SkuCheck,
  kind: string,
  found: readonly T[],
  describe: (item: T) => { detail: string; repaired: boolean },
): void {
  for (const item of found.slice(0, LISTED)) {
    const { detail, repaired } = describe(item);
    check.report(kind, 0, item[1], detail, '', item[0]).repaired = repaired;
  }
  const rest = found.slice(LISTED);
  if (rest.length > 0) {
    const units = rest.reduce((n, item) => n + item[1], 0);
    check.report(kind, 0, units, `${rest.length} more orders like the above hold ${units} units`).repaired = rest.every((item) => describe(item).repaired);
  }
}
