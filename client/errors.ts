import { Metadata, ServiceError, status } from '@grpc/grpc-js';

/** Trailing metadata keys the server puts its machine-readable error parts in (proto/inventory/v1). */
export const REASON_KEY = 'inventory-error-reason';
export const FIELD_KEY = 'inventory-error-field';
export const RETRY_AFTER_KEY = 'retry-after-ms';

/**
 * What a failed call means for its caller, one value per way to handle it; `InventoryError.kind`
 * holds it, so an order service can `switch` on it (or test `instanceof` the class of the kind).
 */
export type InventoryErrorKind =
  /** A field is bad, named in `field` (INVALID_FIELD, DUPLICATE_SKU, UNKNOWN_ITEM, UNKNOWN_NODE, UNDECODABLE_REQUEST). */
  | 'INVALID_ARGUMENT'
  /** The order id (or request id) was used before for a different request. */
  | 'IDEMPOTENCY_KEY_REUSED'
  /** A SKU the inventory does not know. */
  | 'UNKNOWN_SKU'
  /** No such reservation or partition. */
  | 'NOT_FOUND'
  /** The hold was given back (ALREADY_RELEASED) or timed out (ALREADY_EXPIRED) before this call. */
  | 'RESERVATION_ENDED'
  /** The order or SKU is in another state than the call needs (ALREADY_CONFIRMED, NOT_CONFIRMED, ...): see `reason`. */
  | 'FAILED_PRECONDITION'
  /** A Reserve of the order was still in flight or rolled back (IN_PROGRESS, ROLLED_BACK): send the same call again a little later. */
  | 'ABORTED'
  /** A SKU of the Reserve is over its admission rate (SKU_RATE_LIMITED, the item in `field`): retry after `retryAfterMs`. */
  | 'RATE_LIMITED'
  /** The server has too many calls in flight (OVERLOADED): retry after `retryAfterMs`. */
  | 'OVERLOADED'
  /** No answer: the server or a dependency is down. Safe to retry with the same ids. */
  | 'UNAVAILABLE'
  /** The deadline passed before an answer. Safe to retry with the same ids. */
  | 'DEADLINE_EXCEEDED'
  /** The caller's AbortSignal fired, or the server saw the call cancelled. */
  | 'CANCELLED'
  /** AdminService without a valid bearer token. */
  | 'UNAUTHENTICATED'
  /** A server bug or an answer this client does not know (see the server's log). */
  | 'INTERNAL';

/** The server's reasons (server/errors.ts, server/domain-errors.ts), each to the kind a caller handles. */
export const REASON_KINDS: Readonly<Record<string, InventoryErrorKind>> = Object.freeze({
  INVALID_FIELD: 'INVALID_ARGUMENT',
  DUPLICATE_SKU: 'INVALID_ARGUMENT',
  UNKNOWN_ITEM: 'INVALID_ARGUMENT',
  UNKNOWN_NODE: 'INVALID_ARGUMENT',
  UNDECODABLE_REQUEST: 'INVALID_ARGUMENT',
  IDEMPOTENCY_KEY_REUSED: 'IDEMPOTENCY_KEY_REUSED',
  UNKNOWN_SKU: 'UNKNOWN_SKU',
  RESERVATION_NOT_FOUND: 'NOT_FOUND',
  PARTITION_NOT_FOUND: 'NOT_FOUND',
  ALREADY_RELEASED: 'RESERVATION_ENDED',
  ALREADY_EXPIRED: 'RESERVATION_ENDED',
  ALREADY_CONFIRMED: 'FAILED_PRECONDITION',
  NOT_CONFIRMED: 'FAILED_PRECONDITION',
  RESERVATION_REJECTED: 'FAILED_PRECONDITION',
  INSUFFICIENT_BASE: 'FAILED_PRECONDITION',
  RETENTION_ENDED: 'FAILED_PRECONDITION',
  ROLLED_BACK: 'ABORTED',
  IN_PROGRESS: 'ABORTED',
  SKU_RATE_LIMITED: 'RATE_LIMITED',
  OVERLOADED: 'OVERLOADED',
  DEPENDENCY_UNAVAILABLE: 'UNAVAILABLE',
  DEPENDENCY_TIMEOUT: 'UNAVAILABLE',
  DEADLINE_EXCEEDED: 'DEADLINE_EXCEEDED',
  CANCELLED: 'CANCELLED',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  NOT_BUILT_YET: 'INTERNAL',
  INTERNAL: 'INTERNAL',
});

