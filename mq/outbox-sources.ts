import type Redis from 'ioredis';
import type { Pool } from 'mysql2/promise';
import { InventoryEvent, parseOutboxEvent } from '../kernel/events';
import type { Logger } from '../kernel/logger';
import { deleteOutboxEvents, leaseOutboxEvents } from '../store/outbox';

/**
 * Where the event publisher (events.ts) takes its events from: the outbox streams of one Redis
 * node's shards, or the MySQL outbox table. A source hands out a batch; the publisher publishes it
 * and, only once RabbitMQ has confirmed every event of it, acknowledges it (then it is gone).
 */
export interface OutboxSource {
  readonly name: string;
  /** The next events to publish, or undefined when none waits. */
  take(): Promise<OutboxBatch | undefined>;
  /** A take, publish or ack failed: the next take starts again from what is unacknowledged. */
  failed(): void;
}

export interface OutboxBatch {
  readonly events: readonly InventoryEvent[];
  /** Entries that were not events (a bug upstream): logged, and removed with the batch. */
  readonly malformed: number;
  /** Removes the batch from the outbox (after the broker's confirm). */
  ack(): Promise<void>;
}

export interface StreamSourceOptions {
  readonly group: string;
  readonly consumer: string;
  readonly batchSize: number;
  /** Entries another consumer has held unacknowledged this long are taken over (XAUTOCLAIM). */
  readonly claimIdleMs: number;
  /** Consumers idle this long with nothing pending are removed from the group. */
  readonly forgetConsumersAfterMs: number;
}

/**
 * The outbox streams of one Redis node's shards, read through a consumer group shared by every
 * publisher (the ledger writer's way, ledger/group.ts): each entry goes to one publisher; entries
 * a publisher read and never acknowledged (it died, or lost its link) are taken over after
 * `claimIdleMs`; an acknowledged entry is deleted (XACK and XDEL), so a stream holds exactly the
 * events not yet confirmed by the broker.
 */
export class StreamOutbox implements OutboxSource {
  readonly name: string;
  /** Read this consumer's pending entries (ID 0) before new ones: at start, after a failure, after claiming. */
  private history = true;
  private groupsReady = false;
  private nextClaimAt = 0;
  /** Entries taken over from other consumers, since construction. */
  claimed = 0;

  constructor(
    node: string,
    private readonly conn: Redis,
    private readonly streams: readonly string[],
    private readonly options: StreamSourceOptions,
    private readonly logger: Logger,
  ) {
    this.name = `redis ${node}`;
  }

  async take(): Promise<OutboxBatch | undefined> {
    if (!this.groupsReady) await this.ensureGroups();
    if (Date.now() >= this.nextClaimAt) {
      await this.claim();
      this.nextClaimAt = Date.now() + Math.min(10_000, Math.max(100, this.options.claimIdleMs / 2));
    }
    let entries = await this.read();
    if (entries.length === 0 && this.history) {
      this.history = false;
      entries = await this.read();
    }
    if (entries.length === 0) return undefined;
    const events: InventoryEvent[] = [];
    let malformed = 0;
    for (const entry of entries) {
      // null: trimmed or deleted while pending; nothing to publish, only to acknowledge.
      if (entry.fields === null) continue;
      const text = fieldOf(entry.fields, 'e');
      const event = text === undefined ? { problem: 'no field e' } : parseOutboxEvent(text);
      if ('problem' in event) {
        malformed++;
        this.logger.error({ stream: entry.stream, id: entry.id, fields: entry.fields, problem: event.problem }, 'event publisher: an outbox entry is not an event; dropped');
      } else {
        events.push(event);
      }
    }
    return { events, malformed, ack: () => this.ack(entries) };
  }

  failed(): void {
    this.history = true;
  }

  private async ensureGroups(): Promise<void> {
    for (const stream of this.streams) {
      try {
        // From the start of the stream: events written before any publisher ran are published too.
        await this.conn.xgroup('CREATE', stream, this.options.group, '0', 'MKSTREAM');
      } catch (err) {
        if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
      }
    }
    this.groupsReady = true;
  }

