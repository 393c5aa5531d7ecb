import mysql, { Pool, PoolConnection } from 'mysql2/promise';
import { Breakers, DependencyBreaker } from '../kernel/breaker';
import { Caller, NO_CALLER, pause, stayForCaller } from '../kernel/caller';
import { DomainError } from '../kernel/errors';
import { DependencyTimeout, DependencyUnavailable } from '../kernel/dependency';

export { applyMovement, applyMovements, AppliedMovements, Bucket, BUCKETS, Movement, MovementError, movementProblem } from './ledger-apply';

/**
 * MySQL (MariaDB locally): the pool, transactions done right, and the one place that decides which
 * errors mean "MySQL is unavailable" and which mean "run the transaction again".
 */

export interface MysqlPoolOptions {
  /** Connections at most. Default 10: transactions are short, and every server process has its own pool. */
  readonly connectionLimit?: number;
  /** Give up on a new connection (TCP and handshake) after this. Default 5000 ms. */
  readonly connectTimeoutMs?: number;
  /** Close connections idle this long. Default 60000 ms. */
  readonly idleTimeoutMs?: number;
  /** The pool's circuit breaker (the process's, from its Breakers); one of its own by default. */
  readonly breaker?: DependencyBreaker;
}

/** Host, port, credentials and database of a `mysql://user:password@host:port/database` URL. */
export interface MysqlAddress {
  readonly host: string;
  readonly port: number;
  readonly user: string;
  readonly password: string;
  readonly database: string;
}

const DATABASE_NAME = /^[A-Za-z0-9_$]{1,64}$/;

export function parseMysqlUrl(url: string): MysqlAddress {
  const u = new URL(url);
  const database = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (database !== '' && !DATABASE_NAME.test(database)) throw new Error(`MySQL database name ${JSON.stringify(database)} is not 1-64 of A-Z a-z 0-9 _ $`);
  return {
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port ? Number(u.port) : 3306,
    user: decodeURIComponent(u.username) || 'root',
    password: decodeURIComponent(u.password),
    database,
  };
}

/**
 * A mysql2/promise pool on the URL's database. BIGINT columns come back as numbers while they are
 * safe integers (`supportBigNumbers`, `bigNumberStrings: false`: strings only beyond 2^53), and
 * times are UTC on both sides: the driver formats and parses dates as UTC (`timezone: 'Z'`) and
 * every connection sets its session time zone to UTC, so TIMESTAMP columns read back what was written
 * whatever the server's own zone is. Queries and transactions go through the pool's circuit breaker
 * and fail typed when MySQL is down (guardPool, transaction).
 */
export function createMysqlPool(url: string, options: MysqlPoolOptions = {}): Pool {
  const address = parseMysqlUrl(url);
  const pool = mysql.createPool({
    host: address.host,
    port: address.port,
    user: address.user,
    password: address.password,
    database: address.database || undefined,
    charset: 'utf8mb4_unicode_ci',
    connectionLimit: options.connectionLimit ?? 10,
    maxIdle: options.connectionLimit ?? 10,
    idleTimeout: options.idleTimeoutMs ?? 60_000,
    connectTimeout: options.connectTimeoutMs ?? 5000,
    waitForConnections: true,
    queueLimit: 0,
    enableKeepAlive: true,
    supportBigNumbers: true,
    bigNumberStrings: false,
    timezone: 'Z',
    dateStrings: false,
    // mysql2 runs every query through its formatter, one without values too, which scans the whole
    // text for placeholders: for a ledger batch's multi-row INSERT (100 kB of SQL) a real cost. With
    // no values the formatter gives the text back as it is, so skip it then.
    queryFormat: (sql: string, values: unknown) =>
      values === undefined || (Array.isArray(values) && values.length === 0) ? sql : mysql.format(sql, values as Parameters<typeof mysql.format>[1], false, 'Z'),
  });
  // The core connection, before any caller's query is queued on it (mysql2 emits this first).
  pool.pool.on('connection', (conn: { query(sql: string, cb: (err: unknown) => void): unknown }) => {
    conn.query("SET time_zone = '+00:00'", () => {});
  });
  return guardPool(pool, options.breaker ?? new Breakers().for('mysql'));
}

const rawPools = new WeakMap<Pool, { raw: Pool; breaker: DependencyBreaker }>();