/** The kind of a failure without a reason the client knows (the transport's own, or a new reason). */
const CODE_KINDS: Partial<Record<status, InventoryErrorKind>> = {
  [status.INVALID_ARGUMENT]: 'INVALID_ARGUMENT',
  [status.NOT_FOUND]: 'NOT_FOUND',
  [status.FAILED_PRECONDITION]: 'FAILED_PRECONDITION',
  [status.ABORTED]: 'ABORTED',
  [status.RESOURCE_EXHAUSTED]: 'OVERLOADED',
  [status.UNAVAILABLE]: 'UNAVAILABLE',
  [status.DEADLINE_EXCEEDED]: 'DEADLINE_EXCEEDED',
  [status.CANCELLED]: 'CANCELLED',
  [status.UNAUTHENTICATED]: 'UNAUTHENTICATED',
};

/** The parts of a failed call, as the client read them. */
export interface InventoryErrorInit {
  readonly code: status;
  readonly details: string;
  readonly reason?: string;
  readonly field?: string;
  readonly retryAfterMs?: number;
  /** Attempts the client made before giving up (1 when it did not retry). */
  readonly attempts?: number;
  /** The AdminService request id sent: send the command again with it to apply it at most once. */
  readonly requestId?: string;
  /** The trailing metadata as received (empty when the failure did not come from the server). */
  readonly metadata?: Metadata;
}

/**
 * A failed call of InventoryService or AdminService. `kind` says how to handle it (see
 * InventoryErrorKind); `reason` and `field` are the server's own words from the trailing metadata,
 * undefined when the failure did not come from the server (a dropped connection, a local deadline).
 */
export abstract class InventoryError extends Error {
  abstract readonly kind: InventoryErrorKind;
  /** The gRPC status code. */
  readonly code: status;
  /** The server's machine-readable reason (`inventory-error-reason`), e.g. `UNKNOWN_SKU`. */
  readonly reason?: string;
  /** The offending field's path (`inventory-error-field`), e.g. `items[2].quantity`. */
  readonly field?: string;
  /** The server's retry hint in ms (`retry-after-ms`), on RESOURCE_EXHAUSTED. */
  readonly retryAfterMs?: number;
  /** The server's message (or the transport's). */
  readonly details: string;
  /** Attempts made before the client gave up (1 when it did not retry). */
  readonly attempts: number;
  /** The AdminService request id the command was sent under: send it again with this id. */
  readonly requestId?: string;
  /** The trailing metadata as received, for keys this client does not read itself. */
  readonly metadata: Metadata;

  constructor(init: InventoryErrorInit) {
    super(`${status[init.code] ?? init.code}${init.reason ? ` (${init.reason})` : ''}: ${init.details}`);
    this.code = init.code;
    this.reason = init.reason;
    this.field = init.field;
    this.retryAfterMs = init.retryAfterMs;
    this.details = init.details;
    this.attempts = init.attempts ?? 1;
    this.requestId = init.requestId;
    this.metadata = init.metadata ?? new Metadata();
    this.name = new.target.name;
  }
}

