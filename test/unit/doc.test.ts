import { strict as assert } from 'node:assert';
import { OrderDoc, oneItemDoc } from '../../allocator/doc';

describe('oneItemDoc', () => {
  const from = { partitionId: 'pmws4mnae1357f9a5', shard: 14, epoch: 3 };

  it('is the JSON of the OrderDoc it stands for, with its piece', () => {
    const doc: OrderDoc = {
      items: [{ sku: 'flash-2', qty: 2, rel: 0, pieces: [{ p: from.partitionId, s: 14, e: 3, q: 2, r: 0 }] }],
      user: 'u-1',
      limits: {},
      releases: {},
    };
    assert.equal(oneItemDoc('flash-2', 2, 'u-1', from), JSON.stringify(doc));
  });

  it('is the JSON of the OrderDoc without a piece when nothing is taken yet', () => {
    const doc: OrderDoc = { items: [{ sku: 'a', qty: 1, rel: 0, pieces: [] }], user: '', limits: {}, releases: {} };
    assert.equal(oneItemDoc('a', 1, ''), JSON.stringify(doc));
  });

  it('escapes ids that JSON must escape, and parses back to them', () => {
    const sku = 'sku "quoted" \\ back\u2028';
    const user = 'user\nline\u0001';
    const parsed = JSON.parse(oneItemDoc(sku, 5, user, from)) as OrderDoc;
    assert.equal(parsed.items[0].sku, sku);
    assert.equal(parsed.user, user);
    assert.equal(parsed.items[0].pieces[0].p, from.partitionId);
  });
});
