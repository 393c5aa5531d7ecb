import { escape } from 'mysql2';
import type { PoolConnection, ResultSetHeader, RowDataPacket } from 'mysql2/promise';

/**
 * Applying ledger movements to the SKU counters, exactly once per event id. The ledger row and the
 * counter change are written in the caller's transaction: the row's unique `event_id` is what makes
 * a replay (a record delivered twice, an admin operation retried, the Redis record of a drain that
 * the admin path already applied) a no-op.
 */

/**
 * The quantities a movement moves units between. `outside` is the world beyond on_hand: a movement
 * from `outside` adds units to on_hand (a delivery), one to `outside` takes them away (a loss, a
 * shipment); every other movement keeps on_hand and only moves units between its terms.
 * `missing` is the shortfall, units orders hold that are physically gone, counted the other way
 * round too: a movement from `missing` grows the shortfall (missing -> outside: a loss that base and
 * pool could not cover), one to `missing` pays it off (reserved -> missing: a release of units that
 * are gone, which must not return to sale). So every movement keeps
 * on_hand + shortfall = base + pool + reserved + committed.
 */
export const BUCKETS = ['base', 'pool', 'reserved', 'committed', 'outside', 'missing'] as const;
export type Bucket = (typeof BUCKETS)[number];

/** One change of a SKU's quantities, as recorded in the ledger. */
export interface Movement {
  /** Idempotency key: the movement applies once per event id, ever. */
  readonly eventId: string;
  /** take, release, confirm, drain, adjust, preallocate, ...: what the row means to a reader. */
  readonly kind: string;
  readonly sku: string;
  /** Units moved, > 0; the direction is from → to. */
  readonly qty: number;
  readonly from: Bucket;
  readonly to: Bucket;
  readonly orderId?: string;
  readonly partitionId?: string;
  /**
   * The partition's sequence number of this change (Redis numbers a partition's changes 1, 2, 3...),
   * for records that changed a partition; Reconcile's cut between Redis and MySQL rests on it.
   */
  readonly partitionSeq?: number;
  readonly reason?: string;
  /** Where the row came from: 'admin', or 'redis:s<shard>:<stream id>' for ledger-stream records. */
  readonly source: string;
  /** When the movement happened (stored as the row's created_at); default now. */
  readonly at?: Date;
}

/** A movement that breaks the rules of the ledger's columns: a bug in whoever built it. */
export class MovementError extends Error {
  constructor(readonly eventId: unknown, readonly problem: string) {
    super(`invalid ledger movement ${JSON.stringify(eventId)}: ${problem}`);
    this.name = 'MovementError';
  }
}

const ASCII = /^[\x20-\x7e]+$/;
const KIND = /^[A-Za-z0-9_.:-]{1,32}$/;
// TIMESTAMP(3) holds 1970-01-01 00:00:01 .. 2038-01-19 03:14:07 UTC.
const TIMESTAMP_MIN_MS = 1000;
const TIMESTAMP_MAX_MS = 2147483647000;

/** Column that each bucket moves; `outside` moves on_hand (the other way round, see BUCKETS). */
const COLUMN: Record<Bucket, 'on_hand' | 'base' | 'pool' | 'reserved' | 'committed' | 'shortfall'> = {
  base: 'base',
  pool: 'pool',
  reserved: 'reserved',
  committed: 'committed',
  outside: 'on_hand',
  missing: 'shortfall',
};

/** Buckets counted the other way round: moving units out of them grows their column. */
const INVERTED: ReadonlySet<Bucket> = new Set(['outside', 'missing']);

function isBucket(value: unknown): value is Bucket {
  return typeof value === 'string' && (BUCKETS as readonly string[]).includes(value);
}

function asciiProblem(name: string, value: unknown, max: number, optional: boolean): string | undefined {
  if (value === undefined && optional) return undefined;
  if (typeof value !== 'string' || value.length === 0) return `${name} is required`;
  if (value.length > max) return `${name} is longer than ${max} characters`;
  if (!ASCII.test(value)) return `${name} is not printable ASCII`;
  return undefined;
}

