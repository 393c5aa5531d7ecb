import { createHash } from 'node:crypto';
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import type { Logger } from '../kernel/logger';

/**
 * The schema, as numbered migrations applied at start-up, each once, in order, recorded in
 * `schema_migrations`. DDL commits implicitly in MySQL, so a migration cannot be rolled back half
 * way: every statement is written to be re-runnable (CREATE TABLE IF NOT EXISTS, ...), and a
 * process that dies inside a migration simply runs it again next time. Never edit a migration
 * that has shipped; add the next one.
 *
 * Kept in TypeScript rather than .sql files so that the build (tsc) carries them into dist/.
 */
export interface Migration {
  readonly version: number;
  readonly name: string;
  readonly statements: readonly string[];
}

// Ids are ASCII and compared byte for byte (Redis keys are case-sensitive, so are SKU and order ids here).
const ID = 'CHARACTER SET ascii COLLATE ascii_bin';
const CREATED = 'created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)';
const UPDATED = 'updated_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)';
const TABLE = 'ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci';

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'stock, partitions, ledger, admin requests, intents',
    statements: [
      // Counters are signed on purpose: records of different shards may be applied in another order
      // than they happened (a refund can land before its confirm), so a term can dip below zero for
      // a moment. Once the ledger has caught up every term is >= 0 and
      // on_hand = base + pool + reserved + committed (+ shortfall on the left since migration 6).
      `CREATE TABLE IF NOT EXISTS skus (
        sku_id VARCHAR(128) ${ID} NOT NULL PRIMARY KEY,
        on_hand BIGINT NOT NULL DEFAULT 0,
        base BIGINT NOT NULL DEFAULT 0,
        pool BIGINT NOT NULL DEFAULT 0,
        reserved BIGINT NOT NULL DEFAULT 0,
        committed BIGINT NOT NULL DEFAULT 0,
        shortfall BIGINT NOT NULL DEFAULT 0,
        per_user_limit BIGINT NOT NULL DEFAULT 0,
        version BIGINT NOT NULL DEFAULT 0,
        ${CREATED},
        ${UPDATED}
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS partitions (
        partition_id VARCHAR(64) ${ID} NOT NULL PRIMARY KEY,
        sku_id VARCHAR(128) ${ID} NOT NULL,
        redis_node VARCHAR(255) NULL,
        shard INT NOT NULL,
        capacity BIGINT NOT NULL,
        state ENUM('creating','live','exhausted','drained','aborted') NOT NULL,
        epoch BIGINT NOT NULL,
        ${CREATED},
        ${UPDATED},
        KEY partitions_sku_state (sku_id, state)
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS ledger (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        event_id VARCHAR(400) ${ID} NOT NULL,
        kind VARCHAR(32) NOT NULL,
        sku_id VARCHAR(128) ${ID} NOT NULL,
        qty BIGINT NOT NULL,
        from_bucket VARCHAR(16) NOT NULL,
        to_bucket VARCHAR(16) NOT NULL,
        order_id VARCHAR(128) ${ID} NULL,
        partition_id VARCHAR(64) ${ID} NULL,
        reason VARCHAR(256) NULL,
        source VARCHAR(64) NULL,
        ${CREATED},
        UNIQUE KEY ledger_event (event_id),
        KEY ledger_sku (sku_id, id),
        KEY ledger_order (order_id)
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS admin_requests (
        request_id VARCHAR(128) ${ID} NOT NULL PRIMARY KEY,
        method VARCHAR(64) NOT NULL,
        fingerprint VARCHAR(512) NOT NULL,
        response MEDIUMBLOB NULL,
        ${CREATED}
      ) ${TABLE}`,
      `CREATE TABLE IF NOT EXISTS intents (
        intent_id VARCHAR(128) ${ID} NOT NULL PRIMARY KEY,
        kind VARCHAR(32) NOT NULL,
        sku_id VARCHAR(128) ${ID} NOT NULL,
        payload JSON NOT NULL,
        state ENUM('open','done','undone') NOT NULL,
        ${CREATED},
        ${UPDATED},
        KEY intents_state (state, created_at)
      ) ${TABLE}`,
    ],
  },
  {
    version: 2,
    name: 'ledger dead letters',
    statements: [
      // Ledger-stream records the writer could not apply (a required field missing or invalid: a
      // bug upstream). Kept for an operator, written in the same transaction as the batch they
      // came in, so the stream moves on past them without losing them.
      `CREATE TABLE IF NOT EXISTS ledger_dead_letters (
        id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        stream VARCHAR(255) ${ID} NOT NULL,
        stream_id VARCHAR(64) ${ID} NOT NULL,
        fields MEDIUMTEXT NOT NULL,
        problem VARCHAR(512) NOT NULL,
        ${CREATED},
        UNIQUE KEY ledger_dead_letters_entry (stream, stream_id)
      ) ${TABLE}`,
    ],
  },
  {
    version: 3,
    name: 'ledger partition sequence, partition audit checkpoints',
    statements: [
      // The partition's sequence number of each record that changed a partition (take, release,
      // withdraw, repair): Redis numbers them 1, 2, 3... per partition, so MySQL can say whether it
      // holds every record up to a point and what the partition looked like there. That is how
      // Reconcile compares Redis and MySQL at one cut while records are still on their way.
      'ALTER TABLE ledger ADD COLUMN partition_seq BIGINT NULL AFTER partition_id',
      'ALTER TABLE ledger ADD KEY ledger_partition_seq (partition_id, partition_seq)',
      // What Reconcile last proved complete for a partition: the sums of its ledger rows up to
      // audited_seq. Rows never change once written, so the next audit only reads the rows after it.
      'ALTER TABLE partitions ADD COLUMN audited_seq BIGINT NOT NULL DEFAULT 0',
      'ALTER TABLE partitions ADD COLUMN audited_pool BIGINT NOT NULL DEFAULT 0',
      'ALTER TABLE partitions ADD COLUMN audited_held BIGINT NOT NULL DEFAULT 0',
    ],
  },
  {
    version: 4,
    name: 'warehouse stock messages',
    statements: [
      // Every warehouse message seen, by its id: a redelivery finds its row and changes nothing.
      // `pending` while a message's Redis half (a pool shrink, a shipment) is under way; the
      // consumer finishes it when the message comes again.
      `CREATE TABLE IF NOT EXISTS stock_messages (
        message_id VARCHAR(128) ${ID} NOT NULL PRIMARY KEY,
        sku_id VARCHAR(128) ${ID} NOT NULL,
        kind VARCHAR(16) NOT NULL,
        quantity BIGINT NOT NULL,
        sequence BIGINT NULL,
        warehouse_id VARCHAR(128) ${ID} NULL,
        order_id VARCHAR(128) ${ID} NULL,
        outcome ENUM('pending','applied','stale','dead') NOT NULL,
        detail VARCHAR(512) NULL,
        occurred_at TIMESTAMP(3) NULL,
        ${CREATED},
        ${UPDATED},
        KEY stock_messages_sku (sku_id, created_at)
      ) ${TABLE}`,
      // The source's per-SKU sequence of the last message applied: an older one is stale.
      'ALTER TABLE skus ADD COLUMN message_sequence BIGINT NULL',
    ],
  },
  {
    version: 5,
    name: 'event outbox',
    statements: [
      // Events for other systems decided in a MySQL transaction (stock.shortfall), written in that
      // transaction (store/outbox.ts), published to RabbitMQ by mq/events.ts and deleted once the
      // broker confirmed them. `payload` is the whole event as published (kernel/events.ts). A
      // publisher leases the rows it is publishing (claimed_by, claimed_until); a lease that ran
      // out (its publisher died) lets another take them over.
      `CREATE TABLE IF NOT EXISTS event_outbox (
        seq BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
        event_id VARCHAR(255) ${ID} NOT NULL,
        event_type VARCHAR(64) ${ID} NOT NULL,
        sku_id VARCHAR(128) ${ID} NULL,
        payload MEDIUMTEXT NOT NULL,
        claimed_by VARCHAR(255) NULL,
        claimed_until TIMESTAMP(3) NULL,
        ${CREATED},
        UNIQUE KEY event_outbox_event (event_id),
        KEY event_outbox_claim (claimed_until)
      ) ${TABLE}`,
    ],
  },
  {
    version: 6,
    name: 'a shortfall is physically gone: on_hand without it',
    statements: [
      // From this release a loss drops on_hand by the whole loss, and the shortfall (what base and
      // pool could not cover) keeps on_hand + shortfall = base + pool + reserved + committed.
      // Shortfalls recorded before kept their units in on_hand: take them out, once (the flag makes
      // the statement safe to run again after a process died inside this migration).
      'ALTER TABLE skus ADD COLUMN shortfall_off_hand TINYINT NOT NULL DEFAULT 0',
      'UPDATE skus SET on_hand = on_hand - shortfall, shortfall_off_hand = 1 WHERE shortfall > 0 AND shortfall_off_hand = 0',
    ],
  },
  {
    version: 7,
    name: 'order archive',
    statements: [
      // The orders Redis forgot once their retention ended (store/order-archive.ts): the order hash
      // as it was, as JSON, so replays and refusals of a forgotten order answer as before.
      `CREATE TABLE IF NOT EXISTS order_archive (
        order_id VARCHAR(128) ${ID} NOT NULL PRIMARY KEY,
        state VARCHAR(16) NOT NULL,
        fields MEDIUMTEXT NOT NULL,
        ended_at TIMESTAMP(3) NULL,
        archived_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
        KEY order_archive_ended (ended_at)
      ) ${TABLE}`,
    ],
  },
];

