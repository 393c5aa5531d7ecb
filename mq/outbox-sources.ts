import type { RedisClient } from '../allocator/shards';
import type { Pool } from 'mysql2/promise';
import { GroupEntry, GroupReader, ackAndDelete, claimIdle, createGroups, readGroup } from '../allocator/stream-group';
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

/** The consumer group the outbox streams are read through (allocator/stream-group.ts). */
export type StreamSourceOptions = GroupReader;

/**
 * The outbox streams of one Redis node's shards, read through a consumer group shared by every
 * publisher (allocator/stream-group.ts, as the ledger writer reads its streams): each entry goes to
 * one publisher; entries
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
    private readonly conn: RedisClient,
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
    await createGroups(this.conn, this.streams, this.options.group);
    this.groupsReady = true;
  }

  private read(): Promise<GroupEntry[]> {
    return readGroup(this.conn, this.streams, this.options, this.history ? 'pending' : 'new');
  }

  /**
   * Takes over entries idle past claimIdleMs (their publisher died before its ack) and removes
   * consumers long idle with nothing pending. Should such a consumer read in between (DELCONSUMER
   * then drops what it read), the group is set back to the start of the stream: the stream holds
   * only unconfirmed events, so that delivers again what may have been lost, duplicates at worst.
   */
  private async claim(): Promise<void> {
    const { claimed, dropped } = await claimIdle(this.conn, this.streams, this.options);
    if (claimed > 0) {
      this.claimed += claimed;
      this.history = true;
    }
    for (const stream of dropped) {
      this.logger.warn({ stream }, 'event publisher: a consumer read while being removed; delivering the stream again');
      await this.conn.xgroup('SETID', stream, this.options.group, '0');
    }
  }

  private ack(entries: readonly GroupEntry[]): Promise<void> {
    return ackAndDelete(this.conn, this.options.group, entries);
  }
}

function fieldOf(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
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
