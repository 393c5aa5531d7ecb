import { Caller } from '../kernel/caller';

/** The domain of reservations, independent of gRPC. */

export interface LineItem {
  readonly sku: string;
  readonly quantity: number;
}

export type ReservationState = 'PENDING' | 'RESERVED' | 'CONFIRMED' | 'RELEASED' | 'EXPIRED' | 'REJECTED';

export type ReleaseReason =
  | 'CANCEL_BEFORE_PAYMENT'
  | 'CANCEL_AFTER_PAYMENT'
  | 'REFUND'
  | 'RISK_CONTROL'
  | 'TIMEOUT'
  /** The expiry sweeper. */
  | 'EXPIRE'
  /** The recovery worker, rolling back a cart whose process died. */
  | 'RECOVERY';

/** Where units of a reservation item came from: a partition of the SKU. */
export interface Piece {
  readonly partitionId: string;
  readonly shard: number;
  readonly epoch: number;
  readonly quantity: number;
  readonly released: number;
}

export interface ReservationItem {
  readonly sku: string;
  readonly quantity: number;
  readonly released: number;
  /** Units that left the warehouse (SHIPMENT messages of a paid order). */
  readonly shipped: number;
  readonly pieces: readonly Piece[];
}

export interface Reservation {
  readonly orderId: string;
  readonly state: ReservationState;
  readonly items: readonly ReservationItem[];
  readonly userId: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly confirmedAt: number;
  readonly endedAt: number;
}

export interface Shortage {
  readonly sku: string;
  readonly reason: 'OUT_OF_STOCK' | 'USER_LIMIT';
  readonly requested: number;
  readonly available: number;
}

export type ReserveResult =
  | { readonly outcome: 'RESERVED'; readonly reservation: Reservation; readonly replayed: boolean }
  | { readonly outcome: 'REJECTED'; readonly shortages: readonly Shortage[]; readonly replayed: boolean };

export interface ReleaseResult {
  readonly reservation: Reservation;
  /** Units this release gave back per SKU. */
  readonly released: readonly LineItem[];
  readonly replayed: boolean;
}

export interface ReservationOptions {
  /** Lifetime of an unpaid hold when the caller gives none. */
  readonly defaultTtlSeconds: number;
  /** The longest one Reserve works before rolling back. */
  readonly reserveTimeoutMs: number;
  /** A Reserve unanswered this long is a crashed cart: the recovery worker rolls it back. */
  readonly recoveryGraceMs: number;
}

/** MySQL's archive of the orders Redis forgot (store/order-archive.ts; the forgetter fills it). */
export interface OrderArchive {
  /** The archived record (the order hash as it was when forgotten), or undefined. */
  find(orderId: string): Promise<Record<string, string> | undefined>;
  /** Archives sealed orders; an order archived before is overwritten (the same record, or a later life of a reopened attempt). */
  save(orders: ReadonlyArray<{ readonly orderId: string; readonly fields: Record<string, string> }>): Promise<void>;
}

/** No archive: nothing was ever forgotten (tools and tests that run no forgetter). */
export const NO_ARCHIVE: OrderArchive = {
  find: async () => undefined,
  save: async () => {
    throw new Error('no order archive configured');
  },
};

export interface ReserveInput {
  readonly orderId: string;
  readonly items: readonly LineItem[];
  /** '' when anonymous. */
  readonly userId: string;
  /** 0 for the default. */
  readonly ttlSeconds: number;
}

/**
 * Carves new stock for a SKU from base; resolves true once this server can route to it, false when
 * there is none, or when the wait ran out of time (`deadline`) or the caller went. Rejects with
 * DependencyUnavailable when MySQL cannot say whether base has any (no verdict kept from before).
 */
export interface TopUpRequester {
  request(sku: string, deadline: number, short?: boolean, caller?: Caller): Promise<boolean>;
}
