import type { Pool } from 'mysql2/promise';
import { Caller, NO_CALLER, pause, stayForCaller } from '../kernel/caller';
import { Logger } from '../kernel/logger';
import { openIntentPartitions } from '../store/intents';
import { transaction } from '../store/mysql';
import { PartitionRow, listPartitionRows, setPartitionState } from '../store/partitions';
import { StockRow, allSkus, readStock } from '../store/stock';
import { PartitionAudit, PartitionInspector } from '../allocator/inspector';
import { OperatorRegistry } from './types';
import { Discrepancy, SkuCheck, stayForCheck } from './discrepancy';
import { checkHolders } from './reconcile-orders';
import { AdminRequests } from './requests';
import { KnownPartition, comparePartitionUnits } from './reconcile-partitions';

export interface ReconcileResult {
  readonly discrepancies: Discrepancy[];
  readonly skusChecked: number;
  readonly partitionsChecked: number;
}

export interface ReconcileOptions {
  /** A Reserve unanswered this long is stuck; an ended order still holding units this long is orphaned. */
  readonly recoveryGraceMs: number;
  /** How long to wait for MySQL to hold a partition's records up to its cut. Default 30 s. */
  readonly cutTimeoutMs?: number;
  /** How long a registration may lag its partition's state (a retire or create in flight). Default 2 s. */
  readonly registryGraceMs?: number;
}

export interface ReconcileDeps {
  readonly pool: Pool;
  readonly inspector: PartitionInspector;
  readonly registry: OperatorRegistry;
  /** Records still on their way from Redis to MySQL (the ledger writer's lag): how many, and the oldest one's age. */
  readonly ledgerLag: () => Promise<{ readonly waiting: number; readonly oldestAgeMs: number }>;
  /** Rolls back a stuck Reserve now (the recovery worker's step); true when this call did. */
  readonly recover: (orderId: string) => Promise<boolean>;
  readonly logger: Logger;
}

const STATES_MYSQL_CAN_HOLD = new Set(['live', 'exhausted', 'drained']);

/**
 * Compares Redis (partitions' units, what orders hold), MySQL (the ledger, the SKU totals and
 * partition rows) and etcd (registrations), safely while Reserves and Releases run:
 *   - each partition's units are compared at one cut, Redis as of a change number and MySQL as of
 *     exactly the same records (reconcile-partitions.ts); a difference is repaired conditionally
 *     in Redis, with a ledger record where MySQL must move (lua/partition-repair-2.lua);
 *   - who holds the units: stuck Reserves are rolled back, orphaned holds reported
 *     (reconcile-orders.ts);
 *   - registrations and partition rows against Redis, leaving alone partitions an operation is
 *     working on and differences that a retire in flight explains;
 *   - MySQL's own invariants: conservation, no negative term (once the records that could explain
 *     one have landed), shortfalls.
 * A dry run repairs nothing. Nothing in flight is reported as a difference.
 *
 * It works for its caller: no step (a SKU's reads, a wait for the ledger, a repair) starts once the
 * caller has gone, and the call then answers DEADLINE_EXCEEDED or CANCELLED instead of a report.
 * Repairs made before are each a complete, conditional step; the request id is claimed only with
 * the whole report, so a retry with it runs again.
 */
export class Reconciler {
  private readonly cutTimeoutMs: number;
  private readonly registryGraceMs: number;

  private readonly requests: AdminRequests;

  constructor(private readonly deps: ReconcileDeps, private readonly options: ReconcileOptions) {
    this.requests = new AdminRequests(deps.pool);
    this.cutTimeoutMs = options.cutTimeoutMs ?? 30_000;
    this.registryGraceMs = options.registryGraceMs ?? 2000;
  }

