import { Logger } from '../kernel/logger';
import { HoldCode, OrderCode, TakeCode } from './codes';
import { DirectoryPartition, PartitionDeregistrar, PartitionDirectory } from './directory';
import {
  DocPiece,
  OrderDoc,
  OrderFields,
  PieceTuple,
  ReleaseRecord,
  oneItemDoc,
  oneItemReservation,
  parseDoc,
  parseRelease,
  storedShortages,
  toReservation,
} from './doc';
import { Coalescer } from './coalesce';
import { DomainError } from '../kernel/errors';
import { BeginResult, PartitionRef, RedisGateway } from './gateway';
import { LineItem, ReleaseReason, ReleaseResult, Reservation, ReserveResult, Shortage } from './types';

export interface ReservationOptions {
  /** Lifetime of an unpaid hold when the caller gives none. */
  readonly defaultTtlSeconds: number;
  /** The longest one Reserve works before rolling back. */
  readonly reserveTimeoutMs: number;
  /** A Reserve unanswered this long is a crashed cart: the recovery worker rolls it back. */
  readonly recoveryGraceMs: number;
  /** How long ended reservations stay readable for replays. */
  readonly orderRetentionSeconds: number;
}

export interface ReserveInput {
  readonly orderId: string;
  readonly items: readonly LineItem[];
  /** '' when anonymous. */
  readonly userId: string;
  /** 0 for the default. */
  readonly ttlSeconds: number;
}

/** Release ids the server uses itself; they start with '#', which callers' ids cannot. */
export const ABORT_RELEASE = '#abort';
export const EXPIRE_RELEASE = '#expire';
export const RECOVERY_RELEASE = '#recovery';

/**
 * What a sweep step (expire, recover) did with the order's index entry: `done`, this call expired or
 * rolled back the order; `gone`, nothing to do (another server did it, or the entry was stale); both
 * leave the index. `kept`: not due yet on the Redis clock, the entry stays.
 */
export type SweepOutcome = 'done' | 'gone' | 'kept';

/** What one item got from its partitions during a Reserve. */
interface ItemTake {
  readonly pieces: DocPiece[];
  readonly short: number;
}

/**
 * Reserve, Confirm, Release and reads on Redis partitions. Redis is the gate (one atomic Lua call
 * per partition take, idempotent so a resent script changes nothing); the registry cache decides
 * where to go without a network round trip. A Reserve is:
 *
 *   begin (order shard: idempotency, PENDING + plan) → per-user holds → takes (partition shards,
 *   items in parallel) → commit RESERVED, or give back what was taken and commit REJECTED.
 *
 * A one-item order with no per-user limit whose SKU has a partition in the order's own shard does
 * all of that in one script (order-reserve), and only falls back to the steps above when that
 * partition cannot give the whole quantity.
 *
 * A process that dies in between leaves a PENDING order with its plan; the recovery worker gives
 * back the plan after the grace period, and tombstones stop a late take of the dead attempt.
 */
/** Carves new stock for a SKU from base; resolves true once this server can route to it. */
export interface TopUpRequester {
  request(sku: string, deadline: number, short?: boolean): Promise<boolean>;
}

export class ReservationService {
  private readonly removing = new Set<string>();
  private readonly duplicates = new Coalescer<ReserveResult>();
  private topUp: TopUpRequester | undefined;

