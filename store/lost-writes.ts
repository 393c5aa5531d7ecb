import type { Pool, RowDataPacket } from 'mysql2/promise';
import { PARTITION_COLUMNS, PartitionRecord, PartitionRow, PartitionRowState, toPartitionRow } from './partitions';

/**
 * MySQL's side of the lost-writes check (admin/lost-writes.ts): which partitions live on a Redis
 * node's shards, the highest change number the ledger has applied for each, and every ledger row
 * of the orders whose changes of a partition Redis forgot. All read by index: `partitions` by
 * state, `ledger` by (partition_id, partition_seq) and by order_id.
 */

/** Partitions that can still sell or hold units in Redis (live, or retired with orders holding units). */
const CHECKED_STATES: readonly PartitionRowState[] = ['live', 'exhausted'];

/** The live (and exhausted) partitions placed in the given shards. */
export async function partitionsInShards(db: Pool, shards: readonly number[]): Promise<PartitionRow[]> {
  if (shards.length === 0) return [];
  const [rows] = await db.query<PartitionRecord[]>(`SELECT ${PARTITION_COLUMNS} FROM partitions WHERE state IN (?) AND shard IN (?)`, [CHECKED_STATES, shards]);
  return rows.map(toPartitionRow);
}

/** Partitions by id, in any state (the pieces of a restored order name them). */
export async function partitionsById(db: Pool, ids: readonly string[]): Promise<Map<string, PartitionRow>> {
  if (ids.length === 0) return new Map();
  const [rows] = await db.query<PartitionRecord[]>(`SELECT ${PARTITION_COLUMNS} FROM partitions WHERE partition_id IN (?)`, [ids]);
  return new Map(rows.map((r) => [r.partition_id, toPartitionRow(r)]));
}

interface TopRecord extends RowDataPacket {
  partition_id: string;
  top: number | string | null;
}

/** The highest change number the ledger has applied, per partition (0 for one without numbered rows). */
export async function highestSeqs(db: Pool, partitionIds: readonly string[]): Promise<Map<string, number>> {
  const tops = new Map(partitionIds.map((id) => [id, 0]));
  if (partitionIds.length === 0) return tops;
  const [rows] = await db.query<TopRecord[]>(
    'SELECT partition_id, MAX(partition_seq) AS top FROM ledger WHERE partition_id IN (?) GROUP BY partition_id',
    [partitionIds],
  );
  for (const r of rows) tops.set(r.partition_id, Number(r.top ?? 0));
  return tops;
}

/** One ledger row of an order, as the restore reads it. */
export interface OrderLedgerRow {
  readonly eventId: string;
  readonly kind: string;
  readonly orderId: string;
  readonly sku: string;
  readonly qty: number;
  readonly from: string;
  readonly to: string;
  readonly partitionId: string | null;
  readonly partitionSeq: number | null;
  readonly reason: string | null;
  readonly at: number;
}

interface OrderRowRecord extends RowDataPacket {
  event_id: string;
  kind: string;
  order_id: string;
  sku_id: string;
  qty: number | string;
  from_bucket: string;
  to_bucket: string;
  partition_id: string | null;
  partition_seq: number | string | null;
  reason: string | null;
  created_at: Date;
}

/**
 * Every ledger row (of any partition, and the confirms) of the orders that changed `partitionId`
 * in changes after..upTo: the orders whose records Redis may have lost with those changes.
 */
export async function ordersChangedBetween(db: Pool, partitionId: string, after: number, upTo: number): Promise<OrderLedgerRow[]> {
  const [ids] = await db.query<RowDataPacket[]>(
    'SELECT DISTINCT order_id FROM ledger WHERE partition_id = ? AND partition_seq > ? AND partition_seq <= ? AND order_id IS NOT NULL',
    [partitionId, after, upTo],
  );
  if (ids.length === 0) return [];
  const [rows] = await db.query<OrderRowRecord[]>(
    `SELECT event_id, kind, order_id, sku_id, qty, from_bucket, to_bucket, partition_id, partition_seq, reason, created_at
     FROM ledger WHERE order_id IN (?) ORDER BY id`,
    [ids.map((r) => String(r.order_id))],
  );
  return rows.map((r) => ({
    eventId: r.event_id,
    kind: r.kind,
    orderId: r.order_id,
    sku: r.sku_id,
    qty: Number(r.qty),
    from: r.from_bucket,
    to: r.to_bucket,
    partitionId: r.partition_id,
    partitionSeq: r.partition_seq === null ? null : Number(r.partition_seq),
    reason: r.reason,
    at: new Date(r.created_at).getTime(),
  }));
}
