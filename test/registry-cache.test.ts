import { Breakers, DEFAULT_BREAKER_SETTINGS } from '../kernel/breaker';
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { RegistryCache } from '../registry/cache';
import { createEtcdClient } from '../registry/etcd';
import { Registry } from '../registry/registry';
import { NewPartition, PartitionEntry } from '../registry/types';
import { RegistryWriteQueue, RegistryWrite, RegistryWriteResult } from '../registry/write-queue';
import { createLogger } from '../kernel/logger';
import { testConfig, uniqueName } from './helpers/config';
import { TcpProxy } from './helpers/tcp-proxy';

const config = testConfig(uniqueName('regcache'));
const logger = createLogger((process.env.TEST_LOG_LEVEL as 'silent') ?? 'silent');
/** Short delays everywhere, so a cut-and-heal test takes well under a second. */
const fast = { resyncBackoffMs: 20, maxResyncBackoffMs: 100 };
const fastClient = { breakers: new Breakers({ ...DEFAULT_BREAKER_SETTINGS, resetTimeoutMs: 100 }), reconnectBackoffMaxMs: 100, callTimeoutMs: 1000 };

function partition(sku: string, partitionId: string, epoch = 1): NewPartition {
  return { sku, partitionId, node: '127.0.0.1:6390', shard: 1, epoch, createdAt: 1_700_000_000_000 };
}

/** Resolves with the arguments of the first `event` whose arguments pass `test`. */
function nextEvent<A extends unknown[]>(emitter: EventEmitter<any>, event: string, test: (...args: A) => boolean = () => true, timeoutMs = 5000): Promise<A> {
  const source = emitter as EventEmitter;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      source.off(event, listener);
      reject(new Error(`no '${event}' event within ${timeoutMs} ms`));
    }, timeoutMs);
    const listener = (...args: unknown[]) => {
      if (!test(...(args as A))) return;
      clearTimeout(timer);
      source.off(event, listener);
      resolve(args as A);
    };
    source.on(event, listener);
  });
}

/** Resolves once the cache's watch is live (it may already be). */
async function whenLive(cache: RegistryCache): Promise<void> {
  if (cache.staleness() !== 0) await nextEvent(cache, 'connected');
}

/** What a cache holds for the given SKUs, comparable with what etcd holds. */
function view(cache: RegistryCache): string[] {
  return [...cache.skus()].flatMap((sku) => cache.partitions(sku).map(label));
}

function label(p: PartitionEntry): string {
  return `${p.sku}/${p.partitionId}@${p.epoch}#${p.modRevision}`;
}

