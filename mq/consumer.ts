import { EventEmitter } from 'node:events';
import type { Breakers } from '../kernel/breaker';
import { Sleeper, backoffMs } from '../kernel/backoff';
import type { Logger } from '../kernel/logger';
import { AmqpLink, Delivery, LinkOptions, keepLinked } from './link';
import { ParsedMessage, parseStockMessage } from './message';
import { StockTopology, declareTopology } from './topology';
import { ApplyOutcome, StockApplier, StockUpdate } from './types';
import { emitSafely } from '../kernel/emit';

/**
 * The options of a StockConsumer: where RabbitMQ is, the topology (mq/topology.ts), and timings
 * whose defaults suit production.
 */
export interface StockConsumerOptions extends StockTopology {
  /** amqp:// or amqps:// URL (AMQP_URL). */
  readonly url: string;
  /** Unacknowledged deliveries RabbitMQ may hand the consumer at once (MQ_PREFETCH). Default 64. */
  readonly prefetch?: number;
  /**
   * Messages applied at once, of different SKUs (MQ_CONCURRENCY); those of one SKU always one after
   * another, in delivery order. Default 16; at most the prefetch.
   */
  readonly concurrency?: number;
  /** First wait after a failure (reconnecting, or polling the applier in an outage); doubles per failure, jittered. Default 100 ms. */
  readonly backoffMinMs?: number;
  /** Longest wait between attempts. Default 5000 ms. */
  readonly backoffMaxMs?: number;
  /** How long a dead letter may wait for the broker's confirm before the link is given up. Default 30000 ms. */
  readonly confirmTimeoutMs?: number;
  /** An applier.ready() slower than this counts as "not ready". Default 10000 ms. */
  readonly readyTimeoutMs?: number;
  /** AMQP heartbeat asked for when the URL names none. Default 15 s. */
  readonly heartbeatSeconds?: number;
  /** TCP connect and AMQP handshake timeout. Default 10000 ms. */
  readonly connectTimeoutMs?: number;
  /** The process's breakers: connection attempts go through its `rabbitmq` one. Default: none. */
  readonly breakers?: Breakers;
}

/** Why a message went to the dead-letter queue: it could not be read, or the applier refused it. */
export type DeadLetterClass = 'malformed' | 'rejected';

export interface StockDeadLetter {
  readonly reasonClass: DeadLetterClass;
  /** The `x-inventory-reason` header: the field that failed, or the applier's reason. */
  readonly reason: string;
  readonly routingKey: string;
  /** The message id when the body could be read. */
  readonly messageId?: string;
}

/** Counters since construction, and the present state. */
export interface StockConsumerStats {
  /** Deliveries taken from RabbitMQ (a redelivery counts again). */
  readonly delivered: number;
  /** Messages the applier applied, and acked. */
  readonly applied: number;
  /** Messages applied before (a redelivery), acked without a change. */
  readonly duplicates: number;
  /** Messages older than the SKU's last sequence, acked without a change. */
  readonly stale: number;
  /** Messages republished to the dead-letter exchange (confirmed), then acked, by reason class. */
  readonly deadLettered: Readonly<Record<DeadLetterClass, number>>;
  /** Times apply threw (a transient failure): the message went back to the queue. */
  readonly applyFailures: number;
  /** Outages of the applier: consumption paused until it was ready again. */
  readonly outages: number;
  /** Connections to RabbitMQ opened (the first and every reconnection). */
  readonly connections: number;
  /** Whether a consumer is registered with RabbitMQ now. */
  readonly consuming: boolean;
  /** Whether consumption is paused for an applier outage. */
  readonly paused: boolean;
}

/** What waits in RabbitMQ: the work queue's ready messages and the dead-letter queue's messages. */
export interface QueueDepths {
  readonly waiting: number;
  readonly deadLetters: number;
}

