import http from 'node:http';
import { HealthReport, overallStatus } from './health';
import { AddressInfo } from 'node:net';
import { Counter, CounterConfiguration, Gauge, Metric, Registry, collectDefaultMetrics } from 'prom-client';
import type { BreakerState } from '../kernel/breaker';
import type { QueueDepths, StockConsumerStats } from '../mq/consumer';
import { MemoryReading, memoryRatio } from './redis-memory';
import type { HotSku } from './hot-skus';

/**
 * Every Prometheus metric of one server instance, on a registry of its own (not prom-client's
 * global one), so that several instances in one process — tests do that — never collide.
 */
export class Metrics {
  readonly registry = new Registry();

  /** Calls answered, by service, method and gRPC status code name (counted per call through batched children). */
  readonly rpcCalls = new BatchedCounter({
    name: 'inventory_rpc_calls_total',
    help: 'gRPC calls answered, by service, method and status code',
    labelNames: ['service', 'method', 'code'] as const,
    registers: [this.registry],
  });

  /** Handler latency in seconds, by service and method. */
  readonly rpcSeconds = new LatencyHistogram(this.registry, {
    name: 'inventory_rpc_duration_seconds',
    help: 'gRPC handler latency in seconds',
    labelNames: ['service', 'method'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
  });

  /** Reserve answers that were not replays, by outcome and rejection reason. */
  readonly reserveOutcomes = new BatchedCounter({
    name: 'inventory_reserve_total',
    help: 'Reserve answers (replays excluded) by outcome and rejection reason',
    labelNames: ['outcome', 'reason'] as const,
    registers: [this.registry],
  });

  /** Work of the expiry and recovery workers. */
  readonly swept = new Counter({
    name: 'inventory_swept_total',
    help: 'Holds expired, crashed carts rolled back and unfinished releases re-applied by the sweeper',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  /** Records the forgetter ended once their retention was over (allocator/forgetter.ts). */
  readonly forgotten = new Counter({
    name: 'inventory_forgotten_total',
    help: 'Records deleted from Redis at the end of their retention: orders (archived in MySQL first), and exhausted or drained partitions nothing held any more',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  /** Partitions found with fewer changes in Redis than MySQL's ledger holds, by Redis node (admin/lost-writes.ts). */
  readonly redisLostWrites = new Counter({
    name: 'inventory_redis_lost_writes_total',
    help: 'Partitions found on a Redis node that came back having lost acknowledged writes (stopped, then restored from MySQL)',
    labelNames: ['node'] as const,
    registers: [this.registry],
  });

  /** Calls refused by admission control, by reason: SKU_RATE_LIMITED (a SKU over its rate) or OVERLOADED (too many calls in flight). No SKU label: SKUs are unbounded. */
  readonly admissionRefused = new Counter({
    name: 'inventory_admission_refused_total',
    help: 'InventoryService calls refused with RESOURCE_EXHAUSTED by admission control, by reason (SKU_RATE_LIMITED, OVERLOADED)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'inventory_' });
  }

  /** Partitions stopped because their Redis node lost writes and not restored yet, read at scrape time. */
  observeLostWrites(guard: { suspectPartitions(): number }): void {
    new Gauge({
      name: 'inventory_redis_suspect_partitions',
      help: 'Partitions stopped because their Redis node lost acknowledged writes, not yet restored from MySQL',
      registers: [this.registry],
      collect() {
        this.set(guard.suspectPartitions());
      },
    });
  }

  /** Ledger lag, read at scrape time: records waiting in Redis for MySQL, and the age of the oldest. */
  observeLedger(ledger: { lag(): Promise<{ waiting: number; oldestAgeMs: number }> }): void {
    // A Redis node that is down must not fail the whole scrape: report -1 (unknown) instead.
    const read = oncePerScrape(() => ledger.lag(), { waiting: -1, oldestAgeMs: -1000 });
    this.scrapedGauge('inventory_ledger_lag_records', 'Ledger records waiting in Redis to be applied to MySQL', async () => (await read()).waiting);
    this.scrapedGauge('inventory_ledger_oldest_age_seconds', 'Age of the oldest ledger record not yet applied to MySQL', async () => (await read()).oldestAgeMs / 1000);
  }

  /**
   * Crash recovery's progress, read at scrape time: per shard, the age of the oldest Reserve still
   * in the pending index. Above RECOVERY_GRACE_MS plus a few sweeps, stuck carts are not being
   * rolled back. -1 while the shard's Redis node cannot be read.
   */
  observeRecovery(sweeper: { readonly shardCount: number; oldestPendingAgeMs(shard: number): Promise<number> }): void {
    new Gauge({
      name: 'inventory_recovery_oldest_pending_seconds',
      help: 'Age of the oldest unanswered Reserve in each shard\'s pending index (crash recovery rolls it back after the grace period)',
      labelNames: ['shard'] as const,
      registers: [this.registry],
      async collect() {
        const shards = Array.from({ length: sweeper.shardCount }, (_, shard) => shard);
        const ages = await Promise.all(shards.map((shard) => sweeper.oldestPendingAgeMs(shard).catch(() => -1000)));
        ages.forEach((ms, shard) => this.labels(String(shard)).set(ms / 1000));
      },
    });
  }

  /**
   * The forgetter's backlog, read at scrape time: orders whose retention ended and whose records are
   * still in Redis (all shards), and how long ago the oldest one's ended. Growing means Redis memory
   * grows: MySQL (the archive) is down, or the forgetter does not keep up.
   */
  observeForgetter(forgetter: { readonly shardCount: number; backlog(shard: number): Promise<{ due: number; oldestDueAgeMs: number }> }): void {
    const read = oncePerScrape(
      async () => {
        const all = await Promise.all(Array.from({ length: forgetter.shardCount }, (_, shard) => forgetter.backlog(shard)));
        return { due: all.reduce((n, b) => n + b.due, 0), oldestDueAgeMs: Math.max(0, ...all.map((b) => b.oldestDueAgeMs)) };
      },
      { due: -1, oldestDueAgeMs: -1000 },
    );
    this.scrapedGauge(
      'inventory_forget_backlog_orders',
      'Orders whose retention ended still waiting in Redis to be archived and deleted (-1: a Redis node did not answer)',
      async () => (await read()).due,
    );
    this.scrapedGauge(
      'inventory_forget_oldest_due_seconds',
      'How long ago the retention of the oldest order still waiting to be forgotten ended',
      async () => (await read()).oldestDueAgeMs / 1000,
    );
  }

  /** A gauge without labels whose value is read at scrape time. */
  private scrapedGauge(name: string, help: string, value: () => Promise<number>): void {
    new Gauge({
      name,
      help,
      registers: [this.registry],
      async collect() {
        this.set(await value());
      },
    });
  }

  /**
   * `inventory_breaker_state{dependency,node}`: 0 closed, 1 half-open, 2 open, for every breaker
   * of the process, read at scrape time (a breaker is made on first use of its node).
   */
  observeBreakers(breakers: { all(): ReadonlyArray<{ dependency: string; node: string | undefined; state: BreakerState }> }): void {
    new Gauge({
      name: 'inventory_breaker_state',
      help: 'Circuit breaker of each dependency node: 0 closed, 1 half-open (one trial call), 2 open (calls fail fast)',
      labelNames: ['dependency', 'node'],
      registers: [this.registry],
      collect() {
        this.reset();
        for (const b of breakers.all()) this.labels(b.dependency, b.node ?? '').set(BREAKER_GAUGE[b.state]);
      },
    });
  }

  /**
   * Each Redis node's memory as of the watcher's last check (redis-memory.ts), read at scrape time:
   * used bytes, maxmemory (0: no limit) and their ratio (0 without a limit); -1 while the node does
   * not answer. With noeviction a node at its maxmemory refuses every write.
   */
  observeRedisMemory(watch: { readings(): ReadonlyArray<{ node: string; reading: MemoryReading | undefined }> }): void {
    this.gaugesByLabel('node', async () => watch.readings().map(({ node, reading }) => [node, reading] as const), [
      ['inventory_redis_used_bytes', 'Memory used by each Redis node (INFO memory used_memory) at the last check; -1: the node did not answer', (r) => r?.usedBytes ?? -1],
      ['inventory_redis_maxmemory_bytes', 'maxmemory of each Redis node (0: no limit); at the limit every write is refused (noeviction)', (r) => r?.maxBytes ?? -1],
      ['inventory_redis_memory_ratio', 'used / maxmemory of each Redis node (0: no limit); past REDIS_MEMORY_WARN_RATIO health is degraded, from REDIS_MEMORY_FULL_RATIO the node counts as full', (r) => (r ? memoryRatio(r) : -1)],
    ]);
  }

  /**
   * The hot SKUs of this process (server/hot-skus.ts), read at scrape time: for each of the top
   * ones by Reserve rate, that rate, its live partitions and its sellable units (the partitions'
   * avail, read from Redis). Bounded to `limit` SKUs, so the catalogue's size never reaches
   * Prometheus. -1 sellable while the SKU's Redis nodes do not answer.
   */
  observeHotSkus(hot: { top(limit: number): HotSku[] }, limit: number, pool: (sku: string) => Promise<{ pool: number; partitions: number }>): void {
    const rows = async () => {
      const skus = hot.top(limit);
      const pools = await Promise.all(skus.map((s) => pool(s.sku).catch(() => undefined)));
      return skus.map((s, i) => [s.sku, { ...s, pool: pools[i] }] as const);
    };
    this.gaugesByLabel('sku', rows, [
      ['inventory_hot_sku_reserve_rate', 'Reserve calls per second naming each of this process\'s hottest SKUs (HOT_SKU_METRICS of them)', (s) => s.perSecond],
      ['inventory_hot_sku_partitions', 'Live partitions of each hot SKU (-1: unknown)', (s) => s.pool?.partitions ?? -1],
      ['inventory_hot_sku_sellable_units', 'Units of each hot SKU its live partitions can still sell, read from Redis (-1: a node did not answer)', (s) => s.pool?.pool ?? -1],
    ]);
  }

  /**
   * Gauges with one label whose series are read at scrape time from one list of (label value, row):
   * the list is read once per scrape for all of them, and series of values gone from it are dropped.
   */
  private gaugesByLabel<T>(label: string, rows: () => Promise<ReadonlyArray<readonly [string, T]>>, gauges: Array<[name: string, help: string, value: (row: T) => number]>): void {
    const read = oncePerScrape(rows, []);
    for (const [name, help, value] of gauges) {
      new Gauge({
        name,
        help,
        labelNames: [label],
        registers: [this.registry],
        async collect() {
          const all = await read();
          this.reset();
          for (const [key, row] of all) this.labels(key).set(value(row));
        },
      });
    }
  }

  /**
   * `inventory_health_status{service}`: what health says of each service, as a number alerts and
   * dashboards can use: 2 SERVING, 1 DEGRADED (serving, but something works less well), 0 NOT_SERVING.
   * `service="overall"` is /healthz's status.
   */
  observeHealth(health: { report(): HealthReport }): void {
    const level = { SERVING: 2, DEGRADED: 1, NOT_SERVING: 0 } as const;
    new Gauge({
      name: 'inventory_health_status',
      help: 'Health of each service: 2 SERVING, 1 DEGRADED, 0 NOT_SERVING (service="overall": the /healthz status)',
      labelNames: ['service'] as const,
      registers: [this.registry],
      collect() {
        const report = health.report();
        const degraded = report.degraded.length > 0;
        const of = (status: HealthReport['inventory']) => (status !== 'SERVING' ? level.NOT_SERVING : degraded ? level.DEGRADED : level.SERVING);
        this.labels('inventory').set(of(report.inventory));
        this.labels('admin').set(of(report.admin));
        this.labels('overall').set(level[overallStatus(report)]);
      },
    });
  }

  /** InventoryService calls in progress, read at scrape time, and the cap they are shed at. */
  observeInFlight(gate: { readonly inFlight: number; readonly limit: number }): void {
    new Gauge({
      name: 'inventory_inflight_calls',
      help: 'InventoryService calls in progress in this process',
      registers: [this.registry],
      collect() {
        this.set(gate.inFlight);
      },
    });
    new Gauge({
      name: 'inventory_inflight_limit',
      help: 'InventoryService calls in progress past which new ones are shed (MAX_IN_FLIGHT; 0 = no limit)',
      registers: [this.registry],
      collect() {
        this.set(gate.limit);
      },
    });
  }

  /** Gauges read from the watched registry cache at scrape time. */
  observeRegistry(cache: { skus(): Iterable<string>; partitions(sku: string): readonly unknown[]; staleness(): number }): void {
    new Gauge({
      name: 'inventory_partitions',
      help: 'Live partitions in this server\'s registry cache',
      registers: [this.registry],
      collect() {
        let n = 0;
        for (const sku of cache.skus()) n += cache.partitions(sku).length;
        this.set(n);
      },
    });
    new Gauge({
      name: 'inventory_registry_staleness_seconds',
      help: 'Seconds since the registry cache was last known in sync with etcd',
      registers: [this.registry],
      collect() {
        const ms = cache.staleness();
        this.set(Number.isFinite(ms) ? ms / 1000 : -1);
      },
    });
  }

  /**
   * The stock-message consumer's counters and its queues' depths, read at scrape time from a
   * consumer in this process: the server's with MQ_CONSUMER=inline, or the consumer process's
   * own metrics port (MQ_METRICS_PORT) when it runs on its own (mq-main).
   */
  observeStockConsumer(consumer: { stats(): StockConsumerStats; queueDepths(): Promise<QueueDepths | undefined> }): void {
    this.gaugesByLabel(
      'queue',
      async () => {
        const depths = await consumer.queueDepths().catch(() => undefined);
        return [['work', depths?.waiting ?? -1], ['dead_letter', depths?.deadLetters ?? -1]] as const;
      },
      [['inventory_stock_queue_messages', 'Messages in RabbitMQ: ready in the stock work queue (the consumer\'s lag) and in the dead-letter queue; -1 while not connected', (n) => n]],
    );
    const registry = this.registry;
    /** A counter (or gauge) per label value, set from the consumer's stats at scrape time. */
    function fromStats(kind: typeof Counter | typeof Gauge, name: string, help: string, label: string, read: (stats: StockConsumerStats) => Record<string, number>): void {
      new kind({
        name,
        help,
        labelNames: [label],
        registers: [registry],
        collect(this: Counter<string> | Gauge<string>) {
          this.reset();
          for (const [value, n] of Object.entries(read(consumer.stats()))) this.inc({ [label]: value }, n);
        },
      });
    }
    fromStats(Counter, 'inventory_stock_messages_total', 'Stock messages from RabbitMQ acked after apply, by outcome', 'outcome', (s) => ({
      applied: s.applied,
      duplicate: s.duplicates,
      stale: s.stale,
    }));
    fromStats(
      Counter,
      'inventory_stock_messages_dead_lettered_total',
      'Stock messages moved to the dead-letter queue, by reason class (malformed: unreadable; rejected: refused by the applier)',
      'reason_class',
      (s) => ({ ...s.deadLettered }),
    );
    fromStats(Counter, 'inventory_stock_apply_failures_total', 'Stock messages whose apply failed transiently (MySQL or Redis unavailable) and went back to the queue, by kind', 'kind', (s) => ({
      transient: s.applyFailures,
    }));
    fromStats(Gauge, 'inventory_stock_consumer_state', 'The stock consumer: 1 while consuming (a consumer registered with RabbitMQ), 1 while paused (an outage of the applier holds consumption)', 'state', (s) => ({
      consuming: Number(s.consuming),
      paused: Number(s.paused),
    }));
  }
}

/**
 * Serves GET /metrics (Prometheus text format) and the probes load balancers and Kubernetes use:
 * /livez (the process answers), /readyz (InventoryService can do its job: 200, or 503), /healthz
 * (the whole report as JSON: status SERVING, DEGRADED or NOT_SERVING, per service, what is
 * degraded and each dependency; 503 when InventoryService cannot serve). Without a health source
 * every probe answers as if all is well. `routes` serves more paths on the same port (the web
 * console, server/console-http.ts); it answers whether it took the request.
 */
export async function startMetricsServer(
  metrics: Metrics,
  host: string,
  port: number,
  health?: { report(): HealthReport },
  routes?: HttpRoute,
): Promise<http.Server & { port: number }> {
  const server = http.createServer((req, res) => {
    if (routes?.(req, res)) return;
    const report = health?.report();
    const ready = !report || report.inventory === 'SERVING';
    if (req.method === 'GET' && req.url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(err.message),
      );
    } else if (req.method === 'GET' && req.url === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
    } else if (req.method === 'GET' && req.url === '/readyz') {
      res.writeHead(ready ? 200 : 503, { 'content-type': 'text/plain' }).end(ready ? 'ok\n' : 'not serving\n');
    } else if (req.method === 'GET' && req.url === '/healthz') {
      const status = report ? overallStatus(report) : 'SERVING';
      res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(`${JSON.stringify({ status, ...(report ?? {}) })}\n`);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return Object.assign(server, { port: (server.address() as AddressInfo).port });
}

/** More paths on the metrics port: answers true when it took the request (and answers it). */
export type HttpRoute = (req: http.IncomingMessage, res: http.ServerResponse) => boolean;

const BREAKER_GAUGE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

/** A counter child that counts in a plain number (BatchedCounter). */
export interface CountingChild {
  inc(): void;
}

/**
 * A prom-client Counter whose batched() children count calls in a plain number, added to the
 * counter whenever it is read (get(): every scrape and every test reading it). prom-client's own
 * labels() child hashes and checks its label values on every inc(), which on the per-call path of
 * every gRPC answer cost more than the answer's own bookkeeping; the exported series are the same.
 */
export class BatchedCounter<T extends string> extends Counter<T> {
  private readonly batches: Array<{ labels: Partial<Record<T, string>>; pending: number }> = [];

  constructor(config: CounterConfiguration<T>) {
    super({
      ...config,
      collect(this: Counter<T>) {
        (this as BatchedCounter<T>).flush();
      },
    });
  }

  /** A child of these label values (in labelNames order) for the per-call path: make it once, inc() per call. */
  batched(...values: string[]): CountingChild {
    const names = (this as unknown as { labelNames: T[] }).labelNames;
    const labels: Partial<Record<T, string>> = {};
    names.forEach((name, i) => (labels[name] = values[i]));
    const batch = { labels, pending: 0 };
    this.batches.push(batch);
    return {
      inc: () => {
        batch.pending++;
      },
    };
  }

  private flush(): void {
    for (const batch of this.batches) {
      if (batch.pending === 0) continue;
      const n = batch.pending;
      batch.pending = 0;
      this.inc(batch.labels, n);
    }
  }
}

/** One exported value, as prom-client's metrics hand them to their registry. */
interface ExportedValue {
  labels: Record<string, string | number>;
  sharedLabels?: Record<string, string>;
  value: number;
  metricName: string;
  exemplar?: null;
}

interface Exported {
  name: string;
  help: string;
  type: 'histogram';
  values: ExportedValue[];
  aggregator: 'sum';
}

/** A child of a LatencyHistogram: one series, counted in plain numbers. */
export interface LatencySeries {
  observe(seconds: number): void;
}

/**
 * A Prometheus histogram for the per-call latency, registered like any prom-client metric and
 * exported exactly as prom-client's Histogram would (the same series, labels and order), but whose
 * series count in a typed array: prom-client's observe() builds a label object, hashes and checks
 * it on every call. Series are made once per service and method (labels()), never per call.
 */
export class LatencyHistogram {
  readonly type = 'histogram';
  readonly aggregator = 'sum';
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly string[];
  private readonly bounds: readonly number[];
  private readonly series = new Map<string, { labels: Record<string, string>; buckets: Float64Array; sum: number; count: number }>();

  constructor(registry: Registry, config: { name: string; help: string; labelNames: readonly string[]; buckets: readonly number[] }) {
    this.name = config.name;
    this.help = config.help;
    this.labelNames = config.labelNames;
    this.bounds = [...config.buckets].sort((a, b) => a - b);
    registry.registerMetric(this as unknown as Metric);
  }

  labels(...values: string[]): LatencySeries {
    const key = values.join('\u0000');
    let one = this.series.get(key);
    if (!one) {
      const labels: Record<string, string> = {};
      this.labelNames.forEach((name, i) => (labels[name] = values[i]));
      one = { labels, buckets: new Float64Array(this.bounds.length), sum: 0, count: 0 };
      this.series.set(key, one);
    }
    const s = one;
    const bounds = this.bounds;
    return {
      observe(seconds: number) {
        s.sum += seconds;
        s.count++;
        for (let i = 0; i < bounds.length; i++) {
          if (seconds <= bounds[i]) {
            s.buckets[i]++;
            return;
          }
        }
      },
    };
  }

  /** What prom-client's Histogram hands its registry: bucket series cumulative, then +Inf, sum and count. */
  getForPromString(): Exported {
    const values: ExportedValue[] = [];
    for (const { labels, buckets, sum, count } of this.series.values()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += buckets[i];
        values.push({ labels: { le }, sharedLabels: labels, value: acc, metricName: `${this.name}_bucket`, exemplar: null });
      });
      values.push({ labels: { le: '+Inf' }, sharedLabels: labels, value: count, metricName: `${this.name}_bucket`, exemplar: null });
      values.push({ labels: {}, sharedLabels: labels, value: sum, metricName: `${this.name}_sum` });
      values.push({ labels: {}, sharedLabels: labels, value: count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  /** The same with each value's labels whole (prom-client's get()). */
  async get(): Promise<Exported> {
    const data = this.getForPromString();
    data.values = data.values.map(({ sharedLabels, labels, ...rest }) => ({ ...rest, labels: { ...labels, ...sharedLabels } }));
    return data;
  }

  reset(): void {
    this.series.clear();
  }
}

/**
 * One read shared by the gauges of one scrape (they are collected together), made again at the
 * next scrape; a read that fails answers `unknown` instead of failing the scrape.
 */
function oncePerScrape<T>(read: () => Promise<T>, unknown: T): () => Promise<T> {
  let last: Promise<T> | undefined;
  return () =>
    (last ??= read()
      .catch(() => unknown)
      .finally(() => setImmediate(() => (last = undefined))));
}
