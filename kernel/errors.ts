/**
 * Business outcomes of the reservation and stock domain that end a call (out of the caller's
 * hands: an unknown SKU, a reused key, an order in the wrong state). Thrown by every room, mapped to
 * one gRPC status per kind by the server (server/domain-errors.ts); the kind itself is the
 * machine-readable reason.
 */
export type DomainErrorKind =
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
  | 'UNKNOWN_NODE'
  /** The order's retention is over: its record is archived and it changes no more. */
  | 'RETENTION_ENDED'
  /** The caller's deadline (or the work's own time limit) passed first: nothing is remembered, retry. */
  | 'DEADLINE_EXCEEDED'
  /** The client cancelled the call: no new step was started for it. */
  | 'CANCELLED';

export class DomainError extends Error {
  constructor(readonly kind: DomainErrorKind, message: string, readonly sku?: string) {
    super(message);
    this.name = 'DomainError';
  }
}
