import assert from 'node:assert/strict';
import { Metadata } from '@grpc/grpc-js';
import { StockLevel } from '../../gen/inventory/v1/inventory.pb';
import { DependencyUnavailable } from '../../kernel/dependency';
import { createLogger } from '../../kernel/logger';
import { ConsoleApi, ConsoleSources } from '../../server/console-api';
import { judge } from '../../server/health';
import type { CallContext } from '../../server/transport';

const ctx: CallContext = { deadline: Infinity, cancelled: false, metadata: new Metadata(), signal: new AbortController().signal };

/** Sources whose MySQL list fails as an outage does, and whose ledger cannot be read. */
function sources(over: Partial<ConsoleSources> = {}): ConsoleSources {
  return {
    admin: {} as ConsoleSources['admin'],
    inventory: { getStock: async (req) => ({ stock: req.skuIds.map((skuId) => StockLevel.fromPartial({ skuId, onHand: 5 })) }) },
    skuIds: () => Promise.reject(new DependencyUnavailable('mysql', undefined, 'connect ECONNREFUSED')),
    registeredSkus: () => ['b-2', 'a-1', 'other'],
    health: { report: () => judge({ 'redis a:1': { up: true, since: 0 }, mysql: { up: false, since: 0 }, etcd: { up: true, since: 0 } }) },
    breakers: { all: () => [{ dependency: 'mysql', node: undefined, state: 'open' as const }] },
    ledger: { lag: () => Promise.reject(new DependencyUnavailable('redis', 'a:1', 'connection closed')) },
    events: { recent: () => [], state: () => ({ exchange: 'inventory.events', connected: false, error: 'ECONNREFUSED' }) },
    ...over,
  };
}

describe('console API: the overview while dependencies fail', () => {
  const api = (over?: Partial<ConsoleSources>) => new ConsoleApi(sources(over), createLogger('silent'));

  it('lists the registry\'s SKUs, filtered and sorted, when MySQL does not answer, and says so', async () => {
    const overview = await api().overview('', ctx);
    assert.ok(!('error' in overview.skus));
    assert.equal(overview.skus.source, 'registry');
    assert.deepEqual(overview.skus.stock, [{ skuId: 'a-1', onHand: 5 }, { skuId: 'b-2', onHand: 5 }, { skuId: 'other', onHand: 5 }]);
    const filtered = await api().overview('a-', ctx);
    assert.deepEqual(!('error' in filtered.skus) && filtered.skus.stock, [{ skuId: 'a-1', onHand: 5 }]);
  });

  it('blanks only the section that cannot be read, with the reason a client would get', async () => {
    const overview = await api().overview('', ctx);
    assert.deepEqual(overview.ledger, { error: 'redis a:1 is unavailable; the call is safe to retry' });
    assert.equal(overview.health.status, 'DEGRADED');
    assert.deepEqual(overview.breakers, [{ dependency: 'mysql', node: '', state: 'open' }]);
    assert.equal(overview.events.connected, false);

    const broken = await api({ skuIds: async () => ['a-1'], inventory: { getStock: () => Promise.reject(new Error('a bug')) } }).overview('', ctx);
    assert.deepEqual(broken.skus, { error: 'internal error; see the server log' });
  });

  it('refuses a prefix too long and an action body that is not an object, naming the field', async () => {
    await assert.rejects(api().overview('x'.repeat(129), ctx), { field: 'q' });
    await assert.rejects(api().act('drain', 'text', ctx), { field: 'body' });
    await assert.rejects(api().partitions('', ctx), { field: 'sku_id' });
  });
});
