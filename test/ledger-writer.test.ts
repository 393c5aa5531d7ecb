import assert from 'node:assert/strict';
import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Pool, RowDataPacket } from 'mysql2/promise';
import { CreatedPartition } from '../allocator/partitions';
import { RedisShards } from '../allocator/shards';
import { ReleaseReason, ReservationState, ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { createLogger } from '../kernel/logger';
import { LedgerWriter, LedgerWriterOptions } from '../ledger/writer';
import { createMysqlPool } from '../store/mysql';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { TcpProxy } from './helpers/tcp-proxy';

const logger = createLogger((process.env.TEST_LOG_LEVEL as 'silent' | undefined) ?? 'silent');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Runs `fn` over `items`, at most `limit` at a time. */
async function inParallel<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, items.length) }, async () => {
      while (next < items.length) await fn(items[next++]);
    }),
  );
}

const range = (n: number, from = 0) => Array.from({ length: n }, (_, i) => from + i);

describe('ledger writer', function () {
  this.timeout(60_000);
  let inv: InventoryFixture;
  let pool: Pool;
  const writers: LedgerWriter[] = [];
  const children: ChildProcess[] = [];
  /** Orders per SKU, to recompute reserved and committed from Redis. */
  const orders = new Map<string, Set<string>>();

  before(async () => {
    // No top-ups (they would carve base into new partitions behind the test's back), fast expiry sweeps.
    inv = await startInventory('ledger', { TOPUP_THRESHOLD: '0', SWEEP_INTERVAL_MS: '100' });
    // The server's own writer would compete with the ones under test.
    await inv.services.ledger.stop();
    pool = createMysqlPool(inv.config.mysqlUrl);
  });
  afterEach(async () => {
    for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(writers.splice(0).map((w) => w.stop()));
  });
  after(async () => {
    await pool?.end();
    await inv?.close();
  });

  function writer(options: LedgerWriterOptions = {}, on: Pool = pool): LedgerWriter {
    const w = new LedgerWriter(inv.services.shards, on, logger, { blockMs: 100, backoffMinMs: 50, backoffMaxMs: 400, ...options });
    writers.push(w);
    return w;
  }

  /** Carves a SKU in Redis and gives it the MySQL row that Preallocate would have written. */
  async function seed(sku: string, units: number, partitions: number): Promise<CreatedPartition[]> {
    const created = await inv.stock(sku, units, partitions);
    await pool.query('INSERT INTO skus (sku_id, on_hand, pool) VALUES (?, ?, ?)', [sku, units, units]);
    orders.set(sku, new Set());
    return created;
  }

  async function reserve(orderId: string, sku: string, qty: number, ttlSeconds = 0): Promise<void> {
    const res = await inv.reserve(orderId, [[sku, qty]], { ttlSeconds });
    assert.equal(res.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED, `${orderId}: ${JSON.stringify(res)}`);
    orders.get(sku)!.add(orderId);
  }

  /** The same Lua path without the gRPC round trip, for the tests that need thousands of records. */
  async function reserveDirect(orderId: string, sku: string, qty: number): Promise<void> {
    const res = await inv.services.reservations.reserve({ orderId, items: [{ sku, quantity: qty }], userId: '', ttlSeconds: 0 });
    assert.equal(res.outcome, 'RESERVED', orderId);
    orders.get(sku)!.add(orderId);
  }

  /** Records ever appended to the shard streams (XDEL does not lower it). */
  async function recordsAdded(): Promise<number> {
    const { shards } = inv.services;
    let n = 0;
    for (let s = 0; s < shards.keys.shardCount; s++) {
      const info = (await shards.client(s).call('XINFO', 'STREAM', shards.keys.ledger(s))) as unknown[];
      n += Number(info[info.indexOf('entries-added') + 1]);
    }
    return n;
  }

  async function count(sql: string): Promise<number> {
    const [rows] = await pool.query<RowDataPacket[]>(sql);
    return Number(rows[0].n);
  }

  /** Every record is in MySQL exactly once: a ledger row or a dead letter. */
  async function assertOneRowPerRecord(): Promise<number> {
    const records = await recordsAdded();
    const rows = await count("SELECT COUNT(*) AS n FROM ledger WHERE source LIKE 'redis:%'");
    const dead = await count('SELECT COUNT(*) AS n FROM ledger_dead_letters');
    assert.equal(rows + dead, records, `ledger rows ${rows} + dead letters ${dead} vs stream records ${records}`);
    return records;
  }

  /** MySQL's counters of a SKU equal what Redis holds: live pool, and the open quantities of its orders. */
  async function assertMatchesRedis(sku: string, units: number, partitions: readonly CreatedPartition[]): Promise<void> {
    let reserved = 0;
    let committed = 0;
    await inParallel([...orders.get(sku)!], 32, async (orderId) => {
      const { reservation } = await inv.getReservation(orderId);
      for (const item of reservation!.items) {
        if (item.skuId !== sku) continue;
        const open = item.quantity - item.releasedQuantity;
        if (reservation!.state === ReservationState.RESERVATION_STATE_RESERVED) reserved += open;
        if (reservation!.state === ReservationState.RESERVATION_STATE_CONFIRMED) committed += open;
      }
    });
    const [[row]] = await pool.query<RowDataPacket[]>('SELECT on_hand, base, pool, reserved, committed FROM skus WHERE sku_id = ?', [sku]);
    const pooled = await inv.availOf(partitions);
    assert.deepEqual(
      { on_hand: row.on_hand, pool: row.pool, reserved: row.reserved, committed: row.committed },
      { on_hand: units, pool: pooled, reserved, committed },
      sku,
    );
    assert.equal(row.base, units - pooled - reserved - committed, `${sku}: on_hand = base + pool + reserved + committed`);
    assert.ok(row.base >= 0, `${sku}: base ${row.base}`);
  }

  it('applies reserves, confirms, releases and expiries exactly once, counters matching Redis', async () => {
    const a = await seed('lw-a', 300, 4);
    const b = await seed('lw-b', 5, 1);
    const w = writer({ batchSize: 50 });
    const batches: number[] = [];
    w.on('applied', (batch) => batches.push(batch.applied));
    await w.start();

    await inParallel(range(40), 16, (i) => reserve(`a-${i}`, 'lw-a', 1 + (i % 3)));
    await inParallel(range(15), 8, (i) => inv.confirm(`a-${i}`));
    await inParallel(range(10, 15), 8, (i) => inv.release(`a-${i}`, ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT));
    await inParallel(range(5), 5, (i) => inv.release(`a-${i}`, ReleaseReason.RELEASE_REASON_REFUND, [['lw-a', 1]]));
    await inParallel(range(3, 25), 8, (i) => inv.release(`a-${i}`, ReleaseReason.RELEASE_REASON_RISK_CONTROL));
    await inParallel(range(6), 6, (i) => reserve(`e-${i}`, 'lw-a', 2, 1));
    // Empties lw-b's only partition; the release then goes to base (or back to the pool if it raced the retirement).
    await reserve('b-0', 'lw-b', 5);
    await inv.release('b-0', ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT);

    await waitFor(
      async () => {
        const states = await Promise.all(range(6).map(async (i) => (await inv.getReservation(`e-${i}`)).reservation!.state));
        return states.every((s) => s === ReservationState.RESERVATION_STATE_EXPIRED);
      },
      5000,
      'the 1 s holds to expire',
    );
    await w.drain(10_000);

    const records = await assertOneRowPerRecord();
    assert.ok(records >= 40 + 15 + 6 + 6 + 2, `${records} records`);
    // drain() sees the XDEL; the writer counts once it has the XACK's reply.
    await waitFor(() => w.stats().applied === records, 1000, `applied ${w.stats().applied} of ${records}`);
    assert.equal(w.stats().duplicates, 0);
    assert.ok(batches.length > 0);
    await assertMatchesRedis('lw-a', 300, a);
    await assertMatchesRedis('lw-b', 5, b);
    const [kinds] = await pool.query<RowDataPacket[]>('SELECT kind, COUNT(*) AS n FROM ledger GROUP BY kind ORDER BY kind');
    assert.deepEqual(kinds.map((k) => k.kind), ['confirm', 'release', 'take']);
    const [[take]] = await pool.query<RowDataPacket[]>("SELECT * FROM ledger WHERE event_id LIKE 'take:a-0:%'");
    assert.equal(take.order_id, 'a-0');
    assert.match(take.source, /^redis:s\d+:\d+-\d+$/);
    assert.ok(Math.abs(take.created_at.getTime() - Date.now()) < 60_000, 'created_at is the record time, in UTC');
  });

  it('survives SIGKILL mid-batch and between COMMIT and XACK: every record applied exactly once', async function () {
    this.timeout(45_000);
    const units = 4000;
    const parts = await seed('lw-k', units, 8);
    // A few thousand records wait in the streams (no writer runs yet).
    await inParallel(range(1500), 64, (i) => reserveDirect(`k-${i}`, 'lw-k', 1));
    await inParallel(range(600), 64, (i) => inv.services.reservations.confirm(`k-${i}`));
    const total = await recordsAdded();
    const before = await count("SELECT COUNT(*) AS n FROM ledger WHERE source LIKE 'redis:%'");

    // 1. Dies with its third batch committed but not acknowledged.
    const first = spawnChild({ LEDGER_CONSUMER: 'child-a', LEDGER_STALL_AFTER: '3' });
    await first.next((e) => e.event === 'stalled');
    await first.kill();
    const afterFirst = await count("SELECT COUNT(*) AS n FROM ledger WHERE source LIKE 'redis:%'");
    assert.ok(afterFirst > before && afterFirst < total, `part way: ${afterFirst} of ${total}`);

    // 2. The same consumer restarts: its pending records come first, and MySQL already has them.
    const second = spawnChild({ LEDGER_CONSUMER: 'child-a' });
    const firstBatch = await second.next((e) => e.event === 'batch');
    assert.ok(Number(firstBatch.duplicates) > 0, `the committed, unacknowledged batch came back: ${JSON.stringify(firstBatch)}`);
    assert.equal(firstBatch.applied, 0);
    // ...and dies again at a random point while applying.
    await sleep(Math.random() * 30);
    await second.kill();

    // 3. Another writer takes over what child-a left pending, and the rest.
    const heir = writer({ consumer: 'heir', claimIdleMs: 300, batchSize: 100 });
    await heir.start();
    await heir.drain(15_000);
    await assertOneRowPerRecord();
    const [[row]] = await pool.query<RowDataPacket[]>('SELECT on_hand, base, pool, reserved, committed FROM skus WHERE sku_id = ?', ['lw-k']);
    assert.deepEqual({ ...row }, { on_hand: units, base: 0, pool: units - 1500, reserved: 1500 - 600, committed: 600 });
    assert.equal(await inv.availOf(parts), units - 1500);
  });

  it('keeps records in Redis while MySQL is down, and drains them when it is back', async () => {
    const units = 500;
    const parts = await seed('lw-m', units, 4);
    const target = new URL(inv.config.mysqlUrl);
    const proxy = await TcpProxy.start(target.host);
    const proxied = new URL(inv.config.mysqlUrl);
    proxied.host = proxy.address;
    const viaProxy = createMysqlPool(proxied.toString(), { connectTimeoutMs: 1000 });
    try {
      const w = writer({ transactionTimeoutMs: 1000 }, viaProxy);
      const events: string[] = [];
      w.on('mysql-down', () => events.push('down'));
      w.on('mysql-up', () => events.push('up'));
      await w.start();
      await inParallel(range(10), 10, (i) => reserve(`m-${i}`, 'lw-m', 1));
      await w.drain(5000);

      for (const mode of ['reset', 'blackhole'] as const) {
        const rows = await count("SELECT COUNT(*) AS n FROM ledger WHERE source LIKE 'redis:%'");
        proxy.pause(mode);
        // Reservations go on: Redis is the gate; their records wait.
        const from = mode === 'reset' ? 100 : 200;
        await inParallel(range(30, from), 10, (i) => reserve(`m-${i}`, 'lw-m', 1));
        await inParallel(range(10, from), 10, (i) => inv.confirm(`m-${i}`));
        await waitFor(() => !w.stats().mysqlAvailable, 5000, `the writer to notice MySQL is down (${mode})`);
        await sleep(300);
        const lag = await w.lag();
        assert.ok(lag.waiting >= 40, `${mode}: ${lag.waiting} waiting`);
        assert.ok(lag.oldestAgeMs > 0);
        assert.equal(await count("SELECT COUNT(*) AS n FROM ledger WHERE source LIKE 'redis:%'"), rows, 'nothing applied');
        proxy.resume();
        await w.drain(10_000);
        assert.ok(w.stats().mysqlAvailable);
      }
      assert.deepEqual(events, ['down', 'up', 'down', 'up'], 'each outage reported once, not once per retry');
      assert.ok(w.stats().failures >= 2);
      await assertOneRowPerRecord();
      await assertMatchesRedis('lw-m', units, parts);
    } finally {
      proxy.resume();
      await Promise.all(writers.splice(0).map((w) => w.stop()));
      await viaProxy.end();
      await proxy.close();
    }
  });

  it('rides out an outage of its Redis node, then drains', async () => {
    const parts = await seed('lw-r', 100, 2);
    const proxy = await TcpProxy.start(inv.config.redisNodes[0]);
    // The writer reaches Redis through the proxy; the server keeps writing records directly.
    const shards = new RedisShards({ nodes: [proxy.address], prefix: inv.config.redisPrefix, shardCount: inv.config.redisShards, commandTimeoutMs: 1000 });
    for (const client of shards.clients) client.on('error', () => {}); // the cut is the point
    const w = new LedgerWriter(shards, pool, logger, { blockMs: 100, backoffMinMs: 50, backoffMaxMs: 400 });
    const events: string[] = [];
    w.on('redis-down', () => events.push('down'));
    w.on('redis-up', () => events.push('up'));
    try {
      await shards.connect();
      await w.start();
      await inParallel(range(5), 5, (i) => reserve(`r-${i}`, 'lw-r', 1));
      await w.drain(5000);
      proxy.pause('reset');
      await inParallel(range(10, 5), 5, (i) => reserve(`r-${i}`, 'lw-r', 1));
      await waitFor(() => events.includes('down'), 5000, 'the writer to notice its node is down');
      assert.equal(w.stats().redisNodesDown, 1);
      proxy.resume();
      await w.drain(10_000);
      await waitFor(() => events.includes('up'), 2000, 'the writer to report its node back');
      assert.deepEqual(events, ['down', 'up'], 'reported once, not once per retry');
      await assertOneRowPerRecord();
      await assertMatchesRedis('lw-r', 100, parts);
    } finally {
      proxy.resume();
      await w.stop();
      await shards.close();
      await proxy.close();
    }
  });

  it('shares the work between writers of one group, each record applied once', async () => {
    const units = 2000;
    const parts = await seed('lw-t', units, 8);
    await inParallel(range(600), 64, (i) => reserveDirect(`t-${i}`, 'lw-t', 1));
    const w1 = writer({ consumer: 'w1', batchSize: 5 });
    const w2 = writer({ consumer: 'w2', batchSize: 5 });
    await Promise.all([w1.start(), w2.start()]);
    await w1.drain(10_000);
    await waitFor(() => w1.stats().applied + w2.stats().applied === 600, 1000, 'both writers to count their last batch');
    const [s1, s2] = [w1.stats(), w2.stats()];
    assert.ok(s1.applied > 0 && s2.applied > 0, `both worked: ${s1.applied} + ${s2.applied}`);
    assert.equal(s1.applied + s2.applied, 600);
    assert.equal(s1.duplicates + s2.duplicates, 0, 'no record went to both');
    await assertOneRowPerRecord();
    await assertMatchesRedis('lw-t', units, parts);
  });

  it('takes over records a dead consumer read but never acknowledged', async () => {
    const parts = await seed('lw-g', 100, 2);
    await inParallel(range(50), 10, (i) => reserve(`g-${i}`, 'lw-g', 1));
    // A consumer reads everything, then dies without acknowledging.
    const { shards } = inv.services;
    let read = 0;
    for (let s = 0; s < shards.keys.shardCount; s++) {
      const reply = (await shards.client(s).call('XREADGROUP', 'GROUP', 'ledger', 'ghost', 'COUNT', 1000, 'STREAMS', shards.keys.ledger(s), '>')) as
        | Array<[string, unknown[]]>
        | null;
      read += reply?.[0]?.[1].length ?? 0;
    }
    assert.equal(read, 50);
    const heir = writer({ consumer: 'heir-2', claimIdleMs: 200 });
    await heir.start();
    await heir.drain(5000);
    assert.equal(heir.stats().claimed, 50);
    await assertOneRowPerRecord();
    await assertMatchesRedis('lw-g', 100, parts);
  });

  it('repairs records left pending with no consumer', async () => {
    const parts = await seed('lw-o', 50, 1);
    await inParallel(range(20), 10, (i) => reserve(`o-${i}`, 'lw-o', 1));
    const { shards } = inv.services;
    for (let s = 0; s < shards.keys.shardCount; s++) {
      const stream = shards.keys.ledger(s);
      await shards.client(s).call('XREADGROUP', 'GROUP', 'ledger', 'lost', 'COUNT', 1000, 'STREAMS', stream, '>');
      await shards.client(s).xgroup('DELCONSUMER', stream, 'ledger', 'lost');
    }
    const w = writer({ claimIdleMs: 100 });
    await w.start();
    await sleep(300);
    assert.equal((await w.lag()).waiting, 20, 'delivered, unowned: neither read nor claimed again');
    assert.equal(await w.repairOrphans(), 20);
    await w.drain(2000);
    assert.equal(await w.repairOrphans(), 0);
    await assertOneRowPerRecord();
    await assertMatchesRedis('lw-o', 50, parts);
  });

  it('moves bad records to ledger_dead_letters, acknowledges them and goes on', async () => {
    const { shards } = inv.services;
    const stream = shards.keys.ledger(0);
    const client = shards.client(0);
    await client.xadd(stream, '*', 'id', 'bad:no-qty', 'kind', 'take', 'sku', 'lw-d', 'from', 'pool', 'to', 'reserved');
    await client.xadd(stream, '*', 'id', 'bad:outside', 'kind', 'adjust', 'sku', 'lw-d', 'qty', '1', 'from', 'outside', 'to', 'base');
    await client.xadd(stream, '*', 'id', 'bad:sku', 'kind', 'take', 'sku', 'é', 'qty', '1', 'from', 'pool', 'to', 'reserved');
    await client.xadd(stream, '*', 'm', '{"id":"bad:json","kind":"take"');
    await client.xadd(stream, '*', 'm', JSON.stringify({ id: 'bad:qty-type', kind: 'take', sku: 'lw-d', qty: [1], from: 'pool', to: 'reserved' }));
    // Both forms of a good record: spread over stream fields (by hand, older releases) and one JSON field (the scripts).
    await client.xadd(stream, '*', 'id', 'good:1', 'kind', 'take', 'sku', 'lw-d', 'qty', '2', 'from', 'pool', 'to', 'reserved', 'seq', '9', 'future', 'x');
    await client.xadd(stream, '*', 'm', JSON.stringify({ id: 'good:2', kind: 'take', sku: 'lw-d', qty: '3', from: 'pool', to: 'reserved', seq: '10' }));
    const w = writer();
    const letters: string[] = [];
    w.on('dead-letter', (l) => letters.push(`${l.fields.id ?? l.fields.m}: ${l.problem}`));
    await w.start();
    await w.drain(5000);
    assert.deepEqual(letters, [
      'bad:no-qty: field qty is missing',
      'bad:outside: from "outside" is not one of base, pool, reserved, committed',
      'bad:sku: sku is not printable ASCII',
      '{"id":"bad:json","kind":"take": field m is not JSON',
      'bad:qty-type: qty "[1]" is not a positive integer',
    ]);
    assert.equal(w.stats().deadLettered, 5);
    const [dead] = await pool.query<RowDataPacket[]>('SELECT stream, stream_id, fields, problem FROM ledger_dead_letters ORDER BY id');
    assert.deepEqual(
      dead.map((d) => [d.stream, JSON.parse(d.fields).id ?? JSON.parse(d.fields).m]),
      [[stream, 'bad:no-qty'], [stream, 'bad:outside'], [stream, 'bad:sku'], [stream, '{"id":"bad:json","kind":"take"'], [stream, 'bad:qty-type']],
    );
    const [[row]] = await pool.query<RowDataPacket[]>("SELECT pool, reserved FROM skus WHERE sku_id = 'lw-d'");
    assert.deepEqual({ ...row }, { pool: -5, reserved: 5 }, 'the good records after them were applied');
    await assertOneRowPerRecord();
  });

  /** A ledger-child process on this test's namespace; `next` waits for one of its JSON lines. */
  function spawnChild(env: Record<string, string>) {
    const child = spawn(process.execPath, [path.join(__dirname, 'helpers', 'ledger-child.js')], {
      env: {
        ...process.env,
        REDIS_NODES: inv.config.redisNodes.join(','),
        REDIS_PREFIX: inv.config.redisPrefix,
        REDIS_SHARDS: String(inv.config.redisShards),
        MYSQL_URL: inv.config.mysqlUrl,
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
        LEDGER_BATCH: '20',
        ...env,
      },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(child);
    const lines: Array<Record<string, unknown>> = [];
    const waiters = new Set<() => void>();
    createInterface({ input: child.stdout! }).on('line', (line) => {
      lines.push(JSON.parse(line) as Record<string, unknown>);
      for (const wake of waiters) wake();
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    void exited.then(() => {
      for (const wake of waiters) wake();
    });
    return {
      async next(match: (e: Record<string, unknown>) => boolean, timeoutMs = 15_000): Promise<Record<string, unknown>> {
        const until = Date.now() + timeoutMs;
        for (;;) {
          const found = lines.find(match);
          if (found) return found;
          if (child.exitCode !== null) throw new Error(`ledger child exited (${child.exitCode}) before the expected line`);
          if (Date.now() > until) throw new Error('ledger child: timed out waiting for a line');
          await new Promise<void>((resolve) => {
            const wake = () => {
              waiters.delete(wake);
              clearTimeout(timer);
              resolve();
            };
            const timer = setTimeout(wake, 100);
            waiters.add(wake);
          });
        }
      },
      async kill(): Promise<void> {
        child.kill('SIGKILL');
        await exited;
      },
    };
  }
});
