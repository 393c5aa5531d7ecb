import { Caller, NO_CALLER, callerGone, isCut, pause, stayForCaller } from '../kernel/caller';
import { DependencyUnavailable } from '../kernel/dependency';
import { Logger } from '../kernel/logger';
import { DomainError } from '../kernel/errors';
import { takerOf } from './attempts';
import { HoldCode, RetireCode, TakeCode } from './codes';
import { Coalescer } from './coalesce';
import { DirectoryPartition, PartitionDeregistrar, PartitionDirectory } from './directory';
import { DocPiece, OrderDoc, OrderFields, PieceTuple, oneItemDoc, oneItemReservation, storedShortages, toReservation } from './doc';
import { BeginResult, MaybeForgotten, PartitionRef, RedisGateway } from './gateway';
import { OrderReader, rolledBack } from './orders';
import { RECOVERY_RELEASE, Releases } from './releases';
import { LineItem, ReservationOptions, ReserveInput, ReserveResult, Shortage, TopUpRequester } from './types';

/**
 * The release id of a Reserve giving back what it took before answering REJECTED. Release ids the
 * server uses itself start with '#', which callers' ids cannot (releases.ts has the others).
 */
export const ABORT_RELEASE = '#abort';

/** What one item got from its partitions during a Reserve; `cut`: time ran out with partitions left untried. */
interface ItemTake {
  readonly pieces: DocPiece[];
  readonly short: number;
  readonly cut: boolean;
  /** Partitions of the SKU left untried because their node is down: a shortage is then not real. */
  readonly unreachable?: number;
}

/**
 * One call's run of Reserve: the order id, the caller, and the give-up time, min(the caller's
 * deadline, now + RESERVE_TIMEOUT_MS). An attempt sends no script after it, which is what lets a
 * retry roll the attempt back once it has passed (its `until` in Redis).
 */
interface Run {
  readonly orderId: string;
  readonly caller: Caller;
  readonly giveUpAt: number;
}

/** A run with the attempt it opened: its number and its name in the takes and user hashes. */
interface Attempt extends Run {
  readonly number: number;
  readonly taker: string;
}

/** How many times one call starts an order over after finding its earlier attempt rolled back. */
const MAX_RESTARTS = 3;

/**
 * Reserve on Redis partitions. Redis is the gate (one atomic Lua call per partition take,
 * idempotent so a resent script changes nothing); the registry cache decides where to go without a
 * network round trip. A Reserve is:
 *
 *   begin (order shard: idempotency, PENDING + plan) → per-user holds → takes (partition shards,
 *   items in parallel) → commit RESERVED, or give back what was taken and commit REJECTED.
 *
 * A one-item order with no per-user limit whose SKU has a partition in the order's own shard does
 * all of that in one script (order-reserve), and only falls back to the steps above when that
 * partition cannot give the whole quantity.
 *
 * An attempt that fails half way (a dependency) or runs out of time rolls itself back at once (the
 * recovery worker's rollback: its plan given back, tombstones that stop its own late takes) and
 * answers UNAVAILABLE or DEADLINE_EXCEEDED; a shortage is only remembered (REJECTED) when every
 * partition was tried and base had nothing. A retry with the same order id then starts over as the
 * order's next attempt (attempts.ts). A process that dies in between leaves a PENDING attempt with
 * its plan and its give-up time: a retry waits for it until then at most and then rolls it back on
 * the spot; without a retry, the recovery worker does after the grace period.
 *
 * A Redis node that is down (RedisShards.reachable) is routed around: partitions on the other nodes
 * are chosen, a top-up carves new ones there from base, and an order whose own record lives on the
 * dead node fails fast with UNAVAILABLE (its record cannot be elsewhere: retries must find it). A
 * shortage while some of the SKU's partitions could not be asked is not a shortage: UNAVAILABLE,
 * never a remembered REJECTED.
 */
export class Reserver {
  private readonly removing = new Set<string>();
  private readonly duplicates = new Coalescer<ReserveResult>();
  private topUp: TopUpRequester | undefined;

  constructor(
    private readonly gateway: RedisGateway,
    private readonly directory: PartitionDirectory,
    private readonly deregistrar: PartitionDeregistrar,
    private readonly orders: OrderReader,
    private readonly releases: Releases,
    private readonly options: ReservationOptions,
    private readonly logger: Logger,
  ) {}

