import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';
import type { RedisClient } from '../allocator/shards';
import type { Pool } from 'mysql2/promise';
import { Logger } from '../kernel/logger';

/**
 * What the server can do now, from its dependencies, for health checks and load balancers
 * (grpc.health.v1 on both ports, /healthz, /readyz):
 *   - InventoryService needs Redis: NOT_SERVING when no Redis node answers, or none that answers
 *     can take writes (all at maxmemory: redis-memory.ts). A node down or full, MySQL down
 *     (reservations go on, the ledger waits, totals are stale) or etcd down (the registry snapshot
 *     serves) leave it SERVING, degraded, and say which.
 *   - AdminService needs MySQL (the record) and Redis: NOT_SERVING without them; etcd down
 *     degrades it (registry writes queue).
 * Each dependency is probed every `intervalMs` with a short timeout; a change is logged once and
 * emitted ('change').
 */
export type ServingStatus = 'SERVING' | 'NOT_SERVING';

export interface HealthReport {
  readonly inventory: ServingStatus;
  readonly admin: ServingStatus;
  /** What works less well than it should, in words; empty when all is well. */
  readonly degraded: readonly string[];
  /** Each dependency: whether it answered the last probe, and since when (ms since 1970). */
  readonly checks: Readonly<Record<string, { readonly up: boolean; readonly since: number }>>;
}

export interface HealthDependencies {
  /** One client per Redis node, with the node's address: the configured nodes, or in cluster mode the masters now. */
  readonly redis: () => ReadonlyArray<{ readonly node: string; readonly client: RedisClient }>;
  readonly mysql: Pool;
  readonly etcd: Etcd3;
  /** Lines of what else works less well (a Redis node that lost writes: admin/lost-writes.ts). */
  readonly notices?: () => readonly string[];
  /** Redis nodes at their maxmemory (server/redis-memory.ts): they answer but refuse every write. */
  readonly redisFull?: () => readonly string[];
}

/** How long a probe may take before the dependency counts as down. */
const PROBE_TIMEOUT_MS = 1000;

export class HealthMonitor extends EventEmitter<{ change: [report: HealthReport] }> {
  private current: HealthReport;
  private timer: NodeJS.Timeout | undefined;
  private probing: Promise<void> | undefined;

  constructor(
    private readonly deps: HealthDependencies,
    private readonly intervalMs: number,
    private readonly logger: Logger,
  ) {
    super();
    const now = Date.now();
    const checks: Record<string, { up: boolean; since: number }> = { mysql: { up: true, since: now }, etcd: { up: true, since: now } };
    for (const { node } of deps.redis()) checks[`redis ${node}`] = { up: true, since: now };
    this.current = judge(checks);
  }

  report(): HealthReport {
    return this.current;
  }

  /** Probes now, then every interval. */
  async start(): Promise<void> {
    await this.probe();
    this.timer = setInterval(() => void this.probe(), this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.probing;
  }

  /** One round of probes; a change of the report is logged and emitted. */
  probe(): Promise<void> {
    this.probing ??= this.round().finally(() => (this.probing = undefined));
    return this.probing;
  }

  private async round(): Promise<void> {
    const { mysql, etcd } = this.deps;
    const redis = this.deps.redis();
    const names = [...redis.map(({ node }) => `redis ${node}`), 'mysql', 'etcd'];
    const results = await Promise.all([
      ...redis.map(({ client }) => answers(() => client.ping())),
      answers(() => mysql.query('SELECT 1')),
      answers(() => etcd.maintenance.status()),
    ]);
    const now = Date.now();
    const checks: Record<string, { up: boolean; since: number }> = {};
    names.forEach((name, i) => {
      const before = this.current.checks[name];
      checks[name] = before && before.up === results[i] ? before : { up: results[i], since: now };
    });
    const next = judge(checks, this.deps.notices?.() ?? [], this.deps.redisFull?.() ?? []);
    const changed =
      names.some((name) => checks[name] !== this.current.checks[name]) || next.degraded.join('\n') !== this.current.degraded.join('\n');
    this.current = next;
    if (!changed) return;
    const log = { inventory: next.inventory, admin: next.admin, degraded: next.degraded };
    if (next.inventory === 'NOT_SERVING' || next.admin === 'NOT_SERVING') this.logger.error(log, 'health: a service cannot do its job');
    else if (next.degraded.length > 0) this.logger.warn(log, 'health: degraded');
    else this.logger.info(log, 'health: all dependencies answer');
    this.emit('change', next);
  }
}

/** The report in one word, as /healthz and the web console show it: DEGRADED when anything works less well. */
export function overallStatus(report: HealthReport): 'SERVING' | 'DEGRADED' | 'NOT_SERVING' {
  if (report.inventory !== 'SERVING') return 'NOT_SERVING';
  return report.degraded.length > 0 || report.admin !== 'SERVING' ? 'DEGRADED' : 'SERVING';
}

/** What the dependencies' states mean for each service. */
export function judge(checks: Record<string, { up: boolean; since: number }>, notices: readonly string[] = [], redisFull: readonly string[] = []): HealthReport {
  const redisNodes = Object.keys(checks).filter((name) => name.startsWith('redis '));
  const redisDown = redisNodes.filter((name) => !checks[name].up);
  // noeviction: a node at its maxmemory answers but refuses every write, so for Reserves it is as good as down.
  const full = redisNodes.filter((name) => checks[name].up && redisFull.includes(name.slice(6)));
  const anyRedis = redisDown.length + full.length < redisNodes.length;
  const mysqlUp = checks.mysql?.up ?? true;
  const etcdUp = checks.etcd?.up ?? true;
  const degraded: string[] = [];
  const nodes = (names: string[]) => names.map((n) => n.slice(6)).join(', ');
  const onThem = (names: string[]) => `orders and partitions on ${names.length === 1 ? 'it' : 'them'} fail`;
  if (redisDown.length === redisNodes.length) degraded.push('no Redis node answers: nothing can be reserved');
  else if (redisDown.length > 0) degraded.push(`${nodes(redisDown)} down: ${onThem(redisDown)}`);
  if (full.length > 0) degraded.push(`${nodes(full)} full (maxmemory), writes refused: ${anyRedis ? onThem(full) : 'nothing can be reserved'}`);
  if (!mysqlUp) degraded.push('MySQL down: reservations go on, the ledger waits in Redis, totals in GetStock are stale, admin calls fail');
  if (!etcdUp) degraded.push('etcd down: routing from the last registry snapshot, registry writes queue');
  degraded.push(...notices);
  return {
    inventory: anyRedis ? 'SERVING' : 'NOT_SERVING',
    admin: anyRedis && mysqlUp ? 'SERVING' : 'NOT_SERVING',
    degraded,
    checks,
  };
}

async function answers(probe: () => Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), PROBE_TIMEOUT_MS)));
  try {
    return await Promise.race([probe().then(() => true, () => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
