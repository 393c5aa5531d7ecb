import { Etcd3 } from 'etcd3';
import type { Pool } from 'mysql2/promise';
import { RedisGateway } from '../allocator/gateway';
import { PartitionInspector } from '../allocator/inspector';
import { StockOperator } from '../admin/operator';
import { PartitionCreator } from '../allocator/partitions';
import { Reconciler } from '../admin/reconcile';
import { LostWritesGuard } from '../admin/lost-writes';
import { RestoreScripts } from '../allocator/restore-scripts';
import { AdmissionSettings } from '../admin/admission';
import { ReservationService } from '../allocator/reservations';
import { RedisShards } from '../allocator/shards';
import { Sweeper } from '../allocator/sweeper';
import { TopUp } from '../allocator/topup';
import { RegistryCache } from '../registry/cache';
import { RegistrySnapshotFile } from '../registry/snapshot-file';
import { Registry } from '../registry/registry';
import { RegistryWriteQueue } from '../registry/write-queue';
import { LedgerWriter } from '../ledger/writer';
import { newestPartitionId } from '../store/partitions';
import { readStock } from '../store/stock';
import { adminHandlers } from './admin-service';
import { HotSkus } from './hot-skus';
import { ReserveAdmission } from './admission';
import { AdminHandlers, InventoryHandlers } from './app';
import { buildOperatorGraph } from './operator-graph';
import { openStores } from './clients';
import { HealthMonitor } from './health';
import { MqWorkers, startMqWorkers } from './mq-runner';
import { StockMessageApplier } from '../mq/apply';
import { Config } from './config';
import { inventoryHandlers } from './inventory-service';
import type { Breakers } from '../kernel/breaker';
import { Logger } from '../kernel/logger';
import { Metrics } from './metrics';
import { StockTotalsReader } from './stock-totals';
import { Forgetter } from '../allocator/forgetter';
import { MysqlOrderArchive } from '../store/order-archive';
import { every } from './periodic';
import { RedisMemoryWatch } from './redis-memory';

/**
 * Everything one server process runs, built from the configuration: the Redis shards, the etcd
 * registry and its watched cache, MySQL with its migrations and the ledger writer, the reservation
 * service, the stock operator and the background workers. Each dependency is created here once and
 * injected, so tests build the same graph against their own namespaces.
 */
export interface Services {
  readonly shards: RedisShards;
  readonly gateway: RedisGateway;
  readonly inspector: PartitionInspector;
  readonly etcd: Etcd3;
  readonly mysql: Pool;
  readonly registry: Registry;
  readonly registryWrites: RegistryWriteQueue;
  readonly cache: RegistryCache;
  readonly reservations: ReservationService;
  readonly partitions: PartitionCreator;
  readonly operator: StockOperator;
  readonly reconciler: Reconciler;
  readonly ledger: LedgerWriter;
  readonly sweeper: Sweeper;
  /** Ends the records of orders whose retention is over (allocator/forgetter.ts). */
  readonly forgetter: Forgetter;
  readonly inventory: InventoryHandlers;
  readonly admin: AdminHandlers;
  /** What the server can do now, from its dependencies (server/health.ts). */
  readonly health: HealthMonitor;
  /** Finds and restores partitions of a Redis node that came back having lost writes. */
  readonly lostWrites: LostWritesGuard;
  /** Each Redis node's memory against its maxmemory (server/redis-memory.ts). */
  readonly redisMemory: RedisMemoryWatch;
  /** One circuit breaker per dependency node of this process (kernel/breaker.ts). */
  readonly breakers: Breakers;
  /** Stops the background work and closes every client, in order. */
  readonly closers: Array<() => Promise<void>>;
}

