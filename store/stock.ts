import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { applyMovement } from './ledger-apply';
import { insertOutboxEvent } from './outbox';

/** A SKU's quantities as MySQL holds them (the ledger's view). */
export interface StockRow {
  readonly sku: string;
  readonly onHand: number;
  readonly base: number;
  readonly pool: number;
  readonly reserved: number;
  readonly committed: number;
  readonly shortfall: number;
  readonly perUserLimit: number;
}

type Queryable = Pool | PoolConnection;

interface SkuRecord extends RowDataPacket {
  sku_id: string;
  on_hand: number;
  base: number;
  pool: number;
  reserved: number;
  committed: number;
  shortfall: number;
  per_user_limit: number;
}

function toStock(r: SkuRecord): StockRow {
  return {
    sku: r.sku_id,
    onHand: Number(r.on_hand),
    base: Number(r.base),
    pool: Number(r.pool),
    reserved: Number(r.reserved),
    committed: Number(r.committed),
    shortfall: Number(r.shortfall),
    perUserLimit: Number(r.per_user_limit),
  };
}

const COLUMNS = 'sku_id, on_hand, base, pool, reserved, committed, shortfall, per_user_limit';

export async function readStock(db: Queryable, skus: readonly string[]): Promise<Map<string, StockRow>> {
  if (skus.length === 0) return new Map();
  const [rows] = await db.query<SkuRecord[]>(`SELECT ${COLUMNS} FROM skus WHERE sku_id IN (?)`, [skus]);
  return new Map(rows.map((r) => [r.sku_id, toStock(r)]));
}

export async function allSkus(db: Queryable): Promise<string[]> {
  const [rows] = await db.query<SkuRecord[]>('SELECT sku_id FROM skus ORDER BY sku_id');
  return rows.map((r) => r.sku_id);
}

/** Up to `limit` SKU ids in id order, those starting with `prefix` only when one is given (the web console's list). */
export async function skuIdsPage(db: Queryable, prefix: string, limit: number): Promise<string[]> {
  const like = `${prefix.replace(/[\\%_]/g, '\\$&')}%`;
  const [rows] = await db.query<SkuRecord[]>('SELECT sku_id FROM skus WHERE sku_id LIKE ? ORDER BY sku_id LIMIT ?', [like, limit]);
  return rows.map((r) => r.sku_id);
}

/** Reads and locks one SKU row for the rest of the transaction; undefined when there is none. */
export async function lockExistingStock(conn: PoolConnection, sku: string): Promise<StockRow | undefined> {
  const [rows] = await conn.query<SkuRecord[]>(`SELECT ${COLUMNS} FROM skus WHERE sku_id = ? FOR UPDATE`, [sku]);
  return rows[0] && toStock(rows[0]);
}

/** Reads and locks one SKU row for the rest of the transaction; creates it (all zero) when new. */
export async function lockStock(conn: PoolConnection, sku: string): Promise<StockRow> {
  await conn.query('INSERT IGNORE INTO skus (sku_id) VALUES (?)', [sku]);
  const [rows] = await conn.query<SkuRecord[]>(`SELECT ${COLUMNS} FROM skus WHERE sku_id = ? FOR UPDATE`, [sku]);
  return toStock(rows[0]);
}

export async function setPerUserLimit(conn: PoolConnection, sku: string, limit: number): Promise<void> {
  await conn.query('UPDATE skus SET per_user_limit = ?, version = version + 1 WHERE sku_id = ?', [limit, sku]);
}

/**
 * Records a shortfall in the caller's transaction: `units` of a loss that base and pool could not
 * cover, units orders hold that are physically gone. on_hand drops by them and the shortfall grows
 * (the ledger movement missing -> outside, under `movementId`), so on_hand stays what is physically
 * there and on_hand + shortfall = base + pool + reserved + committed. The stock.shortfall event
 * (id `eventId`, data `{units, ...detail}`) goes to the outbox in the same transaction, for the
 * publisher (docs/events.md).
 */
export async function addShortfall(
  conn: PoolConnection,
  sku: string,
  units: number,
  movementId: string,
  eventId: string,
  detail: Record<string, unknown> = {},
): Promise<void> {
  await applyMovement(conn, { eventId: movementId, kind: 'shortfall', sku, qty: units, from: 'missing', to: 'outside', reason: 'units held by orders are gone', source: 'admin' });
  await insertOutboxEvent(conn, { id: eventId, type: 'stock.shortfall', sku, occurredAt: new Date().toISOString(), data: { units, ...detail } });
}
