import assert from 'node:assert/strict';
import * as grpc from '@grpc/grpc-js';
import mysql, { Connection, RowDataPacket } from 'mysql2/promise';
import { CallOptions } from '../client';
import { Caller } from '../kernel/caller';
import { DomainError } from '../kernel/errors';
import { transaction } from '../store/mysql';
import { expectCode } from './helpers/grpc';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';

/**
 * Admin calls honour the client's deadline and cancellation all the way down: the MySQL
 * transactions (checked before BEGIN, cut at the deadline with their locks freed), the intent steps
 * (a cut leaves the intent to the recovery worker) and Reconcile's wait for the ledger. Each test
 * also checks what the server itself answered (its call counter): the client gives up at its own
 * deadline whatever the server does.
 */
describe('admin calls: deadlines and cancellation', function () {
  this.timeout(20_000);
  let inv: InventoryFixture;
  let holder: Connection;
  let seq = 0;
  const rid = (tag: string) => `${tag}-${++seq}`;

  before(async () => {
    inv = await startInventory('admin_deadlines', { INTENT_RECOVERY_MS: '600000', TOPUP_THRESHOLD: '0' });
    holder = await mysql.createConnection(inv.config.mysqlUrl);
  });
  after(async () => {
    await holder?.end();
    await inv.close();
  });

  const setStockCall = (sku: string, onHand: number, requestId: string, options: CallOptions = {}) =>
    inv.admin.setStock({ requestId, skuId: sku, onHand, reason: 'count' }, options);

  /** How many calls of an AdminService method the server answered with `code`. */
  async function answered(method: string, code: string): Promise<number> {
    const { values } = await inv.metrics.rpcCalls.get();
    return values.find((v) => v.labels.service === 'AdminService' && v.labels.method === method && v.labels.code === code)?.value ?? 0;
  }

  async function rowsOf(sql: string, values: unknown[]): Promise<RowDataPacket[]> {
    const [rows] = await inv.services.mysql.query<RowDataPacket[]>(sql, values);
    return rows;
  }

  const onHandOf = async (sku: string) => Number((await rowsOf('SELECT on_hand FROM skus WHERE sku_id = ?', [sku]))[0].on_hand);
  const claimed = async (requestId: string) => (await rowsOf('SELECT 1 FROM admin_requests WHERE request_id = ?', [requestId])).length > 0;

  /** Transactions of this test's database waiting for a row lock. */
  async function lockWaits(): Promise<number> {
    const [[row]] = await holder.query<RowDataPacket[]>(
      `SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id
       WHERE p.DB = DATABASE() AND t.trx_state = 'LOCK WAIT'`,
    );
    return Number(row.n);
  }

  /** Rejects with the DomainError kind the work ended with. */
  async function expectKind(work: Promise<unknown>, kind: string): Promise<DomainError> {
    const err = await work.then(
      () => assert.fail(`expected ${kind}, but it succeeded`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DomainError, String(err));
    assert.equal(err.kind, kind, err.message);
    return err;
  }

  it('a transaction starts nothing for a caller that has gone', async () => {
    let ran = 0;
    const work = async () => {
      ran++;
    };
    await expectKind(transaction(inv.services.mysql, work, { caller: { deadline: Infinity, cancelled: true } }), 'CANCELLED');
    await expectKind(transaction(inv.services.mysql, work, { caller: { deadline: Date.now() - 1, cancelled: false } }), 'DEADLINE_EXCEEDED');
    assert.equal(ran, 0);
    await transaction(inv.services.mysql, work, { caller: { deadline: Date.now() + 5000, cancelled: false } });
    assert.equal(ran, 1);
  });

  it('SetStock behind a row lock with a short deadline answers DEADLINE_EXCEEDED, frees its locks, changes nothing, and its retry goes through', async () => {
    const sku = 'dl-locked';
    await setStockCall(sku, 10, rid('set'));
    await holder.query('BEGIN');
    await holder.query('SELECT * FROM skus WHERE sku_id = ? FOR UPDATE', [sku]);
    const requestId = rid('set');
    try {
      await expectCode(setStockCall(sku, 50, requestId, { timeoutMs: 500 }), grpc.status.DEADLINE_EXCEEDED);
      // The server's own answer: DEADLINE_EXCEEDED, not UNAVAILABLE (the caller's deadline is not MySQL failing).
      await waitFor(async () => (await answered('setStock', 'DEADLINE_EXCEEDED')) === 1, 5000, 'the server to answer DEADLINE_EXCEEDED');
      // The lock is still held, yet the cut transaction waits no more (its server thread was
      // killed), instead of holding its claim's lock until the lock wait timeout (50 s).
      await waitFor(async () => (await lockWaits()) === 0, 5000, 'the cut transaction gone from MySQL');
    } finally {
      await holder.query('ROLLBACK');
    }
    assert.equal(await onHandOf(sku), 10);
    assert.equal(await claimed(requestId), false);

    const retry = await setStockCall(sku, 50, requestId);
    assert.deepEqual([retry.change!.stock!.onHand, retry.change!.replayed], [50, false]);
  });

  it('a call cut after its intent was recorded leaves the intent open, and the recovery worker finishes it', async () => {
    const sku = 'dl-intent';
    await inv.services.operator.setStock(rid('set'), sku, 100, 'count');
    const requestId = rid('pre');
    // The client goes right after the partitions were made in Redis and etcd: the step after
    // (their MySQL state and the answer) is not started.
    const caller = { deadline: Infinity, cancelled: false };
    const creator = inv.services.partitions;
    const materialize = creator.materialize;
    creator.materialize = async (...args) => {
      await materialize.apply(creator, args);
      caller.cancelled = true;
    };
    try {
      const cut = await expectKind(inv.services.operator.preallocate(requestId, sku, 40, 2, caller), 'CANCELLED');
      assert.match(cut.message, /recovery worker/);
    } finally {
      creator.materialize = materialize;
    }
    const [intent] = await rowsOf('SELECT state FROM intents WHERE intent_id = ?', [requestId]);
    assert.equal(intent.state, 'open');
    assert.deepEqual((await rowsOf('SELECT state FROM partitions WHERE sku_id = ?', [sku])).map((r) => r.state), ['creating', 'creating']);

    assert.equal(await inv.services.operator.recoverIntents(0), 1);
    const replay = await inv.services.operator.preallocate(requestId, sku, 40, 2);
    assert.equal(replay.replayed, true);
    assert.deepEqual(replay.partitions.map((p) => [p.state, p.avail]), [['live', 20], ['live', 20]]);
    assert.equal(replay.stock.pool, 40);
  });

  describe('Reconcile while the ledger is behind (the ledger writer stopped)', () => {
    const sku = 'dl-behind';
    const reconcileCall = (requestId: string, options: CallOptions) => inv.admin.reconcile({ skuIds: [sku], repair: true, requestId }, options);

    before(async () => {
      await inv.services.operator.setStock(rid('set'), sku, 100, 'count');
      await inv.services.operator.preallocate(rid('pre'), sku, 100, 1);
      await waitFor(() => inv.services.cache.partitions(sku).length === 1, 5000, 'the partition in the cache');
      await inv.services.ledger.stop();
      // Takes whose ledger records stay in Redis: MySQL lacks the partition's rows up to its seq.
      await inv.reserve('dl-behind-1', [[sku, 3]]);
    });

    it('answers DEADLINE_EXCEEDED at the client’s deadline instead of waiting 30 s for the ledger, and claims nothing', async () => {
      const requestId = rid('rec');
      await expectCode(reconcileCall(requestId, { timeoutMs: 500 }), grpc.status.DEADLINE_EXCEEDED);
      await waitFor(async () => (await answered('reconcile', 'DEADLINE_EXCEEDED')) === 1, 5000, 'the server to answer DEADLINE_EXCEEDED');
      assert.equal(await claimed(requestId), false);

      const caller: Caller = { deadline: Date.now() + 300, cancelled: false };
      const cut = await expectKind(inv.services.reconciler.reconcile([sku], false, '', caller), 'DEADLINE_EXCEEDED');
      assert.match(cut.message, /waiting for MySQL/);
    });

    it('a cancelled Reconcile stops waiting, answers CANCELLED and claims nothing', async () => {
      const requestId = rid('rec');
      const cancel = new AbortController();
      setTimeout(() => cancel.abort(), 300);
      await expectCode(reconcileCall(requestId, { signal: cancel.signal }), grpc.status.CANCELLED);
      await waitFor(async () => (await answered('reconcile', 'CANCELLED')) === 1, 5000, 'the server to answer CANCELLED');
      assert.equal(await claimed(requestId), false);

      const caller = { deadline: Infinity, cancelled: false };
      setTimeout(() => (caller.cancelled = true), 300);
      await expectKind(inv.services.reconciler.reconcile([sku], true, rid('rec'), caller), 'CANCELLED');
    });
  });
});
