import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';

/**
 * MySQL's archive of the orders Redis forgot once their retention ended (allocator/forgetter.ts):
 * the order hash as it was, so a late retry of a Reserve, a Confirm, a Release or a read of a
 * forgotten order is answered as Redis would have answered it (allocator/orders.ts), and a reused
 * order id is recognised. One row per order id, kept for good: the history lives in MySQL.
 * The filter of forgotten ids (allocator/forgotten.ts) decides when a Reserve asks. It is the
 * allocator's OrderArchive (allocator/types.ts) by shape: the store does not import the allocator.
 */
export class MysqlOrderArchive {
  constructor(private readonly db: Pool) {}

  async find(orderId: string): Promise<Record<string, string> | undefined> {
    const [rows] = await this.db.query<RowDataPacket[]>('SELECT fields FROM order_archive WHERE order_id = ?', [orderId]);
    return rows.length === 0 ? undefined : (JSON.parse(String(rows[0].fields)) as Record<string, string>);
  }

  /** The archived record, its row locked until the transaction ends (a shipment of a forgotten order). */
  async lockedRecord(conn: PoolConnection, orderId: string): Promise<Record<string, string> | undefined> {
    const [rows] = await conn.query<RowDataPacket[]>('SELECT fields FROM order_archive WHERE order_id = ? FOR UPDATE', [orderId]);
    return rows.length === 0 ? undefined : (JSON.parse(String(rows[0].fields)) as Record<string, string>);
  }

  /** Replaces an archived record's fields, within the transaction that locked it. */
  async rewrite(conn: PoolConnection, orderId: string, fields: Record<string, string>): Promise<void> {
    await conn.query('UPDATE order_archive SET fields = ? WHERE order_id = ?', [JSON.stringify(fields), orderId]);
  }

  async save(orders: ReadonlyArray<{ readonly orderId: string; readonly fields: Record<string, string> }>): Promise<void> {
    if (orders.length === 0) return;
    const rows = orders.map(({ orderId, fields }) => [orderId, fields.state, JSON.stringify(archivedFields(fields)), endedAt(fields)]);
    await this.db.query(
      'INSERT INTO order_archive (order_id, state, fields, ended_at) VALUES ? ' +
        'ON DUPLICATE KEY UPDATE state = VALUES(state), fields = VALUES(fields), ended_at = VALUES(ended_at)',
      [rows],
    );
  }
}

/** What a replay or a refusal reads: the record without the plan of the Reserve (only recovery used it). */
function archivedFields(fields: Record<string, string>): Record<string, string> {
  const { plan: _plan, ...kept } = fields;
  return kept;
}

/** When the order last changed to an end (or was paid): the start of its retention. */
function endedAt(fields: Record<string, string>): Date {
  return new Date(Number(fields.ended || fields.confirmed || fields.created || Date.now()));
}