describe('RegistryCache', () => {
  /** Writes and checks etcd directly, around the objects under test. */
  const etcd = createEtcdClient(config.etcdEndpoints);
  let ns: string;
  let registry: Registry;
  /** Closed after each test: caches, queues, clients and proxies a test made. */
  let cleanup: Array<() => unknown>;

  after(() => etcd.close());
  beforeEach(() => {
    ns = `/${uniqueName('regcache')}/`;
    registry = new Registry(etcd, ns, logger);
    cleanup = [];
  });
  afterEach(async () => {
    for (const close of cleanup.reverse()) await close();
    await etcd.delete().prefix(ns);
  });

  /** A started cache on its own client, optionally behind a proxy that can cut it off. */
  async function startCache(proxy?: TcpProxy): Promise<RegistryCache> {
    const client = createEtcdClient(proxy ? [`http://${proxy.address}`] : config.etcdEndpoints, fastClient);
    const cache = new RegistryCache(client, ns, logger, fast);
    cleanup.push(() => client.close(), () => cache.stop());
    await cache.start();
    return cache;
  }

  async function startProxy(): Promise<TcpProxy> {
    const proxy = await TcpProxy.start(new URL(config.etcdEndpoints[0]).host);
    cleanup.push(() => proxy.close());
    return proxy;
  }

  /** Writes a key directly and returns the revision of that write. */
  async function put(key: string, value: string): Promise<string> {
    return (await etcd.namespace(ns).put(key).value(value).exec()).header.revision;
  }

  /** Waits until `cache` shows exactly what etcd holds now. */
  async function inSync(cache: RegistryCache): Promise<void> {
    await cache.waitForRevision(await put('sync-marker', String(Date.now())), 5000);
    assert.deepEqual(view(cache), (await registry.listPartitions()).map(label));
  }

  it('loads existing keys on start and serves them without allocating', async () => {
    await registry.putSku('a', { perUserLimit: 2 });
    await registry.registerPartition(partition('a', 'p2'));
    await registry.registerPartition(partition('a', 'p1'));
    await registry.registerPartition(partition('b', 'p1'));
    const client = createEtcdClient(config.etcdEndpoints);
    const cache = new RegistryCache(client, ns, logger);
    cleanup.push(() => client.close(), () => cache.stop());
    assert.equal(cache.staleness(), Infinity);
    const reloaded = nextEvent<[string]>(cache, 'reloaded');
    await cache.start();
    assert.equal((await reloaded)[0], cache.revision);
    assert.deepEqual(cache.partitions('a').map((p) => p.partitionId), ['p1', 'p2']);
    assert.equal(cache.partitions('a'), cache.partitions('a'), 'the same array until it changes');
    assert.ok(Object.isFrozen(cache.partitions('a')) && Object.isFrozen(cache.partitions('a')[0]));
    assert.equal(cache.sku('a')?.perUserLimit, 2);
    assert.equal(cache.sku('b'), undefined);
    assert.deepEqual([...cache.skus()].sort(), ['a', 'b']);
    assert.deepEqual(cache.partitions('nope'), []);
    await whenLive(cache);
    assert.equal(cache.staleness(), 0);
  });

  it('loads a registry whose listing is larger than gRPC’s default 4 MB message', async () => {
    // Six 1 MB values (etcd takes requests up to 1.5 MB): the listing is ~6 MB. They do not parse
    // as partitions and are skipped; what matters is that the load completes.
    const filler = 'x'.repeat(1024 * 1024);
    for (let i = 0; i < 6; i++) await put(`partitions/big/p${i}`, filler);
    await registry.registerPartition(partition('small', 'p1'));
    const cache = await startCache();
    assert.deepEqual(cache.partitions('small').map((p) => p.partitionId), ['p1']);
  });

  it('follows another client’s writes through events', async () => {
    const cache = await startCache();
    const before = cache.partitions('a');
    const added = nextEvent<[PartitionEntry]>(cache, 'partition-added');
    const skuChanged = nextEvent(cache, 'sku-changed');
    await registry.putSku('a', { perUserLimit: 1 });
    await registry.registerPartition(partition('a', 'p1'));
    assert.equal((await added)[0].partitionId, 'p1');
    assert.deepEqual(await skuChanged, [cache.sku('a'), 'a']);
    assert.notEqual(cache.partitions('a'), before);
    assert.deepEqual(cache.partitions('a').map((p) => p.partitionId), ['p1']);

    const replaced = nextEvent<[PartitionEntry]>(cache, 'partition-added', (p) => p.epoch === 2);
    await registry.registerPartition(partition('a', 'p1', 2));
    await replaced;
    assert.equal(cache.partitions('a')[0].epoch, 2);

    const removed = nextEvent<[PartitionEntry]>(cache, 'partition-removed');
    assert.equal(await registry.removePartition('a', 'p1', 2), 'deleted');
    assert.equal((await removed)[0].partitionId, 'p1');
    assert.deepEqual(cache.partitions('a'), []);

    const skuGone = nextEvent(cache, 'sku-changed', (entry) => entry === undefined);
    await etcd.namespace(ns).delete().key('skus/a');
    await skuGone;
    assert.equal(cache.sku('a'), undefined);
    assert.deepEqual([...cache.skus()], []);
  });

  it('follows admission limits: set, changed, removed, and keeps a SKU known only by its limit', async () => {
    const cache = await startCache();
    // A key written after each change: once the cache has it, it has the change.
    const synced = async () => cache.waitForRevision(await put('sync-marker', String(Date.now())), 5000);
    await registry.putAdmission('a', { reservesPerSecond: 10, burst: 5 });
    await synced();
    const first = cache.admission('a');
    assert.deepEqual([first?.reservesPerSecond, first?.burst], [10, 5]);
    assert.ok(Object.isFrozen(first));
    assert.deepEqual([...cache.skus()], ['a']);
    await registry.putAdmission('a', { reservesPerSecond: 1, burst: 1 });
    await synced();
    assert.equal(cache.admission('a')?.reservesPerSecond, 1);
    await registry.deleteAdmission('a');
    await synced();
    assert.equal(cache.admission('a'), undefined);
    assert.deepEqual([...cache.skus()], []);
  });

  it('forget() drops a partition at once; a stale listing does not bring it back, a re-registration does', async () => {
    const proxy = await startProxy();
    await registry.registerPartition(partition('a', 'p1'));
    await registry.registerPartition(partition('a', 'p2'));
    const cache = await startCache(proxy);
    const removed = nextEvent<[PartitionEntry]>(cache, 'partition-removed');
    cache.forget('a', 'p1');
    assert.equal((await removed)[0].partitionId, 'p1');
    assert.deepEqual(cache.partitions('a').map((p) => p.partitionId), ['p2']);

    // The delete has not reached etcd (say it is queued): a full re-list still sees p1 at its old revision.
    // (A cut alone resumes the watch; the compaction makes the cache re-list.)
    await whenLive(cache);
    proxy.pause();
    await nextEvent(cache, 'disconnected');
    await put('compact-marker', 'x'); // compacting at a later revision than the one the watch resumes from
    await etcd.kv.compact({ revision: await put('compact-marker', 'y'), physical: true });
    proxy.resume();
    await nextEvent(cache, 'reloaded');
    assert.deepEqual(cache.partitions('a').map((p) => p.partitionId), ['p2']);

    const back = nextEvent<[PartitionEntry]>(cache, 'partition-added');
    await registry.registerPartition(partition('a', 'p1', 2));
    assert.equal((await back)[0].epoch, 2);
    assert.deepEqual(cache.partitions('a').map((p) => p.partitionId), ['p1', 'p2']);
  });

  it('a cut watch resumes after the last revision it applied: what changed meanwhile arrives as events, with no re-list', async () => {
    const proxy = await startProxy();
    await registry.registerPartition(partition('a', 'p1'));
    const cache = await startCache(proxy);
    await whenLive(cache);
    let relists = 0;
    cache.on('reloaded', () => relists++);
    proxy.pause();
    await nextEvent(cache, 'disconnected');
    assert.equal(await registry.removePartition('a', 'p1', 1), 'deleted');
    await registry.registerPartition(partition('a', 'p2'));
    const added = nextEvent<[PartitionEntry]>(cache, 'partition-added');
    const removed = nextEvent<[PartitionEntry]>(cache, 'partition-removed');
    proxy.resume();
    assert.equal((await removed)[0].partitionId, 'p1');
    assert.equal((await added)[0].partitionId, 'p2');
    await whenLive(cache);
    await inSync(cache);
    assert.equal(relists, 0, 'resumed, not re-listed');
  });

  it('ignores a put older than what it holds for the key', async () => {
    const cache = await startCache();
    await registry.registerPartition(partition('a', 'p1', 2));
    await inSync(cache);
    const held = cache.partitions('a');
    // A listing taken before the re-registration arrives late (e.g. from a lagging member).
    const stale = { kvs: [{ key: Buffer.from('partitions/a/p1'), value: Buffer.from(JSON.stringify(partition('a', 'p1', 1))), mod_revision: '1' }], header: { revision: cache.revision } };
    (cache as unknown as { applySnapshot(s: unknown): void }).applySnapshot(stale);
    assert.equal(cache.partitions('a'), held);
  });

  it('two caches see the same state', async () => {
    const [one, two] = await Promise.all([startCache(), startCache()]);
    for (let i = 0; i < 12; i++) await registry.registerPartition(partition(`s${i % 3}`, `p${i % 5}`, 1 + (i % 4)));
    await registry.removePartition('s1', 'p1', 2);
    await registry.removePartition('s0', 'p3', 4);
    await inSync(one);
    await inSync(two);
    assert.deepEqual(view(one), view(two));
    assert.ok(view(one).length > 5);
  });

  it('after a cut with compaction it re-lists, matches etcd (deletes included) and is fresh again', async () => {
    const proxy = await startProxy();
    for (const id of ['p1', 'p2', 'p3']) await registry.registerPartition(partition('a', id));
    const cache = await startCache(proxy);
    await whenLive(cache);
    assert.equal(cache.staleness(), 0);
    const lost = cache.revision;

    proxy.pause();
    await nextEvent(cache, 'disconnected');
    const removed = nextEvent<[PartitionEntry]>(cache, 'partition-removed');
    const added = nextEvent<[PartitionEntry]>(cache, 'partition-added');
    assert.equal(await registry.removePartition('a', 'p2', 1), 'deleted');
    await registry.registerPartition(partition('a', 'p4'));
    await etcd.kv.compact({ revision: await put('compact-marker', 'x'), physical: true });
    await sleep(250);
    assert.ok(cache.staleness() >= 200, `staleness ${cache.staleness()} while cut`);
    assert.deepEqual(cache.partitions('a').map((p) => p.partitionId), ['p1', 'p2', 'p3'], 'serves the last snapshot while cut');

    const reloaded = nextEvent(cache, 'reloaded');
    proxy.resume();
    await reloaded;
    assert.equal((await removed)[0].partitionId, 'p2');
    assert.equal((await added)[0].partitionId, 'p4');
    assert.ok(BigInt(cache.revision) > BigInt(lost));
    await whenLive(cache);
    assert.equal(cache.staleness(), 0);
    await inSync(cache);
  });

  it('a watch cancelled by compaction is not resumed: the cache re-lists', async () => {
    const proxy = await startProxy();
    await registry.registerPartition(partition('a', 'p1'));
    const client = createEtcdClient([`http://${proxy.address}`], fastClient);
    const cache = new RegistryCache(client, ns, logger, fast);
    cleanup.push(() => client.close(), () => cache.stop());
    // Hold the watch request back until its start revision has been compacted away.
    cache.once('reloaded', () => proxy.pause('blackhole'));
    await cache.start();
    assert.equal(await registry.removePartition('a', 'p1', 1), 'deleted');
    await registry.registerPartition(partition('a', 'p2'));
    await etcd.kv.compact({ revision: await put('compact-marker', 'x'), physical: true });
    const cancelled = nextEvent<[Error]>(cache, 'error');
    const reloaded = nextEvent(cache, 'reloaded');
    proxy.resume();
    assert.match((await cancelled)[0].message, /cancel/i);
    await reloaded;
    assert.deepEqual(cache.partitions('a').map((p) => p.partitionId), ['p2']);
    await inSync(cache);
  });

  it('waitForRevision() times out on a revision that never comes', async () => {
    const cache = await startCache();
    const far = (BigInt(cache.revision) + 1_000_000n).toString();
    await assert.rejects(cache.waitForRevision(far, 100), /did not reach revision/);
    await cache.waitForRevision(cache.revision, 100);
  });

  describe('RegistryWriteQueue', () => {
    let proxy: TcpProxy;
    let queue: RegistryWriteQueue;
    let replayed: Array<[RegistryWrite, RegistryWriteResult]>;

    beforeEach(async () => {
      proxy = await startProxy();
      const client = createEtcdClient([`http://${proxy.address}`], fastClient);
      queue = new RegistryWriteQueue(new Registry(client, ns, logger, { callTimeoutMs: 500 }), logger, { backoffMs: 20, maxBackoffMs: 100 });
      replayed = [];
      queue.on('replayed', (write, result) => replayed.push([write, result]));
      cleanup.push(() => client.close(), () => queue.close());
    });

    it('answers at once while etcd answers', async () => {
      assert.equal(await queue.registerPartition(partition('a', 'p1')), 'registered');
      assert.equal(await queue.removePartition('a', 'p1', 1), 'deleted');
      assert.equal(await queue.removePartition('a', 'p1', 1), 'absent');
      assert.equal(queue.pending(), 0);
    });

    it('queues writes while etcd is cut off and replays them in order when it is back', async () => {
      await registry.registerPartition(partition('a', 'p1'));
      proxy.pause();
      const queued = nextEvent(queue, 'queued');
      assert.equal(await queue.removePartition('a', 'p1', 1), 'queued');
      await queued;
      assert.equal(await queue.registerPartition(partition('a', 'p2')), 'queued');
      assert.equal(await queue.removePartition('a', 'p1', 1), 'queued', 'a duplicate is queued once');
      assert.equal(queue.pending(), 2);
      await assert.rejects(queue.drain(150), /still queued/);
      assert.equal(await etcd.get(`${ns}partitions/a/p1`).string() !== null, true, 'nothing applied while cut');

      proxy.resume();
      await queue.drain();
      assert.equal(queue.pending(), 0);
      assert.deepEqual(replayed.map(([w, r]) => `${w.kind} ${r}`), ['remove deleted', 'register registered']);
      assert.deepEqual((await registry.listPartitions('a')).map((p) => p.partitionId), ['p2']);
    });

    it('drops a queued write etcd refuses for good, and reports it', async () => {
      await registry.registerPartition(partition('a', 'p1', 5));
      proxy.pause();
      assert.equal(await queue.registerPartition(partition('a', 'p1', 4)), 'queued');
      const refused = nextEvent<[Error, RegistryWrite]>(queue, 'error');
      proxy.resume();
      assert.equal((await refused)[0].name, 'StaleEpochError');
      await queue.drain();
      assert.equal((await registry.listPartitions('a'))[0].epoch, 5);
    });
  });
});
