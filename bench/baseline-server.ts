/**
 * The MySQL baseline: the same proto and gRPC stack as the inventory server (startApp, the same
 * transport adapter and the same request validation), but Reserve is the classic single-row
 * design: in one transaction per order, for each item (in SKU order)
 *
 *   UPDATE bench_stock SET n = n - ? WHERE sku = ? AND n >= ?     -- the stock check in the WHERE
 *   INSERT INTO bench_ledger (order_id, sku, qty) VALUES (?, ?, ?) -- UNIQUE(order_id, sku)
 *
 * on a mysql2 pool: take a connection, BEGIN, COMMIT (ROLLBACK on a short item), release it in
 * `finally`; deadlocks (1213) and lock wait timeouts (1205) retry the whole transaction; a
 * duplicate order id (1062) rolls back and answers as a replay. Out of stock is REJECTED with the
 * short SKU, like the real server.
 *
 * Env: the server's (ports, HOST, LOG_LEVEL, MAX_ITEM_QUANTITY…), WORKERS, and
 *   BENCH_MYSQL_URL  mysql://root@127.0.0.1:3316/<database> (created when missing)
 *   BENCH_STOCK      sku=units,sku=units  rows (re)set before serving
 *   BENCH_POOL       pool connections per process (default 32)
 */
import mysql, { Pool, ResultSetHeader } from 'mysql2/promise';
import { ReservationState, ReserveOutcome, ReserveResponse, ShortageReason } from '../gen/inventory/v1/inventory.pb';
import { startApp } from '../server/app';
import { validateReserve } from '../server/validation';
import { serve } from './serve';

const url = process.env.BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3316/bench_baseline';
const poolSize = Number(process.env.BENCH_POOL ?? '32');

/** Creates the database and tables, and sets the stock rows of BENCH_STOCK (ledger rows of those SKUs are deleted). */
export async function prepareBaseline(databaseUrl: string, stock: ReadonlyArray<readonly [string, number]>): Promise<void> {
  const parsed = new URL(databaseUrl);
  const database = parsed.pathname.replace(/^\//, '');
  if (!/^[A-Za-z0-9_]+$/.test(database)) throw new Error(`bad database name ${database}`);
  parsed.pathname = '/';
  const admin = await mysql.createConnection({ uri: parsed.toString() });
  try {
    await admin.query(`CREATE DATABASE IF NOT EXISTS \`${database}\``);
    await admin.query(`USE \`${database}\``);
    await admin.query(`CREATE TABLE IF NOT EXISTS bench_stock (
      sku VARCHAR(128) NOT NULL PRIMARY KEY,
      n BIGINT NOT NULL
    ) ENGINE=InnoDB`);
    await admin.query(`CREATE TABLE IF NOT EXISTS bench_ledger (
      id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
      order_id VARCHAR(128) NOT NULL,
      sku VARCHAR(128) NOT NULL,
      qty INT NOT NULL,
      created_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
      UNIQUE KEY order_sku (order_id, sku)
    ) ENGINE=InnoDB`);
    for (const [sku, units] of stock) {
      await admin.query('INSERT INTO bench_stock (sku, n) VALUES (?, ?) ON DUPLICATE KEY UPDATE n = VALUES(n)', [sku, units]);
      await admin.query('DELETE FROM bench_ledger WHERE sku = ?', [sku]);
    }
  } finally {
    await admin.end();
  }
}

export function parseStock(text: string | undefined): Array<[string, number]> {
  return (text ?? '')
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
    .map((pair) => {
      const [sku, units] = pair.split('=');
      return [sku, Number(units)];
    });
}

function reserveHandler(pool: Pool, limits: Parameters<typeof validateReserve>[1]) {
  return async (req: Parameters<typeof validateReserve>[0]): Promise<ReserveResponse> => {
    const input = validateReserve(req, limits);
    const items = [...input.items].sort((a, b) => (a.sku < b.sku ? -1 : a.sku > b.sku ? 1 : 0));
    for (let attempt = 1; ; attempt++) {
      const conn = await pool.getConnection();
      try {
        await conn.query('BEGIN');
        for (const item of items) {
          const [res] = await conn.execute<ResultSetHeader>('UPDATE bench_stock SET n = n - ? WHERE sku = ? AND n >= ?', [
            item.quantity,
            item.sku,
            item.quantity,
          ]);
          if (res.affectedRows !== 1) {
            await conn.query('ROLLBACK');
            return ReserveResponse.fromPartial({
              outcome: ReserveOutcome.RESERVE_OUTCOME_REJECTED,
              shortages: [{ skuId: item.sku, reason: ShortageReason.SHORTAGE_REASON_OUT_OF_STOCK, requested: item.quantity, available: 0 }],
            });
          }
        }
        for (const item of items) {
          await conn.execute('INSERT INTO bench_ledger (order_id, sku, qty) VALUES (?, ?, ?)', [input.orderId, item.sku, item.quantity]);
        }
        await conn.query('COMMIT');
        return reserved(input.orderId, items, false);
      } catch (err) {
        await conn.query('ROLLBACK').catch(() => undefined);
        const errno = (err as { errno?: number }).errno;
        if (errno === 1062) return reserved(input.orderId, items, true);
        if ((errno === 1213 || errno === 1205) && attempt < 5) continue;
        throw err;
      } finally {
        conn.release();
      }
    }
  };
}

function reserved(orderId: string, items: ReadonlyArray<{ sku: string; quantity: number }>, replayed: boolean): ReserveResponse {
  const now = Date.now();
  return ReserveResponse.fromPartial({
    outcome: ReserveOutcome.RESERVE_OUTCOME_RESERVED,
    replayed,
    reservation: {
      orderId,
      state: ReservationState.RESERVATION_STATE_RESERVED,
      items: items.map((i) => ({ skuId: i.sku, quantity: i.quantity, pieces: [{ partitionId: '', quantity: i.quantity }] })),
      createdAtMs: now,
      expiresAtMs: now + 1_800_000,
    },
  });
}

if (require.main === module) {
  serve(
    'baseline server',
    async (config) => {
      const pool = mysql.createPool({ uri: url, connectionLimit: poolSize, waitForConnections: true, queueLimit: 0 });
      await pool.query('SELECT 1');
      return startApp({
        config,
        inventory: { reserve: reserveHandler(pool, config) },
        closers: [() => pool.end()],
      });
    },
    () => prepareBaseline(url, parseStock(process.env.BENCH_STOCK)),
  );
}