  constructor(
    private readonly gateway: RedisGateway,
    private readonly directory: PartitionDirectory,
    private readonly deregistrar: PartitionDeregistrar,
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
   */
  reserve(input: ReserveInput, deadline = Infinity): Promise<ReserveResult> {
    const ttlSeconds = input.ttlSeconds || this.options.defaultTtlSeconds;
    const fp = fingerprint(input.items, input.userId, ttlSeconds);
    return this.duplicates.run(
      `${input.orderId}\n${fp}`,
      () => this.reserveOnce(input, fp, ttlSeconds, deadline),
      asReplay,
    );
  }

  private reserveOnce(input: ReserveInput, fp: string, ttlSeconds: number, deadline: number): Promise<ReserveResult> {
    const giveUpAt = Math.min(deadline, Date.now() + this.options.reserveTimeoutMs);
    if (input.items.length === 1) {
      // The flash-sale order: one item, no per-user limit. One script when the SKU has a partition
      // in the order's own shard (reserveHere) or has sold out (rejectSoldOut).
      const item = input.items[0];
      const sku = this.directory.sku(item.sku);
      if (sku && !(input.userId && sku.perUserLimit > 0)) {
        const orderShard = this.gateway.shards.keys.orderShard(input.orderId);
        const first = pickPartition(this.directory.partitions(item.sku), orderShard);
        if (first === undefined) return this.rejectSoldOut(input, fp, ttlSeconds, giveUpAt);
        if (first.shard === orderShard) return this.reserveHere(input, fp, ttlSeconds, first, giveUpAt);
        return this.reserveGeneral(input, fp, ttlSeconds, giveUpAt, first);
      }
    }
    return this.reserveGeneral(input, fp, ttlSeconds, giveUpAt);
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
    giveUpAt: number,
  ): Promise<ReserveResult> {
    const { orderId, userId } = input;
    const item = input.items[0];
    const doc = oneItemDoc(item.sku, item.quantity, userId, first);
    const here = await this.gateway.reserveHere(orderId, fp, first, item.quantity, doc, ttlSeconds);
    if (here.kind === 'reserved') {
      if (here.availAfter === 0) this.retire(first);
      return { outcome: 'RESERVED', reservation: oneItemReservation(orderId, item, userId, first, here.created, here.expires), replayed: false };
    }
    if (here.kind === 'exists') return this.answerExisting(orderId, here, giveUpAt);
    return this.reserveGeneral(input, fp, ttlSeconds, giveUpAt, first);
  }

  /**
   * No live partition: unless a top-up from base brings some (then the general path takes from
   * them), the SKU is sold out, and the gate and the REJECTED record are one call, with nothing
   * PENDING in between since nothing is taken.
   */
  private async rejectSoldOut(input: ReserveInput, fp: string, ttlSeconds: number, giveUpAt: number): Promise<ReserveResult> {
    const { orderId } = input;
    const item = input.items[0];
    if (await this.topUp?.request(item.sku, giveUpAt, true)) return this.reserveGeneral(input, fp, ttlSeconds, giveUpAt);
    const shortages: Shortage[] = [{ sku: item.sku, reason: 'OUT_OF_STOCK', requested: item.quantity, available: 0 }];
    const rejected = await this.gateway.reject(orderId, fp, JSON.stringify(shortages), this.options.orderRetentionSeconds);
    if (rejected.kind === 'new') return { outcome: 'REJECTED', shortages, replayed: false };
    return this.answerExisting(orderId, rejected, giveUpAt);
  }

  /** A Reserve of an order id that exists: its replay, if it asks the same. */
  private answerExisting(orderId: string, existing: Extract<BeginResult, { kind: 'exists' }>, giveUpAt: number): Promise<ReserveResult> {
    if (!existing.sameRequest) {
      throw new DomainError(
        'IDEMPOTENCY_KEY_REUSED',
        `order ${orderId} was already reserved with different items, user or ttl; use a new order id`,
      );
    }
    return this.replayReserve(orderId, existing.fields, giveUpAt);
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
    giveUpAt: number,
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
      const first = i === 0 && preferred ? preferred : pickPartition(this.directory.partitions(item.sku), orderShard);
      firsts.push(first);
      if (first) plan.push([item.sku, first.partitionId, first.shard, first.epoch, item.quantity]);
    });

    const doc: OrderDoc = {
      items: items.map((i) => ({ sku: i.sku, qty: i.quantity, rel: 0, pieces: [] })),
      user: userId,
      limits,
      releases: {},
    };
    const begun = await this.gateway.begin(orderId, fp, plan, JSON.stringify(doc), ttlSeconds);
    if (begun.kind === 'exists') return this.answerExisting(orderId, begun, giveUpAt);

