import type { Pool, RowDataPacket } from 'mysql2/promise';

/**
 * MySQL's view of one partition as of one of its sequence numbers: the other side of Reconcile's
 * cut. Redis numbers a partition's changes 1, 2, 3... and each change's ledger row carries its
 * number (`partition_seq`), so MySQL holds every change up to `seq` exactly when it has `seq` such
 * rows, and summing them says what the partition held there, whatever was applied after.
 *
 * The sums start from the partition's audit checkpoint (rows never change once written, so what was
 * proved complete once is not read again) and the checkpoint moves forward with every complete cut.
 * Rows written before migration 3 carry no number; they all came first, so until the first
 * checkpoint they count as rows below any cut.
 */
export interface PartitionLedgerView {
  /** MySQL holds every change of the partition up to the cut. */
  readonly complete: boolean;
  /** Rows found up to the cut, of `seq` expected (more than `seq`: numbers were used twice). */
  readonly rows: number;
  /** Units carved into the partition when it was created. */
  readonly capacity: number;
  /** The partition's pool units: its capacity, plus what came in, less what went out, up to the cut. */
  readonly pool: number;
  /** Units orders hold from it up to the cut: taken less released. */
  readonly held: number;
  /** The highest sequence number MySQL holds for the partition (past the cut too). */
  readonly highestSeq: number;
}

interface SumRecord extends RowDataPacket {
  n: number | string;
  pool: number | string | null;
  held: number | string | null;
  top: number | string | null;
}

interface CheckpointRecord extends RowDataPacket {
  capacity: number | string;
  audited_seq: number | string;
  audited_pool: number | string;
  audited_held: number | string;
}

const HELD = "('reserved','committed')";

/** The partition as MySQL's ledger has it at `seq`; undefined when MySQL has no row for the partition. */
export async function partitionAsOf(db: Pool, partitionId: string, seq: number): Promise<PartitionLedgerView | undefined> {
  const [[checkpoint]] = await db.query<CheckpointRecord[]>(
    'SELECT capacity, audited_seq, audited_pool, audited_held FROM partitions WHERE partition_id = ?',
    [partitionId],
  );
  if (!checkpoint) return undefined;
  // A cut below the checkpoint (Redis went back: a failover lost changes) is summed from the start.
  const from = Number(checkpoint.audited_seq) <= seq ? Number(checkpoint.audited_seq) : 0;
  const [[sum]] = await db.query<SumRecord[]>(
    `SELECT COUNT(*) AS n,
       SUM(CASE WHEN to_bucket = 'pool' THEN qty ELSE 0 END) - SUM(CASE WHEN from_bucket = 'pool' THEN qty ELSE 0 END) AS pool,
       SUM(CASE WHEN to_bucket IN ${HELD} THEN qty ELSE 0 END) - SUM(CASE WHEN from_bucket IN ${HELD} THEN qty ELSE 0 END) AS held,
       (SELECT MAX(partition_seq) FROM ledger WHERE partition_id = ?) AS top
     FROM ledger
     WHERE partition_id = ? AND (partition_seq > ? AND partition_seq <= ?${from === 0 ? ' OR partition_seq IS NULL' : ''})`,
    [partitionId, partitionId, from, seq],
  );
  const base = from === 0 ? { pool: 0, held: 0 } : { pool: Number(checkpoint.audited_pool), held: Number(checkpoint.audited_held) };
  const rows = from + Number(sum.n);
  return {
    complete: rows === seq,
    rows,
    capacity: Number(checkpoint.capacity),
    pool: Number(checkpoint.capacity) + base.pool + Number(sum.pool ?? 0),
    held: base.held + Number(sum.held ?? 0),
    highestSeq: Number(sum.top ?? 0),
  };
}

/** Moves the partition's audit checkpoint to a complete cut (never backwards). */
export async function checkpointPartition(db: Pool, partitionId: string, seq: number, view: PartitionLedgerView): Promise<void> {
  if (!view.complete) return;
  await db.query('UPDATE partitions SET audited_seq = ?, audited_pool = ?, audited_held = ? WHERE partition_id = ? AND audited_seq < ?', [
    seq,
    view.pool - view.capacity,
    view.held,
    partitionId,
    seq,
  ]);
}