  async reconcile(skus: readonly string[], repair: boolean, requestId: string, caller: Caller = NO_CALLER): Promise<ReconcileResult> {
    const { pool, logger } = this.deps;
    const fingerprint = skus.join(',');
    stayForCaller(caller, 'Reconcile');
    if (repair) {
      const prior = await this.requests.replay<ReconcileResult>(requestId, 'Reconcile', fingerprint);
      if (prior) return prior;
    }
    const targets = skus.length > 0 ? [...skus] : await allSkus(pool);
    const discrepancies: Discrepancy[] = [];
    let partitionsChecked = 0;
    for (const sku of targets) {
      const check: SkuCheck = {
        sku,
        repair,
        caller,
        report(kind, expected, actual, detail, partitionId = '', orderId = '') {
          const d: Discrepancy = { sku, partitionId, orderId, kind, expected, actual, detail, repaired: false };
          discrepancies.push(d);
          return d;
        },
      };
      stayForCheck(check);
      partitionsChecked += await this.checkSku(check);
    }
    const result: ReconcileResult = { discrepancies, skusChecked: targets.length, partitionsChecked };
    if (repair) {
      // Claimed and answered at once: a repair is a set of conditional steps, each safe to run again.
      await transaction(pool, async (conn) => {
        if (await this.requests.claim(conn, requestId, 'Reconcile', fingerprint)) await this.requests.complete(conn, requestId, result);
      }, { caller });
    }
    if (discrepancies.length > 0) logger.warn({ discrepancies: discrepancies.length, repair }, 'reconcile found discrepancies');
    return result;
  }

  private async checkSku(check: SkuCheck): Promise<number> {
    const { pool, inspector, registry } = this.deps;
    const rows = await listPartitionRows(pool, check.sku);
    const registered = await registry.listPartitions(check.sku);
    const known = new Map<string, KnownPartition>();
    for (const e of registered) known.set(e.partitionId, { ref: { sku: check.sku, partitionId: e.partitionId, shard: e.shard, epoch: e.epoch } });
    for (const row of rows) known.set(row.partitionId, { ref: { sku: check.sku, partitionId: row.partitionId, shard: row.shard, epoch: row.epoch }, row });
    const partitions = [...known.values()];

    const { audits } = await comparePartitionUnits(check, pool, inspector, partitions, this.cutTimeoutMs);
    stayForCheck(check);
    await this.checkRegistrations(check, partitions, audits, new Set(registered.map((e) => e.partitionId)));
    stayForCheck(check);
    await checkHolders(check, inspector, partitions.filter((_, i) => audits[i].exists).map((p) => p.ref), this.options.recoveryGraceMs, this.deps.recover);
    stayForCheck(check);
    await this.checkTotals(check, partitions.length > 0);
    return partitions.length;
  }

  /**
   * Registrations and MySQL's partition rows against the partitions' states in Redis. Partitions an
   * open operation names are skipped (it is creating, draining or re-splitting them); a stale
   * registration is reported only if it is still there after the grace a retire needs to remove it.
   */
  private async checkRegistrations(check: SkuCheck, partitions: readonly KnownPartition[], audits: readonly PartitionAudit[], registered: Set<string>): Promise<void> {
    const { pool, registry, inspector } = this.deps;
    const busy = await openIntentPartitions(pool, check.sku);
    const stale: KnownPartition[] = [];
    for (let i = 0; i < partitions.length; i++) {
      const p = partitions[i];
      const { partitionId, epoch, shard } = p.ref;
      if (busy.has(partitionId)) continue;
      const state = audits[i].exists ? audits[i].state : undefined;
      const recorded = p.row?.state;
      if (state === 'live' && !registered.has(partitionId) && audits[i].avail > 0) {
        if (recorded === 'live') {
          const d = check.report('UNREGISTERED_PARTITION', 1, 0, 'live in Redis with units but not in the registry', partitionId);
          if (check.repair) {
            stayForCheck(check, `before registering partition ${partitionId}`);
            await registry.registerPartition({ sku: check.sku, partitionId, node: p.row!.node, shard, epoch, createdAt: Date.now() });
            d.repaired = true;
          }
        }
      }
      if (state !== 'live' && registered.has(partitionId)) stale.push(p);
      if (!recorded && state === 'live') {
        // Carved outside the store (or its row lost): its units are not in MySQL's pool.
        check.report('UNRECORDED_PARTITION', 1, 0, 'live in Redis but MySQL has no row for it', partitionId);
      }
      if (recorded === 'live' && state === 'exhausted') {
        // Retiring an empty partition does not touch MySQL (it happens on the Reserve path): catch up quietly.
        if (check.repair) await transaction(pool, (conn) => setPartitionState(conn, [partitionId], 'exhausted'), { caller: check.caller });
      } else if (recorded && recorded !== 'creating' && recorded !== state) {
        const d = check.report('PARTITION_STATE', 0, 0, `MySQL says ${recorded}, Redis says ${state ?? 'missing'}`, partitionId);
        if (check.repair && state && STATES_MYSQL_CAN_HOLD.has(state)) {
          await transaction(pool, (conn) => setPartitionState(conn, [partitionId], state as PartitionRow['state']), { caller: check.caller });
          d.repaired = true;
        }
      }
    }
    if (stale.length === 0) return;
    await pause(this.registryGraceMs, check.caller);
    stayForCheck(check, 'after the grace for registrations to catch up');
    const still = new Set((await registry.listPartitions(check.sku)).map((e) => e.partitionId));
    for (const p of stale.filter((s) => still.has(s.ref.partitionId))) {
      const now = await inspector.auditPartition(p.ref);
      if (now.exists && now.state === 'live') continue;
      const d = check.report('STALE_REGISTRATION', 0, 1, `registered but ${now.exists ? now.state : 'missing'} in Redis`, p.ref.partitionId);
      if (check.repair) {
        stayForCheck(check, `before deregistering partition ${p.ref.partitionId}`);
        await registry.removePartition(check.sku, p.ref.partitionId, p.ref.epoch);
        d.repaired = true;
      }
    }
  }