  /** Lets Reserve wait for a top-up from base instead of answering out of stock (set once at wiring). */
  useTopUp(topUp: TopUpRequester): void {
    this.topUp = topUp;
  }

  /**
   * Duplicates of a Reserve in flight in this process (same order id and request) share one: a
   * client retrying in a loop, or a storm of double clicks, costs one Redis call per round trip
   * instead of one per call. Exactly one of them is answered as the original, the rest as replays.
   * Duplicates that join one run share its caller (the first of them): its deadline and cancellation.
   */
  reserve(input: ReserveInput, caller: Caller = NO_CALLER): Promise<ReserveResult> {
    const ttlSeconds = input.ttlSeconds || this.options.defaultTtlSeconds;
    const fp = fingerprint(input.items, input.userId, ttlSeconds);
    return this.duplicates.run(
      `${input.orderId}\n${fp}`,
      () => this.reserveOnce(input, fp, ttlSeconds, caller),
      asReplay,
    );
  }

  private reserveOnce(input: ReserveInput, fp: string, ttlSeconds: number, caller: Caller): Promise<ReserveResult> {
    const run: Run = { orderId: input.orderId, caller, giveUpAt: Math.min(caller.deadline, Date.now() + this.options.reserveTimeoutMs) };
    const gone = callerGone(caller, reserveOf(input.orderId));
    if (gone) return Promise.reject(gone);
    if (input.items.length === 1) {
      // The flash-sale order: one item, no per-user limit. One script when the SKU has a partition
      // in the order's own shard (reserveHere) or has sold out (rejectSoldOut).
      const item = input.items[0];
      const sku = this.directory.sku(item.sku);
      if (sku && !(input.userId && sku.perUserLimit > 0)) {
        const orderShard = this.gateway.shards.keys.orderShard(input.orderId);
        const first = pickPartition(this.directory.partitions(item.sku), orderShard, this.reachable);
        if (first === undefined) return this.rejectSoldOut(input, fp, ttlSeconds, run);
        if (!this.reachable(first)) return this.reserveAroundDownNodes(input, fp, ttlSeconds, run, first);
        if (first.shard === orderShard) return this.reserveHere(input, fp, ttlSeconds, first, run);
        return this.reserveGeneral(input, fp, ttlSeconds, run, 0, first);
      }
    }
    return this.reserveGeneral(input, fp, ttlSeconds, run, 0);
  }

  /**
   * Gate, take and commit as one atomic Redis call, from a partition in the order's own shard.
   * When that partition cannot give the whole quantity nothing was written: the general path
   * carries on, that partition first.
   */
  private async reserveHere(
    input: ReserveInput,
    fp: string,
    ttlSeconds: number,
    first: DirectoryPartition,
    run: Run,
  ): Promise<ReserveResult> {
    const { orderId, userId } = input;
    const item = input.items[0];
    const doc = oneItemDoc(item.sku, item.quantity, userId, first);
    const here = await this.gated(orderId, fp, (asked) => this.gateway.reserveHere(orderId, fp, first, item.quantity, doc, ttlSeconds, asked));
    if (here.kind === 'reserved') {
      if (here.availAfter === 0) this.retire(first);
      return { outcome: 'RESERVED', reservation: oneItemReservation(orderId, item, userId, first, here.created, here.expires), replayed: false };
    }
    if (here.kind === 'exists') return this.answerExisting(input, fp, ttlSeconds, here, run, 0);
    return this.reserveGeneral(input, fp, ttlSeconds, run, 0, first);
  }

  /**
   * No live partition: unless a top-up from base brings some (then the general path takes from
   * them), the SKU is sold out, and the gate and the REJECTED record are one call, with nothing
   * PENDING in between since nothing is taken.
   */
  private async rejectSoldOut(input: ReserveInput, fp: string, ttlSeconds: number, run: Run): Promise<ReserveResult> {
    const { orderId } = input;
    const item = input.items[0];
    if (await this.topUp?.request(item.sku, run.giveUpAt, true, run.caller)) return this.reserveGeneral(input, fp, ttlSeconds, run, 0);
    // A top-up wait that ran out of time found no shortage: nothing is written, nothing remembered.
    stayForCaller(run.caller, reserveOf(orderId), run.giveUpAt);
    const shortages: Shortage[] = [{ sku: item.sku, reason: 'OUT_OF_STOCK', requested: item.quantity, available: 0 }];
    const rejected = await this.gated(orderId, fp, (asked) => this.gateway.reject(orderId, fp, JSON.stringify(shortages), asked));
    if (rejected.kind === 'new') return { outcome: 'REJECTED', shortages, replayed: false };
    return this.answerExisting(input, fp, ttlSeconds, rejected, run, 0);
  }