export async function createServices(config: Config, logger: Logger, metrics: Metrics): Promise<Services> {
  const stores = await openStores(config, logger, { etcd: true, scripts: true });
  const { shards, mysql } = stores;
  const etcd = stores.etcd!;
  try {
    const { gateway, inspector, registry, registryWrites, operatorRegistry, partitions, operator } = buildOperatorGraph({ shards, etcd, mysql }, config, logger);
    const lostWrites = await guardAgainstLostWrites(config, logger, metrics, shards, mysql, inspector);
    const cache = new RegistryCache(etcd, config.etcdNamespace, logger);
    cache.on('error', (err) => logger.warn({ err }, 'registry cache: watch failed; re-listing'));
    const snapshots = config.registrySnapshotFile ? new RegistrySnapshotFile(config.registrySnapshotFile, logger) : undefined;
    await startRegistryCache(cache, snapshots, config.etcdStartWaitMs, logger);
    metrics.observeRegistry(cache);
    metrics.observeBreakers(stores.breakers);
    const ledger = new LedgerWriter(shards, mysql, logger);
    // LEDGER_WRITER=process: main.ts runs the writer in a child; here it only reports the lag.
    if (config.ledgerWriter === 'inline') await ledger.start();
    metrics.observeLedger(ledger);
    const archive = new MysqlOrderArchive(mysql);
    const reservations = new ReservationService(gateway, cache, registryWrites, config, logger, archive);
    const reconciler = new Reconciler(
      {
        pool: mysql,
        inspector,
        registry: operatorRegistry,
        ledgerLag: () => ledger.lag(),
        recover: async (orderId) => (await reservations.recover(orderId)) === 'done',
        logger,
      },
      { recoveryGraceMs: config.recoveryGraceMs },
    );
    if (config.topUpEnabled) {
      reservations.useTopUp(
        new TopUp(
          {
            baseOf: async (sku) => (await readStock(mysql, [sku])).get(sku)?.base ?? 0,
            preallocate: (...args) => operator.preallocate(...args),
            newestPartition: (sku) => newestPartitionId(mysql, sku),
          },
          gateway,
          cache,
          {
            thresholdUnits: config.topUpThreshold,
            units: config.topUpUnits,
            partitions: config.topUpPartitions,
            emptyBaseCacheMs: 1000,
            lowStockUnits: config.stockLowThreshold,
          },
          logger,
        ),
      );
    }
    const hotSkus = config.hotSkuMetrics > 0 ? new HotSkus(() => performance.now()) : undefined;
    if (hotSkus) metrics.observeHotSkus(hotSkus, config.hotSkuMetrics, (sku) => reservations.livePool(sku));
    const admission = new ReserveAdmission(cache, config, metrics.admissionRefused.labels('SKU_RATE_LIMITED'));
    const sweeper = new Sweeper(gateway, reservations, { recoveryGraceMs: config.recoveryGraceMs }, logger, (kind, n) =>
      metrics.swept.labels(kind).inc(n),
    );
    metrics.observeRecovery(sweeper);
    const forgetter = new Forgetter(gateway, archive, {}, logger, (counts) => {
      metrics.forgotten.labels('order').inc(counts.orders);
      if (counts.partitions > 0) metrics.forgotten.labels('partition').inc(counts.partitions);
    });
    metrics.observeForgetter(forgetter);
    // MQ_CONSUMER=inline: the warehouses' messages and the events out, in this process (process: main.ts runs them in a child).
    const mq = config.mqConsumer === 'inline' ? await startInlineMq(config, logger, metrics, { mysql, shards, operator, gateway, registry, breakers: stores.breakers }) : undefined;
    // Per node, or in cluster mode per master as the cluster has them now (a failover changes them).
    const redisNodes = () => shards.nodeClients();
    const redisMemory = new RedisMemoryWatch(redisNodes, { warnRatio: config.redisMemoryWarnRatio, fullRatio: config.redisMemoryFullRatio }, logger);
    metrics.observeRedisMemory(redisMemory);
    // Read once before health starts, so a node already full is never reported SERVING.
    await redisMemory.check();
    const health = new HealthMonitor(
      {
        redis: redisNodes,
        mysql,
        etcd,
        notices: () => [...lostWrites.notices(), ...redisMemory.notices()],
        redisFull: () => redisMemory.fullNodes(),
      },
      config.healthIntervalMs,
      logger,
    );
    await health.start();
    metrics.observeHealth(health);
    const workers = [
      every('sweeper', config.sweepIntervalMs, () => sweeper.sweep(), logger),
      every('forgetter', config.forgetIntervalMs, () => forgetter.forget(), logger),
      every('intents', Math.max(1000, config.intentRecoveryMs / 3), () => operator.recoverIntents(config.intentRecoveryMs), logger),
      every('lost-writes', config.lostWritesRetryMs, () => lostWrites.retry(), logger),
      every('redis-memory', config.redisMemoryCheckMs, () => redisMemory.check(), logger),
    ];

    return {
      shards,
      gateway,
      inspector,
      etcd,
      mysql,
      registry,
      registryWrites,
      cache,
      reservations,
      partitions,
      operator,
      reconciler,
      ledger,
      sweeper,
      forgetter,
      health,
      lostWrites,
      redisMemory,
      breakers: stores.breakers,
      inventory: inventoryHandlers(reservations, config, metrics, new StockTotalsReader((skus) => readStock(mysql, skus)), admission, hotSkus ?? { count() {} }),
      admin: adminHandlers(operator, reconciler, new AdmissionSettings(mysql, registry), admission.defaults),
      closers: [
        async () => {
          await Promise.all([...workers.map((w) => w.stop()), health.stop()]);
        },
        async () => {
          await mq?.stop();
        },
        () => ledger.stop(),
        () => registryWrites.drain().catch((err) => logger.warn({ err }, 'registry writes left queued at shutdown')),
        () => registryWrites.close(),
        () => cache.stop(),
        async () => {
          if (!snapshots) return;
          await snapshots.stop();
          await snapshots.save(cache.snapshot());
        },
        () => stores.close(),
      ],
    };
  } catch (err) {
    await stores.close();
    throw err;
  }
}

