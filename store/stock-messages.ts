import type { PoolConnection, RowDataPacket } from 'mysql2/promise';

/**
 * The record of warehouse stock messages (table stock_messages), by message id: what makes a
 * redelivered message change nothing, and what tells a message the consumer had begun (its Redis
 * half under way) from one it finished.
 */
export type MessageOutcome = 'pending' | 'applied' | 'stale' | 'dead';

export interface MessageRecord {
  readonly messageId: string;
  readonly sku: string;
  readonly kind: string;
  readonly quantity: number;
  readonly sequence?: number;
  readonly warehouseId?: string;
  readonly orderId?: string;
  readonly occurredAt?: Date;
}

interface OutcomeRow extends RowDataPacket {
  outcome: MessageOutcome;
  detail: string | null;
}

/**
 * Records a message in the caller's transaction, as `applied` (what most messages end as: the
 * transaction that applies one commits the row with it, or neither; settleMessage changes the
 * outcome of the others); or, when it was seen before, its row (locked) with what became of it.
 */
export async function claimMessage(conn: PoolConnection, m: MessageRecord): Promise<{ kind: 'new' } | { kind: 'seen'; outcome: MessageOutcome; detail: string }> {
  const [res] = await conn.query<any>(
    `INSERT IGNORE INTO stock_messages (message_id, sku_id, kind, quantity, sequence, warehouse_id, order_id, outcome, occurred_at)
     VALUES (?, ?, ?, ?, ?, ?, ?, 'applied', ?)`,
    [m.messageId, m.sku, m.kind, m.quantity, m.sequence ?? null, m.warehouseId ?? null, m.orderId ?? null, m.occurredAt ?? null],
  );
  if (res.affectedRows === 1) return { kind: 'new' };
  const [[row]] = await conn.query<OutcomeRow[]>('SELECT outcome, detail FROM stock_messages WHERE message_id = ? FOR UPDATE', [m.messageId]);
  return { kind: 'seen', outcome: row.outcome, detail: row.detail ?? '' };
}

export async function settleMessage(conn: PoolConnection, messageId: string, outcome: MessageOutcome, detail = ''): Promise<void> {
  await conn.query('UPDATE stock_messages SET outcome = ?, detail = ? WHERE message_id = ?', [outcome, detail.slice(0, 512), messageId]);
}

/**
 * Takes the message's place in the SKU's sequence (row locked by the caller): false when the SKU
 * already applied a message at or past `sequence` (this one is stale). No sequence: always true.
 */
export async function advanceSequence(conn: PoolConnection, sku: string, sequence: number | undefined): Promise<boolean> {
  if (sequence === undefined) return true;
  const [res] = await conn.query<any>(
    'UPDATE skus SET message_sequence = ? WHERE sku_id = ? AND (message_sequence IS NULL OR message_sequence < ?)',
    [sequence, sku, sequence],
  );
  return res.affectedRows === 1;
}
