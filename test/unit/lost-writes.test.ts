import assert from 'node:assert/strict';
import { findLostPartitions, planRestore } from '../../admin/lost-writes-plan';
import { fingerprint, itemsFingerprint } from '../../allocator/reserve';
import type { OrderLedgerRow } from '../../store/lost-writes';
import type { PartitionRow } from '../../store/partitions';
import { judge } from '../../server/health';

const row = (partitionId: string, state: PartitionRow['state'] = 'live'): PartitionRow => ({
  partitionId,
  sku: 's',
  node: 'n:1',
  shard: 3,
  capacity: 100,
  state,
  epoch: 7,
});

describe('lost writes: which partitions Redis forgot changes of', () => {
  it('reports a partition whose Redis number is behind MySQL’s, never one ahead or level', () => {
    const rows = [row('behind'), row('level'), row('ahead'), row('fresh')];
    const redis = new Map([
      ['behind', { seq: 5, state: 'live' }],
      ['level', { seq: 9, state: 'live' }],
      ['ahead', { seq: 12, state: 'live' }],
      ['fresh', { seq: 0, state: 'live' }],
    ]);
    const mysql = new Map([['behind', 9], ['level', 9], ['ahead', 9]]);
    const lost = findLostPartitions(rows, redis, mysql);
    assert.deepEqual(lost.map((p) => [p.row.partitionId, p.redisSeq, p.mysqlSeq, p.missing, p.suspended]), [['behind', 5, 9, false, false]]);
  });

  it('reports a live partition whose hash is gone, not a retired one, and a suspect one until restored', () => {
    const rows = [row('gone'), row('retired-gone', 'exhausted'), row('stopped')];
    const redis = new Map([['gone', undefined], ['retired-gone', undefined], ['stopped', { seq: 9, state: 'suspect' }]]);
    const lost = findLostPartitions(rows, redis, new Map([['stopped', 9]]));
    assert.deepEqual(lost.map((p) => [p.row.partitionId, p.missing, p.suspended]), [['gone', true, false], ['stopped', false, true]]);
  });
});

describe('lost writes: what Redis must hold again', () => {
  const at = 1_700_000_000_000;
  const r = (eventId: string, kind: string, orderId: string, qty: number, from: string, to: string, partitionId: string | null, reason: string | null = null): OrderLedgerRow => ({
    eventId, kind, orderId, sku: 's', qty, from, to, partitionId, partitionSeq: partitionId ? 1 : null, reason, at,
  });
  const partitions = new Map([['p1', row('p1')], ['p2', { ...row('p2'), shard: 4, epoch: 2 }]]);

  it('gives the partition its takes, releases and release guards, and each order its state and pieces', () => {
    const rows = [
      r('take:o1:p1', 'take', 'o1', 2, 'pool', 'reserved', 'p1'),
      r('take:o1:p2', 'take', 'o1', 1, 'pool', 'reserved', 'p2'),
      r('take:o2:p1', 'take', 'o2', 1, 'pool', 'reserved', 'p1'),
      r('confirm:o2:s', 'confirm', 'o2', 1, 'reserved', 'committed', null),
      r('take:o3:p1', 'take', 'o3', 3, 'pool', 'reserved', 'p1'),
      r('release:o3:p1:c1', 'release', 'o3', 3, 'reserved', 'pool', 'p1', 'CANCEL_BEFORE_PAYMENT'),
    ];
    const plan = planRestore('p1', rows, partitions, 60_000);
    assert.deepEqual(plan.takes, { 't:o1': '2', 't:o2': '1', 't:o3': '3', 'r:o3': '3', 'x:o3:c1': '3:pool' });
    const byId = new Map(plan.orders.map((o) => [o.orderId, o]));
    assert.equal(byId.get('o1')?.state, 'RESERVED');
    assert.equal(byId.get('o1')?.expires, at + 60_000);
    assert.deepEqual(byId.get('o1')?.doc.items[0].pieces, [{ p: 'p1', s: 3, e: 7, q: 2, r: 0 }, { p: 'p2', s: 4, e: 2, q: 1, r: 0 }]);
    assert.equal(byId.get('o2')?.state, 'CONFIRMED');
    assert.equal(byId.get('o2')?.expires, 0);
    assert.equal(byId.get('o3')?.state, 'RELEASED');
    assert.deepEqual(byId.get('o3')?.doc.releases.c1?.items, { s: 3 });
  });

  it('matches a replay of a restored order on its items, as the full fingerprint ends', () => {
    const plan = planRestore('p1', [r('take:o1:p1', 'take', 'o1', 2, 'pool', 'reserved', 'p1')], partitions, 1000);
    const items = [{ sku: 's', quantity: 2 }];
    assert.equal(plan.orders[0].items, itemsFingerprint(items));
    assert.ok(fingerprint(items, 'u', 30).endsWith(plan.orders[0].items));
    assert.notEqual(plan.orders[0].items, itemsFingerprint([{ sku: 's', quantity: 3 }]));
  });

  it('an expired hold is restored EXPIRED, an order with no take is not restored', () => {
    const rows = [
      r('take:o4:p1', 'take', 'o4', 1, 'pool', 'reserved', 'p1'),
      r('release:o4:p1:#expire', 'release', 'o4', 1, 'reserved', 'pool', 'p1', 'EXPIRE'),
      r('confirm:o5:s', 'confirm', 'o5', 1, 'reserved', 'committed', null),
    ];
    const plan = planRestore('p1', rows, partitions, 1000);
    assert.deepEqual(plan.orders.map((o) => [o.orderId, o.state]), [['o4', 'EXPIRED']]);
  });
});

describe('health: a node that lost writes', () => {
  it('is a degraded line, the services still serving', () => {
    const report = judge({ 'redis a:1': { up: true, since: 0 }, mysql: { up: true, since: 0 } }, ['redis a:1 came back having lost acknowledged writes']);
    assert.equal(report.inventory, 'SERVING');
    assert.deepEqual(report.degraded, ['redis a:1 came back having lost acknowledged writes']);
  });
});
