import { InterceptingCall, Interceptor } from '@grpc/grpc-js';
import { ExponentialBackoff, IBackoff, IPolicy, handleWhen, noop, retry } from 'cockatiel';
import { Etcd3, GRPCDeadlineExceededError, isRecoverableError } from 'etcd3';
import { Breakers, DependencyBreaker } from '../kernel/breaker';

/** How the service's etcd client behaves when etcd is slow or gone; every default written down. */
export interface EtcdClientOptions {
  /**
   * Deadline of every unary call, ms. Default 5000. etcd3 sets none, so a call to an etcd behind a
   * network partition would hang for good.
   */
  readonly callTimeoutMs?: number;
  /**
   * Extra attempts of a unary call that failed with a transient error (UNAVAILABLE, ...), with no delay
   * between them. Default 3, as etcd3. Writes are retried too: the registry's writes are conditional,
   * so a retried one that had applied is harmless. Unlike etcd3, DEADLINE_EXCEEDED is not retried: the
   * call has used the time its caller gave it (and a retry under the same deadline fails at once, only
   * feeding the circuit breaker).
   */
  readonly retries?: number;
  /**
   * The process's breakers: each endpoint gets the `etcd <endpoint>` one, in place of etcd3's own
   * cockatiel breaker, so that etcd opens, half-opens and is reported like every other dependency.
   * Transient failures count (etcd3's "recoverable" errors). A board of its own by default.
   */
  readonly breakers?: Breakers;
  /** Upper bound of gRPC's reconnect backoff, ms. Default 5000 (grpc-js: 120000, which can leave a recovered etcd unused for minutes). */
  readonly reconnectBackoffMaxMs?: number;
  /**
   * gRPC keepalive ping interval while a stream is open, ms. Default 10000 (grpc-js: off). Without it a
   * watch over a dead connection looks healthy forever. etcd refuses pings under 5 s (--grpc-keepalive-min-time).
   */
  readonly keepaliveMs?: number;
  /** Upper bound of etcd3's own watch-stream reconnect backoff, ms. Default 5000 (etcd3: 30000). */
  readonly watchBackoffMaxMs?: number;
  /**
   * Send etcd's `hasleader` metadata (Go's clientv3.WithRequireLeader) on every call but the
   * maintenance ones. Default true. A member cut off from its cluster's leader then refuses calls
   * ("etcdserver: no leader", so etcd3 tries another member at once instead of waiting out the
   * deadline) and ends open watches after 3 election timeouts, instead of serving a watch that
   * silently stops while the rest of the cluster takes writes: the registry cache would look live
   * and be stale. Maintenance calls (health's status probe) go without: every member is leaderless
   * for a moment during an election, which is no outage.
   */
  readonly requireLeader?: boolean;
}

/** An etcd3 client with the defaults above, for the registry and anything else that talks to etcd. */
export function createEtcdClient(endpoints: readonly string[], options: EtcdClientOptions = {}): Etcd3 {
  const {
    callTimeoutMs = 5000,
    retries = 3,
    breakers = new Breakers(),
    reconnectBackoffMaxMs = 5000,
    keepaliveMs = 10_000,
    watchBackoffMaxMs = 5000,
    requireLeader = true,
  } = options;
  const retryable = handleWhen((err) => isRecoverableError(err) && !(err instanceof GRPCDeadlineExceededError));
  return new Etcd3({
    hosts: [...endpoints],
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + callTimeoutMs }),
    grpcOptions: {
      // A full listing of a large registry (10,000 SKUs x 2 partitions is ~5 MB) must fit in one
      // answer: grpc-js's 4 MB default made such a cache retry its first load forever.
      'grpc.max_receive_message_length': 256 * 1024 * 1024,
      'grpc.keepalive_time_ms': keepaliveMs,
      'grpc.keepalive_timeout_ms': Math.min(keepaliveMs, 5000),
      'grpc.initial_reconnect_backoff_ms': Math.min(reconnectBackoffMaxMs, 1000),
      'grpc.max_reconnect_backoff_ms': reconnectBackoffMaxMs,
      // etcd3 hands these options to each grpc-js client, which takes its interceptors from them.
      ...(requireLeader ? ({ interceptors: [hasLeader] } as object) : {}),
    },
    faultHandling: {
      global: retries > 0 ? retry(retryable, { maxAttempts: retries }) : noop,
      host: (host) => breakerPolicy(breakers.for('etcd', host, (err) => err instanceof Error && isRecoverableError(err))),
      // etcd3 types this an IBackoff but calls next() on it first, as on a factory (its own default is `new ExponentialBackoff()`).
      watchBackoff: new ExponentialBackoff({ maxDelay: watchBackoffMaxMs }) as unknown as IBackoff<unknown>,
    },
  });
}

/** Adds `hasleader: true`, the metadata etcd checks for WithRequireLeader. */
const hasLeader: Interceptor = (options, nextCall) => {
  if (options.method_definition.path.startsWith('/etcdserverpb.Maintenance/')) return new InterceptingCall(nextCall(options));
  return new InterceptingCall(nextCall(options), {
    start(metadata, listener, next) {
      metadata.set('hasleader', 'true');
      next(metadata, listener);
    },
  });
};

/**
 * An opossum breaker in the shape of the cockatiel policy etcd3 runs each call to a host through:
 * etcd3 only calls execute(). Errors pass through untouched (etcd3 decides on them: retries, host
 * resets); a refusal is BreakerOpen, which etcd3 hands on as it is.
 */
function breakerPolicy(breaker: DependencyBreaker): IPolicy {
  return {
    execute: <T>(fn: () => PromiseLike<T> | T) => breaker.run(() => Promise.resolve().then(fn)),
  } as unknown as IPolicy;
}
