import { Caller, NO_CALLER, stayForCaller } from '../kernel/caller';
import { OrderCode } from './codes';
import { OrderDoc, ReleaseRecord, parseDoc, parseRelease, toReservation } from './doc';
import { RedisGateway } from './gateway';
import { OrderReader, archivedRefusal, orderError } from './orders';
import { LineItem, ReleaseReason, ReleaseResult, Reservation, ReservationOptions } from './types';

/** Release ids of the system's own releases; they start with '#', which callers' ids cannot. */
export const EXPIRE_RELEASE = '#expire';
export const RECOVERY_RELEASE = '#recovery';

/**
 * What a sweep step (expire, recover) did with the order's index entry: `done`, this call expired or
 * rolled back the order; `gone`, nothing to do (another server did it, or the entry was stale); both
 * leave the index. `kept`: not due yet on the Redis clock, the entry stays.
 */
export type SweepOutcome = 'done' | 'gone' | 'kept';

/**
 * Confirm and Release, and the system's own releases: expiry of unpaid holds and the rollback of
 * carts whose process died (the sweeper's steps). A release is decided at the order in one script
 * (order-release: the cap, the rules of each reason, which pieces) and recorded before anything
 * moves, then applied to the partitions idempotently per release id.
 */
export class Releases {
  constructor(
    private readonly gateway: RedisGateway,
    private readonly orders: OrderReader,
    private readonly options: ReservationOptions,
  ) {}

  async confirm(orderId: string, caller: Caller = NO_CALLER): Promise<{ reservation: Reservation; replayed: boolean }> {
    const what = `Confirm of order ${orderId}`;
    stayForCaller(caller, what);
    let code = await this.gateway.confirm(orderId);
    if (code === OrderCode.InProgress) {
      await this.orders.settled(orderId, Date.now() + this.options.reserveTimeoutMs, caller);
      stayForCaller(caller, what);
      code = await this.gateway.confirm(orderId);
    }
    if (code === OrderCode.NotFound) return this.confirmForgotten(orderId);
    if (code !== OrderCode.Done && code !== OrderCode.Replayed) throw orderError(code, orderId);
    return { reservation: await this.orders.reservation(orderId), replayed: code === OrderCode.Replayed };
  }

  /** Confirm of an order Redis forgot: a paid one's replay, from the archive; else its refusal. */
  private async confirmForgotten(orderId: string): Promise<{ reservation: Reservation; replayed: boolean }> {
    const fields = await this.orders.archived(orderId);
    if (!fields) throw orderError(OrderCode.NotFound, orderId);
    if (fields.state !== 'CONFIRMED') throw orderError(archivedRefusal(fields.state), orderId);
    return { reservation: toReservation(orderId, fields), replayed: true };
  }

  async release(
    orderId: string,
    reason: ReleaseReason,
    items: readonly LineItem[] | undefined,
    releaseId: string,
    caller: Caller = NO_CALLER,
  ): Promise<ReleaseResult> {
    const what = `Release of order ${orderId}`;
    const wanted = items && items.length > 0 ? Object.fromEntries(items.map((i) => [i.sku, i.quantity])) : undefined;
    const run = () =>
      this.gateway.release(orderId, releaseId, reason, wanted, this.options.recoveryGraceMs);
    stayForCaller(caller, what);
    let res = await run();
    if (res.code === OrderCode.InProgress) {
      await this.orders.settled(orderId, Date.now() + this.options.reserveTimeoutMs, caller);
      stayForCaller(caller, what);
      res = await run();
    }
    if (res.code === OrderCode.NotFound) return this.releaseForgotten(orderId, releaseId);
    // Recorded: what follows applies it (as the sweeper would), whether or not the caller is still there.
    if (res.code !== OrderCode.Done && res.code !== OrderCode.Replayed) throw orderError(res.code, orderId, 'sku' in res ? res.sku : undefined);
    const record = parseRelease(res.release);
    const fields = await this.orders.requireOrder(orderId);
    await this.applyRelease(orderId, releaseId, record, parseDoc(fields.doc));
    return {
      reservation: toReservation(orderId, fields),
      released: releasedItems(record),
      replayed: res.code === OrderCode.Replayed,
    };
  }

  /** Release of an order Redis forgot: the replay of a release it recorded, from the archive; else its refusal. */
  private async releaseForgotten(orderId: string, releaseId: string): Promise<ReleaseResult> {
    const fields = await this.orders.archived(orderId);
    if (!fields) throw orderError(OrderCode.NotFound, orderId);
    const record = fields.doc ? parseDoc(fields.doc).releases[releaseId] : undefined;
    if (!record) throw orderError(archivedRefusal(fields.state), orderId);
    return { reservation: toReservation(orderId, fields), released: releasedItems(record), replayed: true };
  }

  /**
   * Returns the units a recorded release took from the order to their partitions (and the buyer's
   * allowance), then drops it from the recovery index. Idempotent per release id: the expiry and
   * recovery workers re-drive it after a crash.
   */
  async applyRelease(orderId: string, releaseId: string, record: ReleaseRecord, doc: OrderDoc): Promise<void> {
    // Under the name of the attempt that took the units (attempts.ts).
    const taker = record.t ?? orderId;
    const work: Array<Promise<unknown>> = record.pieces.map(([sku, partitionId, shard, epoch, units]) =>
      this.gateway.untake({ sku, partitionId, shard, epoch }, orderId, units, releaseId, record.from, record.reason, taker),
    );
    if (doc.user) {
      for (const [sku, units] of Object.entries(record.items)) {
        if (doc.limits[sku]) work.push(this.gateway.unhold(doc.user, sku, taker, units, releaseId));
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

  /**
   * Rolls back a PENDING Reserve attempt on the spot, as the recovery worker does (same release,
   * same tombstones): `'lapsed'`, a retry's, once the attempt's give-up time has passed;
   * `attempt`, that attempt's own when it failed or ran out of time (refused once it is not the
   * order's attempt any more). `done` when this call rolled it back, `kept` when not due yet.
   */
  async rollBack(orderId: string, by: 'lapsed' | number): Promise<SweepOutcome> {
    return this.systemRelease(orderId, RECOVERY_RELEASE, 'RECOVERY', String(by));
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

  private async systemRelease(orderId: string, releaseId: string, reason: ReleaseReason, by = ''): Promise<SweepOutcome> {
    const res = await this.gateway.release(
      orderId,
      releaseId,
      reason,
      undefined,
      this.options.recoveryGraceMs,
      by,
    );
    if (res.code === OrderCode.NotDue) return 'kept';
    if (res.code !== OrderCode.Done && res.code !== OrderCode.Replayed) return 'gone';
    const fields = await this.orders.requireOrder(orderId);
    await this.applyRelease(orderId, releaseId, parseRelease(res.release), parseDoc(fields.doc));
    return res.code === OrderCode.Done ? 'done' : 'gone';
  }
}

function releasedItems(record: ReleaseRecord): LineItem[] {
  return Object.entries(record.items).map(([sku, quantity]) => ({ sku, quantity }));
}
