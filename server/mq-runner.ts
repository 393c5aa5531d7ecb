import type { Pool } from 'mysql2/promise';
import { RedisShards } from '../allocator/shards';
import { StockApplier } from '../mq/types';
import { Config } from './config';
import type { Breakers } from '../kernel/breaker';
import { Logger } from '../kernel/logger';
import { StockConsumer } from '../mq/consumer';
import { EventPublisher } from '../mq/events';
import { createStockApplier } from './mq-applier';
import { Metrics, startMetricsServer } from './metrics';
import { eventPublisherOptions, stockConsumerOptions } from './mq-options';

/**
 * The RabbitMQ side of the inventory in a process that runs nothing else of the services
 * (mq-main, a cluster primary): the stock-message consumer with its own applier (its own MySQL,
 * Redis and etcd clients), and beside it the publisher of the inventory's events (docs/events.md),
 * which drains the outboxes on the same clients. Rejects when the applier cannot be built (the
 * caller exits, or retries); RabbitMQ being down is not a failure: both connect when they can, the
 * messages wait in the queue and the events in their outboxes.
 */
export async function startStockConsumer(config: Config, logger: Logger): Promise<MqWorkers> {
  const { applier, stores, close } = await createStockApplier(config, logger);
  const workers = await startMqWorkers(config, logger, applier, stores);
  const metricsServer = await serveConsumerMetrics(config, logger, workers);
  return {
    ...workers,
    async stop() {
      metricsServer?.close();
      await workers.stop();
      await close();
    },
  };
}

/**
 * The consumer's own /metrics (MQ_METRICS_PORT): its counters and the queues' depths, which no
 * server process sees. A port already taken (two consumers on one host) costs the metrics, not the
 * consumer: it is logged and the consumer runs on.
 */
async function serveConsumerMetrics(config: Config, logger: Logger, workers: MqWorkers): Promise<{ close(): void } | undefined> {
  const metrics = new Metrics();
  metrics.observeStockConsumer(workers.consumer);
  try {
    const server = await startMetricsServer(metrics, config.host, config.mqMetricsPort);
    logger.info({ metricsPort: server.port }, 'stock consumer: metrics served');
    return server;
  } catch (err) {
    logger.warn({ err, port: config.mqMetricsPort }, 'stock consumer: cannot serve its metrics (MQ_METRICS_PORT taken?); consuming without them');
    return undefined;
  }
}

/** The stock consumer and the event publisher, running. */
export interface MqWorkers {
  readonly consumer: StockConsumer;
  readonly events: EventPublisher;
  stop(): Promise<void>;
}

/** Starts the stock consumer with `applier`, and the event publisher on the given stores (its own process's, or the server's: MQ_CONSUMER=inline). */
export async function startMqWorkers(
  config: Config,
  logger: Logger,
  applier: StockApplier,
  stores: { shards: RedisShards; mysql: Pool; breakers: Breakers },
): Promise<MqWorkers> {
  const consumer = new StockConsumer({ ...stockConsumerOptions(config), breakers: stores.breakers }, applier, logger);
  const events = new EventPublisher({ ...eventPublisherOptions(config), breakers: stores.breakers }, stores.shards, stores.mysql, logger);
  await consumer.start();
  await events.start();
  return {
    consumer,
    events,
    async stop() {
      await Promise.all([consumer.stop(), events.stop()]);
    },
  };
}
