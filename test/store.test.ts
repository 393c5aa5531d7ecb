import assert from 'node:assert/strict';
import type { Pool, PoolConnection, RowDataPacket } from 'mysql2/promise';
import { createLogger } from '../kernel/logger';
import { MIGRATIONS, migrate } from '../store/migrations';
import {
  Movement,
  MovementError,
  MysqlTimeoutError,
  applyMovement,
  applyMovements,
  createMysqlPool,
  dropDatabase,
  ensureDatabase,
  isMysqlUnavailable,
  transaction,
} from '../store/mysql';
import { testConfig, uniqueName } from './helpers/config';

const logger = createLogger('silent');

function urlOf(name: string): string {
  return testConfig(name).mysqlUrl;
}

async function one<T = RowDataPacket>(db: Pool | PoolConnection, sql: string, args: unknown[] = []): Promise<T> {
  const [rows] = await db.query<RowDataPacket[]>(sql, args);
  return rows[0] as T;
}

async function counters(db: Pool, sku: string) {
  return one<{ on_hand: number; base: number; pool: number; reserved: number; committed: number; version: number } | undefined>(
    db,
    'SELECT on_hand, base, pool, reserved, committed, version FROM skus WHERE sku_id = ?',
    [sku],
  );
}

function take(eventId: string, sku: string, qty: number, extra: Partial<Movement> = {}): Movement {
  return { eventId, kind: 'take', sku, qty, from: 'pool', to: 'reserved', source: 'test', ...extra };
}

