import { Metadata, status } from '@grpc/grpc-js';

/**
 * A failure the client should see as it is: a gRPC status, a stable machine-readable reason and,
 * for bad input, the path of the offending field. Anything else thrown by a handler is a bug or a
 * dependency failure and reaches the client as a generic INTERNAL/UNAVAILABLE (see toStatus).
 */
export class ServiceError extends Error {
  constructor(
    readonly code: status,
    readonly reason: string,
    message: string,
    readonly field?: string,
    /** What went wrong underneath (logged by the server, never sent). */
    override readonly cause?: unknown,
    /** More trailing metadata for the client (a retry hint), key to value. */
    readonly trailers?: Readonly<Record<string, string>>,
  ) {
    super(message);
    this.name = 'ServiceError';
  }
}

/** INVALID_ARGUMENT naming the field, e.g. invalidArgument('items[2].quantity', 'must be positive'). */
export function invalidArgument(field: string, message: string, reason = 'INVALID_FIELD'): ServiceError {
  return new ServiceError(status.INVALID_ARGUMENT, reason, `${field}: ${message}`, field);
}

export function unavailable(reason: string, message: string, cause?: unknown): ServiceError {
  return new ServiceError(status.UNAVAILABLE, reason, message, undefined, cause);
}

export function unauthenticated(message: string): ServiceError {
  return new ServiceError(status.UNAUTHENTICATED, 'UNAUTHENTICATED', message);
}

/**
 * RESOURCE_EXHAUSTED with a retry hint: `retry-after-ms` for any client, and gRFC A6's
 * `grpc-retry-pushback-ms`, which a gRPC client whose retry policy lists RESOURCE_EXHAUSTED obeys
 * (it waits exactly that long before its next attempt; a negative or missing value would stop or
 * not steer it). Nothing was done, so the same call is safe to send again.
 */
export function resourceExhausted(reason: string, message: string, retryAfterMs: number, field?: string): ServiceError {
  const ms = String(Math.max(0, Math.ceil(retryAfterMs)));
  return new ServiceError(status.RESOURCE_EXHAUSTED, reason, message, field, undefined, { [RETRY_AFTER_KEY]: ms, [PUSHBACK_KEY]: ms });
}

export function unimplemented(method: string): ServiceError {
  return new ServiceError(status.UNIMPLEMENTED, 'NOT_BUILT_YET', `${method} is not implemented by this server yet`);
}

/** Trailing metadata keys that carry the machine-readable parts of an error. */
export const REASON_KEY = 'inventory-error-reason';
export const FIELD_KEY = 'inventory-error-field';
/** Trailing metadata keys of a retry hint, in milliseconds (see resourceExhausted). */
export const RETRY_AFTER_KEY = 'retry-after-ms';
export const PUSHBACK_KEY = 'grpc-retry-pushback-ms';

export interface GrpcFailure {
  code: status;
  details: string;
  metadata: Metadata;
}

/**
 * The one mapping from a thrown value to what the client sees. `internal` is true when the error (or
 * the cause behind a ServiceError) is ours to log: its text never reaches the client.
 */
export function toStatus(err: unknown): GrpcFailure & { internal: boolean } {
  const metadata = new Metadata();
  if (err instanceof ServiceError) {
    metadata.set(REASON_KEY, err.reason);
    if (err.field) metadata.set(FIELD_KEY, err.field);
    if (err.trailers) for (const key in err.trailers) metadata.set(key, err.trailers[key]);
    return { code: err.code, details: err.message, metadata, internal: err.cause !== undefined };
  }
  if (isAbort(err)) {
    metadata.set(REASON_KEY, 'CANCELLED');
    return { code: status.CANCELLED, details: 'the call was cancelled or its deadline passed', metadata, internal: false };
  }
  metadata.set(REASON_KEY, 'INTERNAL');
  return { code: status.INTERNAL, details: 'internal error; see the server log', metadata, internal: true };
}

function isAbort(err: unknown): boolean {
  return err instanceof Error && (err.name === 'AbortError' || (err as { code?: unknown }).code === 'ABORT_ERR');
}

const STATUS_NAMES = Object.fromEntries(Object.entries(status).map(([name, code]) => [code, name])) as Record<number, string>;

/** A gRPC status code's name (`RESOURCE_EXHAUSTED`), for metrics labels and JSON answers. */
export function statusName(code: number): string {
  return STATUS_NAMES[code] ?? String(code);
}
