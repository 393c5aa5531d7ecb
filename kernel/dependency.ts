/**
 * Failures of the servers the inventory depends on (Redis, MySQL, etcd, RabbitMQ), as types. The
 * edge that talks to a dependency (the script pipe and the guarded ioredis clients, the MySQL pool
 * and transactions, the etcd registry, the RabbitMQ link) turns its library's errors into these,
 * and everything above decides by type, never by message text: the server maps them to gRPC
 * statuses (server/domain-errors.ts), background loops back off on them, breakers count them.
 *
 *   DependencyUnavailable   the dependency did not do the work (refused, connection lost, out of
 *                           memory, loading): safe to retry, it had no effect or an idempotent one
 *   DependencyTimeout       no answer in time: the work may or may not have happened; every call we
 *                           make is idempotent, so the retry is safe too
 *   BreakerOpen             not even tried: the dependency's breaker is open (fails fast)
 *   Overloaded              this process sheds the call to keep latency bounded
 */
export type DependencyName = 'redis' | 'mysql' | 'etcd' | 'rabbitmq';

export class DependencyUnavailable extends Error {
  override name = 'DependencyUnavailable';

  constructor(
    readonly dependency: DependencyName,
    /** The node (host:port) when the dependency has several. */
    readonly node: string | undefined,
    message: string,
    cause?: unknown,
  ) {
    super(`${describe(dependency, node)}: ${message}`, cause === undefined ? undefined : { cause });
  }

  /** "redis 10.0.0.7:6379", "mysql": what callers and logs are told is down. */
  get where(): string {
    return describe(this.dependency, this.node);
  }
}

export class DependencyTimeout extends DependencyUnavailable {
  override name = 'DependencyTimeout';
}

export class BreakerOpen extends DependencyUnavailable {
  override name = 'BreakerOpen';
}

export class Overloaded extends Error {
  override name = 'Overloaded';

  constructor(
    message: string,
    /** When a retry has a fair chance, ms from now. */
    readonly retryAfterMs: number,
  ) {
    super(message);
  }
}

export function isDependencyFailure(err: unknown): err is DependencyUnavailable {
  return err instanceof DependencyUnavailable;
}

function describe(dependency: DependencyName, node: string | undefined): string {
  return node ? `${dependency} ${node}` : dependency;
}