  /**
   * MySQL's own invariants. Conservation, on_hand + shortfall = base + pool + reserved + committed
   * (the shortfall: units orders hold that are physically gone), holds after every transaction. A term can dip below zero
   * for a moment (records of different shards land in another order than they happened: a refund
   * before its confirm), so a negative one is read again once every record written before the
   * first read has landed, and reported only if it stays negative.
   */
  private async checkTotals(check: SkuCheck, hasPartitions: boolean): Promise<void> {
    const { pool } = this.deps;
    let row = (await readStock(pool, [check.sku])).get(check.sku);
    if (!row) {
      if (hasPartitions) check.report('MISSING_SKU_ROW', 0, 0, 'partitions exist in Redis or etcd but MySQL has no row for the SKU');
      return;
    }
    if (negativeTerms(row).length > 0 && (await this.ledgerCaughtUp(check, Date.now()))) {
      row = (await readStock(pool, [check.sku])).get(check.sku)!;
    }
    for (const [term, value] of negativeTerms(row)) check.report('NEGATIVE_TERM', 0, value, `${term} is negative`);
    const sum = row.base + row.pool + row.reserved + row.committed;
    if (row.onHand + row.shortfall !== sum) check.report('CONSERVATION_BROKEN', row.onHand + row.shortfall, sum, 'on_hand + shortfall != base + pool + reserved + committed');
    if (row.shortfall > 0) check.report('SHORTFALL', 0, row.shortfall, 'orders hold units that are physically gone (a loss exceeded base and pool): release orders, or count the stock and SetStock');
  }

  /**
   * Waits until every ledger record written before `sinceMs` has landed in MySQL; false after the
   * cut timeout; DEADLINE_EXCEEDED or CANCELLED once the caller goes first.
   */
  private async ledgerCaughtUp(check: SkuCheck, sinceMs: number): Promise<boolean> {
    const until = Date.now() + this.cutTimeoutMs;
    for (;;) {
      stayForCheck(check, 'waiting for the ledger to catch up');
      const lag = await this.deps.ledgerLag().catch(() => undefined);
      if (lag && (lag.waiting === 0 || Date.now() - lag.oldestAgeMs > sinceMs)) return true;
      if (Date.now() >= until) return false;
      await pause(Math.min(50, until - Date.now()), check.caller);
    }
  }
}

function negativeTerms(row: StockRow): Array<[string, number]> {
  const terms: Array<[string, number]> = [
    ['on_hand', row.onHand],
    ['base', row.base],
    ['pool', row.pool],
    ['reserved', row.reserved],
    ['committed', row.committed],
  ];
  return terms.filter(([, value]) => value < 0);
}
