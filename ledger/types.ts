import type { RedisClient } from '../allocator/shards';

/** The ledger writer's options, events, counters and the records it reads (writer.ts). */

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

/** One record of a shard's ledger stream, as XREADGROUP returns it. */
export interface StreamEntry {
  readonly stream: string;
  readonly shard: number;
  readonly id: string;
  /** null: the entry was deleted from the stream while pending. */
  readonly fields: string[] | null;
}

/** One Redis node's loop: its connections, the streams of its shards and where it stands. */
export interface NodeLoop {
  readonly node: string;
  /** The node's shared client (CLIENT UNBLOCK, lag). */
  readonly shared: RedisClient;
  /** This writer's own connection to the node. */
  readonly conn: RedisClient;
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
