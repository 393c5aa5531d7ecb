import os from 'node:os';
import amqp, { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { DependencyBreaker } from '../kernel/breaker';
import { DependencyUnavailable } from '../kernel/dependency';
import type { Logger } from '../kernel/logger';

/** How a link connects: heartbeat, connect timeout, its name in RabbitMQ, the broker's breaker. */
export interface LinkOptions {
  readonly heartbeatSeconds: number;
  readonly connectTimeoutMs: number;
  readonly name?: string;
  /** Connection attempts and dead-letter publishes go through it (the process's `rabbitmq` breaker). */
  readonly breaker?: DependencyBreaker;
}

/**
 * One AMQP connection of the stock consumer and its two channels: `channel` consumes (manual
 * acks), `confirm` republishes dead letters and waits for the broker's confirm. amqplib does not
 * reconnect: a link that closes (broker restart, a channel error, the connection cut) is dead for
 * good, and the consumer opens a new one. Every delivery remembers its link and is settled at most
 * once, and only while the channel it came on is open: an ack on another channel would name
 * someone else's delivery tag (or close that channel), and a closed channel's deliveries are
 * already back in the queue.
 */
export class AmqpLink {
  /** Set once the connection or either channel closes; the link is then of no more use. */
  closedBy: Error | undefined;
  private consumerOpen = true;
  private readonly inbox: Delivery[] = [];
  private wake: (() => void) | undefined;
  /** Why next() answers undefined although the link is open: the broker cancelled the consumer, or interrupt(). */
  private halted: 'cancelled' | 'interrupted' | undefined;
  /** Set by poke(): the next next() answers undefined once. */
  private poked = false;
  /** Set by a `return` (unroutable mandatory publish) on the confirm channel; checked per dead letter. */
  private returned = false;

  private constructor(
    private readonly connection: ChannelModel,
    readonly channel: Channel,
    readonly confirm: ConfirmChannel,
    private readonly logger: Logger,
  ) {
    const closed = (what: string) => (err?: Error) => {
      if (what !== 'confirm channel') this.consumerOpen = false;
      this.closedBy ??= err ?? new Error(`${what} closed`);
      this.wake?.();
    };
    // Without 'error' listeners an error event would crash the process.
    connection.on('error', (err: Error) => closed('connection')(err));
    connection.on('close', (err?: Error) => closed('connection')(err));
    connection.on('blocked', (reason: string) => logger.warn({ reason }, 'stock consumer: RabbitMQ blocked the connection (resource alarm); dead letters wait'));
    connection.on('unblocked', () => logger.info('stock consumer: RabbitMQ unblocked the connection'));
    channel.on('error', (err: Error) => closed('channel')(err));
    channel.on('close', () => closed('channel')());
    confirm.on('error', (err: Error) => closed('confirm channel')(err));
    confirm.on('close', () => closed('confirm channel')());
    confirm.on('return', () => (this.returned = true));
  }

  /**
   * Connects and opens both channels. The URL's `heartbeat` wins; without one the link asks for
   * `heartbeatSeconds`, so a silently dead connection is noticed in two of them. The connection is
   * named `<name>:<host>:<pid>` in RabbitMQ (`rabbitmqctl list_connections client_properties`);
   * `name` defaults to `inventory-stock-consumer`.
   */
  static open(url: string, options: LinkOptions, logger: Logger): Promise<AmqpLink> {
    const node = new URL(url).host;
    const attempt = () => AmqpLink.connect(url, options, logger).then(undefined, (err: unknown) => Promise.reject(amqpFailure(err, node)));
    return options.breaker ? options.breaker.run(attempt) : attempt();
  }

  private static async connect(url: string, options: LinkOptions, logger: Logger): Promise<AmqpLink> {
    const target = new URL(url);
    if (!target.searchParams.has('heartbeat')) target.searchParams.set('heartbeat', String(options.heartbeatSeconds));
    const connection = await amqp.connect(target.toString(), {
      timeout: options.connectTimeoutMs,
      clientProperties: { connection_name: `${options.name ?? 'inventory-stock-consumer'}:${os.hostname()}:${process.pid}` },
    });
    connection.on('error', () => undefined);
    try {
      const channel = await connection.createChannel();
      const confirm = await connection.createConfirmChannel();
      return new AmqpLink(connection, channel, confirm, logger);
    } catch (err) {
      await connection.close().catch(() => undefined);
      throw err;
    }
  }

  get open(): boolean {
    return this.closedBy === undefined;
  }

  /** Starts a consumer with `prefetch` unacknowledged deliveries at most; its deliveries queue up for next(). */
  async consume(queue: string, prefetch: number): Promise<string> {
    await this.channel.prefetch(prefetch, false);
    const { consumerTag } = await this.channel.consume(
      queue,
      (message) => {
        // Runs inside amqplib's frame parser: it must not throw.
        if (message === null) this.halted = 'cancelled';
        else this.inbox.push({ message, link: this, settled: false });
        this.wake?.();
      },
      { noAck: false },
    );
    return consumerTag;
  }

  /** Cancels a consumer; deliveries it already sent stay in the inbox, to be applied or nacked. */
  async cancel(consumerTag: string): Promise<void> {
    if (this.open && this.halted !== 'cancelled') await this.channel.cancel(consumerTag);
  }

  /**
   * The next delivery, in order; undefined once the link closed, the broker cancelled the
   * consumer, or interrupt() was called (the inbox keeps what it holds).
   */
  async next(): Promise<Delivery | undefined> {
    for (;;) {
      if (!this.open || this.halted) return undefined;
      if (this.poked) {
        this.poked = false;
        return undefined;
      }
      const delivery = this.inbox.shift();
      if (delivery) return delivery;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }

  /**
   * Makes a next() that is waiting for a delivery answer undefined, without halting the consumer:
   * the caller wants to stop taking deliveries for now (haltedBy stays as it was). No effect when
   * none waits: the caller checks its own reason before it asks again.
   */
  poke(): void {
    if (!this.wake) return;
    this.poked = true;
    this.wake();
  }

  /** Why next() last answered undefined. */
  get haltedBy(): 'closed' | 'cancelled' | 'interrupted' | undefined {
    return this.open ? this.halted : 'closed';
  }

  /** Makes a waiting next() answer undefined (stop, or a consumer that should end). */
  interrupt(): void {
    this.halted ??= 'interrupted';
    this.wake?.();
  }

  /** Deliveries received and not yet taken by next(), removed from the inbox. */
  drain(): Delivery[] {
    return this.inbox.splice(0);
  }

  /**
   * Acks, or nacks back into the queue, once. A delivery already settled, or whose channel has
   * closed (the broker has requeued it), is left alone. Answers whether a frame was sent.
   */
  settle(delivery: Delivery, how: 'ack' | 'requeue'): boolean {
    if (delivery.settled || delivery.link !== this) return false;
    delivery.settled = true;
    if (!this.consumerOpen) return false;
    try {
      if (how === 'ack') this.channel.ack(delivery.message);
      else this.channel.nack(delivery.message, false, true);
      return true;
    } catch (err) {
      // The channel closed between the check and the send: the broker requeues it.
      this.logger.debug({ err }, 'stock consumer: could not settle a delivery on a closing channel');
      return false;
    }
  }

  /**
   * Publishes `delivery`'s body and properties to `exchange` with extra headers, persistent and
   * mandatory, and resolves once the broker confirmed it. Rejects when the broker nacks it, cannot
   * route it (the dead-letter queue is gone), the channel closes, or no confirm comes within
   * `timeoutMs`: the original must then not be acked.
   */
  async republish(delivery: Delivery, exchange: string, headers: Record<string, unknown>, timeoutMs: number, breaker?: DependencyBreaker): Promise<void> {
    const publish = () => this.publishConfirmed(delivery, exchange, headers, timeoutMs);
    return breaker ? breaker.run(publish) : publish();
  }

  private async publishConfirmed(delivery: Delivery, exchange: string, headers: Record<string, unknown>, timeoutMs: number): Promise<void> {
    const { message } = delivery;
    const p = message.properties;
    // Not userId (the broker checks it against this connection's user) and not expiration (a dead
    // letter must not expire unseen).
    const options: Options.Publish = {
      contentType: p.contentType,
      contentEncoding: p.contentEncoding,
      headers: { ...(p.headers ?? {}), ...headers },
      persistent: true,
      priority: p.priority,
      correlationId: p.correlationId,
      replyTo: p.replyTo,
      messageId: p.messageId,
      timestamp: p.timestamp,
      type: p.type,
      appId: p.appId,
      mandatory: true,
    };
    this.returned = false;
    let timer: NodeJS.Timeout | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(() => reject(new DependencyUnavailable('rabbitmq', undefined, `no publisher confirm within ${timeoutMs} ms`)), timeoutMs);
        try {
          this.confirm.publish(exchange, message.fields.routingKey, message.content, options, (err) => (err ? reject(err) : resolve()));
        } catch (err) {
          reject(err);
        }
      });
    } finally {
      clearTimeout(timer);
    }
    // A return comes before the confirm of the same message.
    if (this.returned) throw new Error(`exchange ${exchange} routed the dead letter to no queue`);
  }

  /**
   * Closes both channels, then the connection; unsettled deliveries go back to the queue. The
   * channels first: amqplib writes each channel's frames from a buffer of its own, so a
   * connection.close could reach the broker before acks still queued on the consuming channel,
   * which would then be lost (the messages delivered again). A channel's close follows its acks.
   */
  async close(): Promise<void> {
    this.closedBy ??= new Error('closed by the consumer');
    this.wake?.();
    const channels = Promise.allSettled([this.channel.close(), this.confirm.close()]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([channels, new Promise((resolve) => (timer = setTimeout(resolve, 2000)))]);
    clearTimeout(timer);
    await this.connection.close().catch(() => undefined);
  }
}

