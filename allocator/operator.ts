import type { Pool, PoolConnection } from 'mysql2/promise';
import { Logger } from '../server/logger';
import { Recorded, claimRequest, completeRequest, lookupRequest } from '../store/admin-requests';
import { Intent, closeIntent, openIntent, readIntent, staleIntents, updateIntent } from '../store/intents';
import { Movement, applyMovement, transaction } from '../store/mysql';
import { PartitionRow, insertPartitions, listPartitionRows, setPartitionState } from '../store/partitions';
import { StockRow, addShortfall, lockStock, readStock, setPerUserLimit } from '../store/stock';
import { ReservationError } from './errors';
import { RedisGateway } from './gateway';
import { CreatedPartition, PartitionCreator, splitShare } from './partitions';

/** What the operator needs of the registry: SKU entries, registrations and conditional removals. */
export interface OperatorRegistry {
  putSku(sku: string, value: { perUserLimit: number }): Promise<void>;
  getSku(sku: string): Promise<{ perUserLimit: number } | undefined>;
  listPartitions(sku?: string): Promise<Array<{ sku: string; partitionId: string; node: string; shard: number; epoch: number }>>;
  registerPartition(entry: { sku: string; partitionId: string; node: string; shard: number; epoch: number; createdAt: number }): Promise<unknown>;
  removePartition(sku: string, partitionId: string, epoch: number): Promise<unknown>;
}

export interface PartitionView {
  readonly partitionId: string;
  readonly sku: string;
  readonly node: string;
  readonly shard: number;
  readonly capacity: number;
  readonly avail: number;
  readonly state: 'live' | 'exhausted' | 'drained' | 'creating' | 'aborted' | 'missing';
  readonly epoch: number;
}

export interface StockChangeResult {
  readonly stock: StockRow;
  readonly shortfall: number;
  readonly replayed: boolean;
}

export interface PreallocateResult {
  readonly partitions: PartitionView[];
  readonly stock: StockRow;
  readonly replayed: boolean;
}

export interface DrainResult {
  readonly returned: number;
  readonly partition: PartitionView;
  readonly stock: StockRow;
  readonly replayed: boolean;
}

export interface RebalanceResult {
  readonly before: PartitionView[];
  readonly after: PartitionView[];
  readonly stock: StockRow;
  readonly replayed: boolean;
}

interface PlannedPiece {
  readonly partitionId: string;
  readonly node: string;
  readonly shard: number;
  readonly epoch: number;
  readonly units: number;
}

interface PreallocatePayload {
  readonly partitions: PlannedPiece[];
}

interface DrainPayload {
  readonly partition: PlannedPiece;
}

interface RebalancePayload {
  readonly drain: PlannedPiece[];
  /** Planned new partitions; units settled when `carved` is true. */
  create: PlannedPiece[];
  readonly createFirst: boolean;
  readonly target: number;
  carved: boolean;
  readonly before: PartitionView[];
}

/**
 * The operator's stock operations (AdminService): on_hand changes, pre-allocation of base into
 * partitions, drains and rebalances, listing and reconciliation. MySQL is the record: every move of
 * units is a ledger row applied in a transaction. Work that spans MySQL, Redis and etcd opens an
 * intent in the same transaction as its MySQL part; `finishIntent` completes it and is safe to run
 * again, so a replay of the request or the recovery worker finishes what a dead process started.
 */
export class StockOperator {
  constructor(
    private readonly pool: Pool,
    private readonly gateway: RedisGateway,
    private readonly creator: PartitionCreator,
    private readonly registry: OperatorRegistry,
    private readonly logger: Logger,
  ) {}

  /** Sets on_hand to a counted value (stock-take). */
  setStock(requestId: string, sku: string, onHand: number, reason: string, perUserLimit?: number): Promise<StockChangeResult> {
    const fingerprint = `${sku}|${onHand}|${reason}|${perUserLimit ?? ''}`;
    return this.changeOnHand(requestId, 'SetStock', fingerprint, sku, reason, perUserLimit, (row) => onHand - row.onHand);
  }

  /** Changes on_hand by a signed delta (goods received, broken, lost). */
  adjustStock(requestId: string, sku: string, delta: number, reason: string): Promise<StockChangeResult> {
    return this.changeOnHand(requestId, 'AdjustStock', `${sku}|${delta}|${reason}`, sku, reason, undefined, () => delta);
  }