  /**
   * Every partition of a one-item order's SKU is on a node that is down: a top-up carves new ones
   * from base onto nodes that answer and the general path sells from them. With nothing to carve,
   * the node is tried all the same: "down" may be a connection being made again (the call waits
   * for it, up to the command timeout), and a node whose breaker is open fails at once. Either way
   * its units are not sold out, only out of reach: UNAVAILABLE, nothing recorded.
   */
  private async reserveAroundDownNodes(input: ReserveInput, fp: string, ttlSeconds: number, run: Run, first: DirectoryPartition): Promise<ReserveResult> {
    if (await this.topUp?.request(input.items[0].sku, run.giveUpAt, true, run.caller)) return this.reserveGeneral(input, fp, ttlSeconds, run, 0);
    stayForCaller(run.caller, reserveOf(input.orderId), run.giveUpAt);
    if (first.shard === this.gateway.shards.keys.orderShard(input.orderId)) return this.reserveHere(input, fp, ttlSeconds, first, run);
    return this.reserveGeneral(input, fp, ttlSeconds, run, 0, first);
  }

  /**
   * A gate script (order-reserve, order-reject, order-begin) with the archive asked when the order
   * id may have lived before (in the filter of forgotten ids, allocator/forgotten.ts): an archived
   * order is answered as the order that exists; one the archive does not have (the filter's false
   * positive) is gated again without the filter. Only such ids wait for MySQL.
   */
  private async gated<R extends { kind: string }>(
    orderId: string,
    fp: string,
    gate: (archiveAsked: boolean) => Promise<R | MaybeForgotten>,
  ): Promise<Exclude<R, MaybeForgotten> | Extract<BeginResult, { kind: 'exists' }>> {
    const first = await gate(false);
    if (first.kind !== 'maybe-forgotten') return first as Exclude<R, MaybeForgotten>;
    const fields = await this.orders.archived(orderId);
    if (fields) return { kind: 'exists', sameRequest: fields.fp === fp, fields, archived: true };
    return (await gate(true)) as Exclude<R, MaybeForgotten>;
  }

  /**
   * A Reserve of an order id that exists: if it asks the same, its replay, after waiting for an
   * attempt still in flight (and rolling it back once past its give-up time); an attempt that was
   * rolled back is started over (`restarts` so far in this call).
   */
  private async answerExisting(
    input: ReserveInput,
    fp: string,
    ttlSeconds: number,
    existing: Extract<BeginResult, { kind: 'exists' }>,
    run: Run,
    restarts: number,
  ): Promise<ReserveResult> {
    const { orderId } = input;
    if (existing.archived) return this.replayOfArchived(input, existing);
    if (!existing.sameRequest && !sameRestoredOrder(existing.fields, input.items)) {
      throw new DomainError(
        'IDEMPOTENCY_KEY_REUSED',
        `order ${orderId} was already reserved with different items, user or ttl; use a new order id`,
      );
    }
    let fields = existing.fields;
    if (fields.state === 'PENDING') fields = await this.settledOrRolledBack(run);
    if (fields.state === 'REJECTED' && storedShortages(fields) === 'RECOVERED') {
      if (restarts >= MAX_RESTARTS) throw new DomainError('IN_PROGRESS', `order ${orderId} keeps being rolled back by other calls; retry`);
      // Its rollback must be applied everywhere before the next attempt opens (order-begin); a
      // process that recorded it may have died before applying it: finish it (idempotent).
      await this.releases.reapplyRelease(orderId, RECOVERY_RELEASE);
      return this.reserveGeneral(input, fp, ttlSeconds, run, restarts + 1);
    }
    return this.replayOf(orderId, fields);
  }

