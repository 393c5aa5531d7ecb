import assert from 'node:assert/strict';
import { ComparatorBuilder, Etcd3 } from 'etcd3';
import { StaleEpochError } from '../registry/errors';
import { createEtcdClient } from '../registry/etcd';
import { Registry } from '../registry/registry';
import { NewPartition } from '../registry/types';
import { createLogger } from '../kernel/logger';
import { testConfig, uniqueName } from './helpers/config';
import { PauseMode, TcpProxy } from './helpers/tcp-proxy';

const config = testConfig(uniqueName('reg'));
const logger = createLogger((process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent');

function partition(sku: string, partitionId: string, epoch = 1): NewPartition {
  return { sku, partitionId, node: '127.0.0.1:6390', shard: 7, epoch, createdAt: 1_700_000_000_000 };
}

describe('Registry', () => {
  /** Writes and checks etcd directly, around the objects under test. */
  const etcd = createEtcdClient(config.etcdEndpoints);
  let ns: string;
  let registry: Registry;

  after(() => etcd.close());
  beforeEach(() => {
    ns = `/${uniqueName('reg')}/`;
    registry = new Registry(etcd, ns, logger);
  });
  afterEach(() => etcd.delete().prefix(ns));

  it('puts and gets a SKU entry, and lists SKUs', async () => {
    assert.equal(await registry.getSku('sku-1'), undefined);
    await registry.putSku('sku-1', { perUserLimit: 2 });
    await registry.putSku('sku-2', { perUserLimit: 0 });
    await registry.putSku('sku-1', { perUserLimit: 3 });
    const sku = await registry.getSku('sku-1');
    assert.equal(sku?.perUserLimit, 3);
    assert.match(sku.modRevision, /^\d+$/);
    assert.deepEqual((await registry.listSkus()).map((s) => [s.sku, s.perUserLimit]), [['sku-1', 3], ['sku-2', 0]]);
    assert.equal(await etcd.get(`${ns}skus/sku-1`).string(), '{"sku":"sku-1","perUserLimit":3}');
  });

  it('keeps a SKU\'s admission limit under a key of its own, which a SKU entry rewrite leaves alone', async () => {
    await registry.putSku('sku-1', { perUserLimit: 2 });
    await registry.putAdmission('sku-1', { reservesPerSecond: 100, burst: 20 });
    await registry.putSku('sku-1', { perUserLimit: 3 });
    const limit = await registry.getAdmission('sku-1');
    assert.deepEqual([limit?.reservesPerSecond, limit?.burst], [100, 20]);
    assert.equal(await etcd.get(`${ns}admission/sku-1`).string(), '{"sku":"sku-1","reservesPerSecond":100,"burst":20}');
    await registry.deleteAdmission('sku-1');
    assert.equal(await registry.getAdmission('sku-1'), undefined);
    // Removing what is not there is a no-op; the SKU entry stays.
    await registry.deleteAdmission('sku-1');
    assert.equal((await registry.getSku('sku-1'))?.perUserLimit, 3);
    await assert.rejects(registry.putAdmission('sku-1', { reservesPerSecond: -1, burst: 0 }), TypeError);
  });

  it('registers partitions and lists them per SKU and all together', async () => {
    await registry.registerPartition(partition('a', 'p1'));
    await registry.registerPartition(partition('a', 'p2'));
    await registry.registerPartition(partition('b', 'p1'));
    const a = await registry.listPartitions('a');
    assert.deepEqual(a.map((p) => p.partitionId), ['p1', 'p2']);
    assert.deepEqual({ ...a[0], modRevision: '' }, { ...partition('a', 'p1'), modRevision: '' });
    assert.match(a[0].modRevision, /^\d+$/);
    assert.deepEqual((await registry.listPartitions()).map((p) => `${p.sku}/${p.partitionId}`), ['a/p1', 'a/p2', 'b/p1']);
    assert.deepEqual(await registry.listPartitions('c'), []);
  });

  it('skips a value that does not parse instead of failing the listing', async () => {
    await registry.registerPartition(partition('a', 'p1'));
    await etcd.put(`${ns}partitions/a/p2`).value('not json');
    assert.deepEqual((await registry.listPartitions('a')).map((p) => p.partitionId), ['p1']);
  });

  it('removes a partition once: deleted, then absent', async () => {
    await registry.registerPartition(partition('a', 'p1', 4));
    assert.equal(await registry.removePartition('a', 'p1', 4), 'deleted');
    assert.equal(await registry.removePartition('a', 'p1', 4), 'absent');
    assert.equal(await etcd.get(`${ns}partitions/a/p1`).string(), null);
  });

  it('leaves a re-registered partition alone: an older epoch gets "changed"', async () => {
    await registry.registerPartition(partition('a', 'p1', 1));
    await registry.registerPartition(partition('a', 'p1', 2));
    assert.equal(await registry.removePartition('a', 'p1', 1), 'changed');
    const [stored] = await registry.listPartitions('a');
    assert.equal(stored.epoch, 2);
    assert.equal(await registry.removePartition('a', 'p1', 2), 'deleted');
  });

  it('refuses to roll a partition back to an older epoch, and writes nothing for a replay', async () => {
    await registry.registerPartition(partition('a', 'p1', 5));
    const [before] = await registry.listPartitions('a');
    await assert.rejects(registry.registerPartition(partition('a', 'p1', 4)), StaleEpochError);
    await registry.registerPartition(partition('a', 'p1', 5));
    const [after] = await registry.listPartitions('a');
    assert.equal(after.epoch, 5);
    assert.equal(after.modRevision, before.modRevision, 'an identical registration must not rewrite the key');
  });

  it('rejects ids and values that would break the key layout', async () => {
    await assert.rejects(registry.putSku('a/b', { perUserLimit: 1 }), TypeError);
    await assert.rejects(registry.putSku('a', { perUserLimit: -1 }), TypeError);
    await assert.rejects(registry.registerPartition(partition('a', '../x')), TypeError);
    await assert.rejects(registry.registerPartition({ ...partition('a', 'p1'), shard: 1.5 }), TypeError);
    await assert.rejects(registry.removePartition('', 'p1', 1), TypeError);
  });

  describe('when the answer to a delete is lost', () => {
    let proxy: TcpProxy;
    let cut: Etcd3;
    let cutRegistry: Registry;

    beforeEach(async () => {
      proxy = await TcpProxy.start(new URL(config.etcdEndpoints[0]).host);
      // The breaker needs 20 calls in its window before it may open: the re-read reaches etcd.
      cut = createEtcdClient([`http://${proxy.address}`], {});
      cutRegistry = new Registry(cut, ns, logger, { callTimeoutMs: 300 });
      await registry.registerPartition(partition('a', 'p1', 3));
    });
    afterEach(async () => {
      cut.close();
      await proxy.close();
    });

    /** Cuts the proxy as the delete transaction is sent and heals it after the call's deadline. */
    function cutDuringTxn(mode: PauseMode): void {
      const commit = ComparatorBuilder.prototype.commit;
      ComparatorBuilder.prototype.commit = function (this: ComparatorBuilder) {
        ComparatorBuilder.prototype.commit = commit;
        proxy.pause(mode);
        setTimeout(() => proxy.resume(), 450);
        return commit.call(this);
      };
    }

    it('re-reads the key: a delete that applied is reported absent, not an error', async () => {
      cutDuringTxn('hold-replies');
      assert.equal(await cutRegistry.removePartition('a', 'p1', 3), 'absent');
      assert.equal(await etcd.get(`${ns}partitions/a/p1`).string(), null);
    });

    it('re-reads the key: a delete that may not have arrived is settled, never left half-done', async () => {
      cutDuringTxn('blackhole');
      assert.ok(['deleted', 'absent'].includes(await cutRegistry.removePartition('a', 'p1', 3)));
      assert.equal(await etcd.get(`${ns}partitions/a/p1`).string(), null);
    });

    it('throws the original error when etcd stays unreachable', async () => {
      proxy.pause('reset');
      await assert.rejects(cutRegistry.removePartition('a', 'p1', 3), (err: Error) => /UNAVAILABLE|DEADLINE|No connection|ECONN/i.test(`${err.name} ${err.message}`));
      assert.notEqual(await etcd.get(`${ns}partitions/a/p1`).string(), null);
    });
  });
});