/**
 * The pool with query, execute and getConnection run through `breaker` and their failures typed
 * (mysqlFailure). A connection taken with getConnection is the caller's; transaction() guards its
 * whole run instead.
 */
function guardPool(pool: Pool, breaker: DependencyBreaker): Pool {
  const guarded = new Map<string | symbol, unknown>();
  const proxy = new Proxy(pool, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function') return value;
      let wrapped = guarded.get(prop);
      if (wrapped === undefined) {
        const fn = value as (...args: unknown[]) => Promise<unknown>;
        wrapped = prop === 'query' || prop === 'execute' || prop === 'getConnection'
          ? (...args: unknown[]) => breaker.run(() => fn.apply(target, args).then(undefined, rethrowTyped))
          : fn.bind(target);
        guarded.set(prop, wrapped);
      }
      return wrapped;
    },
  });
  rawPools.set(proxy, { raw: pool, breaker });
  return proxy;
}

function rethrowTyped(err: unknown): never {
  throw mysqlFailure(err);
}

/** The typed failure a MySQL error stands for (DependencyUnavailable when MySQL is down), or the error itself. */
export function mysqlFailure(err: unknown): unknown {
  if (err instanceof DependencyUnavailable || !isMysqlUnavailable(err)) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new DependencyUnavailable('mysql', undefined, message, err);
}

/** Creates the URL's database when missing (utf8mb4); each test file works in a fresh one. */
export async function ensureDatabase(url: string, connectTimeoutMs = 5000): Promise<void> {
  await withServer(url, connectTimeoutMs, (conn, database) =>
    conn.query(`CREATE DATABASE IF NOT EXISTS \`${database}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`),
  );
}

/** Drops the URL's database (tests clean up after themselves). */
export async function dropDatabase(url: string, connectTimeoutMs = 5000): Promise<void> {
  await withServer(url, connectTimeoutMs, (conn, database) => conn.query(`DROP DATABASE IF EXISTS \`${database}\``));
}

async function withServer(url: string, connectTimeoutMs: number, fn: (conn: mysql.Connection, database: string) => Promise<unknown>): Promise<void> {
  const { database, ...server } = parseMysqlUrl(url);
  if (!database) throw new Error(`MySQL URL names no database: ${url.replace(/\/\/[^@/]*@/, '//')}`);
  const conn = await mysql.createConnection({ ...server, connectTimeout: connectTimeoutMs });
  try {
    await fn(conn, database);
  } finally {
    await conn.end().catch(() => conn.destroy());
  }
}

const ISOLATION_LEVELS = ['READ UNCOMMITTED', 'READ COMMITTED', 'REPEATABLE READ', 'SERIALIZABLE'] as const;
export type IsolationLevel = (typeof ISOLATION_LEVELS)[number];

export interface TransactionOptions {
  /** Runs in all when the transaction deadlocks (1213) or times out waiting for a lock (1205). Default 5. */
  readonly attempts?: number;
  /** First retry's backoff; doubles per retry, jittered ×0.5–1.5, capped at 1 s. Default 20 ms. */
  readonly backoffMs?: number;
  /** Isolation of this transaction only. Default: the server's (REPEATABLE READ). */
  readonly isolation?: IsolationLevel;
  /**
   * Longest one run may take, from asking the pool for a connection to COMMIT. Past it the
   * connection is cut (its statements fail, it leaves the pool) and the call fails with
   * MysqlTimeoutError, which counts as unavailable: without it a query on a connection to a server
   * that stopped answering (a network partition) waits forever. Default 30000 ms; 0: no limit.
   */
  readonly timeoutMs?: number;
  /** Told before each retry (logs, metrics, tests). */
  readonly onRetry?: (err: unknown, attempt: number) => void;
  /**
   * The call the transaction works for (kernel/caller.ts). Checked before BEGIN and before each
   * retry: for a caller that has gone no run starts (DEADLINE_EXCEEDED or CANCELLED). A run that
   * reaches the caller's deadline first is cut like one past `timeoutMs` (InnoDB rolls it back)
   * and answers DEADLINE_EXCEEDED: the caller's deadline is not MySQL being slow, so the breaker
   * does not count it. A cancellation lets the run in progress finish: it was started for the
   * caller, and cutting it would change nothing the caller could see.
   */
  readonly caller?: Caller;
}

