import assert from 'node:assert/strict';
import { describeNodeMap, nodeMapMismatch, parseNodeMap } from '../../allocator/node-map';

describe('plain multi-node node map', () => {
  const recorded = { nodes: ['10.0.0.1:6379', '10.0.0.2:6379'], shards: 16 };

  it('accepts the same nodes in the same order with the same shard count', () => {
    assert.equal(nodeMapMismatch(recorded, { nodes: ['10.0.0.1:6379', '10.0.0.2:6379'], shards: 16 }), undefined);
  });

  it('refuses a node added, removed or reordered, or another shard count, naming both maps', () => {
    for (const current of [
      { nodes: [...recorded.nodes, '10.0.0.3:6379'], shards: 16 },
      { nodes: ['10.0.0.1:6379'], shards: 16 },
      { nodes: ['10.0.0.2:6379', '10.0.0.1:6379'], shards: 16 },
      { nodes: recorded.nodes, shards: 32 },
    ]) {
      const why = nodeMapMismatch(recorded, current);
      assert.ok(why?.includes(describeNodeMap(recorded)), why);
      assert.ok(why?.includes(describeNodeMap(current)), why);
    }
    assert.equal(describeNodeMap(recorded), 'REDIS_NODES=10.0.0.1:6379,10.0.0.2:6379 REDIS_SHARDS=16');
  });

  it('reads what it recorded and nothing else', () => {
    assert.deepEqual(parseNodeMap(JSON.stringify(recorded)), recorded);
    assert.equal(parseNodeMap('{"nodes":"a","shards":1}'), undefined);
    assert.equal(parseNodeMap('{"nodes":["a"],"shards":1.5}'), undefined);
    assert.equal(parseNodeMap('not json'), undefined);
  });
});
