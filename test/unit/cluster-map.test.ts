import assert from 'node:assert/strict';
import { mastersOf, parseClusterSlots, parseRedirect } from '../../allocator/cluster-map';
import { keySlot } from '../../allocator/slot';

describe('Redis Cluster slot map', () => {
  // CLUSTER SLOTS as Redis 7.0 answered it for a 3+3 cluster made by redis-cli --cluster create.
  const reply = [
    [0, 5460, ['127.0.0.1', 7100, 'a'], ['127.0.0.1', 7104, 'e']],
    [5461, 10922, ['127.0.0.1', 7101, 'b'], ['127.0.0.1', 7105, 'f']],
    [10923, 16383, ['', 7102, 'c'], ['127.0.0.1', 7103, 'd']],
  ];

  it('names the master of every slot; a master announcing no host is reached at the host asked', () => {
    const owners = parseClusterSlots(reply, '10.0.0.9');
    assert.equal(owners[0], '127.0.0.1:7100');
    assert.equal(owners[5461], '127.0.0.1:7101');
    assert.equal(owners[16383], '10.0.0.9:7102');
    assert.deepEqual(mastersOf(owners), ['127.0.0.1:7100', '127.0.0.1:7101', '10.0.0.9:7102']);
  });

  it('leaves slots no master serves undefined', () => {
    const owners = parseClusterSlots([[0, 9, ['127.0.0.1', 7100, 'a']]], 'x');
    assert.equal(owners[9], '127.0.0.1:7100');
    assert.equal(owners[10], undefined);
    assert.throws(() => parseClusterSlots('OK', 'x'), /unexpected reply/);
  });

  it('spreads the 16 default shards 6/4/6 over three even masters, 48 shards 17/15/16', () => {
    const owners = parseClusterSlots(reply, '127.0.0.1');
    const spread = (shards: number) => {
      const count = new Map<string, number>();
      for (let s = 0; s < shards; s++) {
        const node = owners[keySlot(`inv:{s${s}}`)]!;
        count.set(node, (count.get(node) ?? 0) + 1);
      }
      return mastersOf(owners).map((m) => count.get(m) ?? 0);
    };
    assert.deepEqual(spread(16), [6, 4, 6]);
    assert.deepEqual(spread(48), [17, 15, 16]);
  });

  it('reads MOVED and ASK redirects, and nothing else', () => {
    assert.deepEqual(parseRedirect('MOVED 3999 127.0.0.1:6381'), { kind: 'MOVED', slot: 3999, node: '127.0.0.1:6381' });
    assert.deepEqual(parseRedirect('ASK 3999 127.0.0.1:6381'), { kind: 'ASK', slot: 3999, node: '127.0.0.1:6381' });
    assert.equal(parseRedirect('TRYAGAIN Multiple keys request during rehashing of slot'), undefined);
    assert.equal(parseRedirect('ERR MOVED 1 x:1'), undefined);
  });
});
