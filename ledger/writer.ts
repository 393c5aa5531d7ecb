import { EventEmitter } from 'node:events';
import os from 'node:os';
import type Redis from 'ioredis';
import type { Pool, PoolConnection } from 'mysql2/promise';
import type { RedisShards } from '../allocator/shards';
import type { Logger } from '../kernel/logger';
import { Movement, applyCheckedMovements, movementProblem } from '../store/ledger-apply';
import { pairs, recordFields } from './record';
import { isMysqlUnavailable, transaction } from '../store/mysql';

/**
 * Moves the ledger records that the Lua scripts append to each shard's stream
 * (`<prefix>:{s<N>}:ledger`) into MySQL: the ledger table and the SKU counters, exactly once per
 * record id.
 *
 * - One consumer group (`ledger`) over all shard streams; every writer (one per server process)
 *   is a consumer of it, so each record goes to one writer, and a writer that dies leaves its
 *   unacknowledged records to be claimed by the others (XAUTOCLAIM after `claimIdleMs`).
 * - One loop per Redis node, on a connection of its own (XREADGROUP BLOCK holds it), reading all
 *   shards of that node at once.
 * - A batch is applied in one MySQL transaction; XACK and XDEL follow only after COMMIT. A crash
 *   in between delivers the batch again, and the ledger's unique event id turns it into a no-op.
 *   XDEL keeps the streams short: what is in a stream is what MySQL does not have yet.
 * - MySQL down: nothing is acknowledged, the loop backs off (100 ms doubling to 5 s, jittered)
 *   and retries its own pending records first; records wait in Redis and drain once it is back.
 * - A record with a missing or invalid field (a bug upstream) is not applied: it goes to the
 *   `ledger_dead_letters` table, in the same transaction as its batch, with the problem and the
 *   raw fields, and is then acknowledged like the rest, so it never blocks the stream. It is
 *   logged at error level and counted (`deadLettered`, the 'dead-letter' event): an operator looks
 *   at the table, fixes the cause and applies the movement by hand if it was real.
 *
 * Background failures never escape as rejections: they are logged, counted and raised as events.
 */

export interface LedgerWriterOptions {
  /** This writer's consumer name in the group. Default `<hostname>:<pid>:<n>` (n counts writers in this process). */
  readonly consumer?: string;
  /** Consumer group shared by all writers. Default 'ledger'. */
  readonly group?: string;
  /** Records read per stream per round (one MySQL transaction per round and node). Default 200. */
  readonly batchSize?: number;
  /** How long a read waits for new records. Default 1000 ms. */
  readonly blockMs?: number;
  /**
   * After a round that was not full, wait until this long after its start before reading again,
   * so that records gather into batches: under load a round per window instead of one per few
   * records, which costs a fraction of the CPU in this process, Redis and MySQL. Bounds the ledger
   * lag this adds. Default 50 ms.
   */
  readonly batchWindowMs?: number;
  /** Records another consumer has held unacknowledged this long are taken over. Default 30000 ms. */
  readonly claimIdleMs?: number;
  /** How often to look for such records. Default claimIdleMs / 2, within 100 ms .. 10 s. */
  readonly claimIntervalMs?: number;
  /** Consumers with nothing pending and idle this long are removed from the group. Default 1 hour. */
  readonly forgetConsumersAfterMs?: number;
  /** Back-off after a failed round: from this, doubling per failure... Default 100 ms. */
  readonly backoffMinMs?: number;
  /** ...up to this. Default 5000 ms. */
  readonly backoffMaxMs?: number;
  /** Longest one batch's MySQL transaction may take before its connection is cut. Default 15000 ms. */
  readonly transactionTimeoutMs?: number;
  /**
   * Called after a batch's COMMIT and before its XACK (tests use it to die in exactly that gap).
   * Default none.
   */
  readonly beforeAck?: (batch: LedgerBatch) => Promise<void> | void;
}

