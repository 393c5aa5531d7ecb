import type { Pool } from 'mysql2/promise';
import { Caller, NO_CALLER, stayForCaller } from '../kernel/caller';
import { DomainError } from '../kernel/errors';
import { transaction } from '../store/mysql';
import { AdminRequests } from './requests';

/** A SKU's admission limit as stored: Reserves per second each server admits (0 = unlimited) and the bucket's size. */
export interface AdmissionLimitValue {
  readonly reservesPerSecond: number;
  readonly burst: number;
}

/** What setting a limit needs of the registry: the SKU must be known, and the limit lives beside it. */
export interface AdmissionRegistry {
  getSku(sku: string): Promise<unknown>;
  putAdmission(sku: string, limit: AdmissionLimitValue): Promise<void>;
  deleteAdmission(sku: string): Promise<void>;
}

export interface AdmissionLimitResult {
  /** The override now stored, or undefined when the SKU follows the servers' default again. */
  readonly limit: AdmissionLimitValue | undefined;
  readonly replayed: boolean;
}

const METHOD = 'SetAdmissionLimit';

/**
 * Per-SKU admission limits (AdminService.SetAdmissionLimit), kept in the etcd registry where every
 * server's watched cache sees them. Idempotent on the request id like every admin call: the claim,
 * the etcd write and the stored answer share one MySQL transaction, so a failed etcd write leaves
 * no claim behind (the retry writes again), and a concurrent call with the same id waits on the
 * claim's row and then replays the answer. A caller that has gone gets no etcd write: the check
 * runs before it, inside the transaction, whose rollback then leaves no claim either.
 */
export class AdmissionSettings {
  private readonly requests: AdminRequests;

  constructor(private readonly pool: Pool, private readonly registry: AdmissionRegistry) {
    this.requests = new AdminRequests(pool);
  }

  /** Stores `limit` as the SKU's override, or removes the override when `limit` is undefined. */
  async set(requestId: string, sku: string, limit: AdmissionLimitValue | undefined, caller: Caller = NO_CALLER): Promise<AdmissionLimitResult> {
    const fingerprint = limit ? `${sku}|${limit.reservesPerSecond}|${limit.burst}` : `${sku}|default`;
    const what = `${METHOD} ${requestId}`;
    stayForCaller(caller, what);
    const replay = await this.requests.replay<AdmissionLimitResult>(requestId, METHOD, fingerprint);
    if (replay) return replay;
    if ((await this.registry.getSku(sku)) === undefined) throw new DomainError('UNKNOWN_SKU', `sku ${sku} is not known; stock it first (SetStock)`, sku);
    const answer = await transaction(this.pool, async (conn): Promise<AdmissionLimitResult | undefined> => {
      if (!(await this.requests.claim(conn, requestId, METHOD, fingerprint))) return undefined;
      stayForCaller(caller, what);
      if (limit) await this.registry.putAdmission(sku, limit);
      else await this.registry.deleteAdmission(sku);
      const result: AdmissionLimitResult = { limit, replayed: false };
      await this.requests.complete(conn, requestId, result);
      return result;
    }, { caller });
    return answer ?? ((await this.requests.replay<AdmissionLimitResult>(requestId, METHOD, fingerprint)) as AdmissionLimitResult);
  }
}