  /**
   * Waits for the order's attempt in flight (on this or another server) to settle, within this
   * call's own time; rolls it back on the spot once its give-up time has passed (it sends nothing
   * after that, and its late scripts meet tombstones). Answers the settled (or rolled-back) order.
   */
  private async settledOrRolledBack(run: Run): Promise<OrderFields> {
    const { orderId, caller, giveUpAt } = run;
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      const fields = await this.orders.requireOrder(orderId);
      if (fields.state !== 'PENDING') return fields;
      // `until` is on the Redis clock; the script judges, this only saves calls that cannot be due.
      if (fields.until !== undefined && Number(fields.until) <= Date.now()) {
        if ((await this.releases.rollBack(orderId, 'lapsed')) !== 'kept') continue;
      }
      stayForCaller(caller, `order ${orderId} is still being reserved by an earlier call; retry with the same order id`, giveUpAt);
      await pause(Math.min(wait, giveUpAt - Date.now()), caller);
    }
  }

  /**
   * Any order: begin (PENDING with a plan), per-user holds, takes (items in parallel, each from its
   * first partition, then the others), commit RESERVED, or give back and commit REJECTED.
   * `preferred` is the first partition of a one-item order's item when the caller chose it.
   */
  private async reserveGeneral(
    input: ReserveInput,
    fp: string,
    ttlSeconds: number,
    run: Run,
    restarts: number,
    preferred?: DirectoryPartition,
  ): Promise<ReserveResult> {
    const { orderId, items, userId } = input;
    const orderShard = this.gateway.shards.keys.orderShard(orderId);

    const limits: Record<string, number> = {};
    const plan: PieceTuple[] = [];
    const firsts: Array<DirectoryPartition | undefined> = [];
    items.forEach((item, i) => {
      const sku = this.directory.sku(item.sku);
      if (!sku) throw new DomainError('UNKNOWN_SKU', `sku ${item.sku} is not known to the inventory`, item.sku);
      if (userId && sku.perUserLimit > 0) limits[item.sku] = sku.perUserLimit;
      const first = i === 0 && preferred ? preferred : pickPartition(this.directory.partitions(item.sku), orderShard, this.reachable);
      firsts.push(first);
      if (first) plan.push([item.sku, first.partitionId, first.shard, first.epoch, item.quantity]);
    });

    const doc: OrderDoc = {
      items: items.map((i) => ({ sku: i.sku, qty: i.quantity, rel: 0, pieces: [] })),
      user: userId,
      limits,
      releases: {},
    };
    stayForCaller(run.caller, reserveOf(orderId), run.giveUpAt);
    const begun = await this.gated(orderId, fp, (asked) => this.gateway.begin(orderId, fp, plan, JSON.stringify(doc), ttlSeconds, run.giveUpAt - Date.now(), asked));
    if (begun.kind === 'exists') return this.answerExisting(input, fp, ttlSeconds, begun, run, restarts);
    const attempt = { ...run, number: begun.attempt, taker: takerOf(orderId, begun.attempt) };

    const held: Array<{ sku: string; units: number }> = [];
    const taken: Array<{ ref: PartitionRef; units: number }> = [];
    const emptied: DirectoryPartition[] = [];
    try {
      const shortages = await this.holdAllowances(attempt, items, userId, limits, held);
      if (shortages.length === 0) {
        const used = new Set<string>();
        const results = await Promise.all(items.map((item, i) => this.takeItem(attempt, item, firsts[i], emptied, used)));
        // Short items wait for a top-up from base (within the deadline) and try once more.
        await Promise.all(
          results.map(async (result, i) => {
            if (result.short === 0 || result.cut || !this.topUp) return;
            if (!(await this.topUp.request(items[i].sku, run.giveUpAt, true, run.caller))) {
              // A wait that ran out of time is not a shortage.
              if (callerGone(run.caller, '', run.giveUpAt)) results[i] = { ...result, cut: true };
              return;
            }
            const more = await this.takeItem(attempt, { sku: items[i].sku, quantity: result.short }, undefined, emptied, used);
            results[i] = { pieces: [...result.pieces, ...more.pieces], short: more.short, cut: more.cut, unreachable: (result.unreachable ?? 0) + (more.unreachable ?? 0) };
          }),
        );
        // Short while partitions were out of reach: not a shortage (the catch below gives back).
        results.forEach((result, i) => {
          if (result.short > 0 && result.unreachable) throw unreachableStock(items[i].sku);
        });
        results.forEach((result, i) => {
          for (const piece of result.pieces) {
            taken.push({ ref: { sku: items[i].sku, partitionId: piece.p, shard: piece.s, epoch: piece.e }, units: piece.q });
          }
          doc.items[i].pieces = result.pieces;
          if (result.short > 0) {
            shortages.push({ sku: items[i].sku, reason: 'OUT_OF_STOCK', requested: items[i].quantity, available: items[i].quantity - result.short });
          }
        });
        // Partitions left untried when time ran out: not a shortage, nothing to remember.
        if (results.some((r) => r.cut)) throw cutError(run);
      }
      if (shortages.length > 0) {
        await this.giveBack(attempt, userId, taken, held);
        await this.closeReserve(attempt, 'REJECTED', JSON.stringify(shortages));
        return { outcome: 'REJECTED', shortages, replayed: false };
      }
      stayForCaller(run.caller, reserveOf(orderId), run.giveUpAt);
      const expiresAt = await this.closeReserve(attempt, 'RESERVED', JSON.stringify(doc));
      // Everything the answer needs is known here: no read back.
      return { outcome: 'RESERVED', reservation: toReservation(orderId, { state: 'RESERVED', created: String(begun.created), expires: String(expiresAt) }, doc), replayed: false };
    } catch (err) {
      if (!(err instanceof DomainError) || isCut(err)) {
        // A dependency failed, or time ran out, half way: roll this attempt back now (the recovery
        // worker's rollback, with its tombstones), so that a retry with the same order id starts
        // over at once. If that fails too, a retry rolls it back once its give-up time has passed,
        // or the recovery worker after the grace period.
        await this.releases
          .rollBack(orderId, attempt.number)
          .catch((e) => this.logger.warn({ err: e, orderId }, 'could not roll back a failed Reserve attempt; a retry or the recovery worker will'));
      }
      throw err;
    } finally {
      // After give-backs, so that a cart returning its units keeps the partition selling.
      for (const partition of emptied) this.retire(partition);
    }
  }

  /** Holds each limited SKU against the buyer's allowance; returns the shortages (USER_LIMIT). */
  private async holdAllowances(
    attempt: Attempt,
    items: readonly LineItem[],
    userId: string,
    limits: Record<string, number>,
    held: Array<{ sku: string; units: number }>,
  ): Promise<Shortage[]> {
    const limited = items.filter((i) => limits[i.sku]);
    if (limited.length === 0) return [];
    stayForCaller(attempt.caller, reserveOf(attempt.orderId), attempt.giveUpAt);
    const results = await Promise.all(limited.map((i) => this.gateway.hold(userId, i.sku, attempt.taker, i.quantity, limits[i.sku])));
    const shortages: Shortage[] = [];
    results.forEach((r, k) => {
      const item = limited[k];
      if (r.code === HoldCode.Held || r.code === HoldCode.AlreadyHeld) held.push({ sku: item.sku, units: r.units });
      else if (r.code === HoldCode.Closed) throw rolledBack(attempt.orderId);
      else shortages.push({ sku: item.sku, reason: 'USER_LIMIT', requested: item.quantity, available: r.units });
    });
    return shortages;
  }

  /**
   * Takes one item's quantity: from its planned partition first, then — only if that one is short
   * or gone — from the SKU's other live partitions, after adding them to the plan. Starts no take
   * once the attempt's time is up (`cut`: partitions were left untried).
   */
  private async takeItem(
    attempt: Attempt,
    item: LineItem,
    first: DirectoryPartition | undefined,
    emptied: DirectoryPartition[],
    used: Set<string>,
  ): Promise<ItemTake> {
    const pieces: DocPiece[] = [];
    let need = item.quantity;
    let unreachable = 0;
    // Down: counted with the untried below, as it is not marked used.
    if (first && !this.reachable(first)) first = undefined;
    if (first) {
      if (callerGone(attempt.caller, '', attempt.giveUpAt)) return { pieces, short: need, cut: true };
      used.add(first.partitionId);
      need -= await this.takeFrom(attempt, first, need, pieces, emptied);
    }
    if (need === 0) return { pieces, short: 0, cut: false };

    // A partition this order already took from is never asked again: its take would answer the
    // earlier units (idempotency), not new ones.
    const untried = this.directory.partitions(item.sku).filter((p) => !used.has(p.partitionId));
    const others = untried.filter(this.reachable);
    unreachable += untried.length - others.length;
    for (const p of others) used.add(p.partitionId);
    if (others.length === 0) return { pieces, short: need, cut: false, unreachable };
    if (callerGone(attempt.caller, '', attempt.giveUpAt)) return { pieces, short: need, cut: true };
    const added = await this.gateway.extendPlan(
      attempt.orderId,
      attempt.number,
      others.map((p): PieceTuple => [item.sku, p.partitionId, p.shard, p.epoch, item.quantity]),
    );
    if (!added) throw rolledBack(attempt.orderId);
    for (const partition of rotate(others)) {
      if (need === 0) break;
      if (callerGone(attempt.caller, '', attempt.giveUpAt)) return { pieces, short: need, cut: true };
      // Found empty by another call while this one went down the list (at a sell-out, every
      // partition in turn): skip it instead of a round trip that can only answer short.
      if (this.removing.has(retireKey(partition)) || !this.directory.partitions(item.sku).includes(partition)) continue;
      need -= await this.takeFrom(attempt, partition, need, pieces, emptied);
    }
    return { pieces, short: need, cut: false, unreachable };
  }

  /** Whether a partition's node takes calls now (not down, breaker not open). */
  private readonly reachable = (p: PartitionRef): boolean => this.gateway.shards.reachable(p.shard);

  /** One take from one partition; returns the units taken and records the piece. */
  private async takeFrom(
    attempt: Attempt,
    partition: DirectoryPartition,
    need: number,
    pieces: DocPiece[],
    emptied: DirectoryPartition[],
  ): Promise<number> {
    const result = await this.gateway.take(partition, attempt.orderId, need, 1, attempt.taker);
    switch (result.code) {
      case TakeCode.Taken:
      case TakeCode.AlreadyTaken:
        pieces.push({ p: partition.partitionId, s: partition.shard, e: partition.epoch, q: result.units, r: 0 });
        if (result.availAfter === 0) emptied.push(partition);
        return result.units;
      case TakeCode.Short:
        if (result.availAfter === 0) emptied.push(partition);
        return 0;
      case TakeCode.NotLive:
        emptied.push(partition);
        return 0;
      case TakeCode.Closed:
        throw rolledBack(attempt.orderId);
      default:
        return 0;
    }
  }

  /**
   * Retires a partition found empty, if it still is, then stops routing to it here at once and
   * removes it from the registry for every server (conditional on its epoch). Once per partition
   * at a time on this server; never delays an answer.
   */
  private retire(partition: DirectoryPartition): void {
    const key = retireKey(partition);
    if (this.removing.has(key)) return;
    this.removing.add(key);
    this.gateway
      .retire(partition)
      .then(async (outcome) => {
        if (outcome === RetireCode.Kept) return;
        this.directory.forget(partition.sku, partition.partitionId);
        await this.deregistrar.removePartition(partition.sku, partition.partitionId, partition.epoch);
        // The pool just shrank: carve more from base if it is running low.
        void this.topUp?.request(partition.sku, Date.now() + this.options.reserveTimeoutMs).catch(() => false);
      })
      .catch((err) => this.logger.warn({ err, partition: key }, 'could not retire an empty partition; retried on the next empty take'))
      .finally(() => this.removing.delete(key));
  }

  private async giveBack(
    attempt: Attempt,
    userId: string,
    taken: Array<{ ref: PartitionRef; units: number }>,
    held: Array<{ sku: string; units: number }>,
  ): Promise<void> {
    await Promise.all([
      ...taken.map((t) => this.gateway.untake(t.ref, attempt.orderId, t.units, ABORT_RELEASE, 'reserved', 'ABORT', attempt.taker)),
      ...held.map((h) => this.gateway.unhold(userId, h.sku, attempt.taker, h.units, ABORT_RELEASE)),
    ]);
  }

  /** Commits the attempt's outcome; returns the hold's expiry. */
  private async closeReserve(attempt: Attempt, outcome: 'RESERVED' | 'REJECTED', payload: string): Promise<number> {
    const expiresAt = await this.gateway.commit(attempt.orderId, attempt.number, outcome, payload);
    if (expiresAt === undefined) throw rolledBack(attempt.orderId);
    return expiresAt;
  }

  /**
   * A Reserve of an order whose record Redis forgot and MySQL archived: the same request is a late
   * retry and gets the first answer, nothing taken; anything else reuses the id, and so does a
   * retry of an attempt rolled back that long ago (starting it over would meet its old records in
   * the ledger). Order ids are never reused.
   */
  private replayOfArchived(input: ReserveInput, existing: Extract<BeginResult, { kind: 'exists' }>): ReserveResult {
    const { orderId } = input;
    const { fields } = existing;
    const ended = new Date(Number(fields.ended || fields.confirmed || fields.created)).toISOString();
    const same = existing.sameRequest || sameRestoredOrder(fields, input.items);
    if (!same || (fields.state === 'REJECTED' && storedShortages(fields) === 'RECOVERED')) {
      throw new DomainError(
        'IDEMPOTENCY_KEY_REUSED',
        `order id ${orderId} belongs to an order that ended at ${ended} (${same ? 'its Reserve was rolled back' : fields.state}); its record is archived and order ids are never reused: use a new order id`,
      );
    }
    return this.replayOf(orderId, fields);
  }

  /** The replay of a settled order (not PENDING, not rolled back). */
  private replayOf(orderId: string, fields: OrderFields): ReserveResult {
    if (fields.state === 'REJECTED') {
      const shortages = storedShortages(fields);
      if (shortages === 'RECOVERED') throw rolledBack(orderId);
      return { outcome: 'REJECTED', shortages, replayed: true };
    }
    return { outcome: 'RESERVED', reservation: toReservation(orderId, fields), replayed: true };
  }
}