/** Events of a StockConsumer. Listeners that throw are logged, never break the loop. */
export interface StockConsumerEvents {
  /** A consumer was registered with RabbitMQ (after every (re)connection and every resume). */
  consuming: [prefetch: number];
  /** A message was applied or skipped, and acked. */
  applied: [update: StockUpdate, outcome: ApplyOutcome];
  /** A message went to the dead-letter queue (confirmed) and was acked. */
  'dead-letter': [letter: StockDeadLetter];
  /** apply threw: consumption pauses until the applier is ready (once per outage). */
  paused: [err: unknown];
  /** A message applied again after an outage. */
  resumed: [outageMs: number];
  /** The connection to RabbitMQ was lost or given up; the consumer reconnects. */
  disconnected: [err: unknown];
}

/** How a consumer's run of deliveries ended. */
type ConsumerEnd = 'closed' | 'cancelled' | 'interrupted' | 'transient' | 'widen';

/**
 * Applies the warehouses' stock messages from RabbitMQ (see README, "Stock messages").
 *
 * - Declares the topology (mq/topology.ts) on every connection, then consumes the work queue with
 *   manual acks, up to `concurrency` messages of different SKUs at once (a lane per SKU: one SKU's
 *   messages one after another, in delivery order), `prefetch` taken from the broker ahead.
 * - Each delivery is parsed (mq/message.ts) and applied (StockApplier). Applied or skipped: acked.
 *   Unreadable, or refused by the applier: republished to the dead-letter exchange with the reason
 *   in `x-inventory-reason` on a confirm channel, and acked only once the broker confirmed it.
 *   Nothing is acked before apply returned, nor twice, nor on any channel but its own.
 * - apply throws (MySQL or Redis down): the consumer is cancelled so no more messages come, the
 *   message and those waiting in the client are nacked back into the queue, and applier.ready() is
 *   polled (100 ms doubling to 5 s, jittered) before consuming again. Logged once per outage.
 * - Every new consumer starts with a prefetch of 1 and widens to `prefetch` after its first
 *   message is settled: a message that crashes the process, or an applier that fails again right
 *   after saying it is ready, then takes only itself back to the queue, not a window of innocent
 *   ones, and only it climbs towards the queue's delivery limit (RabbitMQ before 4.3 counts every
 *   return).
 * - The connection lost, a channel closed, the consumer cancelled by the broker (its queue
 *   deleted): the link is dropped (its unsettled deliveries return to the queue) and a new one
 *   opened with back-off, declaring the topology again.
 *
 * Several consumers may share the queue; that a message applies once is the applier's part.
 */
export class StockConsumer extends EventEmitter<StockConsumerEvents> {
  private readonly prefetch: number;
  private readonly concurrency: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly confirmTimeoutMs: number;
  private readonly readyTimeoutMs: number;
  private readonly linkOptions: LinkOptions;
  private readonly counts = { delivered: 0, applied: 0, duplicates: 0, stale: 0, applyFailures: 0, outages: 0, connections: 0 };
  private readonly deadLettered: Record<DeadLetterClass, number> = { malformed: 0, rejected: 0 };
  private readonly sleeper = new Sleeper();
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private stopping = false;
  private link: AmqpLink | undefined;
  private consuming = false;
  /** Set from the first failed apply until a message applies again. */
  private outage: { since: number; attempts: number } | undefined;
  /** Set from the first failed connection until a consumer runs again. */
  private brokerDown = false;

  constructor(
    private readonly options: StockConsumerOptions,
    private readonly applier: StockApplier,
    private readonly logger: Logger,
  ) {
    super();
    this.prefetch = options.prefetch ?? 64;
    this.concurrency = options.concurrency ?? 16;
    this.backoffMinMs = options.backoffMinMs ?? 100;
    this.backoffMaxMs = options.backoffMaxMs ?? 5000;
    this.confirmTimeoutMs = options.confirmTimeoutMs ?? 30_000;
    this.readyTimeoutMs = options.readyTimeoutMs ?? 10_000;
    this.linkOptions = {
      heartbeatSeconds: options.heartbeatSeconds ?? 15,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      breaker: options.breakers?.for('rabbitmq', new URL(options.url).host),
    };
  }

