import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { Options } from 'amqplib';
import type { Pool } from 'mysql2/promise';
import type { RedisClient, RedisShards } from '../allocator/shards';
import type { Breakers } from '../kernel/breaker';
import { Sleeper, backoffMs } from '../kernel/backoff';
import type { InventoryEvent } from '../kernel/events';
import type { Logger } from '../kernel/logger';
import { outboxBacklog } from '../store/outbox';
import { AmqpLink, LinkOptions, keepLinked } from './link';
import { OutboxBatch, OutboxSource, StreamOutbox, TableOutbox } from './outbox-sources';
import { emitSafely } from '../kernel/emit';

/** The options of an EventPublisher; every one but `url` has a default that suits production. */
export interface EventPublisherOptions {
  /** amqp:// or amqps:// URL (AMQP_URL). */
  readonly url: string;
  /** The topic exchange events go to, declared durable when missing (MQ_EVENTS_EXCHANGE). Default 'inventory.events'. */
  readonly exchange?: string;
  /** Consumer group of the Redis outbox streams, shared by every publisher. Default 'events'. */
  readonly group?: string;
  /** This publisher's name in the group and on the MySQL rows it leases. Default `<hostname>:<pid>:<n>`. */
  readonly consumer?: string;
  /** Events taken per source and batch (per Redis stream; rows of the MySQL outbox). Default 100. */
  readonly batchSize?: number;
  /** How often an idle publisher looks at the outboxes again (MQ_EVENTS_POLL_MS). Default 250 ms. */
  readonly pollIntervalMs?: number;
  /**
   * Events a publisher took and never acknowledged this long ago (it died between publishing and
   * acknowledging) are taken over by another: Redis entries idle this long, MySQL leases of this
   * length. Default 30000 ms.
   */
  readonly claimIdleMs?: number;
  /** Consumers with nothing pending and idle this long leave the Redis group. Default 1 hour. */
  readonly forgetConsumersAfterMs?: number;
  /** How long a batch may wait for the broker's confirms before the link is given up. Default 30000 ms. */
  readonly confirmTimeoutMs?: number;
  /** First wait after a failure (RabbitMQ, a Redis node, MySQL); doubles per failure, jittered. Default 100 ms. */
  readonly backoffMinMs?: number;
  /** Longest wait between attempts. Default 5000 ms. */
  readonly backoffMaxMs?: number;
  /** AMQP heartbeat asked for when the URL names none. Default 15 s. */
  readonly heartbeatSeconds?: number;
  /** TCP connect and AMQP handshake timeout. Default 10000 ms. */
  readonly connectTimeoutMs?: number;
  /** The process's breakers: connection attempts go through its `rabbitmq` one. Default: none. */
  readonly breakers?: Breakers;
  /**
   * Called after the broker confirmed a batch and before it is removed from the outbox; a throw
   * leaves the batch in the outbox (tests use it to die in exactly that gap). Default none.
   */
  readonly beforeAck?: (events: readonly InventoryEvent[]) => Promise<void> | void;
}

/** Counters since construction, and the present state. */
export interface EventPublisherStats {
  /** Events the broker confirmed (one published again after a crash counts again). */
  readonly published: number;
  /** Batches confirmed and removed from their outbox. */
  readonly batches: number;
  /** Outbox entries that were not events: logged at error level and dropped. */
  readonly malformed: number;
  /** Redis outbox entries taken over from publishers that stopped before acknowledging them. */
  readonly claimed: number;
  /** Failed attempts of an outbox (a Redis node or MySQL unavailable), retried with back-off. */
  readonly failures: number;
  /** Connections to RabbitMQ opened (the first and every reconnection). */
  readonly connections: number;
  /** Whether a link to RabbitMQ is open now. */
  readonly connected: boolean;
  /** Outboxes failing now (Redis nodes, MySQL). */
  readonly sourcesDown: number;
}

/** Events of an EventPublisher. Listeners that throw are logged, never break the loop. */
export interface EventPublisherEvents {
  /** A batch was confirmed by the broker and removed from its outbox. */
  published: [events: readonly InventoryEvent[]];
  /** The link to RabbitMQ was lost or could not be opened; the publisher reconnects. */
  disconnected: [err: unknown];
}

