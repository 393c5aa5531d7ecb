import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { InventoryEvent } from '../kernel/events';

/**
 * The MySQL outbox (table `event_outbox`, migration 5): events decided in a MySQL transaction are
 * inserted in that transaction, so they are recorded exactly when the change commits; the publisher
 * (mq/events.ts) leases rows, publishes them and deletes them once RabbitMQ has confirmed them.
 */

/** Records an event in the caller's transaction; an event of the same id recorded before is kept as it is. */
export async function insertOutboxEvent(conn: PoolConnection, event: InventoryEvent): Promise<void> {
  await conn.query(
    'INSERT INTO event_outbox (event_id, event_type, sku_id, payload) VALUES (?, ?, ?, ?) ON DUPLICATE KEY UPDATE event_id = event_id',
    [event.id, event.type, event.sku, JSON.stringify(event)],
  );
}

export interface OutboxRow {
  readonly seq: number;
  readonly payload: string;
}

interface OutboxRecord extends RowDataPacket {
  seq: number;
  payload: string;
}

/**
 * Leases up to `limit` events, oldest first, to `consumer` for `leaseMs`: those nobody holds, those
 * whose lease ran out (their publisher died), and the consumer's own (renewed). Answers the rows
 * the consumer holds. Two publishers never hold one row at once while their leases last.
 */
export async function leaseOutboxEvents(pool: Pool, consumer: string, leaseMs: number, limit: number): Promise<OutboxRow[]> {
  await pool.query(
    `UPDATE event_outbox SET claimed_by = ?, claimed_until = NOW(3) + INTERVAL ? MICROSECOND
     WHERE claimed_until IS NULL OR claimed_until < NOW(3) OR claimed_by = ? ORDER BY seq LIMIT ?`,
    [consumer, Math.round(leaseMs * 1000), consumer, limit],
  );
  const [rows] = await pool.query<OutboxRecord[]>('SELECT seq, payload FROM event_outbox WHERE claimed_by = ? ORDER BY seq LIMIT ?', [consumer, limit]);
  return rows.map((r) => ({ seq: Number(r.seq), payload: r.payload }));
}

/** Deletes published events. */
export async function deleteOutboxEvents(pool: Pool, seqs: readonly number[]): Promise<void> {
  if (seqs.length > 0) await pool.query('DELETE FROM event_outbox WHERE seq IN (?)', [seqs]);
}

/** Events waiting to be published. */
export async function outboxBacklog(pool: Pool): Promise<number> {
  const [[row]] = await pool.query<RowDataPacket[]>('SELECT COUNT(*) AS n FROM event_outbox');
  return Number(row.n);
}