  /**
   * Starts consuming in the background. Resolves once the first consumer runs, or once the first
   * attempt failed (it is logged, and retried with back-off): never rejects, RabbitMQ being down at
   * start is an outage like any other.
   */
  start(): Promise<void> {
    if (this.running || this.stopping) return Promise.resolve();
    const firstAttempt = new Promise<void>((resolve) => {
      const done = () => {
        this.off('consuming', done);
        this.off('disconnected', done);
        resolve();
      };
      this.on('consuming', done);
      this.on('disconnected', done);
    });
    this.running = this.run().catch((err) => this.logger.error({ err }, 'stock consumer: loop died'));
    return Promise.race([firstAttempt, this.running]);
  }

  /**
   * Lets the message being applied finish (and be acked), stops consuming and closes the
   * connection; deliveries not yet applied go back to the queue. Idempotent.
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  stats(): StockConsumerStats {
    return { ...this.counts, deadLettered: { ...this.deadLettered }, consuming: this.consuming, paused: this.outage !== undefined };
  }

  /**
   * Messages waiting in the work queue (ready, not yet delivered: the consumer's lag) and in the
   * dead-letter queue, as RabbitMQ counts them now; undefined while there is no link. Asked on the
   * confirm channel, which never carries deliveries.
   */
  async queueDepths(): Promise<QueueDepths | undefined> {
    const link = this.link;
    if (!link?.open) return undefined;
    const [work, dead] = await Promise.all([link.confirm.checkQueue(this.options.queue), link.confirm.checkQueue(this.options.deadLetterQueue)]);
    return { waiting: work.messageCount, deadLetters: dead.messageCount };
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.sleeper.cancel();
    this.link?.interrupt();
    await this.running;
    if (this.running) this.logger.info({ ...this.stats() }, 'stock consumer stopped');
  }

  /** Connects, serves, and on any failure drops the link and connects again after the back-off. */
  private run(): Promise<void> {
    return keepLinked({
      open: () => AmqpLink.open(this.options.url, this.linkOptions, this.logger),
      stopping: () => this.stopping,
      lost: (err) => this.disconnected(err),
      pause: (failures) => this.sleep(this.backoff(failures)),
      serve: async (link, healthy) => {
        this.link = link;
        this.counts.connections += 1;
        try {
          await declareTopology(link.channel, this.options);
          await this.serve(link, healthy);
        } finally {
          this.consuming = false;
          this.link = undefined;
        }
      },
    });
  }

  /**
   * Runs consumers on one link until it fails (throws) or the consumer stops (returns). Each
   * consumer starts narrow (prefetch 1) and is replaced by a wide one after its first message.
   */
  private async serve(link: AmqpLink, running: () => void): Promise<void> {
    let narrow = this.prefetch > 1;
    // Connected during an outage: the applier must be ready before anything is taken.
    let waitReady = this.outage !== undefined;
    /** Whether this link has had a consumer yet (logged once per connection). */
    let started = false;
    while (!this.stopping) {
      if (waitReady) {
        await this.untilReady(link);
        waitReady = false;
        continue;
      }
      const prefetch = narrow ? 1 : this.prefetch;
      const tag = await link.consume(this.options.queue, prefetch);
      this.consuming = true;
      running();
      if (!started) {
        started = true;
        const again = this.brokerDown;
        this.brokerDown = false;
        const where = { exchange: this.options.exchange, queue: this.options.queue, prefetch: this.prefetch };
        this.logger.info(where, again ? 'stock consumer: connected to RabbitMQ again; consuming' : 'stock consumer: consuming');
      }
      this.notify('consuming', prefetch);
      const { end, failed } = await this.consume(link, narrow);
      this.consuming = false;
      switch (end) {
        case 'widen':
          await link.cancel(tag);
          narrow = false;
          break;
        case 'transient':
          // Cancelled first, so the nacks free no prefetch slot the broker could fill again.
          await link.cancel(tag);
          for (const delivery of failed ?? []) link.settle(delivery, 'requeue');
          for (const waiting of link.drain()) link.settle(waiting, 'requeue');
          narrow = this.prefetch > 1;
          waitReady = true;
          break;
        case 'cancelled':
          throw new Error(`RabbitMQ cancelled the consumer of ${this.options.queue} (the queue was deleted?)`);
        case 'closed':
          throw link.closedBy ?? new Error('the link closed');
        case 'interrupted':
          return;
      }
    }
  }