  /** Moves `quantity` from base into `count` new partitions and registers them. */
  async preallocate(requestId: string, sku: string, quantity: number, count: number): Promise<PreallocateResult> {
    const fingerprint = `${sku}|${quantity}|${count}`;
    const replay = await this.replay<PreallocateResult>(requestId, 'Preallocate', fingerprint);
    if (replay) return replay;
    const planned = this.creator.plan(sku, quantity, count);
    await transaction(this.pool, async (conn) => {
      if (!(await this.claim(conn, requestId, 'Preallocate', fingerprint))) return;
      const row = await lockStock(conn, sku);
      if (row.base < quantity) {
        throw new ReservationError('INSUFFICIENT_BASE', `sku ${sku} has ${row.base} units in base, ${quantity} asked`, sku);
      }
      await applyMovement(conn, movement(`prealloc:${requestId}`, 'preallocate', sku, quantity, 'base', 'pool'));
      await insertPartitions(conn, planned.map(partitionRow), 'creating');
      await openIntent(conn, requestId, 'preallocate', sku, { partitions: planned.map(piece) } satisfies PreallocatePayload);
    });
    return this.finishRequest<PreallocateResult>(requestId);
  }

  /** Empties one partition back to base and deregisters it. */
  async drainPartition(requestId: string, sku: string, partitionId: string): Promise<DrainResult> {
    const fingerprint = `${sku}|${partitionId}`;
    const replay = await this.replay<DrainResult>(requestId, 'DrainPartition', fingerprint);
    if (replay) return replay;
    const target = (await this.knownPartitions(sku)).find((p) => p.partitionId === partitionId);
    if (!target) throw new ReservationError('PARTITION_NOT_FOUND', `sku ${sku} has no partition ${partitionId}`, sku);
    await transaction(this.pool, async (conn) => {
      if (!(await this.claim(conn, requestId, 'DrainPartition', fingerprint))) return;
      await openIntent(conn, requestId, 'drain', sku, { partition: piece({ ...target, units: 0 }) } satisfies DrainPayload);
    });
    return this.finishRequest<DrainResult>(requestId);
  }

  /**
   * Reshapes a SKU's pool to `target` units over `count` partitions on `nodes`: new partitions are
   * carved and the old ones drained. When base already holds the target, the new partitions go
   * live before the old ones drain, so Reserves never find the SKU without partitions.
   */
  async rebalance(requestId: string, sku: string, target: number, count: number, nodes: readonly string[]): Promise<RebalanceResult> {
    const fingerprint = `${sku}|${target}|${count}|${nodes.join(',')}`;
    const replay = await this.replay<RebalanceResult>(requestId, 'Rebalance', fingerprint);
    if (replay) return replay;
    for (const node of nodes) {
      if (!this.gateway.shards.options.nodes.includes(node)) {
        throw new ReservationError('UNKNOWN_NODE', `${node} is not a configured Redis node (REDIS_NODES)`);
      }
    }
    const before = await this.partitionViews(sku, false);
    const live = before.filter((p) => p.state === 'live');
    const partitions = target === 0 ? 0 : count || Math.max(1, live.length);
    await transaction(this.pool, async (conn) => {
      if (!(await this.claim(conn, requestId, 'Rebalance', fingerprint))) return;
      const row = await lockStock(conn, sku);
      const createFirst = target > 0 && row.base >= target;
      const planned = this.creator.plan(sku, createFirst ? target : 0, partitions, nodes);
      if (createFirst) {
        await applyMovement(conn, movement(`rebalance:${requestId}:carve`, 'rebalance', sku, target, 'base', 'pool'));
        await insertPartitions(conn, planned.map(partitionRow), 'creating');
      }
      const payload: RebalancePayload = {
        drain: live.map((p) => piece({ ...p, units: 0 })),
        create: planned.map(piece),
        createFirst,
        target,
        carved: createFirst,
        before,
      };
      await openIntent(conn, requestId, 'rebalance', sku, payload);
    });
    return this.finishRequest<RebalanceResult>(requestId);
  }

  /** Partitions with their live avail and state read from Redis; ended ones only when asked. */
  async listPartitions(sku?: string, includeEnded = false): Promise<PartitionView[]> {
    const views = await this.partitionViews(sku, true);
    return includeEnded ? views : views.filter((p) => p.state === 'live' || p.state === 'creating');
  }

  async stock(skus: readonly string[]): Promise<Map<string, StockRow>> {
    return readStock(this.pool, skus);
  }