    const held: Array<{ sku: string; units: number }> = [];
    const taken: Array<{ ref: PartitionRef; units: number }> = [];
    const emptied: DirectoryPartition[] = [];
    try {
      const shortages = await this.holdAllowances(orderId, items, userId, limits, held);
      if (shortages.length === 0) {
        const used = new Set<string>();
        const results = await Promise.all(items.map((item, i) => this.takeItem(orderId, item, firsts[i], giveUpAt, emptied, used)));
        // Short items wait for a top-up from base (within the deadline) and try once more.
        await Promise.all(
          results.map(async (result, i) => {
            if (result.short === 0 || !this.topUp || !(await this.topUp.request(items[i].sku, giveUpAt, true))) return;
            const more = await this.takeItem(orderId, { sku: items[i].sku, quantity: result.short }, undefined, giveUpAt, emptied, used);
            results[i] = { pieces: [...result.pieces, ...more.pieces], short: more.short };
          }),
        );
        results.forEach((result, i) => {
          for (const piece of result.pieces) {
            taken.push({ ref: { sku: items[i].sku, partitionId: piece.p, shard: piece.s, epoch: piece.e }, units: piece.q });
          }
          doc.items[i].pieces = result.pieces;
          if (result.short > 0) {
            shortages.push({ sku: items[i].sku, reason: 'OUT_OF_STOCK', requested: items[i].quantity, available: items[i].quantity - result.short });
          }
        });
      }
      if (shortages.length > 0) {
        await this.giveBack(orderId, userId, taken, held);
        await this.closeReserve(orderId, 'REJECTED', JSON.stringify(shortages));
        return { outcome: 'REJECTED', shortages, replayed: false };
      }
      const expiresAt = await this.closeReserve(orderId, 'RESERVED', JSON.stringify(doc));
      // Everything the answer needs is known here: no read back.
      return { outcome: 'RESERVED', reservation: toReservation(orderId, { state: 'RESERVED', created: String(begun.created), expires: String(expiresAt) }, doc), replayed: false };
    } catch (err) {
      if (!(err instanceof DomainError)) {
        // A dependency failed half way: give back what we can now; whatever we cannot, the
        // recovery worker gives back from the plan after the grace period.
        await this.giveBack(orderId, userId, taken, held).catch((e) => this.logger.warn({ err: e, orderId }, 'give-back failed; recovery will finish it'));
      }
      throw err;
    } finally {
      // After give-backs, so that a cart returning its units keeps the partition selling.
      for (const partition of emptied) this.retire(partition);
    }
  }

  async confirm(orderId: string, deadline = Infinity): Promise<{ reservation: Reservation; replayed: boolean }> {
    let code = await this.gateway.confirm(orderId);
    if (code === OrderCode.InProgress) {
      await this.settled(orderId, Math.min(deadline, Date.now() + this.options.reserveTimeoutMs));
      code = await this.gateway.confirm(orderId);
    }
    if (code !== OrderCode.Done && code !== OrderCode.Replayed) throw orderError(code, orderId);
    return { reservation: await this.reservation(orderId), replayed: code === OrderCode.Replayed };
  }

  async release(
    orderId: string,
    reason: ReleaseReason,
    items: readonly LineItem[] | undefined,
    releaseId: string,
    deadline = Infinity,
  ): Promise<ReleaseResult> {
    const wanted = items && items.length > 0 ? Object.fromEntries(items.map((i) => [i.sku, i.quantity])) : undefined;
    const run = () =>
      this.gateway.release(orderId, releaseId, reason, wanted, this.options.orderRetentionSeconds, this.options.recoveryGraceMs);
    let res = await run();
    if (res.code === OrderCode.InProgress) {
      await this.settled(orderId, Math.min(deadline, Date.now() + this.options.reserveTimeoutMs));
      res = await run();
    }
    if (res.code !== OrderCode.Done && res.code !== OrderCode.Replayed) throw orderError(res.code, orderId, 'sku' in res ? res.sku : undefined);
    const record = parseRelease(res.release);
    const fields = await this.requireOrder(orderId);
    await this.applyRelease(orderId, releaseId, record, parseDoc(fields.doc));
    return {
      reservation: toReservation(orderId, fields),
      released: Object.entries(record.items).map(([sku, quantity]) => ({ sku, quantity })),
      replayed: res.code === OrderCode.Replayed,
    };
  }

  /**
   * Returns the units a recorded release took from the order to their partitions (and the buyer's
   * allowance), then drops it from the recovery index. Idempotent per release id: the expiry and
   * recovery workers re-drive it after a crash.
   */
  async applyRelease(orderId: string, releaseId: string, record: ReleaseRecord, doc: OrderDoc): Promise<void> {
    const work: Array<Promise<unknown>> = record.pieces.map(([sku, partitionId, shard, epoch, units]) =>
      this.gateway.untake({ sku, partitionId, shard, epoch }, orderId, units, releaseId, record.from, record.reason),
    );
    if (doc.user) {
      for (const [sku, units] of Object.entries(record.items)) {
        if (doc.limits[sku]) work.push(this.gateway.unhold(doc.user, sku, orderId, units, releaseId));
      }
    }
    await Promise.all(work);
    await this.gateway.releaseApplied(orderId, releaseId);
  }

  /** Expires one unpaid hold if it is due on the Redis clock (`done` when this call expired it). */
  async expire(orderId: string): Promise<SweepOutcome> {
    return this.systemRelease(orderId, EXPIRE_RELEASE, 'EXPIRE');
  }

  /** Rolls back a Reserve left PENDING past the grace period (`done` when this call did). */
  async recover(orderId: string): Promise<SweepOutcome> {
    return this.systemRelease(orderId, RECOVERY_RELEASE, 'RECOVERY');
  }

  /** Finishes a release a dead process recorded but did not apply. */
  async reapplyRelease(orderId: string, releaseId: string): Promise<void> {
    const fields = await this.gateway.order(orderId);
    const doc = fields && parseDoc(fields.doc);
    const record = doc?.releases[releaseId];
    if (!doc || !record) {
      await this.gateway.releaseApplied(orderId, releaseId);
      return;
    }
    await this.applyRelease(orderId, releaseId, parseRelease(JSON.stringify(record)), doc);
  }

  async reservation(orderId: string): Promise<Reservation> {
    return toReservation(orderId, await this.requireOrder(orderId));
  }

  async getReservation(orderId: string, deadline = Infinity): Promise<Reservation> {
    let fields = await this.requireOrder(orderId);
    if (fields.state === 'PENDING') fields = await this.settled(orderId, Math.min(deadline, Date.now() + this.options.reserveTimeoutMs));
    if (fields.state === 'REJECTED') {
      throw new DomainError('RESERVATION_REJECTED', `order ${orderId} was rejected; it holds nothing`);
    }
    return toReservation(orderId, fields);
  }

  /** Live pool of each SKU from its partitions. */
  async livePool(sku: string): Promise<{ pool: number; partitions: number; perUserLimit: number }> {
    const entry = this.directory.sku(sku);
    if (!entry) throw new DomainError('UNKNOWN_SKU', `sku ${sku} is not known to the inventory`, sku);
    const partitions = this.directory.partitions(sku);
    const avail = await this.gateway.avail(partitions);
    return { pool: avail.reduce((a, b) => a + b, 0), partitions: partitions.length, perUserLimit: entry.perUserLimit };
  }

  private async systemRelease(orderId: string, releaseId: string, reason: ReleaseReason): Promise<SweepOutcome> {
    const res = await this.gateway.release(
      orderId,
      releaseId,
      reason,
      undefined,
      this.options.orderRetentionSeconds,
      this.options.recoveryGraceMs,
    );
    if (res.code === OrderCode.NotDue) return 'kept';
    if (res.code !== OrderCode.Done && res.code !== OrderCode.Replayed) return 'gone';
    const fields = await this.requireOrder(orderId);
    await this.applyRelease(orderId, releaseId, parseRelease(res.release), parseDoc(fields.doc));
    return res.code === OrderCode.Done ? 'done' : 'gone';
  }

  /** Holds each limited SKU against the buyer's allowance; returns the shortages (USER_LIMIT). */
  private async holdAllowances(
    orderId: string,
    items: readonly LineItem[],
    userId: string,
    limits: Record<string, number>,
    held: Array<{ sku: string; units: number }>,
  ): Promise<Shortage[]> {
    const limited = items.filter((i) => limits[i.sku]);
    if (limited.length === 0) return [];
    const results = await Promise.all(limited.map((i) => this.gateway.hold(userId, i.sku, orderId, i.quantity, limits[i.sku])));
    const shortages: Shortage[] = [];
    results.forEach((r, k) => {
      const item = limited[k];
      if (r.code === HoldCode.Held || r.code === HoldCode.AlreadyHeld) held.push({ sku: item.sku, units: r.units });
      else if (r.code === HoldCode.Closed) throw rolledBack(orderId);
      else shortages.push({ sku: item.sku, reason: 'USER_LIMIT', requested: item.quantity, available: r.units });
    });
    return shortages;
  }

  /**
   * Takes one item's quantity: from its planned partition first, then — only if that one is short
   * or gone — from the SKU's other live partitions, after adding them to the plan.
   */
  private async takeItem(
    orderId: string,
    item: LineItem,
    first: DirectoryPartition | undefined,
    giveUpAt: number,
    emptied: DirectoryPartition[],
    used: Set<string>,
  ): Promise<ItemTake> {
    const pieces: DocPiece[] = [];
    let need = item.quantity;
    if (first) {
      used.add(first.partitionId);
      need -= await this.takeFrom(orderId, first, need, pieces, emptied);
    }
    if (need === 0) return { pieces, short: 0 };

    // A partition this order already took from is never asked again: its take would answer the
    // earlier units (idempotency), not new ones.
    const others = this.directory.partitions(item.sku).filter((p) => !used.has(p.partitionId));
    for (const p of others) used.add(p.partitionId);
    if (others.length === 0) return { pieces, short: need };
    const added = await this.gateway.extendPlan(
      orderId,
      others.map((p): PieceTuple => [item.sku, p.partitionId, p.shard, p.epoch, item.quantity]),
    );
    if (!added) throw rolledBack(orderId);
    for (const partition of rotate(others)) {
      if (need === 0 || Date.now() > giveUpAt) break;
      // Found empty by another call while this one went down the list (at a sell-out, every
      // partition in turn): skip it instead of a round trip that can only answer short.
      if (this.removing.has(retireKey(partition)) || !this.directory.partitions(item.sku).includes(partition)) continue;
      need -= await this.takeFrom(orderId, partition, need, pieces, emptied);
    }
    return { pieces, short: need };
  }

  /** One take from one partition; returns the units taken and records the piece. */
  private async takeFrom(
    orderId: string,
    partition: DirectoryPartition,
    need: number,
    pieces: DocPiece[],
    emptied: DirectoryPartition[],
  ): Promise<number> {
    const result = await this.gateway.take(partition, orderId, need, 1);
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
        throw rolledBack(orderId);
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
        if (outcome === -1) return;
        this.directory.forget(partition.sku, partition.partitionId);
        await this.deregistrar.removePartition(partition.sku, partition.partitionId, partition.epoch);
        // The pool just shrank: carve more from base if it is running low.
        void this.topUp?.request(partition.sku, Date.now() + this.options.reserveTimeoutMs);
      })
      .catch((err) => this.logger.warn({ err, partition: key }, 'could not retire an empty partition; retried on the next empty take'))
      .finally(() => this.removing.delete(key));
  }

  private async giveBack(
    orderId: string,
    userId: string,
    taken: Array<{ ref: PartitionRef; units: number }>,
    held: Array<{ sku: string; units: number }>,
  ): Promise<void> {
    await Promise.all([
      ...taken.map((t) => this.gateway.untake(t.ref, orderId, t.units, ABORT_RELEASE, 'reserved', 'ABORT')),
      ...held.map((h) => this.gateway.unhold(userId, h.sku, orderId, h.units, ABORT_RELEASE)),
    ]);
  }

  /** Commits the outcome; returns the hold's expiry. */
  private async closeReserve(orderId: string, outcome: 'RESERVED' | 'REJECTED', payload: string): Promise<number> {
    const expiresAt = await this.gateway.commit(orderId, outcome, payload, this.options.orderRetentionSeconds);
    if (expiresAt === undefined) throw rolledBack(orderId);
    return expiresAt;
  }

  private async replayReserve(orderId: string, fields: OrderFields, giveUpAt: number): Promise<ReserveResult> {
    if (fields.state === 'PENDING') fields = await this.settled(orderId, giveUpAt);
    if (fields.state === 'REJECTED') {
      const shortages = storedShortages(fields);
      if (shortages === 'RECOVERED') throw rolledBack(orderId);
      return { outcome: 'REJECTED', shortages, replayed: true };
    }
    return { outcome: 'RESERVED', reservation: toReservation(orderId, fields), replayed: true };
  }

  /** Waits for a Reserve in progress elsewhere (a concurrent duplicate) to answer. */
  private async settled(orderId: string, giveUpAt: number): Promise<OrderFields> {
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      const fields = await this.requireOrder(orderId);
      if (fields.state !== 'PENDING') return fields;
      if (Date.now() + wait > giveUpAt) {
        throw new DomainError('IN_PROGRESS', `order ${orderId} is still being reserved by another call; retry`);
      }
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  private async requireOrder(orderId: string): Promise<OrderFields> {
    const fields = await this.gateway.order(orderId);
    if (!fields) throw new DomainError('RESERVATION_NOT_FOUND', `no reservation for order ${orderId}`);
    return fields;
  }
}

