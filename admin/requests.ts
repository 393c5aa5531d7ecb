import type { Pool, PoolConnection } from 'mysql2/promise';
import { DomainError } from '../kernel/errors';
import { Recorded, claimRequest, completeRequest, lookupRequest } from '../store/admin-requests';

/**
 * Idempotency of admin calls on their request_id, for every admin call that changes something
 * (the operator's and Reconcile's): a replay gets the stored answer, a reused id with another
 * request is refused, and a request still in progress is finished first (by `finish`, which runs
 * its intent) and then answered.
 */
export class AdminRequests {
  constructor(private readonly pool: Pool) {}

  /** The stored answer of a request seen before (replayed: true), or undefined for a new one. */
  async replay<T>(requestId: string, method: string, fingerprint: string, finish?: (requestId: string) => Promise<void>): Promise<T | undefined> {
    const claim = await lookupRequest(this.pool, requestId, method, fingerprint);
    if (!claim) return undefined;
    return this.answer<T>(requestId, claim, finish);
  }

  /** Claims the request in the caller's transaction; false when another call holds it (that one is then finished). */
  async claim(conn: PoolConnection, requestId: string, method: string, fingerprint: string): Promise<boolean> {
    const claim = await claimRequest(conn, requestId, method, fingerprint);
    if (claim.kind === 'new') return true;
    if (claim.kind === 'mismatch') throw reused(requestId, claim.method);
    return false;
  }

  /** Stores the answer of a claimed request in the caller's transaction. */
  complete(conn: PoolConnection, requestId: string, answer: unknown): Promise<void> {
    return completeRequest(conn, requestId, Buffer.from(JSON.stringify(answer)));
  }

  /** The stored answer of a request whose work is done; IN_PROGRESS (retry) while it is not. */
  async stored<T>(requestId: string, replayed: boolean): Promise<T> {
    const [method, fingerprint] = await this.key(requestId);
    const claim = await lookupRequest(this.pool, requestId, method, fingerprint);
    if (!claim || claim.kind !== 'done') throw new DomainError('IN_PROGRESS', `request ${requestId} is still being applied; retry`);
    return { ...(JSON.parse(claim.response.toString()) as T), replayed };
  }

  private async answer<T>(requestId: string, claim: Recorded, finish?: (requestId: string) => Promise<void>): Promise<T> {
    if (claim.kind === 'mismatch') throw reused(requestId, claim.method);
    if (claim.kind === 'in-progress') {
      await finish?.(requestId);
      return this.stored<T>(requestId, true);
    }
    return { ...(JSON.parse(claim.response.toString()) as T), replayed: true };
  }

  private async key(requestId: string): Promise<[string, string]> {
    const [rows] = await this.pool.query<any[]>('SELECT method, fingerprint FROM admin_requests WHERE request_id = ?', [requestId]);
    if (rows.length === 0) throw new DomainError('IN_PROGRESS', `request ${requestId} was not recorded; retry`);
    return [rows[0].method, rows[0].fingerprint];
  }
}

function reused(requestId: string, method: string): DomainError {
  return new DomainError('IDEMPOTENCY_KEY_REUSED', `request_id ${requestId} was already used for a different ${method} request`);
}
