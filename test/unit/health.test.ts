import assert from 'node:assert/strict';
import { judge } from '../../server/health';

describe('health: what each service can do', () => {
  it('judges each service by what it needs', () => {
    const at = (up: boolean) => ({ up, since: 0 });
    const twoNodes = (a: boolean, b: boolean, mysqlUp = true, etcdUp = true) =>
      judge({ 'redis a:1': at(a), 'redis b:2': at(b), mysql: at(mysqlUp), etcd: at(etcdUp) });
    assert.deepEqual([twoNodes(true, false).inventory, twoNodes(true, false).admin], ['SERVING', 'SERVING']);
    assert.match(twoNodes(true, false).degraded[0], /b:2 down/);
    assert.deepEqual([twoNodes(false, false).inventory, twoNodes(false, false).admin], ['NOT_SERVING', 'NOT_SERVING']);
    assert.deepEqual([twoNodes(true, true, false).inventory, twoNodes(true, true, false).admin], ['SERVING', 'NOT_SERVING']);
    assert.deepEqual([twoNodes(true, true, true, false).inventory, twoNodes(true, true, true, false).admin], ['SERVING', 'SERVING']);
    assert.match(twoNodes(true, true, true, false).degraded[0], /etcd down/);
  });

  it('a full Redis node counts as down for writes; a node past the warn ratio only degrades', () => {
    const at = (up: boolean) => ({ up, since: 0 });
    const checks = { 'redis a:1': at(true), 'redis b:2': at(true), mysql: at(true), etcd: at(true) };
    const oneFull = judge(checks, [], ['b:2']);
    assert.deepEqual([oneFull.inventory, oneFull.admin], ['SERVING', 'SERVING']);
    assert.deepEqual(oneFull.degraded, ['b:2 full (maxmemory), writes refused: orders and partitions on it fail']);
    const allFull = judge(checks, [], ['a:1', 'b:2']);
    assert.deepEqual([allFull.inventory, allFull.admin], ['NOT_SERVING', 'NOT_SERVING']);
    assert.match(allFull.degraded.join('\n'), /a:1, b:2 full .*nothing can be reserved/);
    const fullAndDown = judge({ ...checks, 'redis a:1': at(false) }, [], ['b:2']);
    assert.equal(fullAndDown.inventory, 'NOT_SERVING');
    assert.deepEqual(fullAndDown.degraded, ['a:1 down: orders and partitions on it fail', 'b:2 full (maxmemory), writes refused: nothing can be reserved']);
    const high = judge(checks, ['redis a:1 past 80% of its maxmemory: writes will be refused when it is full']);
    assert.deepEqual([high.inventory, high.admin, high.degraded.length], ['SERVING', 'SERVING', 1]);
  });
});