  /** Completes every intent a dead process left open for longer than `olderThanMs`. */
  async recoverIntents(olderThanMs: number): Promise<number> {
    let finished = 0;
    for (const intent of await staleIntents(this.pool, olderThanMs)) {
      try {
        await this.finishIntent(intent.intentId);
        finished++;
      } catch (err) {
        this.logger.warn({ err, intent: intent.intentId }, 'could not finish an open intent; retried later');
      }
    }
    return finished;
  }

  /**
   * Finishes (or, where a partition can no longer be created, undoes) an intent, and stores the
   * answer of its request. Every step is idempotent: Redis creates and withdrawals by id, etcd
   * registrations by epoch, MySQL moves by ledger event id.
   */
  async finishIntent(intentId: string): Promise<void> {
    const intent = await readIntent<unknown>(this.pool, intentId);
    if (!intent || intent.state !== 'open') return;
    switch (intent.kind) {
      case 'preallocate':
        return this.finishPreallocate(intent as Intent<PreallocatePayload>);
      case 'drain':
        return this.finishDrain(intent as Intent<DrainPayload>);
      case 'rebalance':
        return this.finishRebalance(intent as Intent<RebalancePayload>);
      default:
        this.logger.error({ intent: intentId, kind: intent.kind }, 'unknown intent kind');
    }
  }

  private async finishPreallocate(intent: Intent<PreallocatePayload>): Promise<void> {
    const created = intent.payload.partitions.map((p) => toCreated(intent.sku, p));
    await this.creator.materialize(created);
    await transaction(this.pool, async (conn) => {
      await setPartitionState(conn, created.map((p) => p.partitionId), 'live');
      await this.close(conn, intent, {
        partitions: await this.viewsOf(intent.sku, created.map((p) => p.partitionId)),
        stock: await lockStock(conn, intent.sku),
        replayed: false,
      } satisfies PreallocateResult);
    });
  }

  private async finishDrain(intent: Intent<DrainPayload>): Promise<void> {
    const target = intent.payload.partition;
    const drained = await this.drainOne(intent.sku, target);
    const returned = drained.units;
    await transaction(this.pool, async (conn) => {
      if (returned > 0) await applyMovement(conn, drainMovement(intent.sku, target.partitionId, drained));
      const [view] = await this.viewsOf(intent.sku, [target.partitionId]);
      if (view.state === 'drained') await setPartitionState(conn, [target.partitionId], 'drained');
      await this.close(conn, intent, { returned, partition: view, stock: await lockStock(conn, intent.sku), replayed: false } satisfies DrainResult);
    });
  }

  private async finishRebalance(intent: Intent<RebalancePayload>): Promise<void> {
    const payload = intent.payload;
    const sku = intent.sku;
    const drainAll = async () => {
      const drained: Array<[PlannedPiece, Withdrawn]> = [];
      for (const old of payload.drain) drained.push([old, await this.drainOne(sku, old)]);
      await transaction(this.pool, async (conn) => {
        for (const [old, withdrawn] of drained.filter(([, w]) => w.units > 0)) {
          await applyMovement(conn, drainMovement(sku, old.partitionId, withdrawn));
        }
        // A partition that sold out before its drain was retired instead: MySQL records what Redis says.
        const exhausted = drained.filter(([, w]) => w.state === 'exhausted').map(([p]) => p.partitionId);
        await setPartitionState(conn, exhausted, 'exhausted');
        await setPartitionState(conn, drained.filter(([, w]) => w.state !== 'exhausted').map(([p]) => p.partitionId), 'drained');
      });
    };
    if (!payload.createFirst) {
      await drainAll();
      if (!payload.carved) {
        // Carve what base now holds, up to the target, and settle the plan before creating anything.
        await transaction(this.pool, async (conn) => {
          const row = await lockStock(conn, sku);
          const carve = Math.max(0, Math.min(payload.target, row.base));
          const count = payload.create.length;
          payload.create = payload.create.map((p, i) => ({ ...p, units: splitShare(carve, count, i) })).filter((p) => p.units > 0);
          if (carve > 0) await applyMovement(conn, movement(`rebalance:${intent.intentId}:carve`, 'rebalance', sku, carve, 'base', 'pool'));
          await insertPartitions(conn, payload.create.map((p) => partitionRow(toCreated(sku, p))), 'creating');
          payload.carved = true;
          await updateIntent(conn, intent.intentId, payload);
        });
      }
    }
    const created = payload.create.map((p) => toCreated(sku, p));
    await this.creator.materialize(created);
    await transaction(this.pool, (conn) => setPartitionState(conn, created.map((p) => p.partitionId), 'live'));
    if (payload.createFirst) await drainAll();
    await transaction(this.pool, async (conn) => {
      await this.close(conn, intent, {
        before: payload.before,
        after: await this.viewsOf(sku, created.map((p) => p.partitionId)),
        stock: await lockStock(conn, sku),
        replayed: false,
      } satisfies RebalanceResult);
    });
  }

