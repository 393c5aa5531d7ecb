import { status } from '@grpc/grpc-js';
import { DomainError, DomainErrorKind } from '../kernel/errors';
import { ServiceError, unavailable } from './errors';

/** The one mapping from domain outcomes (DomainError kinds) to gRPC statuses. */
const ERROR_STATUS: Record<DomainErrorKind, status> = {
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
  DEADLINE_EXCEEDED: status.DEADLINE_EXCEEDED,
  CANCELLED: status.CANCELLED,
};

const ERROR_FIELD: Partial<Record<DomainErrorKind, string>> = {
  IDEMPOTENCY_KEY_REUSED: 'order_id',
  UNKNOWN_ITEM: 'items',
  UNKNOWN_NODE: 'redis_nodes',
};

/** Errors of a dependency that is down or slow: the call is safe to retry, so UNAVAILABLE. */
const DEPENDENCY_DOWN = /Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|MaxRetriesPerRequest|Stream isn't writeable|ended/;

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

function toServiceError(err: unknown): unknown {
  if (err instanceof DomainError) {
    return new ServiceError(ERROR_STATUS[err.kind], err.kind, err.message, ERROR_FIELD[err.kind]);
  }
  if (err instanceof Error && DEPENDENCY_DOWN.test(`${err.name} ${err.message}`)) {
    return unavailable('DEPENDENCY_UNAVAILABLE', 'a storage dependency is unavailable; the call is safe to retry', err);
  }
  return err;
}