/** What one round applied, for the 'applied' event. */
export interface LedgerBatch {
  readonly node: string;
  /** Records read (applied + duplicates + dead-lettered). */
  readonly records: number;
  /** Records applied now. */
  readonly applied: number;
  /** Records already in the ledger (delivered again after a crash, or applied by the admin path). */
  readonly duplicates: number;
  readonly deadLettered: number;
  /** Time spent in MySQL. */
  readonly ms: number;
}

/** A record moved to ledger_dead_letters. */
export interface DeadLetter {
  readonly stream: string;
  readonly id: string;
  readonly problem: string;
  readonly fields: Record<string, string>;
}

/** Counters since construction, for metrics (read them at scrape time). */
export interface LedgerWriterStats {
  /** Records applied to MySQL. */
  readonly applied: number;
  /** Records delivered again that MySQL already had. */
  readonly duplicates: number;
  /** Records moved to ledger_dead_letters. */
  readonly deadLettered: number;
  /** Batches committed. */
  readonly batches: number;
  /** Rounds that failed (MySQL or Redis unavailable, or an unexpected error) and were retried. */
  readonly failures: number;
  /** Records taken over from consumers that stopped acknowledging. */
  readonly claimed: number;
  /** Whether the last MySQL transaction succeeded (false from the first failure until one succeeds). */
  readonly mysqlAvailable: boolean;
  /** Redis nodes whose loop currently fails. */
  readonly redisNodesDown: number;
}

export interface LedgerLag {
  /** Records in the shard streams not yet applied (and acknowledged), over all shards. */
  readonly waiting: number;
  /** Age of the oldest of them, from its stream id (Redis clock); 0 when none waits. */
  readonly oldestAgeMs: number;
}

/** Events of a LedgerWriter. Listeners that throw are logged, never break the loop. */
export interface LedgerWriterEvents {
  /** A batch was committed and acknowledged. */
  applied: [batch: LedgerBatch];
  /** A record could not be applied and was moved to ledger_dead_letters. */
  'dead-letter': [letter: DeadLetter];
  /** MySQL became unavailable (once per outage). */
  'mysql-down': [err: unknown];
  /** MySQL is back; the waiting records drain. */
  'mysql-up': [];
  /** A Redis node's loop started failing (once per outage). */
  'redis-down': [node: string, err: unknown];
  'redis-up': [node: string];
  /** An unexpected error in a round (not an outage); the round is retried after the back-off. */
  failure: [err: unknown];
}

interface StreamEntry {
  readonly stream: string;
  readonly shard: number;
  readonly id: string;
  /** null: the entry was deleted from the stream while pending. */
  readonly fields: string[] | null;
}

interface NodeLoop {
  readonly node: string;
  /** The node's shared client (CLIENT UNBLOCK, lag). */
  readonly shared: Redis;
  /** This writer's own connection to the node. */
  readonly conn: Redis;
  readonly shards: readonly number[];
  readonly streams: readonly string[];
  /** Read this consumer's pending records (ID 0) before new ones: at start, after any failure, after claiming. */
  history: boolean;
  groupsReady: boolean;
  /** Streams whose delivered-but-unowned records must be applied (see recoverOrphans). */
  readonly orphaned: Set<string>;
  nextClaimAt: number;
  failures: number;
  redisDown: boolean;
  clientId: number | undefined;
  done: Promise<void> | undefined;
}

let instances = 0;

export class LedgerWriter extends EventEmitter<LedgerWriterEvents> {
  readonly consumer: string;
  readonly group: string;
  private readonly batchSize: number;
  private readonly blockMs: number;
  private readonly batchWindowMs: number;
  private readonly claimIdleMs: number;
  private readonly claimIntervalMs: number;
  private readonly forgetConsumersAfterMs: number;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly transactionTimeoutMs: number;
  private readonly loops: NodeLoop[] = [];
  private readonly wakers = new Set<() => void>();
  private started = false;
  private stopping = false;
  private stopped: Promise<void> | undefined;
  private mysqlDown = false;
  private readonly counts = { applied: 0, duplicates: 0, deadLettered: 0, batches: 0, failures: 0, claimed: 0 };

