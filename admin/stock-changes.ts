import type { PoolConnection } from 'mysql2/promise';
import { applyMovement } from '../store/mysql';
import { StockRow } from '../store/stock';
import { adminMovement } from './movements';

/**
 * A change of on_hand (a receipt, a loss, a stock-take), the MySQL half, in the caller's
 * transaction with the SKU row locked. Shared by AdjustStock and SetStock and by the warehouses'
 * stock messages, so a loss means the same whoever reports it:
 *   - an increase goes to base;
 *   - a loss comes out of base first; what base cannot cover must come out of the pool, which lives
 *     in Redis: the caller opens a `loss` intent for it (LossPayload), and IntentSteps shrinks the
 *     partitions, records the units gone, and only what base and pool could not cover becomes a
 *     shortfall. Units on sale never exceed what is physically there.
 */

/** What a `loss` intent carries: the units the pool must give up, and how to record them. */
export interface LossPayload {
  readonly units: number;
  readonly reason: string;
  /** Event ids of the shrinks (ledger kind `loss`) are `<eventBase>:<partition id>`. */
  readonly eventBase: string;
  /** Set when a stock message caused it: the message is settled with the intent. */
  readonly messageId?: string;
}

/**
 * Applies `change` to on_hand: positive into base, negative out of base as far as base goes.
 * Returns the units of a loss base could not cover (0 when none): the caller's pool shrink.
 */
export async function applyOnHandChange(conn: PoolConnection, row: StockRow, change: number, eventId: string, kind: string, reason: string): Promise<number> {
  if (change > 0) {
    await applyMovement(conn, adminMovement(eventId, kind, row.sku, change, 'outside', 'base', undefined, reason));
    return 0;
  }
  if (change === 0) return 0;
  const covered = Math.min(-change, Math.max(0, row.base));
  if (covered > 0) await applyMovement(conn, adminMovement(eventId, kind, row.sku, covered, 'base', 'outside', undefined, reason));
  return -change - covered;
}