  /** Withdraws a partition's free units for good and deregisters it; returns the units and their record's seq. */
  private async drainOne(sku: string, p: PlannedPiece): Promise<Withdrawn> {
    const ref = { sku, partitionId: p.partitionId, shard: p.shard, epoch: p.epoch };
    const res = await this.gateway.withdraw(ref, 'drain', 0, `drain:${p.partitionId}`, 'operator drain');
    await this.registry.removePartition(sku, p.partitionId, p.epoch);
    return res.code === -2 ? { units: 0, seq: 0, state: res.state } : { units: res.units, seq: res.seq, state: res.state };
  }

  private async changeOnHand(
    requestId: string,
    method: string,
    fingerprint: string,
    sku: string,
    reason: string,
    perUserLimit: number | undefined,
    delta: (row: StockRow) => number,
  ): Promise<StockChangeResult> {
    const replay = await this.replay<StockChangeResult>(requestId, method, fingerprint);
    if (replay) return replay;
    // The SKU must be known to every server before anything can be sold of it.
    const limit = perUserLimit ?? (await this.registry.getSku(sku))?.perUserLimit ?? 0;
    await this.registry.putSku(sku, { perUserLimit: limit });
    const result = await transaction(this.pool, async (conn): Promise<StockChangeResult | undefined> => {
      if (!(await this.claim(conn, requestId, method, fingerprint))) return undefined;
      const row = await lockStock(conn, sku);
      const change = delta(row);
      let shortfall = 0;
      if (change > 0) {
        await applyMovement(conn, movement(`adjust:${requestId}`, 'adjust', sku, change, 'outside', 'base', undefined, reason));
      } else if (change < 0) {
        // A loss comes out of base; what base cannot cover is a shortfall, raised, never clamped away.
        const covered = Math.min(-change, Math.max(0, row.base));
        shortfall = -change - covered;
        if (covered > 0) await applyMovement(conn, movement(`adjust:${requestId}`, 'adjust', sku, covered, 'base', 'outside', undefined, reason));
        if (shortfall > 0) await addShortfall(conn, sku, shortfall);
      }
      if (perUserLimit !== undefined) await setPerUserLimit(conn, sku, perUserLimit);
      const answer: StockChangeResult = { stock: await lockStock(conn, sku), shortfall, replayed: false };
      await completeRequest(conn, requestId, Buffer.from(JSON.stringify(answer)));
      return answer;
    });
    if (result && result.shortfall > 0) {
      this.logger.warn({ sku, shortfall: result.shortfall, requestId }, 'stock shortfall: a loss exceeded the free units in base');
    }
    return result ?? ((await this.replay<StockChangeResult>(requestId, method, fingerprint)) as StockChangeResult);
  }

  /** The stored answer of a finished request, finishing it first when it is still in progress. */
  private async replay<T extends { replayed: boolean }>(requestId: string, method: string, fingerprint: string): Promise<T | undefined> {
    const claim = await lookupRequest(this.pool, requestId, method, fingerprint);
    if (!claim) return undefined;
    return this.answer<T>(requestId, claim);
  }

  private async answer<T extends { replayed: boolean }>(requestId: string, claim: Recorded): Promise<T> {
    if (claim.kind === 'mismatch') {
      throw new ReservationError('IDEMPOTENCY_KEY_REUSED', `request_id ${requestId} was already used for a different ${claim.method} request`);
    }
    if (claim.kind === 'in-progress') return this.finishRequest<T>(requestId, true);
    return { ...(JSON.parse(claim.response.toString()) as T), replayed: true };
  }

  /** Claims the request in this transaction; false when another call holds it (then we finish that one). */
  private async claim(conn: PoolConnection, requestId: string, method: string, fingerprint: string): Promise<boolean> {
    const claim = await claimRequest(conn, requestId, method, fingerprint);
    if (claim.kind === 'new') return true;
    if (claim.kind === 'mismatch') {
      throw new ReservationError('IDEMPOTENCY_KEY_REUSED', `request_id ${requestId} was already used for a different ${claim.method} request`);
    }
    return false;
  }

