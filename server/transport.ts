import {
  Metadata,
  ServerUnaryCall,
  UntypedServiceImplementation,
  sendUnaryData,
  status,
} from '@grpc/grpc-js';
import { Logger } from '../kernel/logger';
import { Overloaded } from '../kernel/dependency';
import { toServiceError } from './domain-errors';
import { ServiceError, invalidArgument, statusName, toStatus } from './errors';
import { InFlightLimit } from './in-flight';
import { CountingChild, Metrics } from './metrics';
import { OutOfRange } from './out-of-range';

/**
 * What a handler knows of its call. Handlers never touch grpc-js: they take a request and this
 * context and return a promise (the nice-grpc shape), so domain logic is testable without gRPC.
 */
export interface CallContext {
  /** Fires when the client cancels or the deadline passes: pass it to every downstream call. */
  readonly signal: AbortSignal;
  /** Absolute deadline in ms since the epoch; Infinity when the client set none. */
  readonly deadline: number;
  /**
   * True once the client cancelled the call (grpc-js's 'cancelled' event before the answer): a flag
   * the domain reads before each step (kernel/caller.ts), without the cost of an AbortSignal.
   */
  readonly cancelled: boolean;
  readonly metadata: Metadata;
}

export type UnaryHandler<Req, Res> = (request: Req, ctx: CallContext) => Promise<Res>;

/** The shape of one method in a ts-proto grpc-js service definition. */
export interface UnaryMethodDefinition<Req, Res> {
  readonly path: string;
  readonly requestStream: false;
  readonly responseStream: false;
  requestSerialize(value: Req): Buffer;
  requestDeserialize(value: Buffer): Req;
  responseSerialize(value: Res): Buffer;
  responseDeserialize(value: Buffer): Res;
}

/** The handlers of a ts-proto service definition, one promise-returning function per method. */
export type Handlers<D> = {
  [K in keyof D]: D[K] extends UnaryMethodDefinition<infer Req, infer Res> ? UnaryHandler<Req, Res> : never;
};

export interface BindOptions {
  /** Label for logs and metrics, e.g. "InventoryService". */
  readonly serviceName: string;
  readonly logger: Logger;
  readonly metrics: Metrics;
  /** Runs before every handler; throw a ServiceError to refuse the call (authentication). */
  readonly authorize?: (metadata: Metadata) => void;
  /** Calls of this service in progress at most: past it a call is shed (RESOURCE_EXHAUSTED, OVERLOADED) before anything runs. */
  readonly inFlight?: InFlightLimit;
}

/** What requestDeserialize answers for a body it cannot decode (see decodingSafely). */
class Undecodable {
  constructor(
    readonly why: string,
    /** The int64 field whose value the server cannot take, when that is why. */
    readonly outOfRange?: OutOfRange,
  ) {}
}

/** Finds the int64 field of a refused body that is out of range (server/proto-definition.ts). */
export type OutOfRangeLocator = (methodPath: string, body: Buffer) => OutOfRange | undefined;

/**
 * A service definition whose requests never fail to decode inside grpc-js: a body that is not the
 * message (random bytes, an int64 beyond what a JavaScript number holds) becomes an Undecodable,
 * which the handler's adapter answers INVALID_ARGUMENT: INVALID_FIELD naming the field for an int64
 * out of range (found by `locate`), UNDECODABLE_REQUEST for the rest. grpc-js itself would answer
 * INTERNAL ("Error deserializing request"), blaming the server for the caller's bytes.
 */
export function decodingSafely<D extends Record<string, UnaryMethodDefinition<any, any>>>(definition: D, locate?: OutOfRangeLocator): D {
  const safe: Record<string, UnaryMethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition)) {
    safe[name] = {
      ...method,
      requestDeserialize(value: Buffer) {
        try {
          return method.requestDeserialize(value);
        } catch (err) {
          return new Undecodable(err instanceof Error ? err.message : String(err), locate?.(method.path, value));
        }
      },
    };
  }
  return safe as D;
}

