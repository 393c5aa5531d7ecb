import assert from 'node:assert/strict';
import { keySlot } from '../../allocator/slot';

// Expected values are what `redis-cli cluster keyslot <key>` answered on Redis 7.0.
describe('Redis Cluster key slot', () => {
  it('matches CLUSTER KEYSLOT for plain keys', () => {
    assert.equal(keySlot('foo'), 12182);
    assert.equal(keySlot('123456789'), 12739);
  });

  it('hashes only the tag between the first { and the next }', () => {
    assert.equal(keySlot('inv:{s3}:p:x'), 6970);
    assert.equal(keySlot('s3'), 6970);
    assert.equal(keySlot('other:{s0}:o:1'), 11097);
  });

  it('takes the whole key when the first tag is empty', () => {
    assert.equal(keySlot('{}a'), 10875);
    assert.equal(keySlot('a{}{b}'), 15033);
  });

  it('places the virtual shards {s0}..{s15} as Redis does', () => {
    const expected = [11097, 15224, 2843, 6970, 11229, 15356, 2975, 7102, 10833, 14960, 431, 4494, 8685, 12748, 299, 4362];
    assert.deepEqual(expected.map((_, s) => keySlot(`{s${s}}`)), expected);
  });
});
