import type { Channel } from 'amqplib';

/**
 * The RabbitMQ objects of stock messages, declared by every consumer when it connects (declaring
 * what exists with the same arguments is a no-op; other arguments fail the declaration, and the
 * consumer logs it and retries):
 *
 *   warehouses ──stock.<kind>──▶ exchange (topic, durable)
 *                                   │ stock.#
 *                                   ▼
 *                                queue (quorum, durable) ──▶ consumer ──ack after apply
 *                                   │ x-dead-letter-exchange            │ cannot apply: republished
 *                                   ▼                                   ▼ with x-inventory-reason
 *                             deadLetterExchange (fanout, durable) ◀────┘
 *                                   │
 *                                   ▼
 *                             deadLetterQueue (quorum, durable)
 */
export interface StockTopology {
  readonly exchange: string;
  readonly queue: string;
  readonly deadLetterExchange: string;
  readonly deadLetterQueue: string;
  /**
   * The work queue's `x-delivery-limit`: a message delivered more often than this (it crashed the
   * consumer, or kept failing) is dead-lettered by the broker itself (with `x-death`, reason
   * `delivery_limit`) instead of looping for ever. Default 20.
   */
  readonly deliveryLimit?: number;
}

/** Every stock message's routing key matches it: `stock.<kind>` (mq/message.ts routingKey). */
export const STOCK_BINDING = 'stock.#';

export const DEFAULT_DELIVERY_LIMIT = 20;

/**
 * The work queue's arguments. Dead-lettering at least once (a quorum queue moves a dead letter
 * only once the dead-letter queue has confirmed it; that strategy needs `reject-publish` overflow,
 * which without a length limit never applies).
 */
export function stockQueueArguments(topology: StockTopology): Record<string, unknown> {
  return {
    'x-queue-type': 'quorum',
    'x-dead-letter-exchange': topology.deadLetterExchange,
    'x-delivery-limit': topology.deliveryLimit ?? DEFAULT_DELIVERY_LIMIT,
    'x-dead-letter-strategy': 'at-least-once',
    'x-overflow': 'reject-publish',
  };
}

/** Declares the exchanges, queues and bindings; idempotent. */
export async function declareTopology(channel: Channel, topology: StockTopology): Promise<void> {
  await channel.assertExchange(topology.deadLetterExchange, 'fanout', { durable: true });
  await channel.assertQueue(topology.deadLetterQueue, { durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await channel.bindQueue(topology.deadLetterQueue, topology.deadLetterExchange, '');
  await channel.assertExchange(topology.exchange, 'topic', { durable: true });
  await channel.assertQueue(topology.queue, { durable: true, arguments: stockQueueArguments(topology) });
  await channel.bindQueue(topology.queue, topology.exchange, STOCK_BINDING);
}