  /**
   * Applies deliveries until the consumer's run ends (see ConsumerEnd): up to `concurrency` at once,
   * each SKU's in delivery order (a lane per SKU: a message waits for the one before it of its SKU).
   * A transient failure stops the taking (poke), lets the messages already running finish, and
   * answers every one that failed, for the caller to return to the queue.
   */
  private async consume(link: AmqpLink, narrow: boolean): Promise<{ end: ConsumerEnd; failed?: Delivery[] }> {
    const width = narrow ? 1 : Math.max(1, Math.min(this.concurrency, this.prefetch));
    const lanes = new Map<string, Promise<void>>();
    const running = new Set<Promise<void>>();
    const failed: Delivery[] = [];
    let thrown: { err: unknown } | undefined;
    let end: ConsumerEnd | undefined;
    while (end === undefined) {
      while (running.size >= width) await Promise.race(running);
      if (failed.length > 0 || thrown) break;
      const delivery = await link.next();
      if (!delivery) {
        if (failed.length === 0 && !thrown) end = link.haltedBy ?? 'closed';
        break;
      }
      const parsed = parseStockMessage(delivery.message.content, delivery.message.properties.contentType as string | undefined);
      const lane = 'update' in parsed ? parsed.update.sku : `\u0000${this.counts.delivered}`;
      const before = lanes.get(lane);
      const task: Promise<void> = (async () => {
        await before;
        // A lane whose earlier message failed: this one goes back to the queue untried, in order.
        if (failed.length > 0 || thrown) return void failed.push(delivery);
        try {
          if ((await this.handle(delivery, parsed)) === 'transient') {
            failed.push(delivery);
            link.poke();
          }
        } catch (err) {
          thrown ??= { err };
          failed.push(delivery);
          link.poke();
        }
      })();
      lanes.set(lane, task);
      const tracked = task.finally(() => {
        running.delete(tracked);
        if (lanes.get(lane) === task) lanes.delete(lane);
      });
      running.add(tracked);
      if (narrow) {
        await tracked;
        if (failed.length === 0 && !thrown) end = 'widen';
      }
    }
    await Promise.all(running);
    if (thrown) throw thrown.err;
    if (failed.length > 0) return { end: 'transient', failed };
    return { end: end ?? link.haltedBy ?? 'closed' };
  }

  /**
   * One delivery: parse, apply, then ack or dead-letter. 'transient' leaves it unsettled for the
   * caller to requeue. A dead letter that cannot be published throws (the link is given up).
   */
  private async handle(delivery: Delivery, parsed: ParsedMessage): Promise<'done' | 'transient'> {
    this.counts.delivered += 1;
    if ('problem' in parsed) {
      await this.deadLetter(delivery, 'malformed', parsed.problem);
      return 'done';
    }
    const { update } = parsed;
    let outcome: ApplyOutcome;
    try {
      outcome = await this.applier.apply(update);
    } catch (err) {
      this.counts.applyFailures += 1;
      this.pause(err, update);
      return 'transient';
    }
    this.resume();
    if (outcome.kind === 'dead') {
      await this.deadLetter(delivery, 'rejected', outcome.reason, update.messageId);
      return 'done';
    }
    if (outcome.kind === 'applied') this.counts.applied += 1;
    else if (outcome.why === 'duplicate') this.counts.duplicates += 1;
    else this.counts.stale += 1;
    delivery.link.settle(delivery, 'ack');
    this.notify('applied', update, outcome);
    return 'done';
  }