/**
 * The lost-writes check (admin/lost-writes.ts): every node now, before this server serves, and
 * each node again whenever its script pipe connects anew (before the pipe sends it a call).
 */
async function guardAgainstLostWrites(config: Config, logger: Logger, metrics: Metrics, shards: RedisShards, mysql: Pool, inspector: PartitionInspector): Promise<LostWritesGuard> {
  const guard = new LostWritesGuard(
    { pool: mysql, redis: new RestoreScripts(shards), inspector, logger, onLost: (node, n) => metrics.redisLostWrites.labels(node).inc(n) },
    { ttlSeconds: config.defaultTtlSeconds, retentionSeconds: config.orderRetentionSeconds, noticeMs: config.lostWritesNoticeSeconds * 1000 },
  );
  metrics.observeLostWrites(guard);
  shards.onPipe((node, pipe) => pipe.setGate(() => guard.checkNode(node)));
  await guard.checkAll();
  return guard;
}

/** The stock-message consumer and the event publisher on this process's clients (MQ_CONSUMER=inline). */
async function startInlineMq(
  config: Config,
  logger: Logger,
  metrics: Metrics,
  graph: { mysql: Pool; shards: RedisShards; operator: StockOperator; gateway: RedisGateway; registry: Registry; breakers: Breakers },
): Promise<MqWorkers> {
  const { mysql, shards, operator, gateway, registry, breakers } = graph;
  const workers = await startMqWorkers(config, logger, new StockMessageApplier({ pool: mysql, operator, gateway, registry, logger }), { shards, mysql, breakers });
  metrics.observeStockConsumer(workers.consumer);
  return workers;
}

/**
 * Loads the registry from etcd; when etcd does not answer within `waitMs` and a snapshot was saved
 * earlier, serves that instead and lets the cache catch up once etcd is back (it keeps trying). With
 * no snapshot it waits for etcd, saying so. From then on the snapshot follows the cache.
 */
async function startRegistryCache(cache: RegistryCache, snapshots: RegistrySnapshotFile | undefined, waitMs: number, logger: Logger): Promise<void> {
  const loaded = cache.start();
  let fromSnapshot = false;
  let timer: NodeJS.Timeout | undefined;
  const waited = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), waitMs)));
  try {
    if ((await Promise.race([loaded, waited])) !== 'late') return;
    const snapshot = await snapshots?.load();
    if (snapshot) {
      cache.serveSnapshot(snapshot);
      fromSnapshot = true;
      loaded.then(
        () => logger.info('registry: etcd answers again; the cache is in sync'),
        () => undefined,
      );
      logger.warn(
        { file: snapshots!.file, revision: snapshot.revision, savedAt: new Date(snapshot.savedAt).toISOString(), entries: snapshot.entries.length },
        'registry: etcd does not answer; serving from the registry snapshot until it does (registry writes queue)',
      );
      return;
    }
    logger.error({ waitedMs: waitMs, snapshotFile: snapshots?.file ?? 'off' }, 'registry: etcd does not answer and there is no registry snapshot to start from; waiting for etcd');
    await loaded;
  } finally {
    clearTimeout(timer);
    if (snapshots) {
      snapshots.follow(cache);
      if (!fromSnapshot) void snapshots.save(cache.snapshot());
    }
  }
}
