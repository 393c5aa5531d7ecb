import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';

/**
 * Work that spans MySQL, Redis and etcd is recorded as an intent first, in the same transaction
 * as its MySQL part, so that a process dying half way leaves a record that a worker finishes (or
 * undoes): units are never lost between MySQL and Redis.
 */
export interface Intent<P> {
  readonly intentId: string;
  readonly kind: string;
  readonly sku: string;
  readonly payload: P;
  readonly state: 'open' | 'done' | 'undone';
}

interface IntentRecord extends RowDataPacket {
  intent_id: string;
  kind: string;
  sku_id: string;
  payload: string | object;
  state: 'open' | 'done' | 'undone';
}

function toIntent<P>(r: IntentRecord): Intent<P> {
  return {
    intentId: r.intent_id,
    kind: r.kind,
    sku: r.sku_id,
    payload: (typeof r.payload === 'string' ? JSON.parse(r.payload) : r.payload) as P,
    state: r.state,
  };
}

export async function openIntent(conn: PoolConnection, intentId: string, kind: string, sku: string, payload: unknown): Promise<void> {
  await conn.query("INSERT INTO intents (intent_id, kind, sku_id, payload, state) VALUES (?, ?, ?, ?, 'open')", [
    intentId,
    kind,
    sku,
    JSON.stringify(payload),
  ]);
}

export async function updateIntent(conn: PoolConnection, intentId: string, payload: unknown): Promise<void> {
  await conn.query('UPDATE intents SET payload = ? WHERE intent_id = ?', [JSON.stringify(payload), intentId]);
}

export async function closeIntent(conn: PoolConnection, intentId: string, state: 'done' | 'undone'): Promise<void> {
  await conn.query('UPDATE intents SET state = ? WHERE intent_id = ?', [state, intentId]);
}

export async function readIntent<P>(db: Pool | PoolConnection, intentId: string, lock = false): Promise<Intent<P> | undefined> {
  const [rows] = await db.query<IntentRecord[]>(
    `SELECT intent_id, kind, sku_id, payload, state FROM intents WHERE intent_id = ?${lock ? ' FOR UPDATE' : ''}`,
    [intentId],
  );
  return rows[0] && toIntent<P>(rows[0]);
}

/** Open intents older than `olderThanMs`: their process is taken for dead. */
export async function staleIntents(db: Pool, olderThanMs: number, limit = 50): Promise<Array<Intent<unknown>>> {
  const [rows] = await db.query<IntentRecord[]>(
    "SELECT intent_id, kind, sku_id, payload, state FROM intents WHERE state = 'open' AND updated_at <= NOW(3) - INTERVAL ? MICROSECOND ORDER BY created_at LIMIT ?",
    [olderThanMs * 1000, limit],
  );
  return rows.map((r) => toIntent(r));
}

/**
 * Partition ids named by the open intents of a SKU: partitions an operation is creating, draining
 * or re-splitting right now, whose registration and state are in flux until it finishes.
 */
export async function openIntentPartitions(db: Pool, sku: string): Promise<Set<string>> {
  const [rows] = await db.query<IntentRecord[]>("SELECT intent_id, kind, sku_id, payload, state FROM intents WHERE state = 'open' AND sku_id = ?", [sku]);
  const ids = new Set<string>();
  const collect = (value: unknown): void => {
    if (Array.isArray(value)) value.forEach(collect);
    else if (value && typeof value === 'object') {
      for (const [key, inner] of Object.entries(value)) {
        if (key === 'partitionId' && typeof inner === 'string') ids.add(inner);
        else collect(inner);
      }
    }
  };
  for (const r of rows) collect(toIntent(r).payload);
  return ids;
}
