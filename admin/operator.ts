import type { Pool } from 'mysql2/promise';
import { RedisGateway } from '../allocator/gateway';
import { PartitionInspector } from '../allocator/inspector';
import { PartitionCreator } from '../allocator/partitions';
import { DomainError } from '../kernel/errors';
import { Logger } from '../kernel/logger';
import { openIntent } from '../store/intents';
import { applyMovement, transaction } from '../store/mysql';
import { insertPartitions } from '../store/partitions';
import { StockRow, lockStock, readStock, setPerUserLimit } from '../store/stock';
import { IntentSteps } from './intent-steps';
import { adminMovement, partitionRow, piece } from './movements';
import { PartitionViews } from './partition-views';
import { LossPayload, applyOnHandChange } from './stock-changes';
import { AdminRequests } from './requests';
import {
  DrainPayload,
  DrainResult,
  OperatorRegistry,
  PartitionView,
  PreallocatePayload,
  PreallocateResult,
  RebalancePayload,
  RebalanceResult,
  StockChangeResult,
} from './types';

/**
 * The operator's stock operations (AdminService): on_hand changes, pre-allocation of base into
 * partitions, drains and rebalances, and listing. MySQL is the record: every move of units is a
 * ledger row applied in a transaction. Work that spans MySQL, Redis and etcd opens an intent in the
 * same transaction as its MySQL part; IntentSteps finishes it, safe to run again, so a replay of
 * the request or the recovery worker finishes what a dead process started. Every call that changes
 * something is idempotent on its request id (AdminRequests).
 */
export class StockOperator {
  private readonly requests: AdminRequests;
  private readonly views: PartitionViews;
  private readonly steps: IntentSteps;

  constructor(
    private readonly pool: Pool,
    private readonly gateway: RedisGateway,
    inspector: PartitionInspector,
    private readonly creator: PartitionCreator,
    private readonly registry: OperatorRegistry,
    logger: Logger,
  ) {
    this.requests = new AdminRequests(pool);
    this.views = new PartitionViews(pool, inspector, registry);
    this.steps = new IntentSteps(pool, gateway, creator, registry, this.views, this.requests, logger);
  }

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
      if (!(await this.requests.claim(conn, requestId, 'Preallocate', fingerprint))) return;
      const row = await lockStock(conn, sku);
      if (row.base < quantity) {
        throw new DomainError('INSUFFICIENT_BASE', `sku ${sku} has ${row.base} units in base, ${quantity} asked`, sku);
      }
      await applyMovement(conn, adminMovement(`prealloc:${requestId}`, 'preallocate', sku, quantity, 'base', 'pool'));
      await insertPartitions(conn, planned.map(partitionRow), 'creating');
      await openIntent(conn, requestId, 'preallocate', sku, { partitions: planned.map(piece) } satisfies PreallocatePayload);
    });
    return this.finish<PreallocateResult>(requestId);
  }

  /** Empties one partition back to base and deregisters it. */
  async drainPartition(requestId: string, sku: string, partitionId: string): Promise<DrainResult> {
    const fingerprint = `${sku}|${partitionId}`;
    const replay = await this.replay<DrainResult>(requestId, 'DrainPartition', fingerprint);
    if (replay) return replay;
    const target = (await this.views.known(sku)).find((p) => p.partitionId === partitionId);
    if (!target) throw new DomainError('PARTITION_NOT_FOUND', `sku ${sku} has no partition ${partitionId}`, sku);
    await transaction(this.pool, async (conn) => {
      if (!(await this.requests.claim(conn, requestId, 'DrainPartition', fingerprint))) return;
      await openIntent(conn, requestId, 'drain', sku, { partition: piece({ ...target, units: 0 }) } satisfies DrainPayload);
    });
    return this.finish<DrainResult>(requestId);
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
        throw new DomainError('UNKNOWN_NODE', `${node} is not a configured Redis node (REDIS_NODES)`);
      }
    }
    const before = await this.views.list(sku, false);
    const live = before.filter((p) => p.state === 'live');
    const partitions = target === 0 ? 0 : count || Math.max(1, live.length);
    await transaction(this.pool, async (conn) => {
      if (!(await this.requests.claim(conn, requestId, 'Rebalance', fingerprint))) return;
      const row = await lockStock(conn, sku);
      const createFirst = target > 0 && row.base >= target;
      const planned = this.creator.plan(sku, createFirst ? target : 0, partitions, nodes);
      if (createFirst) {
        await applyMovement(conn, adminMovement(`rebalance:${requestId}:carve`, 'rebalance', sku, target, 'base', 'pool'));
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
    return this.finish<RebalanceResult>(requestId);
  }

  /** Partitions with their live avail and state read from Redis; ended ones only when asked. */
  async listPartitions(sku?: string, includeEnded = false): Promise<PartitionView[]> {
    const views = await this.views.list(sku, true);
    return includeEnded ? views : views.filter((p) => p.state === 'live' || p.state === 'creating');
  }

  async stock(skus: readonly string[]): Promise<Map<string, StockRow>> {
    return readStock(this.pool, skus);
  }

  /** Completes every intent a dead process left open for longer than `olderThanMs` (the recovery worker). */
  recoverIntents(olderThanMs: number): Promise<number> {
    return this.steps.recover(olderThanMs);
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
    const result = await transaction(this.pool, async (conn): Promise<StockChangeResult | 'shrink' | undefined> => {
      if (!(await this.requests.claim(conn, requestId, method, fingerprint))) return undefined;
      const row = await lockStock(conn, sku);
      const eventBase = `adjust:${requestId}`;
      const fromPool = await applyOnHandChange(conn, row, delta(row), eventBase, 'adjust', reason);
      if (perUserLimit !== undefined) await setPerUserLimit(conn, sku, perUserLimit);
      if (fromPool > 0) {
        // The rest of the loss comes out of the pool, in Redis: an intent, finished below (or by the recovery worker).
        await openIntent(conn, requestId, 'loss', sku, { units: fromPool, reason, eventBase } satisfies LossPayload);
        return 'shrink';
      }
      const answer: StockChangeResult = { stock: await lockStock(conn, sku), shortfall: 0, replayed: false };
      await this.requests.complete(conn, requestId, answer);
      return answer;
    });
    if (result === 'shrink') return this.finish<StockChangeResult>(requestId);
    return result ?? ((await this.replay<StockChangeResult>(requestId, method, fingerprint)) as StockChangeResult);
  }

  /** Finishes an intent if it is still open (a stock message's pool shrink, resumed by its redelivery). */
  finishIntent(intentId: string): Promise<void> {
    return this.steps.finish(intentId);
  }

  /** The stored answer of a request seen before, finishing its intent first when it is still in progress. */
  private replay<T>(requestId: string, method: string, fingerprint: string): Promise<T | undefined> {
    return this.requests.replay<T>(requestId, method, fingerprint, (id) => this.steps.finish(id));
  }

  /** Finishes the request's intent and answers what it stored. */
  private async finish<T>(requestId: string): Promise<T> {
    await this.steps.finish(requestId);
    return this.requests.stored<T>(requestId, false);
  }
}