/** Per outbox: failures in a row, and when to try it again. */
interface SourceState {
  readonly source: OutboxSource;
  failures: number;
  retryAt: number;
}

let instances = 0;

/**
 * Publishes the inventory's events (docs/events.md) from their outboxes to a RabbitMQ topic
 * exchange, at least once:
 *
 * - The outboxes: one stream per Redis shard (`<prefix>:{s<N>}:outbox`, written by the Lua scripts
 *   in the same call as the change), read per Redis node through the consumer group `events`; and
 *   the MySQL table `event_outbox` (written in the transaction of the change), leased row by row.
 * - Each event goes out as its JSON (kernel/events.ts) on a confirm channel, routing key = its
 *   type, with content type application/json, message id = the event id, type, timestamp, and
 *   persistent. Only after the broker confirmed the whole batch is it removed from the outbox
 *   (XACK+XDEL, DELETE). A crash in between publishes it again, with the same id: consumers
 *   deduplicate by message id.
 * - RabbitMQ down: the link (mq/link.ts) is reopened with back-off (100 ms doubling to 5 s,
 *   jittered), the events wait in their outboxes. A Redis node or MySQL down: that outbox is
 *   retried with back-off while the others go on.
 *
 * Several publishers may run at once (one per process that runs one): each event goes to one of
 * them, and one that dies leaves its unacknowledged events to the others after `claimIdleMs`.
 */
export class EventPublisher extends EventEmitter<EventPublisherEvents> {
  readonly consumer: string;
  readonly exchange: string;
  private readonly pollIntervalMs: number;
  private readonly confirmTimeoutMs: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly linkOptions: LinkOptions;
  private readonly conns: RedisClient[] = [];
  private readonly streams: StreamOutbox[] = [];
  private readonly sources: SourceState[] = [];
  private readonly counts = { published: 0, batches: 0, malformed: 0, failures: 0, connections: 0 };
  private readonly sleeper = new Sleeper();
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private stopping = false;
  private link: AmqpLink | undefined;
  private brokerDown = false;

  constructor(
    private readonly options: EventPublisherOptions,
    private readonly shards: RedisShards,
    private readonly pool: Pool,
    private readonly logger: Logger,
  ) {
    super();
    instances += 1;
    this.consumer = options.consumer ?? `${os.hostname()}:${process.pid}:${instances}`;
    this.exchange = options.exchange ?? 'inventory.events';
    this.pollIntervalMs = options.pollIntervalMs ?? 250;
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? 30_000;
    this.backoffMinMs = options.backoffMinMs ?? 100;
    this.backoffMaxMs = options.backoffMaxMs ?? 5000;
    this.linkOptions = {
      heartbeatSeconds: options.heartbeatSeconds ?? 15,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      breaker: options.breakers?.for('rabbitmq', new URL(options.url).host),
    };
    const batchSize = options.batchSize ?? 100;
    const claimIdleMs = options.claimIdleMs ?? 30_000;
    const streamOptions = {
      group: options.group ?? 'events',
      consumer: this.consumer,
      batchSize,
      claimIdleMs,
      forgetConsumersAfterMs: options.forgetConsumersAfterMs ?? 3_600_000,
    };
    for (const { node, shards: ofGroup, open } of shards.streamGroups()) {
      const conn = open({
        lazyConnect: true,
        // A read resent after a reconnect could deliver entries whose reply is lost; instead the
        // failed read sends the source back to its pending entries.
        autoResendUnfulfilledCommands: false,
        enableAutoPipelining: false,
        maxRetriesPerRequest: 1,
        connectionName: `inventory-events:${process.pid}`,
      });
      conn.on('error', (err) => logger.debug({ err, node }, 'event publisher: redis connection error'));
      this.conns.push(conn);
      const keys = ofGroup.map((shard) => shards.keys.outbox(shard));
      const stream = new StreamOutbox(node, conn, keys, streamOptions, logger);
      this.streams.push(stream);
      this.sources.push({ source: stream, failures: 0, retryAt: 0 });
    }
    this.sources.push({ source: new TableOutbox(pool, this.consumer, claimIdleMs, batchSize, logger), failures: 0, retryAt: 0 });
  }

