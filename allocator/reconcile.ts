import type { Pool } from 'mysql2/promise';
import { Logger } from '../server/logger';
import { claimRequest, completeRequest, lookupRequest } from '../store/admin-requests';
import { applyMovement, transaction } from '../store/mysql';
import { listPartitionRows, setPartitionState } from '../store/partitions';
import { StockRow, allSkus, readStock } from '../store/stock';
import { ReservationError } from './errors';
import { RedisGateway } from './gateway';
import { Discrepancy, OperatorRegistry } from './operator';

export interface ReconcileResult {
  readonly discrepancies: Discrepancy[];
  readonly skusChecked: number;
  readonly partitionsChecked: number;
}

/**
 * Compares Redis (partitions' avail and state, what orders hold from them) with MySQL (the SKU
 * totals and partition rows) and etcd (registrations), once the ledger has caught up. Reports
 * every difference; with `repair`, fixes the safe ones:
 *   - a MySQL pool larger than the units live in Redis (lost in a Redis failover): the difference
 *     goes back to base through a ledger row, sellable again after a top-up;
 *   - a live partition missing from etcd is registered; a registration of a dead one is removed;
 *   - a MySQL partition row whose state lags Redis is updated.
 * Held-unit, conservation and unrecorded-partition differences are reported for an operator: no
 * automatic fix is safe.
 */
export class Reconciler {
  constructor(
    private readonly pool: Pool,
    private readonly gateway: RedisGateway,
    private readonly registry: OperatorRegistry,
    private readonly waitForLedger: () => Promise<void>,
    private readonly logger: Logger,
  ) {}

  async reconcile(skus: readonly string[], repair: boolean, requestId: string): Promise<ReconcileResult> {
    if (repair) {
      const prior = await lookupRequest(this.pool, requestId, 'Reconcile', skus.join(','));
      if (prior?.kind === 'done') return JSON.parse(prior.response.toString()) as ReconcileResult;
      if (prior?.kind === 'mismatch') throw new ReservationError('IDEMPOTENCY_KEY_REUSED', `request_id ${requestId} was already used for another request`);
    }
    await this.waitForLedger();
    const targets = skus.length > 0 ? [...skus] : await allSkus(this.pool);
    const stock = await readStock(this.pool, targets);
    const discrepancies: Discrepancy[] = [];
    let partitionsChecked = 0;
    for (const sku of targets) {
      partitionsChecked += await this.checkSku(sku, stock.get(sku), repair, requestId, discrepancies);
    }
    const result: ReconcileResult = { discrepancies, skusChecked: targets.length, partitionsChecked };
    if (repair) {
      await transaction(this.pool, async (conn) => {
        const claim = await claimRequest(conn, requestId, 'Reconcile', skus.join(','));
        if (claim.kind === 'new') await completeRequest(conn, requestId, Buffer.from(JSON.stringify(result)));
      });
    }
    if (discrepancies.length > 0) this.logger.warn({ discrepancies: discrepancies.length, repair }, 'reconcile found discrepancies');
    return result;
  }