export class InvalidArgumentError extends InventoryError {
  readonly kind = 'INVALID_ARGUMENT' as const;
}
export class IdempotencyKeyReusedError extends InventoryError {
  readonly kind = 'IDEMPOTENCY_KEY_REUSED' as const;
}
export class UnknownSkuError extends InventoryError {
  readonly kind = 'UNKNOWN_SKU' as const;
}
export class NotFoundError extends InventoryError {
  readonly kind = 'NOT_FOUND' as const;
}
export class ReservationEndedError extends InventoryError {
  readonly kind = 'RESERVATION_ENDED' as const;
}
export class FailedPreconditionError extends InventoryError {
  readonly kind = 'FAILED_PRECONDITION' as const;
}
export class AbortedError extends InventoryError {
  readonly kind = 'ABORTED' as const;
}
export class RateLimitedError extends InventoryError {
  readonly kind = 'RATE_LIMITED' as const;
}
export class OverloadedError extends InventoryError {
  readonly kind = 'OVERLOADED' as const;
}
export class UnavailableError extends InventoryError {
  readonly kind = 'UNAVAILABLE' as const;
}
export class DeadlineExceededError extends InventoryError {
  readonly kind = 'DEADLINE_EXCEEDED' as const;
}
export class CancelledError extends InventoryError {
  readonly kind = 'CANCELLED' as const;
}
export class UnauthenticatedError extends InventoryError {
  readonly kind = 'UNAUTHENTICATED' as const;
}
export class InternalError extends InventoryError {
  readonly kind = 'INTERNAL' as const;
}

const CLASSES: Readonly<Record<InventoryErrorKind, new (init: InventoryErrorInit) => InventoryError>> = {
  INVALID_ARGUMENT: InvalidArgumentError,
  IDEMPOTENCY_KEY_REUSED: IdempotencyKeyReusedError,
  UNKNOWN_SKU: UnknownSkuError,
  NOT_FOUND: NotFoundError,
  RESERVATION_ENDED: ReservationEndedError,
  FAILED_PRECONDITION: FailedPreconditionError,
  ABORTED: AbortedError,
  RATE_LIMITED: RateLimitedError,
  OVERLOADED: OverloadedError,
  UNAVAILABLE: UnavailableError,
  DEADLINE_EXCEEDED: DeadlineExceededError,
  CANCELLED: CancelledError,
  UNAUTHENTICATED: UnauthenticatedError,
  INTERNAL: InternalError,
};

/** The kind of a (code, reason) pair: by the reason when the client knows it, else by the code. */
export function kindOf(code: status, reason?: string): InventoryErrorKind {
  return (reason !== undefined && Object.hasOwn(REASON_KINDS, reason) ? REASON_KINDS[reason] : CODE_KINDS[code]) ?? 'INTERNAL';
}

/** The typed error for a failure's parts. */
export function inventoryError(init: InventoryErrorInit): InventoryError {
  return new CLASSES[kindOf(init.code, init.reason)](init);
}

/**
 * The typed error for a grpc-js failure, its reason, field and hint read from the trailers. Anything
 * else thrown on the way (a request that would not serialize) is INTERNAL.
 */
export function fromServiceError(thrown: unknown, extra: Pick<InventoryErrorInit, 'attempts' | 'requestId'> = {}): InventoryError {
  const err = thrown as Partial<ServiceError>;
  if (typeof err?.code !== 'number') return inventoryError({ code: status.INTERNAL, details: thrown instanceof Error ? thrown.message : String(thrown), ...extra });
  // Duck-typed: the caller's grpc-js may be another copy than this package's.
  const metadata = typeof err.metadata?.get === 'function' ? err.metadata : new Metadata();
  const hint = Number(text(metadata, RETRY_AFTER_KEY)); // NaN when absent
  return inventoryError({
    code: err.code,
    details: err.details || err.message || status[err.code],
    reason: text(metadata, REASON_KEY),
    field: text(metadata, FIELD_KEY),
    retryAfterMs: Number.isFinite(hint) && hint >= 0 ? hint : undefined,
    metadata,
    ...extra,
  });
}

function text(metadata: Metadata, key: string): string | undefined {
  const [value] = metadata.get(key);
  return value === undefined ? undefined : String(value);
}