  /**
   * Starts publishing in the background. Never rejects: RabbitMQ, Redis or MySQL being down at
   * start is an outage like any other (logged, retried with back-off).
   */
  start(): Promise<void> {
    if (!this.running && !this.stopping) {
      this.running = this.run().catch((err) => this.logger.error({ err }, 'event publisher: loop died'));
      this.logger.info({ consumer: this.consumer, exchange: this.exchange }, 'event publisher started');
    }
    return Promise.resolve();
  }

  /**
   * Lets the batch in flight be confirmed and acknowledged (for up to 5 s; past that the link is
   * closed and the batch stays in the outbox, to be published again), then closes the connections.
   * Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  stats(): EventPublisherStats {
    return {
      ...this.counts,
      claimed: this.streams.reduce((n, s) => n + s.claimed, 0),
      connected: this.link?.open ?? false,
      sourcesDown: this.sources.filter((s) => s.failures > 0).length,
    };
  }

  /** Events waiting in the outboxes (Redis streams, MySQL table), not yet confirmed by the broker. */
  async backlog(): Promise<{ redis: number; mysql: number }> {
    const lengths = await Promise.all(
      Array.from({ length: this.shards.keys.shardCount }, (_, shard) => this.shards.client(shard).xlen(this.shards.keys.outbox(shard))),
    );
    return { redis: lengths.reduce((a, b) => a + b, 0), mysql: await outboxBacklog(this.pool) };
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.sleeper.cancel();
    if (this.running) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => (timer = setTimeout(() => resolve('late'), 5000)));
      if ((await Promise.race([this.running, late])) === 'late') await this.link?.close();
      clearTimeout(timer);
      await this.running;
    }
    await Promise.all(
      this.conns.map(async (conn) => {
        await Promise.race([conn.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000))]);
        conn.disconnect();
      }),
    );
    if (this.running) this.logger.info({ consumer: this.consumer, ...this.stats() }, 'event publisher stopped');
  }

  /** Connects, publishes, and on a lost link connects again after the back-off (keepLinked). */
  private run(): Promise<void> {
    return keepLinked({
      open: () => AmqpLink.open(this.options.url, { ...this.linkOptions, name: 'inventory-events' }, this.logger),
      stopping: () => this.stopping,
      lost: (err) => this.disconnected(err),
      pause: (failures) => this.sleeper.sleep(backoffMs(failures, this.backoffMinMs, this.backoffMaxMs)),
      serve: async (link, healthy) => {
        this.link = link;
        this.counts.connections += 1;
        try {
          await link.channel.assertExchange(this.exchange, 'topic', { durable: true });
          healthy();
          if (this.brokerDown) {
            this.brokerDown = false;
            this.logger.info({ exchange: this.exchange }, 'event publisher: connected to RabbitMQ again; publishing');
          }
          await this.serve(link);
        } finally {
          this.link = undefined;
        }
      },
    });
  }

  /** Takes batches from every outbox in turn until the link fails (throws) or the publisher stops. */
  private async serve(link: AmqpLink): Promise<void> {
    while (!this.stopping) {
      let busy = false;
      for (const state of this.sources) {
        if (this.stopping) return;
        if (state.retryAt > Date.now()) continue;
        if (await this.publishBatch(link, state)) busy = true;
      }
      if (!busy) await this.sleeper.sleep(this.idleWait());
    }
  }

  /**
   * One batch of one outbox: take, publish and wait for the confirms, then acknowledge. Answers
   * whether it published anything. Throws when the link failed (the caller reconnects); an outbox
   * that failed is backed off on its own.
   */
  private async publishBatch(link: AmqpLink, state: SourceState): Promise<boolean> {
    let batch: OutboxBatch | undefined;
    try {
      batch = await state.source.take();
    } catch (err) {
      this.sourceFailed(state, err);
      return false;
    }
    if (!batch) {
      this.sourceUp(state);
      return false;
    }
    try {
      await this.publish(link, batch.events);
    } catch (err) {
      state.source.failed();
      throw err;
    }
    try {
      await this.options.beforeAck?.(batch.events);
      await batch.ack();
    } catch (err) {
      this.sourceFailed(state, err);
      return false;
    }
    this.sourceUp(state);
    this.counts.published += batch.events.length;
    this.counts.malformed += batch.malformed;
    this.counts.batches += 1;
    if (batch.events.length > 0) this.notify('published', batch.events);
    return true;
  }

  /**
   * Publishes a batch and resolves once the broker confirmed every event of it. Rejects when one is
   * nacked, the channel closes, or the confirms take longer than confirmTimeoutMs (amqplib may
   * never call back when the connection dies silently).
   */
  private async publish(link: AmqpLink, events: readonly InventoryEvent[]): Promise<void> {
    if (events.length === 0) return;
    if (!link.open) throw link.closedBy ?? new Error('the link closed');
    const channel = link.confirm;
    let timer: NodeJS.Timeout | undefined;
    let onClose: (() => void) | undefined;
    const failed = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no publisher confirm within ${this.confirmTimeoutMs} ms`)), this.confirmTimeoutMs);
      onClose = () => reject(link.closedBy ?? new Error('the confirm channel closed'));
      channel.once('close', onClose);
    });
    const confirmed = events.map(
      (event) =>
        new Promise<void>((resolve, reject) => {
          const body = Buffer.from(JSON.stringify(event));
          // publish() answers false when the socket's buffer is full; the wait for the confirms
          // that follows is the back-pressure (a batch is at most batchSize small messages).
          channel.publish(this.exchange, event.type, body, messageProperties(event), (err: unknown) =>
            err ? reject(err instanceof Error ? err : new Error(`the broker refused event ${event.id}`)) : resolve(),
          );
        }),
    );
    try {
      await Promise.race([Promise.all(confirmed), failed]);
    } finally {
      clearTimeout(timer);
      if (onClose) channel.off('close', onClose);
    }
  }

  private idleWait(): number {
    const now = Date.now();
    const next = Math.min(...this.sources.map((s) => (s.retryAt > now ? s.retryAt - now : Infinity)));
    return Math.max(10, Math.min(this.pollIntervalMs, next));
  }

  /** An outbox failed: back it off; logged once per outage. */
  private sourceFailed(state: SourceState, err: unknown): void {
    state.source.failed();
    if (this.stopping) return;
    this.counts.failures += 1;
    if (state.failures === 0) this.logger.warn({ err, source: state.source.name }, 'event publisher: an outbox failed; retrying with back-off (its events wait)');
    else this.logger.debug({ err, source: state.source.name }, 'event publisher: outbox still failing');
    state.retryAt = Date.now() + backoffMs(state.failures, this.backoffMinMs, this.backoffMaxMs);
    state.failures += 1;
  }

  private sourceUp(state: SourceState): void {
    if (state.failures === 0) return;
    this.logger.info({ source: state.source.name }, 'event publisher: outbox answers again');
    state.failures = 0;
    state.retryAt = 0;
  }

  /** The link failed or could not be opened: logged once until one works again. */
  private disconnected(err: unknown): void {
    if (!this.brokerDown) {
      this.brokerDown = true;
      this.logger.warn({ err, exchange: this.exchange }, 'event publisher: RabbitMQ link lost; reconnecting with back-off (events wait in their outboxes)');
    } else {
      this.logger.debug({ err }, 'event publisher: still cannot reach RabbitMQ; retrying');
    }
    this.notify('disconnected', err);
  }

  private notify<K extends keyof EventPublisherEvents & string>(event: K, ...args: EventPublisherEvents[K]): void {
    emitSafely(this, this.logger, 'event publisher', event, args);
  }
}

/** The AMQP properties of an event's message (docs/events.md). */
export function messageProperties(event: InventoryEvent): Options.Publish {
  return {
    contentType: 'application/json',
    messageId: event.id,
    type: event.type,
    // AMQP timestamps are seconds.
    timestamp: Math.floor(Date.parse(event.occurredAt) / 1000),
    persistent: true,
    appId: 'inventory-core',
  };
}