/**
 * Errors of a statement that already ran: an ALTER TABLE that a process dying inside its migration
 * left applied (ADD COLUMN and ADD KEY have no IF NOT EXISTS in MySQL). Running it again is a no-op.
 */
const ALREADY_APPLIED = new Set([1060 /* ER_DUP_FIELDNAME */, 1061 /* ER_DUP_KEYNAME */]);

async function runStatement(conn: PoolConnection, sql: string): Promise<void> {
  try {
    await conn.query(sql);
  } catch (err) {
    if (!ALREADY_APPLIED.has((err as { errno?: number }).errno ?? 0)) throw err;
  }
}

export interface MigrateOptions {
  /** How long to wait for another process's migration run. Default 30 s. */
  readonly lockTimeoutSeconds?: number;
  /** The migrations to apply (tests); default MIGRATIONS. */
  readonly migrations?: readonly Migration[];
}

/**
 * Applies the migrations this database lacks, in order; returns the versions applied now. Safe to
 * run from many processes at once: a named lock (GET_LOCK, per database, held by one dedicated
 * connection) lets one apply while the others wait and then find nothing left to do. A database
 * that already has versions this code does not know (a newer release ran) is left alone, with a
 * warning: migrations only add, so the older code keeps working.
 */
export async function migrate(pool: Pool, logger: Logger, options: MigrateOptions = {}): Promise<number[]> {
  const migrations = [...(options.migrations ?? MIGRATIONS)].sort((a, b) => a.version - b.version);
  const conn = await pool.getConnection();
  let lock: string | undefined;
  let healthy = true;
  try {
    const [[{ db }]] = await conn.query<RowDataPacket[]>('SELECT DATABASE() AS db');
    const name = lockName(String(db));
    const [[{ got }]] = await conn.query<RowDataPacket[]>('SELECT GET_LOCK(?, ?) AS got', [name, options.lockTimeoutSeconds ?? 30]);
    if (got !== 1) throw new Error(`migrations: could not take lock ${name} within ${options.lockTimeoutSeconds ?? 30} s (another process is migrating)`);
    lock = name;

    await conn.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
      version INT NOT NULL PRIMARY KEY,
      name VARCHAR(200) NOT NULL,
      applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
    ) ${TABLE}`);
    const [rows] = await conn.query<RowDataPacket[]>('SELECT version FROM schema_migrations');
    const done = new Set(rows.map((r) => Number(r.version)));
    const known = new Set(migrations.map((m) => m.version));
    const unknown = [...done].filter((v) => !known.has(v));
    if (unknown.length > 0) logger.warn({ versions: unknown }, 'migrations: the database has versions this release does not know (a newer release ran)');

    const applied: number[] = [];
    for (const m of migrations) {
      if (done.has(m.version)) continue;
      const started = Date.now();
      for (const sql of m.statements) await runStatement(conn, sql);
      await conn.query('INSERT INTO schema_migrations (version, name) VALUES (?, ?)', [m.version, m.name]);
      applied.push(m.version);
      logger.info({ version: m.version, name: m.name, ms: Date.now() - started }, 'migrations: applied');
    }
    return applied;
  } finally {
    if (lock) await conn.query('SELECT RELEASE_LOCK(?)', [lock]).catch(() => (healthy = false));
    // A session that may still hold the lock is closed rather than pooled: closing it frees the lock.
    if (healthy) conn.release();
    else conn.destroy();
  }
}

/** One lock per database, so that test files migrating their own databases do not wait on each other. Names are at most 64 characters. */
function lockName(database: string): string {
  const name = `inventory_migrations:${database}`;
  return name.length <= 64 ? name : `inventory_migrations:${createHash('sha1').update(database).digest('hex')}`;
}