/** The answer to a body that did not decode: the field when it is known. */
function undecodable(request: Undecodable, serviceName: string, method: string): ServiceError {
  const range = request.outOfRange;
  if (range) {
    return invalidArgument(
      range.field,
      `${range.value} is out of range: this server takes int64 values from -(2^53-1) to 2^53-1 (${Number.MAX_SAFE_INTEGER}); nothing was done`,
    );
  }
  return new ServiceError(status.INVALID_ARGUMENT, 'UNDECODABLE_REQUEST', `the request is not a valid ${serviceName}/${method} message: ${request.why}`);
}

/**
 * Adapts promise handlers to grpc-js callbacks: one callback per call, every error through
 * toStatus, internal errors logged with their stack and never sent, a metric for every answer.
 */
export function bindService<D extends Record<string, UnaryMethodDefinition<any, any>>>(
  definition: D,
  handlers: Handlers<D>,
  options: BindOptions,
): UntypedServiceImplementation {
  const implementation: UntypedServiceImplementation = {};
  for (const name of Object.keys(definition)) {
    implementation[name] = adaptUnary(name, (handlers as Record<string, UnaryHandler<unknown, unknown>>)[name], options);
  }
  return implementation;
}

function adaptUnary(method: string, handler: UnaryHandler<unknown, unknown>, options: BindOptions) {
  const { serviceName, logger, metrics, authorize, inFlight } = options;
  const shed = inFlight && metrics.admissionRefused.labels('OVERLOADED');
  const latency = metrics.rpcSeconds.labels(serviceName, method);
  // One counter child per status code, made once instead of a label lookup per call.
  const answered = new Map<number, CountingChild>();
  const count = (code: number) => {
    let child = answered.get(code);
    if (!child) answered.set(code, (child = metrics.rpcCalls.batched(serviceName, method, statusName(code))));
    child.inc();
  };

  return (call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
    const started = performance.now();
    if (inFlight && !inFlight.tryEnter()) {
      shed?.inc();
      const failure = toStatus(toServiceError(new Overloaded(`the server has ${inFlight.limit} calls in progress (MAX_IN_FLIGHT); nothing was done, retry later`, inFlight.retryAfterMs())));
      count(failure.code);
      latency.observe((performance.now() - started) / 1000);
      callback(failure);
      return;
    }
    const deadlineValue = call.getDeadline();
    const ctx = new UnaryContext(deadlineValue instanceof Date ? deadlineValue.getTime() : deadlineValue, call.metadata);
    call.once('cancelled', ctx.cancel);
    const fail = (err: unknown) => {
      ctx.answered = true;
      const failure = toStatus(err);
      if (failure.internal) {
        const cause = (err as { cause?: unknown }).cause;
        logger.error({ err: cause ?? err, code: failure.code, method: `${serviceName}/${method}` }, 'handler failed');
      }
      count(failure.code);
      const elapsedMs = performance.now() - started;
      inFlight?.leave(elapsedMs);
      latency.observe(elapsedMs / 1000);
      callback(failure);
    };
    try {
      authorize?.(call.metadata);
      if (call.request instanceof Undecodable) throw undecodable(call.request, serviceName, method);
      handler(call.request, ctx).then((response) => {
        ctx.answered = true;
        count(status.OK);
        const elapsedMs = performance.now() - started;
        inFlight?.leave(elapsedMs);
        latency.observe(elapsedMs / 1000);
        callback(null, response);
      }, fail);
    } catch (err) {
      fail(err);
    }
  };
}

/**
 * The context of one unary call. Its AbortController is made only when a handler reads `signal`,
 * and a cancellation after the answer is ignored: grpc-js emits 'cancelled' after every finished
 * call, and aborting (a DOMException each time) cost ~10% of the server's CPU in the flash-sale
 * profile.
 */
export class UnaryContext implements CallContext {
  answered = false;
  private controller: AbortController | undefined;
  cancelled = false;

  constructor(readonly deadline: number, readonly metadata: Metadata) {}

  get signal(): AbortSignal {
    this.controller ??= new AbortController();
    if (this.cancelled && !this.controller.signal.aborted) this.controller.abort();
    return this.controller.signal;
  }

  readonly cancel = (): void => {
    if (this.answered) return;
    this.cancelled = true;
    this.controller?.abort();
  };
}
