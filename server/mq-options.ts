import { Config } from './config';
import { StockConsumerOptions } from '../mq/consumer';
import { EventPublisherOptions } from '../mq/events';

/** The stock consumer's options from the configuration (MQ_* and AMQP_URL); the rest keep their defaults. */
export function stockConsumerOptions(config: Config): StockConsumerOptions {
  return {
    url: config.amqpUrl,
    exchange: config.mqStockExchange,
    queue: config.mqStockQueue,
    deadLetterExchange: config.mqDeadLetterExchange,
    deadLetterQueue: config.mqDeadLetterQueue,
    prefetch: config.mqPrefetch,
    concurrency: config.mqConcurrency,
  };
}

/** The event publisher's options from the configuration (AMQP_URL, MQ_EVENTS_*). */
export function eventPublisherOptions(config: Config): EventPublisherOptions {
  return { url: config.amqpUrl, exchange: config.mqEventsExchange, pollIntervalMs: config.mqEventsPollMs };
}