/** How a Reserve names itself in the errors that cut it. */
function reserveOf(orderId: string): string {
  return `the Reserve of order ${orderId} holds nothing; retry with the same order id`;
}

/** The error of a run whose time ran out (or whose caller went) with partitions left untried. */
function cutError(run: Run): DomainError {
  return callerGone(run.caller, reserveOf(run.orderId), run.giveUpAt) ?? new DomainError('DEADLINE_EXCEEDED', `${reserveOf(run.orderId)}: ran out of time`);
}

/** The answer a duplicate of a Reserve in flight gets: the original's, as a replay. */
function asReplay(answer: ReserveResult): ReserveResult {
  return answer.replayed ? answer : { ...answer, replayed: true };
}

/** Identifies what a Reserve asked for: items in SKU order, buyer and TTL. */
export function fingerprint(items: readonly LineItem[], userId: string, ttlSeconds: number): string {
  return `${userId}|${ttlSeconds}${itemsFingerprint(items)}`;
}

/**
 * The items part of a fingerprint: all an order restored from MySQL can be matched on (the ledger
 * knows what an order took, not its buyer or ttl), kept in its `items` field.
 */
export function itemsFingerprint(items: readonly LineItem[]): string {
  const sorted = items.length === 1 ? items : [...items].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
  let text = '';
  for (let i = 0; i < sorted.length; i++) text += `|${sorted[i].sku}*${sorted[i].quantity}`;
  return text;
}

