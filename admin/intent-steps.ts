import type { Pool, PoolConnection } from 'mysql2/promise';
import { RedisGateway } from '../allocator/gateway';
import { WithdrawCode } from '../allocator/codes';
import { PartitionCreator, splitShare } from '../allocator/partitions';
import { Caller, NO_CALLER, stayForCaller } from '../kernel/caller';
import { eventId } from '../kernel/events';
import { Logger } from '../kernel/logger';
import { Intent, closeIntent, readIntent, staleIntents, updateIntent } from '../store/intents';
import { applyMovement, transaction } from '../store/mysql';
import { insertPartitions, listPartitionRows, markCreatedLive, setPartitionState } from '../store/partitions';
import { addShortfall, lockStock } from '../store/stock';
import { settleMessage } from '../store/stock-messages';
import { Withdrawn, adminMovement, drainMovement, partitionRow, toCreated, withdrawnMovement } from './movements';
import { LossPayload } from './stock-changes';
import { PartitionViews } from './partition-views';
import { AdminRequests } from './requests';
import {
  DrainPayload,
  DrainResult,
  OperatorRegistry,
  PlannedPiece,
  PreallocatePayload,
  PreallocateResult,
  RebalancePayload,
  RebalanceResult,
  StockChangeResult,
} from './types';

/**
 * The Redis and etcd half of the operator's work, driven by the intent that its MySQL half opened
 * in the same transaction. Finishing an intent is safe to run again, by the request's replay, by
 * the recovery worker, or by both at once: Redis creates and withdraws by id, etcd registers and
 * removes by epoch, MySQL moves units by ledger event id. The last step stores the request's answer.
 *
 * Run for a call, the steps stop before the next one once the caller has gone (DEADLINE_EXCEEDED or
 * CANCELLED): the intent stays open, and what its finished steps wrote is what a crash there would
 * have left, which the next run (a replay, the recovery worker) goes on from.
 */
export class IntentSteps {
  constructor(
    private readonly pool: Pool,
    private readonly gateway: RedisGateway,
    private readonly creator: PartitionCreator,
    private readonly registry: OperatorRegistry,
    private readonly views: PartitionViews,
    private readonly requests: AdminRequests,
    private readonly logger: Logger,
  ) {}

  /** Completes every intent a dead process left open for longer than `olderThanMs`; how many it finished. */
  async recover(olderThanMs: number): Promise<number> {
    let finished = 0;
    for (const intent of await staleIntents(this.pool, olderThanMs)) {
      try {
        await this.finish(intent.intentId);
        finished++;
      } catch (err) {
        this.logger.warn({ err, intent: intent.intentId }, 'could not finish an open intent; retried later');
      }
    }
    return finished;
  }

  /** Finishes an intent, if it is still open, and stores the answer of its request. */
  async finish(intentId: string, caller: Caller = NO_CALLER): Promise<void> {
    const intent = await readIntent<unknown>(this.pool, intentId);
    if (!intent || intent.state !== 'open') return;
    const run: Run = { caller, what: `the ${intent.kind} of request ${intentId}` };
    switch (intent.kind) {
      case 'preallocate':
        return this.finishPreallocate(intent as Intent<PreallocatePayload>, run);
      case 'drain':
        return this.finishDrain(intent as Intent<DrainPayload>, run);
      case 'rebalance':
        return this.finishRebalance(intent as Intent<RebalancePayload>, run);
      case 'loss':
        return this.finishLoss(intent as Intent<LossPayload>, run);
      default:
        this.logger.error({ intent: intentId, kind: intent.kind }, 'unknown intent kind');
    }
  }

  private async finishPreallocate(intent: Intent<PreallocatePayload>, run: Run): Promise<void> {
    const created = intent.payload.partitions.map((p) => toCreated(intent.sku, p));
    stayFor(run);
    await this.creator.materialize(created);
    await this.transaction(run, async (conn) => {
      await markCreatedLive(conn, created.map((p) => p.partitionId));
      await this.close(conn, intent, {
        partitions: await this.views.of(intent.sku, created.map((p) => p.partitionId)),
        stock: await lockStock(conn, intent.sku),
        replayed: false,
      } satisfies PreallocateResult);
    });
  }