  private async read(): Promise<StreamEntry[]> {
    const { group, consumer, batchSize } = this.options;
    const reply = (await this.conn.call(
      'XREADGROUP',
      'GROUP',
      group,
      consumer,
      'COUNT',
      batchSize,
      'STREAMS',
      ...this.streams,
      ...this.streams.map(() => (this.history ? '0' : '>')),
    )) as Array<[string, Array<[string, string[] | null]>]> | null;
    const entries: StreamEntry[] = [];
    for (const [stream, records] of reply ?? []) for (const [id, fields] of records) entries.push({ stream, id, fields });
    return entries;
  }

  /**
   * Takes over entries idle past claimIdleMs (their publisher died before its ack) and removes
   * consumers long idle with nothing pending, so the group does not keep one per process ever
   * started. Should such a consumer read in between (DELCONSUMER then drops what it read), the
   * group is set back to the start of the stream: the stream holds only unconfirmed events, so
   * that delivers again what may have been lost, duplicates at worst.
   */
  private async claim(): Promise<void> {
    const { group, consumer, batchSize, claimIdleMs, forgetConsumersAfterMs } = this.options;
    for (const stream of this.streams) {
      let cursor = '0-0';
      for (let round = 0; round < 10; round++) {
        const reply = (await this.conn.call('XAUTOCLAIM', stream, group, consumer, claimIdleMs, cursor, 'COUNT', batchSize, 'JUSTID')) as [string, string[]];
        if (reply[1].length > 0) {
          this.claimed += reply[1].length;
          this.history = true;
        }
        cursor = reply[0];
        if (cursor === '0-0') break;
      }
      const consumers = (await this.conn.call('XINFO', 'CONSUMERS', stream, group)) as unknown[][];
      for (const flat of consumers) {
        const info = pairs(flat);
        if (info.name === consumer || Number(info.pending) !== 0 || Number(info.idle) <= forgetConsumersAfterMs) continue;
        const dropped = Number(await this.conn.xgroup('DELCONSUMER', stream, group, String(info.name)));
        if (dropped > 0) {
          this.logger.warn({ stream, consumer: info.name, dropped }, 'event publisher: a consumer read while being removed; delivering the stream again');
          await this.conn.xgroup('SETID', stream, group, '0');
        }
      }
    }
  }

  /** XACK and XDEL per stream, atomically (MULTI on one key, so it also holds on Redis Cluster). */
  private async ack(entries: readonly StreamEntry[]): Promise<void> {
    const byStream = new Map<string, string[]>();
    for (const e of entries) byStream.set(e.stream, [...(byStream.get(e.stream) ?? []), e.id]);
    for (const [stream, ids] of byStream) {
      const replies = await this.conn.multi().xack(stream, this.options.group, ...ids).xdel(stream, ...ids).exec();
      if (!replies) throw new Error(`event publisher: XACK/XDEL on ${stream} was aborted`);
      for (const [err] of replies) if (err) throw err;
    }
  }
}

interface StreamEntry {
  readonly stream: string;
  readonly id: string;
  readonly fields: string[] | null;
}

function fieldOf(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

function pairs(flat: readonly unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) out[String(flat[i])] = flat[i + 1];
  return out;
}

/**
 * The MySQL outbox table (store/outbox.ts): rows are leased to this publisher for `leaseMs`,
 * published, and deleted once confirmed; a publisher that dies leaves its lease to run out, and
 * another takes the rows over.
 */
export class TableOutbox implements OutboxSource {
  readonly name = 'mysql';

  constructor(
    private readonly pool: Pool,
    private readonly consumer: string,
    private readonly leaseMs: number,
    private readonly batchSize: number,
    private readonly logger: Logger,
  ) {}

  async take(): Promise<OutboxBatch | undefined> {
    const rows = await leaseOutboxEvents(this.pool, this.consumer, this.leaseMs, this.batchSize);
    if (rows.length === 0) return undefined;
    const events: InventoryEvent[] = [];
    let malformed = 0;
    for (const row of rows) {
      const event = parseOutboxEvent(row.payload);
      if ('problem' in event) {
        malformed++;
        this.logger.error({ seq: row.seq, payload: row.payload, problem: event.problem }, 'event publisher: an outbox row is not an event; dropped');
      } else {
        events.push(event);
      }
    }
    return { events, malformed, ack: () => deleteOutboxEvents(this.pool, rows.map((r) => r.seq)) };
  }

  failed(): void {
    // Nothing to do: the rows stay leased to this publisher, and its next take reads them again.
  }
}