/** What limits one run: `timeoutMs` or the caller's deadline, whichever comes first; 0 ms is no limit. */
export interface RunLimit {
  readonly ms: number;
  /** The caller's deadline, not the transaction's own timeout, sets the limit. */
  readonly byCaller: boolean;
}

/** The limit of a run starting at `now` (pure: tested in test/unit). */
export function runLimit(timeoutMs: number, deadline: number, now: number): RunLimit {
  const toDeadline = deadline - now;
  if (!Number.isFinite(toDeadline)) return { ms: Math.max(0, timeoutMs), byCaller: false };
  const untilDeadline = Math.max(1, Math.ceil(toDeadline));
  if (timeoutMs > 0 && timeoutMs <= untilDeadline) return { ms: timeoutMs, byCaller: false };
  return { ms: untilDeadline, byCaller: true };
}

/** A transaction run that took longer than its `timeoutMs`; its outcome is unknown only if it was committing. */
export class MysqlTimeoutError extends DependencyTimeout {
  readonly code = 'ETRANSACTIONTIMEOUT';
  override name = 'MysqlTimeoutError';
  constructor(readonly timeoutMs: number) {
    super('mysql', undefined, `transaction took longer than ${timeoutMs} ms; its connection was cut`);
  }
}

/**
 * Runs `fn` in a transaction on a connection of its own: BEGIN, fn, COMMIT; ROLLBACK when anything
 * throws. Never BEGIN through pool.query (the next query may take another connection, and the open
 * transaction goes back to the pool with it). A connection whose ROLLBACK failed is destroyed, not
 * released, so no transaction ever leaks into the pool. The whole transaction runs again after a
 * deadlock or a lock wait timeout (InnoDB rolled it back), so `fn` must be safe to run again: it
 * may only touch the world outside MySQL once the returned promise has resolved. With a `caller`,
 * no run starts for a caller that has gone and none outlives its deadline (TransactionOptions).
 */
export async function transaction<T>(pool: Pool, fn: (conn: PoolConnection) => Promise<T>, options: TransactionOptions = {}): Promise<T> {
  const attempts = Math.max(1, options.attempts ?? 5);
  const caller = options.caller ?? NO_CALLER;
  const guard = rawPools.get(pool);
  const run = guard ? () => guard.breaker.run(() => runOnce(guard.raw, fn, options).then(undefined, rethrowTyped)) : () => runOnce(pool, fn, options);
  for (let attempt = 1; ; attempt++) {
    stayForCaller(caller, 'a MySQL transaction');
    try {
      return await run();
    } catch (err) {
      if (attempt >= attempts || !isRetryableTransactionError(err)) throw mysqlFailure(err);
      options.onRetry?.(err, attempt);
      const backoff = Math.min(1000, (options.backoffMs ?? 20) * 2 ** (attempt - 1)) * (0.5 + Math.random());
      await pause(backoff, caller);
    }
  }
}

async function runOnce<T>(pool: Pool, fn: (conn: PoolConnection) => Promise<T>, options: TransactionOptions): Promise<T> {
  const caller = options.caller ?? NO_CALLER;
  const timeoutMs = options.timeoutMs ?? 30_000;
  const started = Date.now();
  const limit = runLimit(timeoutMs, caller.deadline, started);
  const overrun = () => (limit.byCaller ? new DomainError('DEADLINE_EXCEEDED', "a MySQL transaction: ran out of time (the call's deadline) and its connection was cut; a retry with the same ids is safe") : new MysqlTimeoutError(timeoutMs));
  const conn = await acquire(pool, limit.ms, overrun);
  let timedOut = false;
  const left = limit.ms - (Date.now() - started);
  const watchdog =
    limit.ms > 0
      ? setTimeout(() => {
          timedOut = true;
          cut(pool, conn);
        }, Math.max(1, left))
      : undefined;
  let reusable = true;
  try {
    if (options.isolation) {
      if (!ISOLATION_LEVELS.includes(options.isolation)) throw new TypeError(`unknown isolation level ${JSON.stringify(options.isolation)}`);
      await conn.query(`SET TRANSACTION ISOLATION LEVEL ${options.isolation}`);
    }
    await conn.query('BEGIN');
    const result = await fn(conn);
    await conn.query('COMMIT');
    return result;
  } catch (err) {
    try {
      await conn.query('ROLLBACK');
    } catch {
      reusable = false;
    }
    if (timedOut) throw overrun();
    throw err;
  } finally {
    clearTimeout(watchdog);
    if (reusable && !timedOut) conn.release();
    else conn.destroy();
  }
}