describe('MySQL store: migrations, transactions, movements', function () {
  this.timeout(30_000);
  const url = urlOf(uniqueName('store'));
  let pool: Pool;

  before(async () => {
    await ensureDatabase(url);
    pool = createMysqlPool(url);
  });
  after(async () => {
    await pool?.end();
    await dropDatabase(url);
  });

  describe('migrations', () => {
    it('apply once, in order, and are recorded', async () => {
      assert.deepEqual(await migrate(pool, logger), MIGRATIONS.map((m) => m.version));
      const [recorded] = await pool.query<RowDataPacket[]>('SELECT version, name, applied_at FROM schema_migrations ORDER BY version');
      assert.deepEqual(
        recorded.map((r) => [r.version, r.name]),
        MIGRATIONS.map((m) => [m.version, m.name]),
      );
      assert.ok(recorded.every((r) => r.applied_at instanceof Date && Math.abs(r.applied_at.getTime() - Date.now()) < 60_000), 'applied_at is a UTC time');
      const [tables] = await pool.query<RowDataPacket[]>('SHOW TABLES');
      const names = tables.map((t) => Object.values(t)[0]).sort();
      assert.deepEqual(names, ['admin_requests', 'event_outbox', 'intents', 'ledger', 'ledger_dead_letters', 'order_archive', 'partitions', 'schema_migrations', 'skus', 'stock_messages']);

      assert.deepEqual(await migrate(pool, logger), [], 'a second run has nothing to do');
      // A migration that died after its DDL but before its record runs again harmlessly.
      await pool.query('DELETE FROM schema_migrations WHERE version = 2');
      assert.deepEqual(await migrate(pool, logger), [2]);
    });

    it('are safe when several servers start at once', async () => {
      const fresh = urlOf(uniqueName('store2'));
      await ensureDatabase(fresh);
      const pools = [createMysqlPool(fresh), createMysqlPool(fresh), createMysqlPool(fresh)];
      try {
        const results = await Promise.all(pools.map((p) => migrate(p, logger)));
        assert.deepEqual(results.flat().sort(), MIGRATIONS.map((m) => m.version), 'each migration applied by exactly one of them');
        const { n } = await one<{ n: number }>(pools[0], 'SELECT COUNT(*) AS n FROM schema_migrations');
        assert.equal(n, MIGRATIONS.length);
        // The lock was released: one more run gets it at once.
        assert.deepEqual(await migrate(pools[1], logger, { lockTimeoutSeconds: 1 }), []);
      } finally {
        await Promise.all(pools.map((p) => p.end()));
        await dropDatabase(fresh);
      }
    });
  });

  describe('transaction', () => {
    before(async () => {
      await pool.query('CREATE TABLE IF NOT EXISTS scratch (id INT PRIMARY KEY, n INT NOT NULL) ENGINE=InnoDB');
    });
    beforeEach(async () => {
      await pool.query('DELETE FROM scratch');
      await pool.query('INSERT INTO scratch VALUES (1, 0), (2, 0)');
    });

    it('runs a deadlocked transaction again, and both end up applied once', async () => {
      let firstLocks = 0;
      let bothLocked!: () => void;
      const barrier = new Promise<void>((resolve) => (bothLocked = resolve));
      const runs: string[] = [];
      const retried: number[] = [];
      const worker = (name: string, first: number, second: number) =>
        transaction(
          pool,
          async (conn) => {
            runs.push(name);
            await conn.query('SELECT n FROM scratch WHERE id = ? FOR UPDATE', [first]);
            if (runs.filter((r) => r === name).length === 1) {
              // First run only: wait until the other holds its first row, then reach for it.
              if (++firstLocks === 2) bothLocked();
              await barrier;
            }
            await conn.query('SELECT n FROM scratch WHERE id = ? FOR UPDATE', [second]);
            await conn.query('UPDATE scratch SET n = n + 1 WHERE id IN (?, ?)', [first, second]);
            return name;
          },
          { onRetry: (err) => retried.push((err as { errno: number }).errno) },
        );
      assert.deepEqual(await Promise.all([worker('a', 1, 2), worker('b', 2, 1)]), ['a', 'b']);
      assert.deepEqual(retried, [1213], 'InnoDB chose one victim, which ran again');
      assert.equal(runs.length, 3);
      const [rows] = await pool.query<RowDataPacket[]>('SELECT id, n FROM scratch ORDER BY id');
      assert.deepEqual(rows.map((r) => [r.id, r.n]), [[1, 2], [2, 2]]);
    });

    it('gives up after the last attempt with the deadlock error', async () => {
      let runs = 0;
      const deadlock = Object.assign(new Error('Deadlock found'), { errno: 1213, code: 'ER_LOCK_DEADLOCK' });
      await assert.rejects(
        transaction(pool, async () => {
          runs++;
          throw deadlock;
        }, { attempts: 3, backoffMs: 1 }),
        (err) => err === deadlock,
      );
      assert.equal(runs, 3);
    });

    it('never leaks a transaction into the pool', async () => {
      const single = createMysqlPool(url, { connectionLimit: 1 });
      try {
        await assert.rejects(
          transaction(single, async (conn) => {
            await conn.query('UPDATE scratch SET n = 42 WHERE id = 1');
            throw new Error('business rule says no');
          }),
          /business rule says no/,
        );
        // The same (only) connection is back in autocommit mode, outside any transaction.
        assert.equal((await one<{ t: number }>(single, 'SELECT @@in_transaction AS t')).t, 0);
        assert.equal((await one<{ n: number }>(pool, 'SELECT n FROM scratch WHERE id = 1')).n, 0, 'rolled back');
        await transaction(single, (conn) => conn.query('UPDATE scratch SET n = 7 WHERE id = 1'));
        assert.equal((await one<{ n: number }>(pool, 'SELECT n FROM scratch WHERE id = 1')).n, 7, 'committed');
      } finally {
        await single.end();
      }
    });

    it('cuts a transaction that outlives its timeout, and the pool goes on', async () => {
      const single = createMysqlPool(url, { connectionLimit: 1 });
      try {
        const started = Date.now();
        const err = await transaction(single, (conn) => conn.query('SELECT SLEEP(5)'), { timeoutMs: 300 }).catch((e: unknown) => e);
        assert.ok(err instanceof MysqlTimeoutError, String(err));
        assert.ok(isMysqlUnavailable(err));
        assert.ok(Date.now() - started < 2000, 'failed at the deadline, not when the statement ended');
        assert.equal((await one<{ x: number }>(single, 'SELECT 1 AS x')).x, 1, 'a fresh connection replaced the cut one');
      } finally {
        await single.end();
      }
    });

    it('tells unavailability apart from errors about the statement', async () => {
      const down = createMysqlPool('mysql://root@127.0.0.1:1/nothing', { connectTimeoutMs: 500 });
      try {
        const err = await down.query('SELECT 1').catch((e: unknown) => e);
        assert.ok(isMysqlUnavailable(err), String(err));
      } finally {
        await down.end();
      }
      const syntax = await pool.query('SELEC 1').catch((e: unknown) => e);
      assert.equal(isMysqlUnavailable(syntax), false);
      const deadlock = Object.assign(new Error('Deadlock'), { errno: 1213 });
      assert.equal(isMysqlUnavailable(deadlock), false);
    });
  });

  describe('applyMovement', () => {
    before(() => migrate(pool, logger));

    it('applies once per event id and moves the right counters', async () => {
      const sku = 'mv-a';
      const apply = (m: Movement) => transaction(pool, (conn) => applyMovement(conn, m));
      assert.equal(await apply({ eventId: 'adj-1', kind: 'adjust', sku, qty: 10, from: 'outside', to: 'base', source: 'admin', reason: 'delivery' }), true);
      assert.deepEqual(await counters(pool, sku), { on_hand: 10, base: 10, pool: 0, reserved: 0, committed: 0, version: 1 });
      assert.equal(await apply({ eventId: 'pre-1', kind: 'preallocate', sku, qty: 6, from: 'base', to: 'pool', source: 'admin' }), true);
      assert.equal(await apply(take('take:o1:p1', sku, 3, { orderId: 'o1', partitionId: 'p1' })), true);
      assert.equal(await apply(take('take:o1:p1', sku, 3, { orderId: 'o1', partitionId: 'p1' })), false, 'a replay changes nothing');
      assert.equal(await apply({ eventId: 'confirm:o1:mv-a', kind: 'confirm', sku, qty: 3, from: 'reserved', to: 'committed', source: 'test' }), true);
      assert.equal(await apply({ eventId: 'adj-2', kind: 'adjust', sku, qty: 4, from: 'base', to: 'outside', source: 'admin' }), true);
      assert.deepEqual(await counters(pool, sku), { on_hand: 6, base: 0, pool: 3, reserved: 0, committed: 3, version: 5 });

      const row = await one(pool, "SELECT kind, qty, from_bucket, to_bucket, order_id, partition_id, source FROM ledger WHERE event_id = 'take:o1:p1'");
      assert.deepEqual({ ...row }, { kind: 'take', qty: 3, from_bucket: 'pool', to_bucket: 'reserved', order_id: 'o1', partition_id: 'p1', source: 'test' });
      assert.equal((await one<{ n: number }>(pool, 'SELECT COUNT(*) AS n FROM ledger WHERE sku_id = ?', [sku])).n, 5);
    });

    it('refuses a movement the ledger cannot hold, before writing anything', async () => {
      const bad: Array<[Partial<Movement>, RegExp]> = [
        [{ from: 'shelf' as Movement['from'] }, /from "shelf"/],
        [{ to: 'pool' }, /both pool/],
        [{ qty: 0 }, /qty 0/],
        [{ qty: 1.5 }, /qty 1.5/],
        [{ sku: 'é' }, /sku is not printable ASCII/],
        [{ eventId: 'x'.repeat(401) }, /eventId is longer/],
        [{ kind: 'drop table' }, /kind/],
      ];
      for (const [change, message] of bad) {
        await assert.rejects(
          transaction(pool, (conn) => applyMovement(conn, take('bad-1', 'mv-bad', 1, change))),
          (err: unknown) => err instanceof MovementError && message.test(err.message),
        );
      }
      assert.equal(await counters(pool, 'mv-bad'), undefined);
      assert.equal((await one<{ n: number }>(pool, "SELECT COUNT(*) AS n FROM ledger WHERE event_id = 'bad-1'")).n, 0);
    });

    it('applies a batch like one movement after another, skipping known and repeated event ids', async () => {
      const sku = 'mv-b';
      await transaction(pool, (conn) => applyMovement(conn, take('b:1', sku, 1)));
      const batch = [take('b:1', sku, 1), take('b:2', sku, 2), take('b:2', sku, 2), take('b:3', 'mv-c', 5), { ...take('b:4', sku, 1), from: 'reserved' as const, to: 'committed' as const }];
      const result = await transaction(pool, (conn) => applyMovements(conn, batch));
      assert.deepEqual(result.applied.map((m) => m.eventId), ['b:2', 'b:3', 'b:4']);
      assert.equal(result.duplicates, 2);
      assert.deepEqual(await counters(pool, sku), { on_hand: 0, base: 0, pool: -3, reserved: 2, committed: 1, version: 3 });
      assert.deepEqual(await counters(pool, 'mv-c'), { on_hand: 0, base: 0, pool: -5, reserved: 5, committed: 0, version: 1 });
    });

    it('stores every value as given: quotes, backslashes, free text and the time to the millisecond', async () => {
      const at = new Date(Date.UTC(2026, 10, 22, 13, 4, 5, 7));
      const movements = [
        take(`q:it's`, `mv-q'\\`, 2, { orderId: `o'1\\`, partitionId: 'p"1', reason: `don't \\ drop; -- é ✓ 'x'`, at }),
        take('q:plain', 'mv-q2', 1, { at: new Date(at.getTime() + 999) }),
      ];
      const result = await transaction(pool, (conn) => applyMovements(conn, movements));
      assert.equal(result.applied.length, 2);
      const row = await one(pool, 'SELECT event_id, sku_id, order_id, partition_id, reason, created_at FROM ledger WHERE event_id = ?', [`q:it's`]);
      assert.deepEqual({ ...row }, {
        event_id: `q:it's`,
        sku_id: `mv-q'\\`,
        order_id: `o'1\\`,
        partition_id: 'p"1',
        reason: `don't \\ drop; -- é ✓ 'x'`,
        created_at: at,
      });
      const plain = await one(pool, "SELECT order_id, reason, created_at FROM ledger WHERE event_id = 'q:plain'");
      assert.deepEqual({ ...plain }, { order_id: null, reason: null, created_at: new Date(at.getTime() + 999) });
    });

    it('skips event ids already in the ledger wherever they are in a batch', async () => {
      const sku = 'mv-skip';
      await transaction(pool, (conn) => applyMovements(conn, [take('s:2', sku, 1), take('s:5', sku, 1)]));
      const batch = Array.from({ length: 6 }, (_, i) => take(`s:${i + 1}`, sku, 1));
      const result = await transaction(pool, (conn) => applyMovements(conn, batch));
      assert.deepEqual(result.applied.map((m) => m.eventId), ['s:1', 's:3', 's:4', 's:6']);
      assert.equal(result.duplicates, 2);
      assert.deepEqual(await counters(pool, sku), { on_hand: 0, base: 0, pool: -6, reserved: 6, committed: 0, version: 6 });
    });

    it('applies a batch once even when another transaction commits one of its event ids meanwhile', async () => {
      const sku = 'mv-race';
      const other = await pool.getConnection();
      try {
        await other.query('BEGIN');
        await applyMovement(other, take('race:1', sku, 4));
        // The batch does not see race:1 yet; its INSERT waits for the row lock, then finds a duplicate.
        const batch = transaction(pool, (conn) => applyMovements(conn, [take('race:1', sku, 4), take('race:2', sku, 1)]));
        await new Promise((resolve) => setTimeout(resolve, 300));
        await other.query('COMMIT');
        const result = await batch;
        assert.deepEqual(result.applied.map((m) => m.eventId), ['race:2']);
      } finally {
        other.release();
      }
      assert.deepEqual(await counters(pool, sku), { on_hand: 0, base: 0, pool: -5, reserved: 5, committed: 0, version: 2 });
    });
  });
});
