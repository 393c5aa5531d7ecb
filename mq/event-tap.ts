import type { Channel } from 'amqplib';
import { Sleeper, backoffMs } from '../kernel/backoff';
import { InventoryEvent, parseOutboxEvent } from '../kernel/events';
import type { Logger } from '../kernel/logger';
import { AmqpLink, keepLinked } from './link';

/**
 * Subscribes `channel` to every event published on `exchange`: declares the exchange as the
 * publisher does (topic, durable), and a queue of the broker's naming, exclusive to this
 * connection and gone with it, bound with `#`. `maxLength` caps what the broker keeps for a slow
 * reader (the oldest go first). Answers the queue's name.
 */
export async function subscribeToEvents(channel: Channel, exchange: string, maxLength?: number): Promise<string> {
  await channel.assertExchange(exchange, 'topic', { durable: true });
  const { queue } = await channel.assertQueue('', {
    exclusive: true,
    autoDelete: true,
    ...(maxLength === undefined ? {} : { arguments: { 'x-max-length': maxLength } }),
  });
  await channel.bindQueue(queue, exchange, '#');
  return queue;
}

/** Where an EventTap listens. */
export interface EventTapOptions {
  /** amqp:// or amqps:// URL (AMQP_URL). */
  readonly url: string;
  /** The events exchange (MQ_EVENTS_EXCHANGE). */
  readonly exchange: string;
}

/** Events kept, the newest. */
const KEEP = 50;
/** Waits between attempts to link again: the first, doubling per failure (jittered), at most. */
const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5000;

/** Whether the tap hears the exchange now, and why not. */
export interface EventTapState {
  readonly exchange: string;
  readonly connected: boolean;
  /** Why the last link failed, while it is down. */
  readonly error?: string;
}

/**
 * The recent events as RabbitMQ carries them, for the web console: a queue of its own bound to the
 * events exchange, whose deliveries are kept in a small ring (the newest KEEP). Listening on the
 * exchange rather than to a publisher of this process makes it truthful however the publishers are
 * spread (a child process, another host, several of them): it sees every event any of them
 * publishes, and only what was published. An event published again (at least once) is kept once,
 * by id. What was published while the tap was not connected (before it started, RabbitMQ down) is
 * not seen. Reconnects with back-off, like the other links.
 */
export class EventTap {
  private readonly ring: InventoryEvent[] = [];
  private readonly sleeper = new Sleeper();
  private link: AmqpLink | undefined;
  private running: Promise<void> | undefined;
  private stopping = false;
  /** Subscribed and consuming (the link may be open before that). */
  private connected = false;
  private error: string | undefined;

  constructor(
    private readonly options: EventTapOptions,
    private readonly logger: Logger,
  ) {
  }

  /** Starts listening in the background; never rejects (RabbitMQ down is retried). */
  start(): void {
    if (this.running || this.stopping) return;
    this.running = keepLinked({
      open: () => AmqpLink.open(this.options.url, { heartbeatSeconds: 15, connectTimeoutMs: 10_000, name: 'inventory-console' }, this.logger),
      stopping: () => this.stopping,
      lost: (err) => this.lost(err),
      pause: (failures) => this.sleeper.sleep(backoffMs(failures, BACKOFF_MIN_MS, BACKOFF_MAX_MS)),
      serve: (link, healthy) => this.serve(link, healthy),
    }).catch((err) => this.logger.error({ err }, 'event tap: loop died'));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    this.sleeper.cancel();
    this.link?.interrupt();
    await this.running;
  }

  /** The events heard, newest first. */
  recent(): InventoryEvent[] {
    return [...this.ring].reverse();
  }

  state(): EventTapState {
    return { exchange: this.options.exchange, connected: this.connected, ...(this.error === undefined ? {} : { error: this.error }) };
  }

  private async serve(link: AmqpLink, healthy: () => void): Promise<void> {
    // Known to stop() before the subscription is set up: a stop during the set-up then interrupts
    // the link, and the loop below ends at once instead of waiting for deliveries for ever.
    this.link = link;
    if (this.stopping) link.interrupt();
    try {
      const queue = await subscribeToEvents(link.channel, this.options.exchange, 10 * KEEP);
      await link.consume(queue, 100);
      this.connected = true;
      this.error = undefined;
      healthy();
      for (let delivery = await link.next(); delivery; delivery = await link.next()) {
        this.hear(delivery.message.content.toString());
        link.settle(delivery, 'ack');
      }
    } finally {
      this.link = undefined;
      this.connected = false;
    }
    if (!this.stopping) throw link.closedBy ?? new Error(`the broker ended the console's subscription (${link.haltedBy})`);
  }

  private hear(body: string): void {
    const event = parseOutboxEvent(body);
    if ('problem' in event) {
      this.logger.debug({ problem: event.problem }, 'event tap: a message on the events exchange is not an event; not shown');
      return;
    }
    const again = this.ring.findIndex((e) => e.id === event.id);
    if (again >= 0) this.ring.splice(again, 1);
    this.ring.push(event);
    if (this.ring.length > KEEP) this.ring.shift();
  }

  private lost(err: unknown): void {
    const first = this.error === undefined;
    this.error = err instanceof Error ? err.message : String(err);
    if (first) this.logger.warn({ err, exchange: this.options.exchange }, 'event tap: RabbitMQ link lost; the console shows no new events until it is back');
  }
}
