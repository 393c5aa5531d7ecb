import { Caller, stayForCaller } from '../kernel/caller';

/**
 * What Reconcile reports: one difference between Redis, MySQL and etcd, and the handle each check
 * of a SKU reports through (reconcile.ts runs the checks, reconcile-partitions.ts and
 * reconcile-orders.ts are two of them).
 */

/** One difference found between Redis, MySQL and etcd. */
export interface Discrepancy {
  readonly sku: string;
  /** Empty for SKU-level and order-level findings. */
  readonly partitionId: string;
  /** Set for order-level findings (STUCK_ORDER, ORPHANED_HOLD). */
  readonly orderId: string;
  readonly kind: string;
  /** What MySQL (the record) holds, and what Redis (or etcd) holds. */
  readonly expected: number;
  readonly actual: number;
  detail: string;
  repaired: boolean;
}

/** What the checks of one SKU share: where findings go, whether to repair, and whom the work is for. */
export interface SkuCheck {
  readonly sku: string;
  readonly repair: boolean;
  /** The call Reconcile runs for: no step (a read, a wait, a repair) starts once it has gone. */
  readonly caller: Caller;
  report(kind: string, expected: number, actual: number, detail: string, partitionId?: string, orderId?: string): Discrepancy;
}

/** The check before a step of a SKU's reconciliation: DEADLINE_EXCEEDED or CANCELLED once its caller has gone. */
export function stayForCheck(check: SkuCheck, step = ''): void {
  stayForCaller(check.caller, `Reconcile of sku ${check.sku}${step ? `, ${step}` : ''}`);
}
