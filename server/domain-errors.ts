import { status } from '@grpc/grpc-js';
import { BreakerOpen, DependencyTimeout, DependencyUnavailable, Overloaded } from '../kernel/dependency';
import { DomainError, DomainErrorKind } from '../kernel/errors';
import { ServiceError, resourceExhausted, unavailable } from './errors';

/**
 * The one mapping from what the rooms below throw to what clients see: domain outcomes by kind,
 * dependency failures by type (kernel/dependency.ts). Anything else is a bug: INTERNAL, logged.
 */
export const ERROR_STATUS: Record<DomainErrorKind, status> = {
  UNKNOWN_SKU: status.NOT_FOUND,
  RESERVATION_NOT_FOUND: status.NOT_FOUND,
  IDEMPOTENCY_KEY_REUSED: status.INVALID_ARGUMENT,
  UNKNOWN_ITEM: status.INVALID_ARGUMENT,
  ALREADY_RELEASED: status.FAILED_PRECONDITION,
  ALREADY_EXPIRED: status.FAILED_PRECONDITION,
  ALREADY_CONFIRMED: status.FAILED_PRECONDITION,
  NOT_CONFIRMED: status.FAILED_PRECONDITION,
  RESERVATION_REJECTED: status.FAILED_PRECONDITION,
  ROLLED_BACK: status.ABORTED,
  IN_PROGRESS: status.ABORTED,
  INSUFFICIENT_BASE: status.FAILED_PRECONDITION,
  PARTITION_NOT_FOUND: status.NOT_FOUND,
  UNKNOWN_NODE: status.INVALID_ARGUMENT,
  RETENTION_ENDED: status.FAILED_PRECONDITION,
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  CANCELLED: status.CANCELLED,
};

export const ERROR_FIELD: Partial<Record<DomainErrorKind, string>> = {
  IDEMPOTENCY_KEY_REUSED: 'order_id',
  UNKNOWN_ITEM: 'items',
  UNKNOWN_NODE: 'redis_nodes',
};


/**
 * Runs domain work and turns its failures into the statuses clients see. A plain promise chain,
 * not an async function: it wraps every call of the hot path.
 */
export function domain<T>(work: () => Promise<T>): Promise<T> {
  let running: Promise<T>;
  try {
    running = work();
  } catch (err) {
    return Promise.reject(toServiceError(err));
  }
  return running.catch(rethrowAsServiceError);
}

function rethrowAsServiceError(err: unknown): never {
  throw toServiceError(err);
}

/**
 * A dependency failure is UNAVAILABLE, naming the dependency, and safe to retry with the same ids
 * (every call is idempotent). Not logged per call: the clients log their connection errors and the
 * breakers their changes, which a storm of failing calls would otherwise bury.
 */
export function toServiceError(err: unknown): unknown {
  if (err instanceof DomainError) {
    return new ServiceError(ERROR_STATUS[err.kind], err.kind, err.message, ERROR_FIELD[err.kind]);
  }
  if (err instanceof BreakerOpen) {
    return unavailable('DEPENDENCY_UNAVAILABLE', `${err.where} is unavailable (circuit breaker open); the call was not tried, retry it later`);
  }
  if (err instanceof DependencyTimeout) {
    return unavailable('DEPENDENCY_TIMEOUT', `${err.where} did not answer in time; the call may have been applied, and its retry with the same ids is safe`);
  }
  if (err instanceof DependencyUnavailable) {
    return unavailable('DEPENDENCY_UNAVAILABLE', `${err.where} is unavailable; the call is safe to retry`);
  }
  if (err instanceof Overloaded) {
    return resourceExhausted('OVERLOADED', err.message, err.retryAfterMs);
  }
  return err;
}