/** pool.getConnection with a deadline: mysql2 queues callers without one while every connection is busy. */
async function acquire(pool: Pool, timeoutMs: number, overrun: () => Error): Promise<PoolConnection> {
  const pending = pool.getConnection();
  if (timeoutMs <= 0) return pending;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(overrun()), timeoutMs);
  });
  try {
    return await Promise.race([pending, deadline]);
  } catch (err) {
    // A connection that arrives after the deadline goes straight back.
    pending.then((conn) => conn.release(), () => {});
    throw err;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Cuts a connection's socket. Unlike conn.destroy() (a graceful FIN, after which mysql2 no longer
 * answers the statement in flight), a destroyed socket makes mysql2 fail every queued statement
 * with PROTOCOL_CONNECTION_LOST and drop the connection from its pool. The server notices a closed
 * socket only when it next writes to it: a statement waiting for a row lock would keep its
 * transaction's locks until its lock wait timeout (50 s by default), so the server thread is killed
 * too, from another connection, and InnoDB rolls the transaction back at once. Best effort: when
 * MySQL cannot be reached the KILL fails and the server drops the thread when it notices.
 */
function cut(pool: Pool, conn: PoolConnection): void {
  const threadId = (conn as unknown as { threadId?: unknown }).threadId;
  const core = (conn as unknown as { connection?: { stream?: { destroy(): void } } }).connection;
  if (core?.stream) core.stream.destroy();
  else conn.destroy();
  if (typeof threadId === 'number') pool.query('KILL CONNECTION ?', [threadId]).catch(() => {});
}

const ER_LOCK_WAIT_TIMEOUT = 1205;
const ER_LOCK_DEADLOCK = 1213;

/** Deadlock or lock wait timeout: InnoDB gave up on the transaction, running it again is the cure. */
export function isRetryableTransactionError(err: unknown): boolean {
  const errno = (err as { errno?: unknown } | null)?.errno;
  return errno === ER_LOCK_DEADLOCK || errno === ER_LOCK_WAIT_TIMEOUT;
}

const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'EHOSTDOWN',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_QUERY_INTERRUPTED',
  'ER_OPTION_PREVENTS_STATEMENT', // read-only: a replica, or a primary mid-failover
  'ER_READ_ONLY_MODE',
  'ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION',
  'ETRANSACTIONTIMEOUT',
]);

const UNAVAILABLE_ERRNOS = new Set([
  1040, // ER_CON_COUNT_ERROR
  1053, // ER_SERVER_SHUTDOWN
  1290, // ER_OPTION_PREVENTS_STATEMENT
  1317, // ER_QUERY_INTERRUPTED
  1792, // ER_CANT_EXECUTE_IN_READ_ONLY_TRANSACTION
  1836, // ER_READ_ONLY_MODE
  1927, // ER_CONNECTION_KILLED (MariaDB)
  2002, // CR_CONNECTION_ERROR
  2003, // CR_CONN_HOST_ERROR
  2006, // CR_SERVER_GONE_ERROR
  2013, // CR_SERVER_LOST
]);

/**
 * Whether an error means MySQL cannot be reached or cannot take writes right now (refused, reset,
 * timed out, shutting down, read-only), as opposed to an answer about the statement itself. Such
 * failures are worth retrying later and count against the dependency (circuit breaker, the ledger
 * writer's back-off).
 */
export function isMysqlUnavailable(err: unknown): boolean {
  if (err instanceof DependencyUnavailable) return err.dependency === 'mysql';
  const e = err as { code?: unknown; errno?: unknown; fatal?: unknown; message?: unknown } | null;
  if (!e || typeof e !== 'object') return false;
  if (typeof e.code === 'string' && UNAVAILABLE_CODES.has(e.code)) return true;
  if (typeof e.errno === 'number' && UNAVAILABLE_ERRNOS.has(e.errno)) return true;
  if (e.fatal === true) return true;
  // mysql2 answers statements on a connection it has already closed with a plain Error.
  return typeof e.message === 'string' && /connection is in closed state|Pool is closed/i.test(e.message);
}