/** How keepLinked runs: see there. */
export interface LinkLoop {
  open(): Promise<AmqpLink>;
  /** Works on one link; resolves when the loop should end, throws when the link failed. Calls `healthy` once it works. */
  serve(link: AmqpLink, healthy: () => void): Promise<void>;
  /** Checked before every attempt; once true the loop ends. */
  stopping(): boolean;
  /** Told why a link could not be opened or failed; the loop goes on. */
  lost(err: unknown): void;
  /** Waits before the next attempt, after `failures` attempts failed in a row (a back-off). */
  pause(failures: number): Promise<void>;
}

/**
 * The reconnection loop amqplib does not have: opens a link, serves it, and when serving throws or
 * the link cannot be opened, reports it, closes the link (its unsettled deliveries go back to the
 * queue) and tries again after a pause that grows until a link works again.
 */
export async function keepLinked(loop: LinkLoop): Promise<void> {
  let failures = 0;
  while (!loop.stopping()) {
    let link: AmqpLink | undefined;
    try {
      link = await loop.open();
      if (loop.stopping()) break;
      await loop.serve(link, () => (failures = 0));
    } catch (err) {
      if (!loop.stopping()) loop.lost(err);
    } finally {
      await link?.close();
    }
    if (!loop.stopping()) await loop.pause(failures++);
  }
}

/** A message as delivered on one link. */
export interface Delivery {
  readonly message: ConsumeMessage;
  readonly link: AmqpLink;
  settled: boolean;
}

const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/**
 * The RabbitMQ edge's one decision: a connection that could not be made or was lost (socket errors,
 * a connect timeout, the broker closing the connection) is DependencyUnavailable; anything else
 * (a refused login, a missing vhost) stays as it is, a configuration error to fix, not to wait out.
 */
export function amqpFailure(err: unknown, node: string): unknown {
  if (err instanceof DependencyUnavailable || !(err instanceof Error)) return err;
  const code = (err as { code?: unknown }).code;
  const lost =
    (typeof code === 'string' && SOCKET_CODES.has(code)) ||
    /^connect ETIMEDOUT|Socket closed abruptly|Connection closed|Unexpected close|CONNECTION_FORCED|operation timeout/i.test(err.message);
  return lost ? new DependencyUnavailable('rabbitmq', node, err.message, err) : err;
}
