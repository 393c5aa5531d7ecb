import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';

/**
 * Idempotency of admin calls on their request_id. A request is claimed (row without response)
 * inside the transaction that starts its work, and completed with its encoded answer when the
 * work is done; a replay gets that answer, a reused id with another request is refused.
 */
export type Claim =
  | { readonly kind: 'new' }
  | { readonly kind: 'done'; readonly response: Buffer }
  | { readonly kind: 'in-progress' }
  | { readonly kind: 'mismatch'; readonly method: string };

interface RequestRecord extends RowDataPacket {
  method: string;
  fingerprint: string;
  response: Buffer | null;
}

export type Recorded = Exclude<Claim, { kind: 'new' }>;

export async function lookupRequest(db: Pool | PoolConnection, requestId: string, method: string, fingerprint: string): Promise<Recorded | undefined> {
  const [rows] = await db.query<RequestRecord[]>('SELECT method, fingerprint, response FROM admin_requests WHERE request_id = ?', [requestId]);
  if (rows.length === 0) return undefined;
  const row = rows[0];
  if (row.method !== method || row.fingerprint !== fingerprint) return { kind: 'mismatch', method: row.method };
  return row.response ? { kind: 'done', response: row.response } : { kind: 'in-progress' };
}

/** Claims a request id in the caller's transaction; another transaction's claim is reported, not overwritten. */
export async function claimRequest(conn: PoolConnection, requestId: string, method: string, fingerprint: string): Promise<Claim> {
  const [res] = await conn.query<any>('INSERT IGNORE INTO admin_requests (request_id, method, fingerprint) VALUES (?, ?, ?)', [
    requestId,
    method,
    fingerprint,
  ]);
  if (res.affectedRows === 1) return { kind: 'new' };
  return (await lookupRequest(conn, requestId, method, fingerprint)) ?? { kind: 'in-progress' };
}

export async function completeRequest(conn: PoolConnection, requestId: string, response: Uint8Array): Promise<void> {
  await conn.query('UPDATE admin_requests SET response = ? WHERE request_id = ?', [Buffer.from(response), requestId]);
}
