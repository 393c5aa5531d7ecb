import type { Pool } from 'mysql2/promise';
import { parseDoc } from '../allocator/doc';
import { applyMovement } from '../store/ledger-apply';
import { transaction } from '../store/mysql';
import { MysqlOrderArchive } from '../store/order-archive';
import { settleMessage } from '../store/stock-messages';
import { ApplyOutcome, StockUpdate } from './types';

/** How long a shipment waits for an order whose retention just ended to reach the archive (the forgetter runs every few seconds). */
const ARCHIVE_WAIT_MS = 15_000;

/**
 * A SHIPMENT of an order whose retention is over: applied to MySQL alone. order-ship changes only
 * the order's record and writes one ledger record (committed -> outside); it never touches a
 * partition, so once Redis has forgotten the order the archive holds everything the shipment
 * reads and changes. One transaction locks the archived record, applies the same rules as
 * order-ship (only a CONFIRMED order, never more than it still has committed, each message once by
 * its id in the doc), applies the movement under the event id order-ship would have used
 * (`ship:<message id>`: once, whichever path ran), and settles the message.
 *
 * `sealed`: Redis answered that the retention is over but the record may not be archived yet;
 * then this waits for the forgetter (and throws, to be redelivered, if it is late).
 */
export async function shipArchived(pool: Pool, u: StockUpdate, sealed: boolean): Promise<ApplyOutcome | undefined> {
  const archive = new MysqlOrderArchive(pool);
  const orderId = u.orderId!;
  const deadline = Date.now() + (sealed ? ARCHIVE_WAIT_MS : 0);
  while (!(await archive.find(orderId))) {
    if (Date.now() >= deadline) {
      if (sealed) throw new Error(`order ${orderId} is past its retention but not archived yet; the shipment is retried`);
      return undefined;
    }
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return transaction(pool, async (conn) => {
    const fields = (await archive.lockedRecord(conn, orderId))!;
    const outcome = shipFromRecord(fields, u);
    if (outcome.units > 0) {
      await archive.rewrite(conn, orderId, fields);
      await applyMovement(conn, { eventId: `ship:${u.messageId}`, kind: 'ship', sku: u.sku, qty: outcome.units, from: 'committed', to: 'outside', orderId, source: 'archive' });
    }
    const detail = outcome.result.kind === 'dead' ? outcome.result.reason : outcome.result.kind === 'applied' ? (outcome.result.detail ?? '') : '';
    await settleMessage(conn, u.messageId, outcome.result.kind === 'skipped' ? 'stale' : outcome.result.kind, detail);
    return outcome.result;
  });
}

/** order-ship's rules on an archived record; updates `fields` when units ship now. */
function shipFromRecord(fields: Record<string, string>, u: StockUpdate): { units: number; result: ApplyOutcome } {
  const orderId = u.orderId!;
  if (fields.state !== 'CONFIRMED') return { units: 0, result: { kind: 'dead', reason: `ORDER_NOT_PAID: order ${orderId} is ${fields.state}, only a CONFIRMED order ships` } };
  const doc = parseDoc(fields.doc);
  const before = doc.ships?.[u.messageId];
  if (before !== undefined) return { units: 0, result: { kind: 'applied', detail: `${before} units of order ${orderId} shipped` } };
  const item = doc.items.find((it) => it.sku === u.sku);
  if (!item) return { units: 0, result: { kind: 'dead', reason: `UNKNOWN_ITEM: sku ${u.sku} is not part of order ${orderId}` } };
  const units = Math.min(u.quantity, item.qty - item.rel - (item.shipped ?? 0));
  if (units <= 0) return { units: 0, result: { kind: 'dead', reason: `NOTHING_COMMITTED: order ${orderId} has no committed units of sku ${u.sku} left` } };
  item.shipped = (item.shipped ?? 0) + units;
  doc.ships = { ...doc.ships, [u.messageId]: units };
  fields.doc = JSON.stringify(doc);
  return { units, result: { kind: 'applied', detail: `${units} units of order ${orderId} shipped (from the archive: its retention had ended)` } };
}
