import { Logger } from '../kernel/logger';
import { DomainError } from '../kernel/errors';
import { HoldCode, RetireCode, TakeCode } from './codes';
import { Coalescer } from './coalesce';
import { DirectoryPartition, PartitionDeregistrar, PartitionDirectory } from './directory';
import { DocPiece, OrderDoc, OrderFields, PieceTuple, oneItemDoc, oneItemReservation, storedShortages, toReservation } from './doc';
import { BeginResult, PartitionRef, RedisGateway } from './gateway';
import { OrderReader, rolledBack } from './orders';
import { LineItem, ReservationOptions, ReserveInput, ReserveResult, Shortage, TopUpRequester } from './types';

/**
 * The release id of a Reserve giving back what it took before answering REJECTED. Release ids the
 * server uses itself start with '#', which callers' ids cannot (releases.ts has the others).
 */
export const ABORT_RELEASE = '#abort';

/** What one item got from its partitions during a Reserve. */
interface ItemTake {
  readonly pieces: DocPiece[];
  readonly short: number;
}

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
 * A process that dies in between leaves a PENDING order with its plan; the recovery worker gives
 * back the plan after the grace period, and tombstones stop a late take of the dead attempt.
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
    if (here.kind === 'exists') return this.answerExisting(orderId, input.items, here, giveUpAt);
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
    return this.answerExisting(orderId, input.items, rejected, giveUpAt);
  }

  /**
   * A Reserve of an order id that exists: its replay, if it asks the same (an order restored from
   * MySQL: the same items, as its buyer and ttl are not known).
   */
  private answerExisting(
    orderId: string,
    items: readonly LineItem[],
    existing: Extract<BeginResult, { kind: 'exists' }>,
    giveUpAt: number,
  ): Promise<ReserveResult> {
    if (!existing.sameRequest && !sameRestoredOrder(existing.fields, items)) {
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
    if (begun.kind === 'exists') return this.answerExisting(orderId, items, begun, giveUpAt);

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
        if (outcome === RetireCode.Kept) return;
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
    if (fields.state === 'PENDING') fields = await this.orders.settled(orderId, giveUpAt);
    if (fields.state === 'REJECTED') {
      const shortages = storedShortages(fields);
      if (shortages === 'RECOVERED') throw rolledBack(orderId);
      return { outcome: 'REJECTED', shortages, replayed: true };
    }
    return { outcome: 'RESERVED', reservation: toReservation(orderId, fields), replayed: true };
  }
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
