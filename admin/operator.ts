import type { Pool, PoolConnection } from 'mysql2/promise';
import { RedisGateway } from '../allocator/gateway';
import { PartitionInspector } from '../allocator/inspector';
import { PartitionCreator } from '../allocator/partitions';
import { Caller, NO_CALLER, isCut, stayForCaller } from '../kernel/caller';
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
 *
 * Every call takes its caller (kernel/caller.ts) and starts no step for a caller that has gone:
 * each MySQL transaction, Redis step and etcd write is preceded by the check, and the transactions
 * end at the caller's deadline. A call cut after its intent was recorded leaves the intent open: a
 * replay of the request or the recovery worker finishes it, as after a crash (intent-steps.ts).
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
  setStock(requestId: string, sku: string, onHand: number, reason: string, perUserLimit?: number, caller: Caller = NO_CALLER): Promise<StockChangeResult> {
    const fingerprint = `${sku}|${onHand}|${reason}|${perUserLimit ?? ''}`;
    return this.changeOnHand({ requestId, method: 'SetStock', fingerprint, caller }, sku, reason, perUserLimit, (row) => onHand - row.onHand);
  }

  /** Changes on_hand by a signed delta (goods received, broken, lost). */
  adjustStock(requestId: string, sku: string, delta: number, reason: string, caller: Caller = NO_CALLER): Promise<StockChangeResult> {
    return this.changeOnHand({ requestId, method: 'AdjustStock', fingerprint: `${sku}|${delta}|${reason}`, caller }, sku, reason, undefined, () => delta);
  }

  /** Moves `quantity` from base into `count` new partitions and registers them. */
  async preallocate(requestId: string, sku: string, quantity: number, count: number, caller: Caller = NO_CALLER): Promise<PreallocateResult> {
    const call: AdminCall = { requestId, method: 'Preallocate', fingerprint: `${sku}|${quantity}|${count}`, caller };
    const replay = await this.replay<PreallocateResult>(call);
    if (replay) return replay;
    const planned = this.creator.plan(sku, quantity, count);
    await transaction(this.pool, async (conn) => {
      if (!(await this.claim(conn, call))) return;
      const row = await lockStock(conn, sku);
      if (row.base < quantity) {
        throw new DomainError('INSUFFICIENT_BASE', `sku ${sku} has ${row.base} units in base, ${quantity} asked`, sku);
      }
      await applyMovement(conn, adminMovement(`prealloc:${requestId}`, 'preallocate', sku, quantity, 'base', 'pool'));
      await insertPartitions(conn, planned.map(partitionRow), 'creating');
      await openIntent(conn, requestId, 'preallocate', sku, { partitions: planned.map(piece) } satisfies PreallocatePayload);
    }, { caller });
    return this.finish<PreallocateResult>(call);
  }

  /** Empties one partition back to base and deregisters it. */
  async drainPartition(requestId: string, sku: string, partitionId: string, caller: Caller = NO_CALLER): Promise<DrainResult> {
    const call: AdminCall = { requestId, method: 'DrainPartition', fingerprint: `${sku}|${partitionId}`, caller };
    const replay = await this.replay<DrainResult>(call);
    if (replay) return replay;
    const target = (await this.views.known(sku)).find((p) => p.partitionId === partitionId);
    if (!target) throw new DomainError('PARTITION_NOT_FOUND', `sku ${sku} has no partition ${partitionId}`, sku);
    await transaction(this.pool, async (conn) => {
      if (!(await this.claim(conn, call))) return;
      await openIntent(conn, requestId, 'drain', sku, { partition: piece({ ...target, units: 0 }) } satisfies DrainPayload);
    }, { caller });
    return this.finish<DrainResult>(call);
  }

  /**
   * Reshapes a SKU's pool to `target` units over `count` partitions on `nodes`: new partitions are
   * carved and the old ones drained. When base already holds the target, the new partitions go
   * live before the old ones drain, so Reserves never find the SKU without partitions.
   */
  async rebalance(requestId: string, sku: string, target: number, count: number, nodes: readonly string[], caller: Caller = NO_CALLER): Promise<RebalanceResult> {
    const call: AdminCall = { requestId, method: 'Rebalance', fingerprint: `${sku}|${target}|${count}|${nodes.join(',')}`, caller };
    const replay = await this.replay<RebalanceResult>(call);
    if (replay) return replay;
    for (const node of nodes) {
      // In Redis Cluster mode the nodes are the masters serving slots now.
      if (!this.gateway.shards.nodes().includes(node)) {
        const what = this.gateway.shards.cluster ? 'a master of the Redis cluster (REDIS_CLUSTER)' : 'a configured Redis node (REDIS_NODES)';
        throw new DomainError('UNKNOWN_NODE', `${node} is not ${what}`);
      }
    }
    const before = await this.views.list(sku, false);
    const live = before.filter((p) => p.state === 'live');
    const partitions = target === 0 ? 0 : count || Math.max(1, live.length);
    await transaction(this.pool, async (conn) => {
      if (!(await this.claim(conn, call))) return;
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
    }, { caller });
    return this.finish<RebalanceResult>(call);
  }

  /** Partitions with their live avail and state read from Redis; ended ones only when asked. */
  async listPartitions(sku?: string, includeEnded = false, caller: Caller = NO_CALLER): Promise<PartitionView[]> {
    stayForCaller(caller, 'ListPartitions');
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
    call: AdminCall,
    sku: string,
    reason: string,
    perUserLimit: number | undefined,
    delta: (row: StockRow) => number,
  ): Promise<StockChangeResult> {
    const { requestId, caller } = call;
    const replay = await this.replay<StockChangeResult>(call);
    if (replay) return replay;
    // The SKU must be known to every server before anything can be sold of it.
    const limit = perUserLimit ?? (await this.registry.getSku(sku))?.perUserLimit ?? 0;
    stayForCaller(caller, `${call.method} ${requestId}`);
    await this.registry.putSku(sku, { perUserLimit: limit });
    const result = await transaction(this.pool, async (conn): Promise<StockChangeResult | 'shrink' | undefined> => {
      if (!(await this.claim(conn, call))) return undefined;
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
    }, { caller });
    if (result === 'shrink') return this.finish<StockChangeResult>(call);
    return result ?? ((await this.replay<StockChangeResult>(call)) as StockChangeResult);
  }

  /** Finishes an intent if it is still open (a stock message's pool shrink, resumed by its redelivery). */
  finishIntent(intentId: string): Promise<void> {
    return this.steps.finish(intentId);
  }

  /**
   * The stored answer of a request seen before, finishing its intent first when it is still in
   * progress; undefined for a new one. Nothing is started for a caller that has gone.
   */
  private replay<T>(call: AdminCall): Promise<T | undefined> {
    stayForCaller(call.caller, `${call.method} ${call.requestId}`);
    return this.requests.replay<T>(call.requestId, call.method, call.fingerprint, (id) => this.finishFor(call, id));
  }

  private claim(conn: PoolConnection, call: AdminCall): Promise<boolean> {
    return this.requests.claim(conn, call.requestId, call.method, call.fingerprint);
  }

  /** Finishes the request's intent and answers what it stored. */
  private async finish<T>(call: AdminCall): Promise<T> {
    await this.finishFor(call, call.requestId);
    return this.requests.stored<T>(call.requestId, false);
  }

  /** Runs an intent's steps for a caller; cut, it says that the rest is left to a replay or the recovery worker. */
  private async finishFor(call: AdminCall, intentId: string): Promise<void> {
    try {
      await this.steps.finish(intentId, call.caller);
    } catch (err) {
      if (!isCut(err)) throw err;
      throw new DomainError(
        err.kind,
        `${err.message}; ${call.method} ${call.requestId} is recorded and its remaining steps are left to a retry with the same request_id or to the recovery worker`,
      );
    }
  }
}

/** One admin call that changes something: its idempotency key and the caller it works for. */
interface AdminCall {
  readonly requestId: string;
  readonly method: string;
  readonly fingerprint: string;
  readonly caller: Caller;
}