  private async checkSku(
    sku: string,
    row: StockRow | undefined,
    repair: boolean,
    requestId: string,
    out: Discrepancy[],
  ): Promise<number> {
    const report = (kind: string, expected: number, actual: number, detail: string, partitionId = ''): Discrepancy => {
      const d: Discrepancy = { sku, partitionId, kind, expected, actual, detail, repaired: false };
      out.push(d);
      return d;
    };
    const rows = await listPartitionRows(this.pool, sku);
    const registered = await this.registry.listPartitions(sku);
    const byId = new Map<string, { partitionId: string; shard: number; epoch: number; node: string }>();
    for (const p of [...rows, ...registered]) byId.set(p.partitionId, p);
    const partitions = [...byId.values()];
    const refs = partitions.map((p) => ({ sku, partitionId: p.partitionId, shard: p.shard, epoch: p.epoch }));
    const states = await this.gateway.partitionStates(refs);
    const held = await Promise.all(refs.map((r) => this.gateway.heldFrom(r)));
    const livePool = states.reduce((n, s) => n + (s?.state === 'live' ? s.avail : 0), 0);
    const heldTotal = held.reduce((a, b) => a + b, 0);

    if (!row) {
      if (partitions.length > 0) report('MISSING_SKU_ROW', 0, livePool, 'partitions exist in Redis or etcd but MySQL has no row for the SKU');
      return partitions.length;
    }
    const terms = { base: row.base, pool: row.pool, reserved: row.reserved, committed: row.committed };
    for (const [term, value] of Object.entries(terms)) {
      if (value < 0) report('NEGATIVE_TERM', 0, value, `${term} is negative`);
    }
    const sum = row.base + row.pool + row.reserved + row.committed;
    if (row.onHand !== sum) report('CONSERVATION_BROKEN', row.onHand, sum, 'on_hand != base + pool + reserved + committed');
    if (row.shortfall > 0) report('SHORTFALL', 0, row.shortfall, 'a recorded loss exceeded base; count the stock and SetStock');
    if (row.reserved + row.committed !== heldTotal) {
      report('HELD_MISMATCH', row.reserved + row.committed, heldTotal, 'MySQL reserved + committed differ from what orders hold in Redis');
    }
    if (row.pool !== livePool) {
      const d = report('POOL_MISMATCH', row.pool, livePool, 'MySQL pool differs from the units live in Redis partitions');
      if (repair && row.pool > livePool) {
        await transaction(this.pool, (conn) =>
          applyMovement(conn, {
            eventId: `reconcile:${requestId}:${sku}`,
            kind: 'reconcile',
            sku,
            qty: row.pool - livePool,
            from: 'pool',
            to: 'base',
            reason: 'pool units missing from Redis returned to base',
            source: 'admin',
          }),
        );
        d.repaired = true;
      }
    }

    const isRegistered = new Set(registered.map((e) => e.partitionId));
    const rowState = new Map(rows.map((r) => [r.partitionId, r.state]));
    for (let i = 0; i < partitions.length; i++) {
      const p = partitions[i];
      const state = states[i]?.state;
      if (state === 'live' && !isRegistered.has(p.partitionId) && (states[i]?.avail ?? 0) > 0) {
        const d = report('UNREGISTERED_PARTITION', 1, 0, 'live in Redis with units but not in the registry', p.partitionId);
        if (repair) {
          await this.registry.registerPartition({ sku, partitionId: p.partitionId, node: p.node, shard: p.shard, epoch: p.epoch, createdAt: Date.now() });
          d.repaired = true;
        }
      }
      if (state !== 'live' && isRegistered.has(p.partitionId)) {
        const d = report('STALE_REGISTRATION', 0, 1, `registered but ${state ?? 'missing'} in Redis`, p.partitionId);
        if (repair) {
          await this.registry.removePartition(sku, p.partitionId, p.epoch);
          d.repaired = true;
        }
      }
      const recorded = rowState.get(p.partitionId);
      if (!recorded && state === 'live') {
        // Carved outside the store (or its row lost): its units are not in MySQL's pool.
        report('UNRECORDED_PARTITION', 1, 0, 'live in Redis but MySQL has no row for it', p.partitionId);
      }
      if (recorded === 'live' && state === 'exhausted') {
        // Retiring an empty partition does not touch MySQL (it happens on the Reserve path): catch up quietly.
        if (repair) await transaction(this.pool, (conn) => setPartitionState(conn, [p.partitionId], 'exhausted'));
      } else if (recorded && state && recorded !== state && recorded !== 'creating') {
        const d = report('PARTITION_STATE', 0, 0, `MySQL says ${recorded}, Redis says ${state}`, p.partitionId);
        if (repair && (state === 'live' || state === 'exhausted' || state === 'drained')) {
          await transaction(this.pool, (conn) => setPartitionState(conn, [p.partitionId], state));
          d.repaired = true;
        }
      }
    }
    return partitions.length;
  }
}
