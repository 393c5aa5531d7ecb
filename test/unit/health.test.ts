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
});