  private async finishDrain(intent: Intent<DrainPayload>, run: Run): Promise<void> {
    const target = intent.payload.partition;
    const drained = await this.drainOne(intent.sku, target, run);
    await this.transaction(run, async (conn) => {
      if (drained.units > 0) await applyMovement(conn, drainMovement(intent.sku, target.partitionId, drained));
      const [view] = await this.views.of(intent.sku, [target.partitionId]);
      if (view.state === 'drained') await setPartitionState(conn, [target.partitionId], 'drained');
      await this.close(conn, intent, { returned: drained.units, partition: view, stock: await lockStock(conn, intent.sku), replayed: false } satisfies DrainResult);
    });
  }

  private async finishRebalance(intent: Intent<RebalancePayload>, run: Run): Promise<void> {
    const payload = intent.payload;
    const sku = intent.sku;
    if (!payload.createFirst) {
      await this.drainAll(sku, payload.drain, run);
      if (!payload.carved) await this.settleCarve(intent, run);
    }
    const created = payload.create.map((p) => toCreated(sku, p));
    stayFor(run);
    await this.creator.materialize(created);
    await this.transaction(run, (conn) => markCreatedLive(conn, created.map((p) => p.partitionId)));
    if (payload.createFirst) await this.drainAll(sku, payload.drain, run);
    await this.transaction(run, async (conn) => {
      await this.close(conn, intent, {
        before: payload.before,
        after: await this.views.of(sku, created.map((p) => p.partitionId)),
        stock: await lockStock(conn, sku),
        replayed: false,
      } satisfies RebalanceResult);
    });
  }

  /**
   * The pool's part of a loss: shrinks the SKU's partitions, one after another in a fixed order,
   * each withdrawal straight to `outside` (never through base, where a top-up could carve it again)
   * and idempotent by its event id, so a run after a crash withdraws nothing twice and goes on where
   * the first stopped. Then, in one transaction: the withdrawals applied to MySQL (the same event
   * ids and change numbers as their stream records), what the pool could not cover recorded as a
   * shortfall, the intent closed and its request or message settled.
   */
  private async finishLoss(intent: Intent<LossPayload>, run: Run): Promise<void> {
    const { units, reason, eventBase, messageId } = intent.payload;
    const sku = intent.sku;
    let left = units;
    const shrunk: Array<[string, Withdrawn]> = [];
    const rows = await listPartitionRows(this.pool, sku);
    for (const p of rows) {
      const ref = { sku, partitionId: p.partitionId, shard: p.shard, epoch: p.epoch };
      stayFor(run);
      const res = await this.gateway.withdraw(ref, 'shrink', left, `${eventBase}:${p.partitionId}`, reason, 'outside');
      const withdrawn = res.code === WithdrawCode.NotLive ? 0 : res.units;
      if (withdrawn > 0) shrunk.push([p.partitionId, { units: withdrawn, seq: res.seq, state: res.state }]);
      left -= withdrawn;
      if (left <= 0) break;
    }
    const shortfall = Math.max(0, left);
    // The rest is held by orders and physically gone: their partitions owe it, so releasing those
    // units pays the shortfall off instead of putting units that are gone back on sale.
    let unplaced = shortfall;
    for (const p of unplaced > 0 ? rows : []) {
      stayFor(run);
      unplaced -= await this.gateway.owe({ sku, partitionId: p.partitionId, shard: p.shard, epoch: p.epoch }, unplaced, `${eventBase}:owe:${p.partitionId}`);
      if (unplaced <= 0) break;
    }
    await this.transaction(run, async (conn) => {
      for (const [partitionId, w] of shrunk) {
        await applyMovement(conn, withdrawnMovement(`${eventBase}:${partitionId}`, 'loss', sku, partitionId, w, 'outside', reason));
      }
      if (shortfall > 0) {
        const facts = { beyondBase: units, reason, intentId: intent.intentId, ...(messageId ? { messageId } : {}) };
        await addShortfall(conn, sku, shortfall, `${eventBase}:missing`, eventId('stock.shortfall', intent.intentId), facts);
      }
      await closeIntent(conn, intent.intentId, 'done');
      const detail = `${units - shortfall} units out of the pool${shortfall > 0 ? `, ${shortfall} shortfall` : ''}`;
      if (messageId) await settleMessage(conn, messageId, 'applied', detail);
      else await this.requests.complete(conn, intent.intentId, { stock: await lockStock(conn, sku), shortfall, replayed: false } satisfies StockChangeResult);
    });
    if (shortfall > 0) this.logger.warn({ sku, shortfall, intent: intent.intentId }, 'stock shortfall: a loss exceeded the free units in base and pool');
  }