  /** Republishes to the dead-letter exchange, waits for the confirm, then acks the original. */
  private async deadLetter(delivery: Delivery, reasonClass: DeadLetterClass, reason: string, messageId?: string): Promise<void> {
    const { fields } = delivery.message;
    const headers = {
      'x-inventory-reason': reason.slice(0, 1000),
      'x-inventory-reason-class': reasonClass,
      'x-inventory-original-exchange': fields.exchange,
      'x-inventory-original-routing-key': fields.routingKey,
    };
    try {
      await delivery.link.republish(delivery, this.options.deadLetterExchange, headers, this.confirmTimeoutMs, this.linkOptions.breaker);
    } catch (err) {
      throw new Error(`could not dead-letter a message (${reason}): ${err instanceof Error ? err.message : String(err)}`);
    }
    delivery.link.settle(delivery, 'ack');
    this.deadLettered[reasonClass] += 1;
    const letter: StockDeadLetter = { reasonClass, reason, routingKey: fields.routingKey, messageId };
    this.logger.warn({ ...letter, deadLetterQueue: this.options.deadLetterQueue }, 'stock consumer: message dead-lettered');
    this.notify('dead-letter', letter);
  }

  /** apply threw: starts (or continues) an outage; logged once per outage. */
  private pause(err: unknown, update: StockUpdate): void {
    if (this.outage) {
      this.logger.debug({ err, messageId: update.messageId }, 'stock consumer: apply failed again; still paused');
      return;
    }
    this.outage = { since: Date.now(), attempts: 0 };
    this.counts.outages += 1;
    this.logger.warn(
      { err, messageId: update.messageId },
      'stock consumer: apply failed (MySQL or Redis unavailable?); message requeued, consumption paused until the applier is ready',
    );
    this.notify('paused', err);
  }

  private resume(): void {
    if (!this.outage) return;
    const outageMs = Date.now() - this.outage.since;
    this.outage = undefined;
    this.logger.info({ outageMs }, 'stock consumer: applying again; outage over');
    this.notify('resumed', outageMs);
  }

  /**
   * Polls applier.ready() with back-off (kept growing through the outage, so an applier that says
   * ready but fails again is retried ever less often). Returns when ready, on stop; throws when the
   * link closes meanwhile.
   */
  private async untilReady(link: AmqpLink): Promise<void> {
    const outage = this.outage!;
    while (!this.stopping) {
      await this.sleep(this.backoff(outage.attempts++));
      if (this.stopping) return;
      if (!link.open) throw link.closedBy ?? new Error('the link closed');
      if (await this.ready()) {
        // Consumption resumes; the outage ends with the first message that applies.
        this.logger.debug({ attempts: outage.attempts }, 'stock consumer: applier ready; consuming again');
        return;
      }
    }
  }

  private async ready(): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), this.readyTimeoutMs)));
    try {
      return await Promise.race([this.applier.ready(), timeout]);
    } catch (err) {
      this.logger.debug({ err }, 'stock consumer: applier.ready() failed');
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** The link failed or could not be opened: logged once until a consumer runs again. */
  private disconnected(err: unknown): void {
    if (!this.brokerDown) {
      this.brokerDown = true;
      this.logger.warn({ err, queue: this.options.queue }, 'stock consumer: RabbitMQ link lost; reconnecting with back-off (unacknowledged messages go back to the queue)');
    } else {
      this.logger.debug({ err }, 'stock consumer: still cannot consume; retrying');
    }
    this.notify('disconnected', err);
  }

  private backoff(failures: number): number {
    return backoffMs(failures, this.backoffMinMs, this.backoffMaxMs);
  }

  private sleep(ms: number): Promise<void> {
    return this.sleeper.sleep(ms);
  }

  private notify<K extends keyof StockConsumerEvents & string>(event: K, ...args: StockConsumerEvents[K]): void {
    emitSafely(this, this.logger, 'stock consumer', event, args);
  }
}
