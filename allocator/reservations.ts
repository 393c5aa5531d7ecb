import { Caller, NO_CALLER } from '../kernel/caller';
import { Logger } from '../kernel/logger';
import { PartitionDeregistrar, PartitionDirectory } from './directory';
import { OrderDoc, ReleaseRecord } from './doc';
import { RedisGateway } from './gateway';
import { OrderReader } from './orders';
import { Releases, SweepOutcome } from './releases';
import { Reserver } from './reserve';
import { LineItem, NO_ARCHIVE, OrderArchive, ReleaseReason, ReleaseResult, Reservation, ReservationOptions, ReserveInput, ReserveResult, TopUpRequester } from './types';

export { fingerprint } from './reserve';
export type { ReserveInput, ReservationOptions, TopUpRequester } from './types';
export type { SweepOutcome } from './releases';

/**
 * Reserve, Confirm, Release and reads on Redis partitions, as the server and the workers call
 * them: Reserve in reserve.ts, Confirm, Release, expiry and recovery in releases.ts, reads in
 * orders.ts.
 */
export class ReservationService {
  private readonly orders: OrderReader;
  private readonly reserver: Reserver;
  private readonly releases: Releases;

  constructor(
    gateway: RedisGateway,
    directory: PartitionDirectory,
    deregistrar: PartitionDeregistrar,
    options: ReservationOptions,
    logger: Logger,
    archive: OrderArchive = NO_ARCHIVE,
  ) {
    this.orders = new OrderReader(gateway, directory, options.reserveTimeoutMs, archive);
    this.releases = new Releases(gateway, this.orders, options);
    this.reserver = new Reserver(gateway, directory, deregistrar, this.orders, this.releases, options, logger);
  }

  /** Lets Reserve wait for a top-up from base instead of answering out of stock (set once at wiring). */
  useTopUp(topUp: TopUpRequester): void {
    this.reserver.useTopUp(topUp);
  }

  /** `caller`: whose deadline and cancellation the work honours (kernel/caller.ts). */
  reserve(input: ReserveInput, caller: Caller = NO_CALLER): Promise<ReserveResult> {
    return this.reserver.reserve(input, caller);
  }

  confirm(orderId: string, caller: Caller = NO_CALLER): Promise<{ reservation: Reservation; replayed: boolean }> {
    return this.releases.confirm(orderId, caller);
  }

  release(orderId: string, reason: ReleaseReason, items: readonly LineItem[] | undefined, releaseId: string, caller: Caller = NO_CALLER): Promise<ReleaseResult> {
    return this.releases.release(orderId, reason, items, releaseId, caller);
  }

  applyRelease(orderId: string, releaseId: string, record: ReleaseRecord, doc: OrderDoc): Promise<void> {
    return this.releases.applyRelease(orderId, releaseId, record, doc);
  }

  /** Expires one unpaid hold if it is due on the Redis clock (`done` when this call expired it). */
  expire(orderId: string): Promise<SweepOutcome> {
    return this.releases.expire(orderId);
  }

  /** Rolls back a Reserve left PENDING past the grace period (`done` when this call did). */
  recover(orderId: string): Promise<SweepOutcome> {
    return this.releases.recover(orderId);
  }

  /** Finishes a release a dead process recorded but did not apply. */
  reapplyRelease(orderId: string, releaseId: string): Promise<void> {
    return this.releases.reapplyRelease(orderId, releaseId);
  }

  reservation(orderId: string): Promise<Reservation> {
    return this.orders.reservation(orderId);
  }

  getReservation(orderId: string, caller: Caller = NO_CALLER): Promise<Reservation> {
    return this.orders.getReservation(orderId, caller);
  }

  /** Live pool of a SKU from its partitions. */
  livePool(sku: string): Promise<{ pool: number; partitions: number; perUserLimit: number }> {
    return this.orders.livePool(sku);
  }
}
