import { Caller, NO_CALLER, pause, stayForCaller } from '../kernel/caller';
import { DomainError } from '../kernel/errors';
import { OrderCode } from './codes';
import { PartitionDirectory } from './directory';
import { OrderFields, toReservation } from './doc';
import { RedisGateway } from './gateway';
import { OrderArchive, Reservation } from './types';

/**
 * Reads of reservations for Reserve, Confirm, Release and the read calls: an order's record, a wait
 * for a Reserve in flight to answer, the live pool of a SKU; and the one mapping of the order
 * scripts' answers (OrderCode) to domain errors.
 */
export class OrderReader {
  constructor(
    private readonly gateway: RedisGateway,
    private readonly directory: PartitionDirectory,
    private readonly reserveTimeoutMs: number,
    private readonly archive: OrderArchive,
  ) {}

  /**
   * The record of an order Redis forgot, from MySQL's archive (its retention ended: keys.ts); only
   * asked when Redis does not know the order.
   */
  archived(orderId: string): Promise<OrderFields | undefined> {
    return this.archive.find(orderId);
  }

  async reservation(orderId: string): Promise<Reservation> {
    return toReservation(orderId, await this.requireOrder(orderId));
  }

  async getReservation(orderId: string, caller: Caller = NO_CALLER): Promise<Reservation> {
    stayForCaller(caller, `GetReservation of order ${orderId}`);
    let fields = await this.requireOrder(orderId);
    if (fields.state === 'PENDING') fields = await this.settled(orderId, Date.now() + this.reserveTimeoutMs, caller);
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

  /**
   * Waits for a Reserve in progress elsewhere (a concurrent duplicate) to answer, until `giveUpAt`
   * (then IN_PROGRESS) or while the caller is there (then DEADLINE_EXCEEDED or CANCELLED).
   */
  async settled(orderId: string, giveUpAt: number, caller: Caller = NO_CALLER): Promise<OrderFields> {
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      const fields = await this.requireOrder(orderId);
      if (fields.state !== 'PENDING') return fields;
      stayForCaller(caller, `order ${orderId} is still being reserved by another call; retry with the same order id`);
      if (Date.now() + wait > giveUpAt) {
        throw new DomainError('IN_PROGRESS', `order ${orderId} is still being reserved by another call; retry`);
      }
      await pause(wait, caller);
    }
  }

  /** The order's record in Redis, or, once Redis forgot it, in the archive. */
  async requireOrder(orderId: string): Promise<OrderFields> {
    const fields = (await this.gateway.order(orderId)) ?? (await this.archived(orderId));
    if (!fields) throw new DomainError('RESERVATION_NOT_FOUND', `no reservation for order ${orderId}`);
    return fields;
  }
}

/**
 * This attempt of the Reserve was rolled back underneath it (it passed its give-up time and a retry
 * or the recovery worker rolled it back): it holds nothing, and a retry with the same order id
 * starts over.
 */
export function rolledBack(orderId: string): DomainError {
  return new DomainError(
    'ROLLED_BACK',
    `this attempt to reserve order ${orderId} took too long and was rolled back; it holds nothing; retry with the same order id`,
  );
}

/**
 * What a change of a forgotten order meets, by its archived state: the refusal the order script
 * would have given (a paid order's retention is over: RetentionEnded).
 */
export function archivedRefusal(state: string): OrderCode {
  switch (state) {
    case 'RELEASED':
      return OrderCode.AlreadyReleased;
    case 'EXPIRED':
      return OrderCode.AlreadyExpired;
    case 'REJECTED':
      return OrderCode.Rejected;
    default:
      return OrderCode.RetentionEnded;
  }
}

/** What an order script's answer means to the caller, for every code that ends the call. */
export function orderError(code: OrderCode, orderId: string, sku?: string): DomainError {
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
    case OrderCode.RetentionEnded:
      return new DomainError(
        'RETENTION_ENDED',
        `order ${orderId} ended its retention (ORDER_RETENTION_SECONDS after its last change): its record is archived and changes no more; goods that come back are a warehouse RETURN`,
      );
    case OrderCode.UnknownItem:
      return new DomainError('UNKNOWN_ITEM', `sku ${sku} is not part of order ${orderId}`, sku);
    default:
      return new DomainError('IN_PROGRESS', `order ${orderId}: unexpected state (code ${code}); retry`);
  }
}

