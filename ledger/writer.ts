import { EventEmitter } from 'node:events';
import os from 'node:os';
import type { Pool } from 'mysql2/promise';
import type { RedisShards } from '../allocator/shards';
import { DependencyUnavailable } from '../kernel/dependency';
import type { Logger } from '../kernel/logger';
import { isMysqlUnavailable } from '../store/mysql';
import { Sleeper, backoffMs } from '../kernel/backoff';
import { applyBatch } from './batch';
import { ledgerLag } from './lag';
import { ConsumerGroup } from './group';
import { LedgerBatch, LedgerLag, LedgerWriterEvents, LedgerWriterOptions, LedgerWriterStats, NodeLoop, StreamEntry } from './types';
import { emitSafely } from '../kernel/emit';

export type { DeadLetter, LedgerBatch, LedgerLag, LedgerWriterEvents, LedgerWriterOptions, LedgerWriterStats } from './types';

/**
 * Moves the ledger records that the Lua scripts append to each shard's stream
 * (`<prefix>:{s<N>}:ledger`) into MySQL: the ledger table and the SKU counters, exactly once per
 * record id.
 *
 * - One consumer group (`ledger`) over all shard streams; every writer (one per server process)
 *   is a consumer of it, so each record goes to one writer, and a writer that dies leaves its
 *   unacknowledged records to be claimed by the others (XAUTOCLAIM after `claimIdleMs`).
 * - One loop per Redis node, on a connection of its own (XREADGROUP BLOCK holds it), reading all
 *   shards of that node at once; on Redis Cluster one loop per shard (RedisShards.streamGroups).
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

let instances = 0;

export class LedgerWriter extends EventEmitter<LedgerWriterEvents> {
  readonly consumer: string;
  readonly group: string;
  private readonly batchSize: number;
  private readonly blockMs: number;
  private readonly batchWindowMs: number;
  private readonly claimIntervalMs: number;
  private readonly streams: ConsumerGroup;
  private readonly backoffMinMs: number;
  private readonly backoffMaxMs: number;
  private readonly transactionTimeoutMs: number;
  private readonly loops: NodeLoop[] = [];
  private readonly sleeper = new Sleeper();
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
    const claimIdleMs = options.claimIdleMs ?? 30_000;
    this.claimIntervalMs = options.claimIntervalMs ?? Math.min(10_000, Math.max(100, claimIdleMs / 2));
    const forgetAfterMs = options.forgetConsumersAfterMs ?? 3_600_000;
    this.streams = new ConsumerGroup(this.group, this.consumer, this.batchSize, this.blockMs, claimIdleMs, forgetAfterMs);
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
    const groups = this.shards.streamGroups();
    const base = this.shards.options.commandTimeoutMs;
    for (const { node, shards: shardsOfNode, shared, open } of groups) {
      const conn = open({
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
    }
    await Promise.all(
      this.loops.map((loop) =>
        this.streams.ensure(loop).catch((err) => this.logger.warn({ err, node: loop.node }, 'ledger writer: could not create the consumer groups yet; will retry')),
      ),
    );
    for (const loop of this.loops) {
      loop.done = this.run(loop).catch((err) => this.logger.error({ err, node: loop.node }, 'ledger writer: loop died'));
    }
    this.logger.info({ consumer: this.consumer, group: this.group, loops: groups.length }, 'ledger writer started');
  }

  /** Finishes the batch in flight, stops the loops and closes this writer's connections. Idempotent. */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown();
    return this.stopped;
  }

  private async shutdown(): Promise<void> {
    this.stopping = true;
    this.sleeper.cancel();
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

  /** Records not yet applied, over all shards, and the age of the oldest (ledger/lag.ts). */
  lag(): Promise<LedgerLag> {
    return ledgerLag(this.shards);
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
        if (!loop.groupsReady) await this.streams.ensure(loop);
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
        const entries = await this.streams.read(loop, this.stopping);
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
    if (stage === 'redis' && !loop.redisDown && err instanceof DependencyUnavailable) {
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

  /** Takes over records of consumers that stopped (ConsumerGroup.claim), counted and logged. */
  private async claim(loop: NodeLoop): Promise<void> {
    const claimed = await this.streams.claim(loop);
    if (claimed === 0) return;
    this.counts.claimed += claimed;
    this.logger.info({ node: loop.node, claimed }, 'ledger writer: took over records of a consumer that stopped');
  }

  /**
   * Applies the records of a stream that were delivered but are pending with no consumer
   * (ConsumerGroup.orphans). Applying one twice is harmless.
   */
  private async recoverOrphans(loop: NodeLoop, stream: string, stage?: (s: 'redis' | 'mysql') => void): Promise<number> {
    const orphans = await this.streams.orphans(loop, stream);
    if (orphans.length === 0) return 0;
    this.logger.error({ stream, records: orphans.length }, 'ledger writer: records lost their consumer; applying them');
    await this.settle(loop, orphans, stage);
    return orphans.length;
  }

  /** Applies records, then acknowledges them: the one path every record takes. */
  private async settle(loop: NodeLoop, entries: readonly StreamEntry[], stage: (s: 'redis' | 'mysql') => void = () => {}): Promise<LedgerBatch> {
    stage('mysql');
    const { batch, letters } = await applyBatch(this.pool, loop.node, entries, this.transactionTimeoutMs);
    for (const letter of letters) {
      this.counts.deadLettered += 1;
      this.logger.error({ stream: letter.stream, id: letter.id, problem: letter.problem, fields: letter.fields }, 'ledger writer: record moved to ledger_dead_letters');
      this.notify('dead-letter', letter);
    }
    this.mysqlBack();
    stage('redis');
    await this.options.beforeAck?.(batch);
    await this.streams.ack(loop, entries);
    this.counts.batches += 1;
    this.counts.applied += batch.applied;
    this.counts.duplicates += batch.duplicates;
    this.notify('applied', batch);
    return batch;
  }

  private backoff(failures: number): number {
    return backoffMs(failures, this.backoffMinMs, this.backoffMaxMs);
  }

  /** A sleep that stop() cuts short. */
  private sleep(ms: number): Promise<void> {
    return this.sleeper.sleep(ms);
  }

  private notify<K extends keyof LedgerWriterEvents & string>(event: K, ...args: LedgerWriterEvents[K]): void {
    emitSafely(this, this.logger, 'ledger writer', event, args);
  }
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
