import { ChannelCredentials, ChannelOptions, credentials as grpcCredentials } from '@grpc/grpc-js';
import { DEFAULT_RETRY_POLICY, RetryPolicy, checkRetryPolicy } from './retry';

/** How a client reaches its servers and how patient it is; every default is written beside it. */
export interface ClientOptions {
  /**
   * One gRPC target (`host:port`, `dns:///name:port`, `ipv4:10.0.0.1:50051,10.0.0.2:50051`), or
   * several `host:port` IP addresses that calls are spread over round robin. Required.
   */
  readonly address: string | readonly string[];
  /** TLS or other channel credentials, e.g. `credentials.createSsl(ca)`. Default: plaintext. */
  readonly credentials?: ChannelCredentials;
  /**
   * grpc-js channel options, e.g. `{ 'grpc.keepalive_time_ms': 10000 }`, or a
   * `grpc.service_config` of your own (it replaces the round robin set for several addresses).
   * Default: RECONNECT_OPTIONS (at most 1 s between reconnects).
   */
  readonly channelOptions?: ChannelOptions;
  /** Time for a whole call, retries included, unless the call gives its own. Default 5000 ms (AdminClient 30000 ms). */
  readonly timeoutMs?: number;
  /**
   * Time for one attempt, so that an attempt lost on a dead connection is given up and sent again
   * within the call's time. Default: half the call's time. The last attempt the retry policy
   * allows may use all the time left.
   */
  readonly attemptTimeoutMs?: number;
  /** Retries; see RetryPolicy for each default. */
  readonly retry?: Partial<RetryPolicy>;
  /** Metadata sent with every call (a tracing header, say), key to value. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** Options of one call. */
export interface CallOptions {
  /** Time for this call, retries included. Default: the client's timeoutMs. */
  readonly timeoutMs?: number;
  /** Cancels the call (and its retries): it fails with CancelledError. */
  readonly signal?: AbortSignal;
  /** Metadata for this call, added to the client's. */
  readonly metadata?: Readonly<Record<string, string>>;
}

/** ClientOptions checked and filled in once; the call path trusts it. */
export interface ResolvedOptions {
  readonly target: string;
  readonly credentials: ChannelCredentials;
  readonly channelOptions: ChannelOptions;
  readonly timeoutMs: number;
  readonly attemptTimeoutMs?: number;
  readonly retry: RetryPolicy;
  readonly metadata: Readonly<Record<string, string>>;
}

const ROUND_ROBIN = JSON.stringify({ loadBalancingConfig: [{ round_robin: {} }] });

/**
 * grpc-js waits up to 120 s between reconnects to a server that went away and fails calls at once
 * meanwhile, longer than any call's budget: a server restart would outlast every retry. At most a
 * second between attempts to connect lets the retries of a call find the server once it is back.
 */
export const RECONNECT_OPTIONS: ChannelOptions = Object.freeze({
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
});

export function resolveOptions(options: ClientOptions, defaultTimeoutMs: number, where: string): ResolvedOptions {
  if (typeof options !== 'object' || options === null) throw new TypeError(`${where}: options are required ({ address })`);
  const addresses = typeof options.address === 'string' ? [options.address] : [...(options.address ?? [])];
  const several = addresses.length > 1;
  const timeoutMs = positive(options.timeoutMs ?? defaultTimeoutMs, `${where}.timeoutMs`);
  return {
    target: targetOf(addresses, `${where}.address`),
    credentials: options.credentials ?? grpcCredentials.createInsecure(),
    channelOptions: { ...RECONNECT_OPTIONS, ...(several ? { 'grpc.service_config': ROUND_ROBIN } : {}), ...options.channelOptions },
    timeoutMs,
    attemptTimeoutMs: options.attemptTimeoutMs === undefined ? undefined : positive(options.attemptTimeoutMs, `${where}.attemptTimeoutMs`),
    retry: checkRetryPolicy({ ...DEFAULT_RETRY_POLICY, ...options.retry }, `${where}.retry`),
    metadata: { ...options.metadata },
  };
}

/** A call's own timeout, checked like the client's. */
export function callTimeoutMs(call: CallOptions, resolved: ResolvedOptions): number {
  return call.timeoutMs === undefined ? resolved.timeoutMs : positive(call.timeoutMs, 'timeoutMs');
}

function positive(value: number, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) throw new TypeError(`${field}: must be a positive number of ms, got ${String(value)}`);
  return value;
}

/** One target for grpc-js: several addresses become one `ipv4:`/`ipv6:` list its resolver knows. */
function targetOf(addresses: string[], field: string): string {
  if (addresses.length === 0 || addresses.some((a) => typeof a !== 'string' || a.trim() === '')) {
    throw new TypeError(`${field}: must be a gRPC target or a non-empty list of host:port addresses`);
  }
  if (addresses.length === 1) return addresses[0];
  if (addresses.every((a) => /^\d{1,3}(\.\d{1,3}){3}:\d+$/.test(a))) return `ipv4:${addresses.join(',')}`;
  if (addresses.every((a) => /^\[[0-9a-fA-F:.]+\]:\d+$/.test(a))) return `ipv6:${addresses.join(',')}`;
  throw new TypeError(`${field}: several addresses must all be IPv4 (1.2.3.4:50051) or all IPv6 ([::1]:50051); for a name, give one dns:/// target`);
}