/** Why a movement cannot be stored as it is, or undefined when it can. The columns' rules, in one place. */
export function movementProblem(m: Movement): string | undefined {
  const problem =
    asciiProblem('eventId', m.eventId, 400, false) ??
    asciiProblem('sku', m.sku, 128, false) ??
    asciiProblem('orderId', m.orderId, 128, true) ??
    asciiProblem('partitionId', m.partitionId, 64, true) ??
    asciiProblem('source', m.source, 64, false);
  if (problem) return problem;
  if (typeof m.kind !== 'string' || !KIND.test(m.kind)) return 'kind must be 1-32 of A-Z a-z 0-9 _ . : -';
  if (!Number.isSafeInteger(m.qty) || m.qty <= 0) return `qty ${String(m.qty)} is not a positive integer`;
  if (m.partitionSeq !== undefined) {
    if (!Number.isSafeInteger(m.partitionSeq) || m.partitionSeq <= 0) return `partitionSeq ${String(m.partitionSeq)} is not a positive integer`;
    if (m.partitionId === undefined) return 'partitionSeq without partitionId';
  }
  if (!isBucket(m.from)) return `from ${JSON.stringify(m.from)} is not one of ${BUCKETS.join(', ')}`;
  if (!isBucket(m.to)) return `to ${JSON.stringify(m.to)} is not one of ${BUCKETS.join(', ')}`;
  if (m.from === m.to) return `from and to are both ${m.from}`;
  if (m.reason !== undefined && (typeof m.reason !== 'string' || [...m.reason].length > 256)) return 'reason is longer than 256 characters';
  if (m.at !== undefined && !(m.at instanceof Date && m.at.getTime() >= TIMESTAMP_MIN_MS && m.at.getTime() <= TIMESTAMP_MAX_MS)) {
    return 'at is not a time a TIMESTAMP holds';
  }
  return undefined;
}

function check(m: Movement): void {
  const problem = movementProblem(m);
  if (problem) throw new MovementError(m.eventId, problem);
}

/** Per-SKU counter changes of a set of movements. */
interface Delta {
  on_hand: number;
  base: number;
  pool: number;
  reserved: number;
  committed: number;
  shortfall: number;
  moves: number;
}

function addTo(deltas: Map<string, Delta>, m: Movement): void {
  let d = deltas.get(m.sku);
  if (!d) deltas.set(m.sku, (d = { on_hand: 0, base: 0, pool: 0, reserved: 0, committed: 0, shortfall: 0, moves: 0 }));
  // outside → X grows on_hand and X; X → outside shrinks both (missing likewise for the shortfall).
  d[COLUMN[m.from]] += INVERTED.has(m.from) ? m.qty : -m.qty;
  d[COLUMN[m.to]] += INVERTED.has(m.to) ? -m.qty : m.qty;
  d.moves += 1;
}

const LEDGER_COLUMNS = '(event_id, kind, sku_id, qty, from_bucket, to_bucket, order_id, partition_id, partition_seq, reason, source, created_at)';

// Printable ASCII but for ' and \: quoted as it is. Ids are checked printable ASCII, so this is
// every value of a ledger row but a free-text reason; the rest goes through the driver's escape.
const PLAIN = /^[\x20-\x26\x28-\x5b\x5d-\x7e]*$/;

function sqlString(value: string | undefined): string {
  if (value === undefined) return 'NULL';
  return PLAIN.test(value) ? `'${value}'` : escape(value);
}

const timestamps = { second: -1, text: '' };

/** 'YYYY-MM-DD HH:MM:SS.mmm' in UTC (the session time zone, see createMysqlPool); the second is cached, a batch's rows share it. */
function sqlTimestamp(at: Date | undefined): string {
  const ms = at ? at.getTime() : Date.now();
  const second = Math.floor(ms / 1000);
  if (second !== timestamps.second) {
    timestamps.second = second;
    timestamps.text = new Date(second * 1000).toISOString().slice(0, 19).replace('T', ' ');
  }
  return `'${timestamps.text}.${String(ms - second * 1000).padStart(3, '0')}'`;
}

/**
 * A checked movement's row as SQL text, `(...)`. The ledger writer inserts hundreds of rows a
 * batch; formatting them here costs a fraction of the driver's generic per-value escaping.
 */
function ledgerValues(m: Movement): string {
  return (
    `(${sqlString(m.eventId)},${sqlString(m.kind)},${sqlString(m.sku)},${m.qty},'${m.from}','${m.to}',` +
    `${sqlString(m.orderId)},${sqlString(m.partitionId)},${m.partitionSeq ?? 'NULL'},${sqlString(m.reason)},${sqlString(m.source)},${sqlTimestamp(m.at)})`
  );
}

/**
 * Adds the deltas to the SKU rows, creating missing rows. One statement, rows in SKU order, so that
 * two transactions touching the same SKUs lock them in the same order. `version` grows by the number
 * of movements applied.
 */
async function moveCounters(conn: PoolConnection, deltas: Map<string, Delta>): Promise<void> {
  if (deltas.size === 0) return;
  const rows = [...deltas.entries()]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([sku, d]) => [sku, d.on_hand, d.base, d.pool, d.reserved, d.committed, d.shortfall, d.moves]);
  // VALUES(col) is the row that would have been inserted: here, the delta (MariaDB and MySQL both take it).
  await conn.query(
    `INSERT INTO skus (sku_id, on_hand, base, pool, reserved, committed, shortfall, version) VALUES ?
     ON DUPLICATE KEY UPDATE on_hand = on_hand + VALUES(on_hand), base = base + VALUES(base), pool = pool + VALUES(pool),
       reserved = reserved + VALUES(reserved), committed = committed + VALUES(committed),
       shortfall = shortfall + VALUES(shortfall), version = version + VALUES(version)`,
    [rows],
  );
}

