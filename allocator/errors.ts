/**
 * Business outcomes of the reservation and stock domain that end a call. The server maps each kind to one
 * gRPC status (server/inventory-service.ts); the kind itself is the machine-readable reason.
 */
export type ReservationErrorKind =
  | 'UNKNOWN_SKU'
  | 'IDEMPOTENCY_KEY_REUSED'
  | 'RESERVATION_NOT_FOUND'
  | 'ALREADY_RELEASED'
  | 'ALREADY_EXPIRED'
  | 'ALREADY_CONFIRMED'
  | 'NOT_CONFIRMED'
  | 'RESERVATION_REJECTED'
  | 'ROLLED_BACK'
  | 'IN_PROGRESS'
  | 'UNKNOWN_ITEM'
  | 'INSUFFICIENT_BASE'
  | 'PARTITION_NOT_FOUND'
  | 'UNKNOWN_NODE';

export class ReservationError extends Error {
  constructor(readonly kind: ReservationErrorKind, message: string, readonly sku?: string) {
    super(message);
    this.name = 'ReservationError';
  }
}
