import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { BreakerSettings } from '../kernel/breaker';
import { stackDefaults } from './stack-defaults';

/**
 * The one place that reads the environment. `loadConfig` reads every variable once, validates it and
 * returns a fully populated, frozen Config that the rest of the code trusts. A bad value fails
 * start-up with a ConfigError naming the variable.
 *
 * The addresses of Redis, etcd, MySQL and RabbitMQ default to the project's own local stack, as
 * config/stack.env writes them down (scripts/stack.sh reads the same file).
 */

export class ConfigError extends Error {
  constructor(readonly variable: string, message: string) {
    super(`invalid configuration: ${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

export interface Config {
  /** Interface the gRPC and metrics servers bind to. HOST, default 0.0.0.0. */
  readonly host: string;
  /** InventoryService port. INVENTORY_PORT, default 50051; 0 picks a free port. */
  readonly inventoryPort: number;
  /** AdminService port. ADMIN_PORT, default 50052; 0 picks a free port. */
  readonly adminPort: number;
  /** Prometheus /metrics port. METRICS_PORT, default 9464; 0 picks a free port. */
  readonly metricsPort: number;
  /** Redis nodes holding partitions, host:port. REDIS_NODES, default the local stack's (config/stack.env). */
  readonly redisNodes: readonly string[];
  /**
   * Redis Cluster seed nodes, host:port (any of the cluster's nodes; the cluster tells the rest).
   * Set, the service runs in cluster mode: every shard lives in the slot of its hash tag, on that
   * slot's master. REDIS_CLUSTER, default none (plain mode on REDIS_NODES); not with REDIS_NODES.
   */
  readonly redisCluster: readonly string[];
  /** Prefix of every Redis key, so deployments (and tests) can share a Redis. REDIS_PREFIX, default "inv". */
  readonly redisPrefix: string;
  /** etcd endpoints. ETCD_ENDPOINTS, default the local stack's. */
  readonly etcdEndpoints: readonly string[];
  /** Prefix of every etcd key. ETCD_NAMESPACE, default "/inventory/". */
  readonly etcdNamespace: string;
  /** MySQL/MariaDB connection URL; its path names the database. MYSQL_URL. */
  readonly mysqlUrl: string;
  /** RabbitMQ URL. AMQP_URL, default the local stack's. */
  readonly amqpUrl: string;
  /**
   * Prometheus /metrics port of the stock consumer when it runs as a process of its own (MQ_CONSUMER=process,
   * or mq-main on another host): its counters and the queues' depths. MQ_METRICS_PORT, default 9465; 0 picks a free port.
   */
  readonly mqMetricsPort: number;
  /**
   * How many of this process's hottest SKUs (by Reserve calls) get their own metric series
   * (inventory_hot_sku_*: rate, partitions, sellable units); 0 turns them off. HOT_SKU_METRICS, default 10.
   */
  readonly hotSkuMetrics: number;
  /** Bearer token AdminService requires. ADMIN_TOKEN, default "dev-admin-token" (change it outside development). */
  readonly adminToken: string;
  /** The web console for operators on the metrics port, under /console/, behind ADMIN_TOKEN. CONSOLE, default true. */
  readonly console: boolean;
  /** Server processes sharing the ports on this host (node:cluster); 1 runs no cluster. WORKERS, default 1. */
  readonly workers: number;
  /** pino level. LOG_LEVEL, default info. */
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  /** How long SIGTERM waits for in-flight calls before cutting them. SHUTDOWN_GRACE_MS, default 10000. */
  readonly shutdownGraceMs: number;
  /** TTL of an unpaid hold when the caller gives none. DEFAULT_TTL_SECONDS, default 1800. */
  readonly defaultTtlSeconds: number;
  /** Longest TTL a caller may ask for. MAX_TTL_SECONDS, default 86400. */
  readonly maxTtlSeconds: number;
  /** Largest quantity of one line item. MAX_ITEM_QUANTITY, default 10000. */
  readonly maxItemQuantity: number;
  /**
   * Virtual shards (Redis hash tags) that orders, partitions and ledger streams are spread over.
   * Fixed for the life of a deployment: shard placement depends on it. REDIS_SHARDS, default 16.
   */
  readonly redisShards: number;
  /** How long a Redis command may take before the call fails. REDIS_COMMAND_TIMEOUT_MS, default 2000. */
  readonly redisCommandTimeoutMs: number;
  /**
   * Batch the Redis commands of concurrent calls into one write per event-loop tick (ioredis
   * auto-pipelining). Measured here on the flash sale: +35-45% calls/s and less CPU per call on both
   * the server and Redis. REDIS_AUTO_PIPELINE, default true.
   */
  readonly redisAutoPipeline: boolean;
  /** How often the expiry and recovery workers look for due work. SWEEP_INTERVAL_MS, default 1000. */
  readonly sweepIntervalMs: number;
  /**
   * A Reserve still unanswered after this long is taken for a crashed cart and rolled back. Must
   * exceed the longest Reserve (RESERVE_TIMEOUT_MS). RECOVERY_GRACE_MS, default 60000.
   */
  readonly recoveryGraceMs: number;
  /** The longest a Reserve works before giving up (and rolling back). RESERVE_TIMEOUT_MS, default 10000. */
  readonly reserveTimeoutMs: number;
  /**
   * How long an ended or paid order's record stays in Redis after its last change, for replays and
   * late changes; then the forgetter archives it in MySQL and deletes its keys (allocator/keys.ts).
   * Must exceed RESERVE_TIMEOUT_MS. ORDER_RETENTION_SECONDS, default 1 day: it covers retries,
   * per-user limits as a daily window and refunds before a next-day shipment, at ~0.9 KB of Redis
   * per order of the day (replays after it are answered from MySQL's archive, shipments applied there).
   */
  readonly orderRetentionSeconds: number;
  /** How often the forgetter looks for orders whose retention ended. FORGET_INTERVAL_MS, default 5000. */
  readonly forgetIntervalMs: number;
  /**
   * Bits of one shard's filter of forgotten order ids per generation (allocator/forgotten.ts):
   * 10 x orders forgotten per horizon / REDIS_SHARDS for ~1% of new orders asking MySQL.
   * FORGOTTEN_FILTER_BITS, default 4194304 (512 KiB per shard and generation).
   */
  readonly forgottenFilterBits: number;
  /** How long at least a forgotten order id is recognised (one filter generation). FORGOTTEN_HORIZON_SECONDS, default 30 days. */
  readonly forgottenHorizonSeconds: number;
  /**
   * Where the ledger writer (Redis streams into MySQL) runs. `process` (default): the server starts
   * it as a child process and restarts it if it dies, so that its batches never stall the request
   * event loop and it works beside it on another core (on the 2-core benchmark machine the flash
   * sale answered 10-20% more calls/s than with `inline`). `inline`: in this process, on its event
   * loop, in batches of up to 50 ms; one process less, for the smallest hosts. `off`: not here
   * (another host runs `node dist/server/ledger-main.js`).
   * Several writers may run at once: they share the work through one consumer group. LEDGER_WRITER.
   */
  readonly ledgerWriter: LedgerWriterMode;
  /**
   * How much lower the LEDGER_WRITER=process child's CPU priority is than the server's (added to
   * its nice value, 0..19). Default 10: the writer is background
   * work whose lag is bounded and caught up after a peak, so under a saturated CPU it yields to the
   * requests instead of taking their core for a batch. LEDGER_WRITER_NICE.
   */
  readonly ledgerWriterNice: number;
  /** Carve new partitions from base automatically (top-up). TOPUP_ENABLED, default true. */
  readonly topUpEnabled: boolean;
  /** Top up a SKU from base when its live pool falls below this. TOPUP_THRESHOLD, default 10. */
  readonly topUpThreshold: number;
  /** Units carved per top-up (at most base). TOPUP_UNITS, default 1000. */
  readonly topUpUnits: number;
  /** Partitions per top-up. TOPUP_PARTITIONS, default 4. */
  readonly topUpPartitions: number;
  /** An admin operation left open this long is finished by the recovery worker. INTENT_RECOVERY_MS, default 30000. */
  readonly intentRecoveryMs: number;
  /** TLS for InventoryService: PEM certificate and key files. INVENTORY_TLS_CERT / INVENTORY_TLS_KEY, default none. */
  readonly inventoryTls: TlsFiles | undefined;
  /** TLS for AdminService. ADMIN_TLS_CERT / ADMIN_TLS_KEY, default none. */
  readonly adminTls: TlsFiles | undefined;
  /** Seed demo SKUs at start-up when they do not exist yet. DEMO_DATA, default false (`npm start` sets it). */
  readonly demoData: boolean;
  /**
   * Where the consumer of the warehouses' stock messages (RabbitMQ) runs. `process` (default): a
   * child process the server supervises, like the ledger writer. `inline`: in the server process.
   * `off`: not here (another host runs `node dist/server/mq-main.js`). Any number may run: they
   * share the queue, and each message applies once by its message id. MQ_CONSUMER.
   */
  readonly mqConsumer: MqConsumerMode;
  /** The durable topic exchange warehouses publish stock messages to. MQ_STOCK_EXCHANGE, default "inventory.stock". */
  readonly mqStockExchange: string;
  /** The durable quorum queue the consumer reads, bound to the exchange with `stock.#`. MQ_STOCK_QUEUE, default "inventory.stock-updates". */
  readonly mqStockQueue: string;
  /** The fanout exchange of messages that cannot be applied. MQ_DEAD_LETTER_EXCHANGE, default "inventory.stock.dead". */
  readonly mqDeadLetterExchange: string;
  /** The durable queue that keeps them, with the reason. MQ_DEAD_LETTER_QUEUE, default "inventory.stock-updates.dead". */
  readonly mqDeadLetterQueue: string;
  /** Messages RabbitMQ hands the consumer ahead of the one being applied. MQ_PREFETCH, default 64. */
  readonly mqPrefetch: number;
  /** Messages of different SKUs the consumer applies at once (one SKU's always in order). MQ_CONCURRENCY, default 16. */
  readonly mqConcurrency: number;
  /** How often health probes Redis, MySQL and etcd (grpc.health.v1, /healthz, /readyz). HEALTH_INTERVAL_MS, default 1000. */
  readonly healthIntervalMs: number;
  /** How often partitions stopped after their Redis node lost writes are tried again for a restore. LOST_WRITES_RETRY_MS, default 5000. */
  readonly lostWritesRetryMs: number;
  /** How long health keeps reporting a node that lost writes after its partitions were restored. LOST_WRITES_NOTICE_SECONDS, default 900. */
  readonly lostWritesNoticeSeconds: number;
  /** How often each Redis node's memory is read (INFO memory) for the gauges, the warning and health. REDIS_MEMORY_CHECK_MS, default 10000. */
  readonly redisMemoryCheckMs: number;
  /**
   * Share of a node's maxmemory, in (0, 1], past which a warning is logged and health is degraded:
   * Redis runs with noeviction, so at maxmemory every write is refused. REDIS_MEMORY_WARN_RATIO, default 0.8.
   */
  readonly redisMemoryWarnRatio: number;
  /**
   * Share of a node's maxmemory, in (0, 1], from which the node counts as full: its writes are
   * refused, so health treats it like a node that is down (NOT_SERVING when no node is left).
   * At least the warn ratio. REDIS_MEMORY_FULL_RATIO, default 0.98.
   */
  readonly redisMemoryFullRatio: number;
  /** The topic exchange the inventory's events go to (docs/events.md). MQ_EVENTS_EXCHANGE, default "inventory.events". */
  readonly mqEventsExchange: string;
  /** How often an idle event publisher looks at the outboxes. MQ_EVENTS_POLL_MS, default 250. */
  readonly mqEventsPollMs: number;
  /** A SKU whose sellable units (base + live pool) fall below this gets a stock.low event; 0: never. STOCK_LOW_THRESHOLD, default 10. */
  readonly stockLowThreshold: number;
  /**
   * The circuit breaker of every dependency node (kernel/breaker.ts): BREAKER_VOLUME_THRESHOLD
   * (calls in the window before it may open, default 20), BREAKER_ERROR_PERCENTAGE (failed share
   * that opens it, default 50), BREAKER_RESET_MS (open time before one trial call, default 2000),
   * BREAKER_WINDOW_MS (the rolling window, default 10000).
   */
  readonly breakers: BreakerSettings;
  /**
   * Where this server keeps its last view of the registry, to start from while etcd is down; '' (set
   * `off`) to keep none. REGISTRY_SNAPSHOT_FILE, default <tmpdir>/inventory-core/registry-<namespace>.json (set a
   * persistent path in production).
   */
  readonly registrySnapshotFile: string;
  /** How long start-up waits for etcd before serving from the snapshot. ETCD_START_WAIT_MS, default 5000. */
  readonly etcdStartWaitMs: number;
  /**
   * Reserves of one SKU this process admits per second unless the SKU has its own limit
   * (AdminService.SetAdmissionLimit); 0 = unlimited. Default 0: the partitions already spread a
   * hot SKU, and refusing buyers while stock lasts is a business decision made per SKU; the
   * process as a whole is protected by MAX_IN_FLIGHT. ADMISSION_RESERVES_PER_SECOND.
   */
  readonly admissionReservesPerSecond: number;
  /** Bucket size of that default: Reserves admitted at once after a quiet spell; 0 = one second's worth. ADMISSION_BURST, default 0. */
  readonly admissionBurst: number;
  /**
   * InventoryService calls in progress in this process past which new ones are refused at once
   * (RESOURCE_EXHAUSTED, OVERLOADED); 0 = no limit. Default 2000: four times the benchmark's 500
   * calls in flight, and by Little's law 2000 / r seconds of queue for a process answering r
   * calls/s (200 ms at 10,000/s), past which waiting only makes every caller later. MAX_IN_FLIGHT.
   */
  readonly maxInFlight: number;
}

export interface TlsFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

type Env = Record<string, string | undefined>;

/** Largest admission rate and burst, in the environment and in AdminService.SetAdmissionLimit. */
export const MAX_ADMISSION = 1_000_000_000;

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const LEDGER_WRITER_MODES = ['process', 'inline', 'off'] as const;
export type LedgerWriterMode = (typeof LEDGER_WRITER_MODES)[number];
const MQ_CONSUMER_MODES = ['process', 'inline', 'off'] as const;
export type MqConsumerMode = (typeof MQ_CONSUMER_MODES)[number];
/** RabbitMQ exchange and queue names: AMQP short strings, without the reserved `amq.` prefix. */
const AMQP_NAME = /^(?!amq\.)[A-Za-z0-9._:-]{1,255}$/;
const AMQP_NAME_RULE = '1-255 characters from A-Z a-z 0-9 . _ : -, not starting with amq.';

/** Reads and validates the configuration; throws ConfigError naming the first bad variable. */
export function loadConfig(env: Env = process.env): Config {
  const read = new EnvReader(env);
  const stack = stackDefaults();
  const config: Config = {
    host: read.string('HOST', '0.0.0.0'),
    inventoryPort: read.port('INVENTORY_PORT', 50051),
    adminPort: read.port('ADMIN_PORT', 50052),
    metricsPort: read.port('METRICS_PORT', 9464),
    mqMetricsPort: read.port('MQ_METRICS_PORT', 9465),
    hotSkuMetrics: read.int('HOT_SKU_METRICS', 10, 0, 100),
    redisNodes: read.list('REDIS_NODES', stack.REDIS_NODES, hostPort),
    redisCluster: read.has('REDIS_CLUSTER') ? read.list('REDIS_CLUSTER', '', hostPort) : [],
    redisPrefix: read.matching('REDIS_PREFIX', 'inv', /^[A-Za-z0-9_.:-]{1,64}$/, 'letters, digits and _.:- only (no braces), 1-64 characters'),
    etcdEndpoints: read.list('ETCD_ENDPOINTS', stack.ETCD_ENDPOINTS, httpUrl),
    etcdNamespace: read.matching('ETCD_NAMESPACE', '/inventory/', /^\/[A-Za-z0-9_.\/-]*\/$/, 'a path that starts and ends with /'),
    mysqlUrl: read.url('MYSQL_URL', stack.MYSQL_URL, ['mysql:', 'mariadb:']),
    amqpUrl: read.url('AMQP_URL', stack.AMQP_URL, ['amqp:', 'amqps:']),
    adminToken: read.matching('ADMIN_TOKEN', 'dev-admin-token', /^\S{8,}$/, 'at least 8 characters, no spaces'),
    console: read.bool('CONSOLE', true),
    workers: read.int('WORKERS', 1, 1, 64),
    logLevel: read.oneOf('LOG_LEVEL', 'info', LOG_LEVELS),
    shutdownGraceMs: read.int('SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    defaultTtlSeconds: read.int('DEFAULT_TTL_SECONDS', 1800, 1, 30 * 86400),
    maxTtlSeconds: read.int('MAX_TTL_SECONDS', 86400, 1, 30 * 86400),
    maxItemQuantity: read.int('MAX_ITEM_QUANTITY', 10_000, 1, 1_000_000_000),
    redisShards: read.int('REDIS_SHARDS', 16, 1, 1024),
    redisCommandTimeoutMs: read.int('REDIS_COMMAND_TIMEOUT_MS', 2000, 10, 60_000),
    redisAutoPipeline: read.bool('REDIS_AUTO_PIPELINE', true),
    sweepIntervalMs: read.int('SWEEP_INTERVAL_MS', 1000, 10, 600_000),
    recoveryGraceMs: read.int('RECOVERY_GRACE_MS', 60_000, 100, 86_400_000),
    reserveTimeoutMs: read.int('RESERVE_TIMEOUT_MS', 10_000, 50, 600_000),
    orderRetentionSeconds: read.int('ORDER_RETENTION_SECONDS', 86400, 1, 365 * 86400),
    forgetIntervalMs: read.int('FORGET_INTERVAL_MS', 5000, 10, 600_000),
    forgottenFilterBits: read.int('FORGOTTEN_FILTER_BITS', 1 << 22, 64, 2 ** 32),
    forgottenHorizonSeconds: read.int('FORGOTTEN_HORIZON_SECONDS', 30 * 86400, 1, 3650 * 86400),
    ledgerWriter: read.oneOf('LEDGER_WRITER', 'process', LEDGER_WRITER_MODES),
    ledgerWriterNice: read.int('LEDGER_WRITER_NICE', 10, 0, 19),
    topUpEnabled: read.bool('TOPUP_ENABLED', true),
    topUpThreshold: read.int('TOPUP_THRESHOLD', 10, 0, 1_000_000_000),
    topUpUnits: read.int('TOPUP_UNITS', 1000, 1, 1_000_000_000),
    topUpPartitions: read.int('TOPUP_PARTITIONS', 4, 1, 256),
    intentRecoveryMs: read.int('INTENT_RECOVERY_MS', 30_000, 100, 86_400_000),
    inventoryTls: read.tls('INVENTORY_TLS'),
    adminTls: read.tls('ADMIN_TLS'),
    demoData: read.bool('DEMO_DATA', false),
    mqConsumer: read.oneOf('MQ_CONSUMER', 'process', MQ_CONSUMER_MODES),
    mqStockExchange: read.matching('MQ_STOCK_EXCHANGE', 'inventory.stock', AMQP_NAME, AMQP_NAME_RULE),
    mqStockQueue: read.matching('MQ_STOCK_QUEUE', 'inventory.stock-updates', AMQP_NAME, AMQP_NAME_RULE),
    mqDeadLetterExchange: read.matching('MQ_DEAD_LETTER_EXCHANGE', 'inventory.stock.dead', AMQP_NAME, AMQP_NAME_RULE),
    mqDeadLetterQueue: read.matching('MQ_DEAD_LETTER_QUEUE', 'inventory.stock-updates.dead', AMQP_NAME, AMQP_NAME_RULE),
    mqPrefetch: read.int('MQ_PREFETCH', 64, 1, 65535),
    mqConcurrency: read.int('MQ_CONCURRENCY', 16, 1, 1024),
    healthIntervalMs: read.int('HEALTH_INTERVAL_MS', 1000, 100, 60_000),
    lostWritesRetryMs: read.int('LOST_WRITES_RETRY_MS', 5000, 100, 600_000),
    lostWritesNoticeSeconds: read.int('LOST_WRITES_NOTICE_SECONDS', 900, 0, 30 * 86400),
    redisMemoryCheckMs: read.int('REDIS_MEMORY_CHECK_MS', 10_000, 100, 3_600_000),
    redisMemoryWarnRatio: read.ratio('REDIS_MEMORY_WARN_RATIO', 0.8),
    redisMemoryFullRatio: read.ratio('REDIS_MEMORY_FULL_RATIO', 0.98),
    mqEventsExchange: read.matching('MQ_EVENTS_EXCHANGE', 'inventory.events', AMQP_NAME, AMQP_NAME_RULE),
    mqEventsPollMs: read.int('MQ_EVENTS_POLL_MS', 250, 10, 60_000),
    stockLowThreshold: read.int('STOCK_LOW_THRESHOLD', 10, 0, 1_000_000_000),
    registrySnapshotFile: offOr(read.string('REGISTRY_SNAPSHOT_FILE', defaultSnapshotFile(read.string('ETCD_NAMESPACE', '/inventory/')))),
    etcdStartWaitMs: read.int('ETCD_START_WAIT_MS', 5000, 0, 600_000),
    breakers: {
      volumeThreshold: read.int('BREAKER_VOLUME_THRESHOLD', 20, 1, 1_000_000),
      errorThresholdPercentage: read.int('BREAKER_ERROR_PERCENTAGE', 50, 1, 100),
      resetTimeoutMs: read.int('BREAKER_RESET_MS', 2000, 10, 600_000),
      rollingWindowMs: read.int('BREAKER_WINDOW_MS', 10_000, 100, 3_600_000),
    },
    admissionReservesPerSecond: read.int('ADMISSION_RESERVES_PER_SECOND', 0, 0, MAX_ADMISSION),
    admissionBurst: read.int('ADMISSION_BURST', 0, 0, MAX_ADMISSION),
    maxInFlight: read.int('MAX_IN_FLIGHT', 2000, 0, 1_000_000),
  };
  if (config.redisCluster.length > 0 && read.has('REDIS_NODES')) {
    throw new ConfigError('REDIS_CLUSTER', 'set together with REDIS_NODES: name either the nodes of plain Redis (REDIS_NODES) or the seeds of a Redis Cluster (REDIS_CLUSTER), not both');
  }
  if (config.defaultTtlSeconds > config.maxTtlSeconds) {
    throw new ConfigError('DEFAULT_TTL_SECONDS', `must not exceed MAX_TTL_SECONDS (${config.maxTtlSeconds})`);
  }
  if (config.orderRetentionSeconds * 1000 <= config.reserveTimeoutMs) {
    throw new ConfigError('ORDER_RETENTION_SECONDS', `must exceed RESERVE_TIMEOUT_MS (${config.reserveTimeoutMs} ms): a late script of a Reserve would meet its take records cleared`);
  }
  if (config.recoveryGraceMs <= config.reserveTimeoutMs) {
    throw new ConfigError('RECOVERY_GRACE_MS', `must exceed RESERVE_TIMEOUT_MS (${config.reserveTimeoutMs}): a slow Reserve would be rolled back under its feet`);
  }
  if (config.admissionBurst > 0 && config.admissionReservesPerSecond === 0) {
    throw new ConfigError('ADMISSION_BURST', 'must be 0 while ADMISSION_RESERVES_PER_SECOND is 0 (unlimited)');
  }
  if (config.redisMemoryWarnRatio > config.redisMemoryFullRatio) {
    throw new ConfigError('REDIS_MEMORY_WARN_RATIO', `must not exceed REDIS_MEMORY_FULL_RATIO (${config.redisMemoryFullRatio}): a node would refuse writes before anyone was warned`);
  }
  if (config.mqDeadLetterExchange === config.mqStockExchange) {
    throw new ConfigError('MQ_DEAD_LETTER_EXCHANGE', 'must differ from MQ_STOCK_EXCHANGE: dead letters would be consumed again');
  }
  if (config.mqDeadLetterQueue === config.mqStockQueue) {
    throw new ConfigError('MQ_DEAD_LETTER_QUEUE', 'must differ from MQ_STOCK_QUEUE: dead letters would be consumed again');
  }
  return Object.freeze(config);
}

/** Parses one variable at a time; an empty value counts as unset. */
class EnvReader {
  constructor(private readonly env: Env) {}

  private raw(name: string): string | undefined {
    const value = this.env[name]?.trim();
    return value === '' ? undefined : value;
  }

  /** Whether the variable is set (not empty). */
  has(name: string): boolean {
    return this.raw(name) !== undefined;
  }

  string(name: string, fallback: string): string {
    return this.raw(name) ?? fallback;
  }

  matching(name: string, fallback: string, pattern: RegExp, expected: string): string {
    const value = this.string(name, fallback);
    if (!pattern.test(value)) throw new ConfigError(name, `${JSON.stringify(value)} is not ${expected}`);
    return value;
  }

  int(name: string, fallback: number, min: number, max: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    if (!/^-?\d+$/.test(value)) throw new ConfigError(name, `${JSON.stringify(value)} is not an integer`);
    const n = Number(value);
    if (n < min || n > max) throw new ConfigError(name, `${n} is outside ${min}..${max}`);
    return n;
  }

  /** A share, such as 0.8: a decimal number above 0 and at most 1. */
  ratio(name: string, fallback: number): number {
    const value = this.raw(name);
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^\d*\.?\d+$/.test(value) || n <= 0 || n > 1) throw new ConfigError(name, `${JSON.stringify(value)} is not a share in (0, 1], such as 0.8`);
    return n;
  }

  bool(name: string, fallback: boolean): boolean {
    const value = this.raw(name)?.toLowerCase();
    if (value === undefined) return fallback;
    if (['1', 'true', 'yes', 'on'].includes(value)) return true;
    if (['0', 'false', 'no', 'off'].includes(value)) return false;
    throw new ConfigError(name, `${JSON.stringify(value)} is not a boolean (true/false)`);
  }

  /** `<prefix>_CERT` and `<prefix>_KEY`: both or neither, each a readable file. */
  tls(prefix: string): TlsFiles | undefined {
    const certFile = this.raw(`${prefix}_CERT`);
    const keyFile = this.raw(`${prefix}_KEY`);
    if (!certFile && !keyFile) return undefined;
    if (!certFile) throw new ConfigError(`${prefix}_CERT`, `is required when ${prefix}_KEY is set`);
    if (!keyFile) throw new ConfigError(`${prefix}_KEY`, `is required when ${prefix}_CERT is set`);
    for (const [name, file] of [[`${prefix}_CERT`, certFile], [`${prefix}_KEY`, keyFile]]) {
      if (!existsSync(file)) throw new ConfigError(name, `${file} does not exist`);
    }
    return { certFile, keyFile };
  }

  port(name: string, fallback: number): number {
    return this.int(name, fallback, 0, 65535);
  }

  oneOf<T extends string>(name: string, fallback: T, allowed: readonly T[]): T {
    const value = this.string(name, fallback);
    if (!allowed.includes(value as T)) {
      throw new ConfigError(name, `${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
    }
    return value as T;
  }

  url(name: string, fallback: string, protocols: readonly string[]): string {
    const value = this.string(name, fallback);
    let parsed: URL;
    try {
      parsed = new URL(value);
    } catch {
      throw new ConfigError(name, `${JSON.stringify(value)} is not a URL`);
    }
    if (!protocols.includes(parsed.protocol)) {
      throw new ConfigError(name, `scheme ${parsed.protocol} is not one of ${protocols.join(', ')}`);
    }
    return value;
  }

  list(name: string, fallback: string, check: (item: string) => string | undefined): string[] {
    const items = this.string(name, fallback).split(',').map((s) => s.trim()).filter(Boolean);
    if (items.length === 0) throw new ConfigError(name, 'must list at least one entry');
    for (const item of items) {
      const problem = check(item);
      if (problem) throw new ConfigError(name, `${JSON.stringify(item)} ${problem}`);
    }
    if (new Set(items).size !== items.length) throw new ConfigError(name, 'lists an entry twice');
    return items;
  }
}

function hostPort(item: string): string | undefined {
  const m = /^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(item);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) return 'is not host:port';
  return undefined;
}

function httpUrl(item: string): string | undefined {
  return /^https?:\/\/[^/\s]+$/.test(item) ? undefined : 'is not an http(s)://host:port URL';
}

/** The configuration for a process entry point, or exit 2 naming the bad variable. */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}

/** One snapshot file per registry namespace, so servers of different deployments on a host never share one. */
export function defaultSnapshotFile(namespace: string): string {
  return path.join(os.tmpdir(), 'inventory-core', `registry-${namespace.replace(/[^A-Za-z0-9_-]+/g, '-').replace(/^-|-$/g, '')}.json`);
}

function offOr(value: string): string {
  return value === 'off' ? '' : value;
}
