import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';

export type PartitionRowState = 'creating' | 'live' | 'exhausted' | 'drained' | 'aborted';

export interface PartitionRow {
  readonly partitionId: string;
  readonly sku: string;
  readonly node: string;
  readonly shard: number;
  readonly capacity: number;
  readonly state: PartitionRowState;
  readonly epoch: number;
}

/** A `partitions` row as mysql2 gives it (PARTITION_COLUMNS), and its reading. */
export interface PartitionRecord extends RowDataPacket {
  partition_id: string;
  sku_id: string;
  redis_node: string;
  shard: number;
  capacity: number;
  state: PartitionRowState;
  epoch: number;
}

export const PARTITION_COLUMNS = 'partition_id, sku_id, redis_node, shard, capacity, state, epoch';

export function toPartitionRow(r: PartitionRecord): PartitionRow {
  return {
    partitionId: r.partition_id,
    sku: r.sku_id,
    node: r.redis_node,
    shard: Number(r.shard),
    capacity: Number(r.capacity),
    state: r.state,
    epoch: Number(r.epoch),
  };
}

export async function insertPartitions(conn: PoolConnection, rows: readonly Omit<PartitionRow, 'state'>[], state: PartitionRowState): Promise<void> {
  if (rows.length === 0) return;
  await conn.query(
    'INSERT IGNORE INTO partitions (partition_id, sku_id, redis_node, shard, capacity, state, epoch) VALUES ?',
    [rows.map((r) => [r.partitionId, r.sku, r.node, r.shard, r.capacity, state, r.epoch])],
  );
}

export async function setPartitionState(conn: PoolConnection, partitionIds: readonly string[], state: PartitionRowState): Promise<void> {
  if (partitionIds.length === 0) return;
  await conn.query('UPDATE partitions SET state = ? WHERE partition_id IN (?)', [state, partitionIds]);
}

/**
 * Records partitions that were created in Redis and registered as live, but only those still
 * `creating`: once registered a partition can be drained (DrainPartition lists creating ones too)
 * before its creator gets here, and the drain's `drained` must not be overwritten.
 */
export async function markCreatedLive(conn: PoolConnection, partitionIds: readonly string[]): Promise<void> {
  if (partitionIds.length === 0) return;
  await conn.query("UPDATE partitions SET state = 'live' WHERE partition_id IN (?) AND state = 'creating'", [partitionIds]);
}

/** Partitions of one SKU (or all), optionally only the live ones. */
export async function listPartitionRows(db: Pool | PoolConnection, sku?: string, liveOnly = false): Promise<PartitionRow[]> {
  const where: string[] = [];
  const args: unknown[] = [];
  if (sku) {
    where.push('sku_id = ?');
    args.push(sku);
  }
  if (liveOnly) where.push("state = 'live'");
  const [rows] = await db.query<PartitionRecord[]>(
    `SELECT ${PARTITION_COLUMNS} FROM partitions${where.length ? ` WHERE ${where.join(' AND ')}` : ''} ORDER BY sku_id, created_at, partition_id`,
    args,
  );
  return rows.map(toPartitionRow);
}

/** The id of the SKU's newest partition in any state (the last carved batch), undefined when it never had one. */
export async function newestPartitionId(db: Pool | PoolConnection, sku: string): Promise<string | undefined> {
  const [rows] = await db.query<PartitionRecord[]>(
    'SELECT partition_id FROM partitions WHERE sku_id = ? ORDER BY created_at DESC, partition_id DESC LIMIT 1',
    [sku],
  );
  return rows[0]?.partition_id;
}