  private async finishRequest<T extends { replayed: boolean }>(requestId: string, replayed = false): Promise<T> {
    await this.finishIntent(requestId);
    const [method, fingerprint] = await this.requestKey(requestId);
    const claim = await lookupRequest(this.pool, requestId, method, fingerprint);
    if (!claim || claim.kind !== 'done') {
      throw new ReservationError('IN_PROGRESS', `request ${requestId} is still being applied; retry`);
    }
    return { ...(JSON.parse(claim.response.toString()) as T), replayed };
  }

  private async requestKey(requestId: string): Promise<[string, string]> {
    const [rows] = await this.pool.query<any[]>('SELECT method, fingerprint FROM admin_requests WHERE request_id = ?', [requestId]);
    if (rows.length === 0) throw new ReservationError('IN_PROGRESS', `request ${requestId} was not recorded; retry`);
    return [rows[0].method, rows[0].fingerprint];
  }

  private async close(conn: PoolConnection, intent: Intent<unknown>, answer: unknown): Promise<void> {
    await closeIntent(conn, intent.intentId, 'done');
    await completeRequest(conn, intent.intentId, Buffer.from(JSON.stringify(answer)));
  }

  /** Every partition MySQL or the registry knows of, for one SKU or all. */
  private async knownPartitions(sku?: string): Promise<Array<Omit<PartitionRow, 'state'> & { state?: PartitionRow['state'] }>> {
    const rows = await listPartitionRows(this.pool, sku);
    const known = new Set(rows.map((r) => r.partitionId));
    const registered = (await this.registry.listPartitions(sku)).filter((e) => !known.has(e.partitionId));
    return [...rows, ...registered.map((e) => ({ ...e, capacity: 0 }))];
  }

  private async partitionViews(sku: string | undefined, withEnded: boolean): Promise<PartitionView[]> {
    const known = await this.knownPartitions(sku);
    const states = await this.gateway.partitionStates(known);
    const views = known.map((p, i): PartitionView => {
      const live = states[i];
      return {
        partitionId: p.partitionId,
        sku: p.sku,
        node: p.node,
        shard: p.shard,
        capacity: p.capacity,
        avail: live?.avail ?? 0,
        state: (live?.state as PartitionView['state']) ?? (p.state === 'creating' || p.state === 'aborted' ? p.state : 'missing'),
        epoch: live?.epoch ?? p.epoch,
      };
    });
    return withEnded ? views : views.filter((v) => v.state !== 'missing');
  }

  private async viewsOf(sku: string, ids: readonly string[]): Promise<PartitionView[]> {
    const views = await this.partitionViews(sku, true);
    return ids.map((id) => views.find((v) => v.partitionId === id)).filter((v): v is PartitionView => v !== undefined);
  }
}

function movement(
  eventId: string,
  kind: string,
  sku: string,
  qty: number,
  from: Movement['from'],
  to: Movement['to'],
  partitionId?: string,
  reason?: string,
): Movement {
  return { eventId, kind, sku, qty, from, to, partitionId, reason, source: 'admin' };
}

/** What a drain withdrew from a partition: units, the partition seq of its ledger record (0: none), and its state after. */
interface Withdrawn {
  readonly units: number;
  readonly seq: number;
  readonly state: string;
}

/**
 * The drain's movement as the admin path applies it, under the same event id and partition seq as
 * the record the withdraw script appended to the stream: whichever lands first counts, and either
 * copy tells Reconcile which change of the partition it was.
 */
function drainMovement(sku: string, partitionId: string, w: Withdrawn): Movement {
  return { ...movement(`drain:${partitionId}`, 'drain', sku, w.units, 'pool', 'base', partitionId), partitionSeq: w.seq > 0 ? w.seq : undefined };
}

function piece(p: { partitionId: string; node: string; shard: number; epoch: number; units: number }): PlannedPiece {
  return { partitionId: p.partitionId, node: p.node, shard: p.shard, epoch: p.epoch, units: p.units };
}

function toCreated(sku: string, p: PlannedPiece): CreatedPartition {
  return { sku, ...p };
}

function partitionRow(p: CreatedPartition): Omit<PartitionRow, 'state'> {
  return { partitionId: p.partitionId, sku: p.sku, node: p.node, shard: p.shard, capacity: p.units, epoch: p.epoch };
}