  constructor(
    private readonly shards: RedisShards,
    private readonly pool: Pool,
    private readonly logger: Logger,
    private readonly options: LedgerWriterOptions = {},
  ) {
    super();
    instances += 1;
    this.consumer = options.consumer ?? `${os.hostname()}:${process.pid}:${instances}`;
    this.group = options.group ?? 'ledger';
    this.batchSize = options.batchSize ?? 200;
    this.blockMs = options.blockMs ?? 1000;
    this.batchWindowMs = options.batchWindowMs ?? 50;
    this.claimIdleMs = options.claimIdleMs ?? 30_000;
    this.claimIntervalMs = options.claimIntervalMs ?? Math.min(10_000, Math.max(100, this.claimIdleMs / 2));
    this.forgetConsumersAfterMs = options.forgetConsumersAfterMs ?? 3_600_000;
    this.backoffMinMs = options.backoffMinMs ?? 100;
    this.backoffMaxMs = options.backoffMaxMs ?? 5000;
    this.transactionTimeoutMs = options.transactionTimeoutMs ?? 15_000;
  }

  /**
   * Creates the consumer group on every shard stream (where Redis answers; a node that does not
   * is retried by its loop) and starts one loop per Redis node. Resolves once the loops run.
   */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    const { nodes } = this.shards.options;
    const base = this.shards.clients[0]?.options.commandTimeout ?? 2000;
    nodes.forEach((node, index) => {
      const shared = this.shards.clients[index];
      const conn = shared.duplicate({
        lazyConnect: true,
        // The blocking read may legitimately take blockMs; past that plus a margin the connection is dead.
        commandTimeout: this.blockMs + Math.max(base, 2000),
        // A read resent after a reconnect could deliver records whose reply is lost; instead the
        // failed read sends the loop back to its pending records.
        autoResendUnfulfilledCommands: false,
        enableAutoPipelining: false,
        maxRetriesPerRequest: 1,
        connectionName: `inventory-ledger:${process.pid}`,
      });
      const shardsOfNode = this.shards.shardsOn(node);
      const loop: NodeLoop = {
        node,
        shared,
        conn,
        shards: shardsOfNode,
        streams: shardsOfNode.map((s) => this.shards.keys.ledger(s)),
        history: true,
        groupsReady: false,
        orphaned: new Set(),
        nextClaimAt: 0,
        failures: 0,
        redisDown: false,
        clientId: undefined,
        done: undefined,
      };
      conn.on('error', (err) => this.logger.debug({ err, node }, 'ledger writer: redis connection error'));
      conn.on('ready', () => {
        loop.history = true;
        conn.client('ID').then(
          (id) => (loop.clientId = Number(id)),
          () => (loop.clientId = undefined),
        );
      });
      this.loops.push(loop);
    });
    await Promise.all(
      this.loops.map((loop) =>
        this.ensureGroups(loop).catch((err) => this.logger.warn({ err, node: loop.node }, 'ledger writer: could not create the consumer groups yet; will retry')),
      ),
    );
    for (const loop of this.loops) {
      loop.done = this.run(loop).catch((err) => this.logger.error({ err, node: loop.node }, 'ledger writer: loop died'));
    }
    this.logger.info({ consumer: this.consumer, group: this.group, nodes: nodes.length }, 'ledger writer started');
  }

  /** Finishes the batch in flight, stops the loops and closes this writer's connections. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    for (const wake of this.wakers) wake();
    // Cut a blocked read short instead of waiting out its BLOCK time.
    await Promise.all(
      this.loops.map((loop) => (loop.clientId === undefined ? undefined : loop.shared.call('CLIENT', 'UNBLOCK', loop.clientId).catch(() => undefined))),
    );
    await Promise.all(this.loops.map((loop) => loop.done));
    await Promise.all(
      this.loops.map(async (loop) => {
        await Promise.race([loop.conn.quit().catch(() => undefined), delay(1000)]);
        loop.conn.disconnect();
      }),
    );
    if (this.started) this.logger.info({ consumer: this.consumer, ...this.counts }, 'ledger writer stopped');
  }

  /** Counters since construction (see LedgerWriterStats). */
  stats(): LedgerWriterStats {
    return { ...this.counts, mysqlAvailable: !this.mysqlDown, redisNodesDown: this.loops.filter((l) => l.redisDown).length };
  }

  /**
   * Records not yet applied, over all shards, and the age of the oldest: XLEN and the first entry
   * of each stream (applied records are deleted), one pipeline per node on the shared clients.
   * Rejects when a Redis node does not answer.
   */
  async lag(): Promise<LedgerLag> {
    const byClient = new Map<Redis, number[]>();
    for (let s = 0; s < this.shards.keys.shardCount; s++) {
      const client = this.shards.client(s);
      byClient.set(client, [...(byClient.get(client) ?? []), s]);
    }
    let waiting = 0;
    let oldest = Infinity;
    await Promise.all(
      [...byClient].map(async ([client, shards]) => {
        const pipeline = client.pipeline();
        for (const s of shards) {
          const stream = this.shards.keys.ledger(s);
          pipeline.xlen(stream);
          pipeline.xrange(stream, '-', '+', 'COUNT', 1);
        }
        const replies = (await pipeline.exec()) ?? [];
        for (let i = 0; i < replies.length; i += 2) {
          const [lenErr, len] = replies[i];
          const [rangeErr, range] = replies[i + 1];
          if (lenErr) throw lenErr;
          if (rangeErr) throw rangeErr;
          waiting += Number(len);
          const first = (range as Array<[string, string[]]>)[0];
          if (first) oldest = Math.min(oldest, Number(first[0].split('-')[0]));
        }
      }),
    );
    return { waiting, oldestAgeMs: waiting > 0 && Number.isFinite(oldest) ? Math.max(0, Date.now() - oldest) : 0 };
  }

  /** Resolves once no record waits (the writer has caught up); rejects after `timeoutMs`. */
  async drain(timeoutMs: number): Promise<void> {
    const until = Date.now() + timeoutMs;
    let last: LedgerLag | undefined;
    let lastErr: unknown;
    for (;;) {
      try {
        last = await this.lag();
        if (last.waiting === 0) return;
      } catch (err) {
        lastErr = err;
      }
      if (Date.now() >= until) {
        const what = last ? `${last.waiting} records still waiting` : `lag unreadable (${String(lastErr)})`;
        throw new Error(`ledger writer: not drained after ${timeoutMs} ms: ${what}`);
      }
      await delay(Math.min(25, Math.max(0, until - Date.now())));
    }
  }

  /**
   * Operator's repair: applies records that were delivered to the group but are pending with no
   * consumer, so nothing would ever deliver them again (XGROUP DELCONSUMER or SETID run by hand, or
   * the rare race the writer's own consumer clean-up guards against). Returns how many it applied.
   * Safe at any time: applying a record twice is a no-op. Needs start().
   */
  async repairOrphans(): Promise<number> {
    let n = 0;
    for (const loop of this.loops) for (const stream of loop.streams) n += await this.recoverOrphans(loop, stream);
    return n;
  }

  private async run(loop: NodeLoop): Promise<void> {
    while (!this.stopping) {
      let stage: 'redis' | 'mysql' = 'redis';
      try {
        if (!loop.groupsReady) await this.ensureGroups(loop);
        if (Date.now() >= loop.nextClaimAt) {
          await this.claim(loop);
          loop.nextClaimAt = Date.now() + this.claimIntervalMs;
        }
        const setStage = (s: 'redis' | 'mysql') => (stage = s);
        for (const stream of loop.orphaned) {
          await this.recoverOrphans(loop, stream, setStage);
          loop.orphaned.delete(stream);
          stage = 'redis';
        }
        const roundStarted = Date.now();
        const entries = await this.read(loop);
        if (entries.length > 0) await this.settle(loop, entries, setStage);
        loop.failures = 0;
        if (entries.length > 0 && entries.length < this.batchSize && !loop.history) {
          await this.sleep(roundStarted + this.batchWindowMs - Date.now());
        }
        if (loop.redisDown) {
          loop.redisDown = false;
          this.logger.info({ node: loop.node }, 'ledger writer: redis node is back');
          this.notify('redis-up', loop.node);
        }
      } catch (err) {
        this.counts.failures += 1;
        loop.history = true;
        this.classify(loop, stage, err);
        await this.sleep(this.backoff(loop.failures++));
      }
    }
  }

  private classify(loop: NodeLoop, stage: 'redis' | 'mysql', err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    if (stage === 'redis' && message.startsWith('NOGROUP')) {
      // The stream or its group was deleted (FLUSHALL, a test cleaning up): create them again.
      loop.groupsReady = false;
      this.logger.warn({ node: loop.node }, 'ledger writer: consumer group missing; creating it again');
      return;
    }
    if (stage === 'mysql' && isMysqlUnavailable(err)) {
      if (!this.mysqlDown) {
        this.mysqlDown = true;
        this.logger.warn({ err }, 'ledger writer: MySQL unavailable; records wait in Redis until it is back');
        this.notify('mysql-down', err);
      }
      return;
    }
    if (stage === 'redis' && !loop.redisDown && isConnectionError(err)) {
      loop.redisDown = true;
      this.logger.warn({ err, node: loop.node }, 'ledger writer: redis node unavailable; retrying');
      this.notify('redis-down', loop.node, err);
      return;
    }
    if (stage === 'redis' && loop.redisDown) return;
    this.logger.error({ err, node: loop.node, stage }, 'ledger writer: round failed; retrying');
    this.notify('failure', err);
  }

  private mysqlBack(): void {
    if (!this.mysqlDown) return;
    this.mysqlDown = false;
    this.logger.info('ledger writer: MySQL is back; applying the waiting records');
    this.notify('mysql-up');
  }

  private async ensureGroups(loop: NodeLoop): Promise<void> {
    for (const stream of loop.streams) {
      try {
        await loop.conn.xgroup('CREATE', stream, this.group, '0', 'MKSTREAM');
      } catch (err) {
        if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
      }
    }
    loop.groupsReady = true;
  }

  /**
   * Takes over records other consumers have held unacknowledged for claimIdleMs (their process
   * died, or lost them in a reconnect); the history read then applies them. Also forgets consumers
   * long idle with nothing pending, so the group does not collect one per process ever started.
   */
  private async claim(loop: NodeLoop): Promise<void> {
    let claimed = 0;
    for (const stream of loop.streams) {
      let cursor = '0-0';
      for (let round = 0; round < 10; round++) {
        const reply = (await loop.conn.call(
          'XAUTOCLAIM',
          stream,
          this.group,
          this.consumer,
          this.claimIdleMs,
          cursor,
          'COUNT',
          this.batchSize,
          'JUSTID',
        )) as [string, string[], string[]?];
        claimed += reply[1].length;
        cursor = reply[0];
        if (cursor === '0-0') break;
      }
      const consumers = (await loop.conn.call('XINFO', 'CONSUMERS', stream, this.group)) as unknown[][];
      for (const flat of consumers) {
        const info = pairs(flat);
        if (info.name !== this.consumer && Number(info.pending) === 0 && Number(info.idle) > this.forgetConsumersAfterMs) {
          const dropped = Number(await loop.conn.xgroup('DELCONSUMER', stream, this.group, String(info.name)));
          // It read records between XINFO and DELCONSUMER (back after an hour's sleep): they left the
          // pending list with it and would never be delivered again.
          if (dropped > 0) loop.orphaned.add(stream);
        }
      }
    }
    if (claimed > 0) {
      this.counts.claimed += claimed;
      loop.history = true;
      this.logger.info({ node: loop.node, claimed }, 'ledger writer: took over records of a consumer that stopped');
    }
  }

  /**
   * Applies the records of a stream that were delivered but are pending with no consumer (only a
   * DELCONSUMER racing a read leaves such): delivered ones (up to the group's last id) still in the
   * stream and absent from the pending list. Applying one twice is harmless, so a record that was
   * in flight elsewhere costs a duplicate at worst.
   */
  private async recoverOrphans(loop: NodeLoop, stream: string, stage?: (s: 'redis' | 'mysql') => void): Promise<number> {
    const groups = (await loop.conn.call('XINFO', 'GROUPS', stream)) as unknown[][];
    const lastId = groups.map(pairs).find((g) => g.name === this.group)?.['last-delivered-id'];
    if (typeof lastId !== 'string') return 0;
    const pending = (await loop.conn.call('XPENDING', stream, this.group, '-', '+', 100_000)) as Array<[string, ...unknown[]]>;
    const known = new Set(pending.map(([id]) => id));
    const shard = loop.shards[loop.streams.indexOf(stream)];
    const delivered = await loop.conn.xrange(stream, '-', lastId, 'COUNT', 100_000);
    const orphans = delivered.filter(([id]) => !known.has(id)).map(([id, fields]): StreamEntry => ({ stream, shard, id, fields }));
    if (orphans.length === 0) return 0;
    this.logger.error({ stream, records: orphans.length }, 'ledger writer: records lost their consumer; applying them');
    await this.settle(loop, orphans, stage);
    return orphans.length;
  }

  /** One read over all streams of the node: this consumer's pending records while `history`, else new ones (blocking). */
  private async read(loop: NodeLoop): Promise<StreamEntry[]> {
    const history = loop.history;
    if (!history && this.stopping) return [];
    const args: Array<string | number> = ['GROUP', this.group, this.consumer, 'COUNT', this.batchSize];
    if (!history) args.push('BLOCK', this.blockMs);
    args.push('STREAMS', ...loop.streams, ...loop.streams.map(() => (history ? '0' : '>')));
    const reply = (await loop.conn.call('XREADGROUP', ...args)) as Array<[string, Array<[string, string[] | null]>]> | null;
    const entries: StreamEntry[] = [];
    for (const [stream, records] of reply ?? []) {
      const shard = loop.shards[loop.streams.indexOf(stream)];
      for (const [id, fields] of records) entries.push({ stream, shard, id, fields });
    }
    if (history && entries.length === 0) loop.history = false;
    return entries;
  }

  /** Applies records, then acknowledges them: the one path every record takes. */
  private async settle(loop: NodeLoop, entries: readonly StreamEntry[], stage: (s: 'redis' | 'mysql') => void = () => {}): Promise<LedgerBatch> {
    stage('mysql');
    const batch = await this.apply(loop, entries);
    this.mysqlBack();
    stage('redis');
    await this.options.beforeAck?.(batch);
    await this.ack(loop, entries);
    this.counts.batches += 1;
    this.counts.applied += batch.applied;
    this.counts.duplicates += batch.duplicates;
    this.notify('applied', batch);
    return batch;
  }

  /** Applies a round's records in one transaction; bad records go to the dead-letter table in it. */
  private async apply(loop: NodeLoop, entries: readonly StreamEntry[]): Promise<LedgerBatch> {
    const movements: Movement[] = [];
    const letters: DeadLetter[] = [];
    for (const entry of entries) {
      const parsed = toMovement(entry);
      if ('movement' in parsed) movements.push(parsed.movement);
      else letters.push({ stream: entry.stream, id: entry.id, problem: parsed.problem, fields: parsed.fields });
    }
    const started = Date.now();
    const result = await transaction(
      this.pool,
      async (conn) => {
        const applied = await applyCheckedMovements(conn, movements);
        await insertDeadLetters(conn, letters);
        return applied;
      },
      // READ COMMITTED: no gap locks on the ledger's unique index, fewer deadlocks between writers.
      { isolation: 'READ COMMITTED', timeoutMs: this.transactionTimeoutMs },
    );
    for (const letter of letters) {
      this.counts.deadLettered += 1;
      this.logger.error({ stream: letter.stream, id: letter.id, problem: letter.problem, fields: letter.fields }, 'ledger writer: record moved to ledger_dead_letters');
      this.notify('dead-letter', letter);
    }
    return {
      node: loop.node,
      records: entries.length,
      applied: result.applied.length,
      duplicates: result.duplicates,
      deadLettered: letters.length,
      ms: Date.now() - started,
    };
  }

  /** XACK and XDEL per stream, atomically (MULTI on one key, so it also holds on Redis Cluster). */
  private async ack(loop: NodeLoop, entries: readonly StreamEntry[]): Promise<void> {
    const byStream = new Map<string, string[]>();
    for (const e of entries) byStream.set(e.stream, [...(byStream.get(e.stream) ?? []), e.id]);
    await Promise.all(
      [...byStream].map(async ([stream, ids]) => {
        const replies = await loop.conn.multi().xack(stream, this.group, ...ids).xdel(stream, ...ids).exec();
        if (!replies) throw new Error(`ledger writer: XACK/XDEL on ${stream} was aborted`);
        for (const [err] of replies) if (err) throw err;
      }),
    );
  }

  private backoff(failures: number): number {
    const ms = Math.min(this.backoffMaxMs, this.backoffMinMs * 2 ** Math.min(failures, 20));
    return ms * (0.5 + Math.random() * 0.5);
  }

  /** A sleep that stop() cuts short. */
  private sleep(ms: number): Promise<void> {
    if (this.stopping || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  private notify<K extends keyof LedgerWriterEvents>(event: K, ...args: LedgerWriterEvents[K]): void {
    try {
      (this as EventEmitter).emit(event, ...args);
    } catch (err) {
      this.logger.error({ err, event }, 'ledger writer: event listener threw');
    }
  }
}

const QTY = /^[1-9][0-9]{0,15}$/;
const MS = /^[0-9]{1,15}$/;
const STREAM_BUCKETS = new Set(['base', 'pool', 'reserved', 'committed']);

/**
 * A stream record as a movement, or why it cannot be one. Required: id, kind, sku, qty, from, to.
 * Optional: order, partition, seq (the partition's sequence number), reason, at (ms; default the
 * stream id's time). Other fields (epoch, ...) are ignored.
 */
function toMovement(entry: StreamEntry): { movement: Movement } | { problem: string; fields: Record<string, string> } {
  if (entry.fields === null) return { problem: 'the record was deleted from the stream before it was applied', fields: {} };
  const read = recordFields(entry.fields);
  if ('problem' in read) return { problem: read.problem, fields: { m: read.raw } };
  const f = read.fields;
  const bad = (problem: string) => ({ problem, fields: f });
  for (const name of ['id', 'kind', 'sku', 'qty', 'from', 'to']) if (!f[name]) return bad(`field ${name} is missing`);
  if (!QTY.test(f.qty)) return bad(`qty ${JSON.stringify(f.qty)} is not a positive integer`);
  for (const name of ['from', 'to']) {
    if (!STREAM_BUCKETS.has(f[name])) return bad(`${name} ${JSON.stringify(f[name])} is not one of base, pool, reserved, committed`);
  }
  const atMs = f.at !== undefined && MS.test(f.at) ? Number(f.at) : Number(entry.id.split('-')[0]);
  const movement: Movement = {
    eventId: f.id,
    kind: f.kind,
    sku: f.sku,
    qty: Number(f.qty),
    from: f.from as Movement['from'],
    to: f.to as Movement['to'],
    orderId: f.order || undefined,
    partitionId: f.partition || undefined,
    partitionSeq: f.partition && f.seq !== undefined ? Number(f.seq) : undefined,
    reason: f.reason || undefined,
    source: `redis:s${entry.shard}:${entry.id}`,
    at: new Date(atMs),
  };
  const problem = movementProblem(movement);
  return problem ? bad(problem) : { movement };
}

async function insertDeadLetters(conn: PoolConnection, letters: readonly DeadLetter[]): Promise<void> {
  if (letters.length === 0) return;
  // IGNORE: the same record delivered again after a crash is kept once.
  await conn.query('INSERT IGNORE INTO ledger_dead_letters (stream, stream_id, fields, problem) VALUES ?', [
    letters.map((l) => [l.stream, l.id, JSON.stringify(l.fields), l.problem.slice(0, 512)]),
  ]);
}

function isConnectionError(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown; name?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  return (
    ['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND'].includes(code) ||
    e?.name === 'MaxRetriesPerRequestError' ||
    /Connection is closed|Command timed out|Stream isn't writeable|LOADING|MASTERDOWN|READONLY/.test(message)
  );
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