/**
 * Applies one movement in the caller's transaction: inserts its ledger row unless the event id is
 * already there, and only then moves the counters (`from` -= qty, `to` += qty; `outside` moves
 * on_hand and `missing` the shortfall, the other way round), creating the SKU row when missing. Returns whether it applied (false: a replay).
 * Throws MovementError for a movement the ledger cannot hold (checked before anything is written:
 * INSERT IGNORE would otherwise truncate a long value silently).
 */
export async function applyMovement(conn: PoolConnection, m: Movement): Promise<boolean> {
  check(m);
  const [res] = await conn.query<ResultSetHeader>(`INSERT IGNORE INTO ledger ${LEDGER_COLUMNS} VALUES ${ledgerValues(m)}`);
  if (res.affectedRows !== 1) return false;
  const deltas = new Map<string, Delta>();
  addTo(deltas, m);
  await moveCounters(conn, deltas);
  return true;
}

export interface AppliedMovements {
  /** Movements applied now, in the order given. */
  readonly applied: Movement[];
  /** Movements whose event id was already in the ledger (or repeated in the batch). */
  readonly duplicates: number;
}

const CHUNK = 500;
const ER_DUP_ENTRY = 1062;

/**
 * Applies many movements in the caller's transaction with a handful of statements instead of two
 * per movement (the ledger writer's batches): the new rows go in with multi-row INSERTs, event ids
 * already in the ledger are skipped, and each SKU's counters move once by the sum of its
 * movements. Same outcome as applyMovement for each movement in turn. Throws MovementError, before
 * writing anything, when one of them breaks the ledger's rules.
 */
export async function applyMovements(conn: PoolConnection, movements: readonly Movement[]): Promise<AppliedMovements> {
  movements.forEach(check);
  return applyCheckedMovements(conn, movements);
}

/**
 * applyMovements for movements the caller has already checked with movementProblem (the ledger
 * writer checks each record once, as it parses it).
 *
 * A chunk is inserted at once without looking first: event ids are new but after a crash or a
 * takeover, so the common batch costs one statement. When one is there already, the multi-row
 * INSERT fails with a duplicate key and is rolled back alone; the chunk then skips the ids it
 * finds in the ledger and tries again, and only a row inserted by a concurrent transaction after
 * that look (the admin path applying a drain's event id, another writer that claimed the same
 * record) sends it row by row through INSERT IGNORE, which tells which rows really went in.
 */
export async function applyCheckedMovements(conn: PoolConnection, movements: readonly Movement[]): Promise<AppliedMovements> {
  const unique = new Map<string, Movement>();
  for (const m of movements) if (!unique.has(m.eventId)) unique.set(m.eventId, m);
  const all = [...unique.values()];

  const applied: Movement[] = [];
  for (let i = 0; i < all.length; i += CHUNK) {
    const chunk = all.slice(i, i + CHUNK);
    if (await insertRows(conn, chunk)) {
      applied.push(...chunk);
      continue;
    }
    const [rows] = await conn.query<RowDataPacket[]>('SELECT event_id FROM ledger WHERE event_id IN (?)', [chunk.map((m) => m.eventId)]);
    const known = new Set(rows.map((r) => r.event_id as string));
    const fresh = chunk.filter((m) => !known.has(m.eventId));
    if (await insertRows(conn, fresh)) {
      applied.push(...fresh);
      continue;
    }
    for (const m of fresh) {
      const [res] = await conn.query<ResultSetHeader>(`INSERT IGNORE INTO ledger ${LEDGER_COLUMNS} VALUES ${ledgerValues(m)}`);
      if (res.affectedRows === 1) applied.push(m);
    }
  }

  const deltas = new Map<string, Delta>();
  for (const m of applied) addTo(deltas, m);
  await moveCounters(conn, deltas);
  return { applied, duplicates: movements.length - applied.length };
}

/** One multi-row INSERT of the rows; false when one of their event ids is in the ledger already (nothing inserted). */
async function insertRows(conn: PoolConnection, rows: readonly Movement[]): Promise<boolean> {
  if (rows.length === 0) return true;
  try {
    await conn.query(`INSERT INTO ledger ${LEDGER_COLUMNS} VALUES ${rows.map(ledgerValues).join(',')}`);
    return true;
  } catch (err) {
    if ((err as { errno?: number }).errno !== ER_DUP_ENTRY) throw err;
    return false;
  }
}