/** An order restored from MySQL after its Redis node lost it, asked for again with the items it took. */
function sameRestoredOrder(fields: OrderFields, items: readonly LineItem[]): boolean {
  return fields.restored === '1' && fields.items === itemsFingerprint(items);
}

/**
 * A random live partition in the order's own shard when the SKU has one (a one-item Reserve is then
 * a single Redis call), otherwise a random one: spreads buyers over partitions, and so over nodes.
 * Partitions on reachable nodes first; one on a node that is down only when there is no other.
 */
export function pickPartition(
  partitions: readonly DirectoryPartition[],
  shard: number,
  reachable: (p: DirectoryPartition) => boolean,
): DirectoryPartition | undefined {
  let local = 0;
  let up = 0;
  for (let i = 0; i < partitions.length; i++) {
    if (!reachable(partitions[i])) continue;
    up++;
    if (partitions[i].shard === shard) local++;
  }
  if (up === 0) return partitions.length === 0 ? undefined : partitions[Math.floor(Math.random() * partitions.length)];
  const inShard = local > 0;
  let k = Math.floor(Math.random() * (inShard ? local : up));
  for (let i = 0; i < partitions.length; i++) {
    const p = partitions[i];
    if (reachable(p) && (!inShard || p.shard === shard) && k-- === 0) return p;
  }
  return undefined;
}

/** A shortage that is not one: the SKU's other units are on a node that is down. */
function unreachableStock(sku: string, node?: string): DependencyUnavailable {
  return new DependencyUnavailable('redis', node, `partitions of sku ${sku} are on a node that is down; its units are out of reach, not sold out`);
}

/** A partition being retired on this server, by epoch. */
function retireKey(partition: DirectoryPartition): string {
  return `${partition.sku}/${partition.partitionId}/${partition.epoch}`;
}

/** The same partitions from a random starting point, so fallbacks do not all pile on the first. */
function rotate<T>(list: readonly T[]): T[] {
  const start = Math.floor(Math.random() * list.length);
  return [...list.slice(start), ...list.slice(0, start)];
}