  /** Carves what base now holds, up to the target, and settles the plan before anything is created. */
  private async settleCarve(intent: Intent<RebalancePayload>, run: Run): Promise<void> {
    const { payload, sku } = intent;
    await this.transaction(run, async (conn) => {
      const row = await lockStock(conn, sku);
      const carve = Math.max(0, Math.min(payload.target, row.base));
      const count = payload.create.length;
      payload.create = payload.create.map((p, i) => ({ ...p, units: splitShare(carve, count, i) })).filter((p) => p.units > 0);
      if (carve > 0) await applyMovement(conn, adminMovement(`rebalance:${intent.intentId}:carve`, 'rebalance', sku, carve, 'base', 'pool'));
      await insertPartitions(conn, payload.create.map((p) => partitionRow(toCreated(sku, p))), 'creating');
      payload.carved = true;
      await updateIntent(conn, intent.intentId, payload);
    });
  }

  /** Drains old partitions and records them in MySQL as Redis left them (drained, or exhausted when they sold out first). */
  private async drainAll(sku: string, old: readonly PlannedPiece[], run: Run): Promise<void> {
    const drained: Array<[PlannedPiece, Withdrawn]> = [];
    for (const p of old) drained.push([p, await this.drainOne(sku, p, run)]);
    await this.transaction(run, async (conn) => {
      for (const [p, withdrawn] of drained.filter(([, w]) => w.units > 0)) await applyMovement(conn, drainMovement(sku, p.partitionId, withdrawn));
      const exhausted = (w: Withdrawn) => w.state === 'exhausted';
      await setPartitionState(conn, drained.filter(([, w]) => exhausted(w)).map(([p]) => p.partitionId), 'exhausted');
      await setPartitionState(conn, drained.filter(([, w]) => !exhausted(w)).map(([p]) => p.partitionId), 'drained');
    });
  }

  /** Withdraws a partition's free units for good and deregisters it; returns the units and their record's seq. */
  private async drainOne(sku: string, p: PlannedPiece, run: Run): Promise<Withdrawn> {
    const ref = { sku, partitionId: p.partitionId, shard: p.shard, epoch: p.epoch };
    stayFor(run);
    const res = await this.gateway.withdraw(ref, 'drain', 0, `drain:${p.partitionId}`, 'operator drain');
    stayFor(run);
    await this.registry.removePartition(sku, p.partitionId, p.epoch);
    return res.code === WithdrawCode.NotLive ? { units: 0, seq: 0, state: res.state } : { units: res.units, seq: res.seq, state: res.state };
  }

  private async close(conn: PoolConnection, intent: Intent<unknown>, answer: unknown): Promise<void> {
    await closeIntent(conn, intent.intentId, 'done');
    await this.requests.complete(conn, intent.intentId, answer);
  }

  /** A step's MySQL transaction, for the run's caller (checked before BEGIN, cut at its deadline). */
  private transaction<T>(run: Run, fn: (conn: PoolConnection) => Promise<T>): Promise<T> {
    return transaction(this.pool, fn, { caller: run.caller });
  }
}

/** One run of an intent's steps: the caller it works for, and what to call the work in an error. */
interface Run {
  readonly caller: Caller;
  readonly what: string;
}

/** The check before a Redis or etcd step. */
function stayFor(run: Run): void {
  stayForCaller(run.caller, run.what);
}
