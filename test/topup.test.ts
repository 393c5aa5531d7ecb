import assert from 'node:assert/strict';
import { DirectoryPartition, PartitionDirectory } from '../allocator/directory';
import { RedisGateway } from '../allocator/gateway';
import { Carver, TopUp } from '../allocator/topup';
import { createLogger } from '../kernel/logger';
import { shardsFromConfig } from '../server/clients';
import { testConfig, uniqueName } from './helpers/config';
import { waitFor } from './helpers/inventory';

/** A directory with no partitions: a SKU whose pool is sold out. */
const soldOut: PartitionDirectory = {
  partitions: (): readonly DirectoryPartition[] => [],
  sku: (sku) => ({ sku, perUserLimit: 0 }),
  forget: () => undefined,
};

/** A carver whose base answers after `ms` (or fails), counting the questions. */
function carver(base: number | Error, ms: number): Carver & { asked: number } {
  return {
    asked: 0,
    async baseOf() {
      this.asked++;
      await new Promise((resolve) => setTimeout(resolve, ms));
      if (base instanceof Error) throw base;
      return base;
    },
    preallocate: () => Promise.reject(new Error('nothing to carve in this test')),
  };
}

describe('top-up across servers', () => {
  const shards = shardsFromConfig(testConfig(uniqueName('topup')));
  const gateway = new RedisGateway(shards);
  const logger = createLogger('silent');
  const options = { thresholdUnits: 10, units: 100, partitions: 2, emptyBaseCacheMs: 1000 };
  const server = (c: Carver) => new TopUp(c, gateway, soldOut, options, logger);

  before(() => shards.connect());
  after(() => shards.close());

  it('tells the servers waiting on a top-up that base is empty, instead of letting them wait out their deadline', async () => {
    const a = carver(0, 150);
    const b = carver(0, 0);
    const deadline = Date.now() + 10_000;
    const first = server(a).request('empty-sku', deadline, true);
    await new Promise((resolve) => setTimeout(resolve, 30)); // a holds the lock, asking MySQL
    const started = Date.now();
    const second = await server(b).request('empty-sku', deadline, true);
    assert.equal(second, false);
    assert.ok(Date.now() - started < 2000, `answered after ${Date.now() - started} ms, long before its deadline`);
    assert.equal(await first, false);
    assert.equal(a.asked + b.asked, 1, 'only the lock holder asked MySQL');
    // The verdict stands for a while: another server asks nobody.
    const c = carver(0, 0);
    assert.equal(await server(c).request('empty-sku', Date.now() + 10_000, true), false);
    assert.equal(c.asked, 0);
  });

  it('answers an empty base it found lately at once, and checks again in the background', async () => {
    const slow = carver(0, 1000);
    const topUp = new TopUp(slow, gateway, soldOut, { ...options, emptyBaseCacheMs: 100 }, logger);
    assert.equal(await topUp.request('stale-sku', Date.now() + 10_000, true), false, 'the first answer waits for MySQL');
    await gateway.releaseTopUpLock('stale-sku'); // another server's verdict is not what this tests
    await new Promise((resolve) => setTimeout(resolve, 150)); // the verdict is now stale
    const started = Date.now();
    assert.equal(await topUp.request('stale-sku', Date.now() + 10_000, true), false);
    assert.ok(Date.now() - started < 500, `answered after ${Date.now() - started} ms, without waiting for the 1 s MySQL`);
    await waitFor(() => slow.asked === 2, 2000, 'base to be checked again in the background');
  });

  it('stops waiting soon after a failed holder releases the lock with nothing carved', async () => {
    const deadline = Date.now() + 10_000;
    const first = server(carver(new Error('MySQL down'), 150)).request('failing-sku', deadline, true);
    await new Promise((resolve) => setTimeout(resolve, 30));
    const started = Date.now();
    assert.equal(await server(carver(0, 0)).request('failing-sku', deadline, true), false);
    assert.ok(Date.now() - started < 2000, `answered after ${Date.now() - started} ms, long before its deadline`);
    assert.equal(await first, false, 'the failure is logged and answered as no top-up');
  });
});