/** The answer a duplicate of a Reserve in flight gets: the original's, as a replay. */
function asReplay(answer: ReserveResult): ReserveResult {
  return answer.replayed ? answer : { ...answer, replayed: true };
}

/** Identifies what a Reserve asked for: items in SKU order, buyer and TTL. */
export function fingerprint(items: readonly LineItem[], userId: string, ttlSeconds: number): string {
  const sorted = items.length === 1 ? items : [...items].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
  let text = `${userId}|${ttlSeconds}`;
  for (let i = 0; i < sorted.length; i++) text += `|${sorted[i].sku}*${sorted[i].quantity}`;
  return text;
}

/**
 * A random live partition in the order's own shard when the SKU has one (a one-item Reserve is then
 * a single Redis call), otherwise a random one: spreads buyers over partitions, and so over nodes.
 */
function pickPartition(partitions: readonly DirectoryPartition[], shard: number): DirectoryPartition | undefined {
  let local = 0;
  for (let i = 0; i < partitions.length; i++) if (partitions[i].shard === shard) local++;
  if (local === 0) return partitions.length === 0 ? undefined : partitions[Math.floor(Math.random() * partitions.length)];
  let k = Math.floor(Math.random() * local);
  for (let i = 0; i < partitions.length; i++) if (partitions[i].shard === shard && k-- === 0) return partitions[i];
  return undefined;
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

function rolledBack(orderId: string): DomainError {
  return new DomainError(
    'ROLLED_BACK',
    `the reservation of order ${orderId} was rolled back by the recovery worker after taking too long; use a new order id`,
  );
}

function orderError(code: OrderCode, orderId: string, sku?: string): DomainError {
  switch (code) {
    case OrderCode.NotFound:
      return new DomainError('RESERVATION_NOT_FOUND', `no reservation for order ${orderId}`);
    case OrderCode.AlreadyReleased:
      return new DomainError('ALREADY_RELEASED', `order ${orderId} was already released`);
    case OrderCode.AlreadyExpired:
      return new DomainError('ALREADY_EXPIRED', `the hold of order ${orderId} expired`);
    case OrderCode.InProgress:
      return new DomainError('IN_PROGRESS', `order ${orderId} is still being reserved; retry`);
    case OrderCode.Rejected:
      return new DomainError('RESERVATION_REJECTED', `order ${orderId} was rejected; it holds nothing`);
    case OrderCode.AlreadyConfirmed:
      return new DomainError('ALREADY_CONFIRMED', `order ${orderId} is paid; release it with CANCEL_AFTER_PAYMENT, REFUND or RISK_CONTROL`);
    case OrderCode.NotConfirmed:
      return new DomainError('NOT_CONFIRMED', `order ${orderId} is not paid; release it with CANCEL_BEFORE_PAYMENT, TIMEOUT or RISK_CONTROL`);
    case OrderCode.UnknownItem:
      return new DomainError('UNKNOWN_ITEM', `sku ${sku} is not part of order ${orderId}`, sku);
    default:
      return new DomainError('IN_PROGRESS', `order ${orderId}: unexpected state (code ${code}); retry`);
  }
}

