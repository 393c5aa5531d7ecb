import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { RegistrySnapshotFile } from '../registry/snapshot-file';
import { createLogger } from '../kernel/logger';
import { defaultSnapshotFile } from '../server/config';
import { testConfig, uniqueName } from './helpers/config';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { freePort } from './helpers/redis-node';
import { launchServer } from './helpers/server-process';
import { TcpProxy } from './helpers/tcp-proxy';

const rid = (tag: string) => `${tag}-${randomBytes(4).toString('hex')}`;

/**
 * DESIGN promise 6, etcd down: a server (re)started while etcd does not answer serves from the
 * registry snapshot it saved, sells, and catches up once etcd is back; with no snapshot it waits for
 * etcd with its probes answering (alive, not ready) and says why in the log. etcd is reached through
 * a proxy the test freezes ('blackhole': like a SIGSTOPped etcd).
 */
describe('etcd down at start', function () {
  this.timeout(120_000);
  let etcd: TcpProxy;
  const snapshotFile = path.join(os.tmpdir(), `inv-snapshot-${randomBytes(4).toString('hex')}.json`);

  before(async () => {
    etcd = await TcpProxy.start(new URL(testConfig('x').etcdEndpoints[0]).host);
  });
  after(async () => {
    etcd.resume();
    await etcd.close();
    rmSync(snapshotFile, { force: true });
  });

  it('starts from its registry snapshot, sells from it, and catches up when etcd is back', async () => {
    const config = testConfig(uniqueName('etcdsnap'), {
      ETCD_ENDPOINTS: `http://${etcd.address}`,
      REGISTRY_SNAPSHOT_FILE: snapshotFile,
      ETCD_START_WAIT_MS: '1000',
    });
    const first = await startInventory('etcdsnap', {}, config);
    await first.services.operator.setStock(rid('s'), 'snap-sku', 100, 'count');
    await first.services.operator.preallocate(rid('p'), 'snap-sku', 60, 3);
    const files = new RegistrySnapshotFile(snapshotFile, createLogger('silent'));
    await waitFor(async () => ((await files.load())?.entries.filter((e) => e.key.includes('snap-sku')).length ?? 0) >= 4, 5000, 'the snapshot to hold the SKU and its partitions');
    await first.server.close(); // stops the server, keeps its data

    etcd.pause('blackhole');
    let second: InventoryFixture | undefined;
    try {
      const started = Date.now();
      second = await startInventory('etcdsnap', {}, config);
      assert.ok(Date.now() - started < 8000, `started without etcd in ${Date.now() - started} ms`);
      assert.equal(second.services.cache.partitions('snap-sku').length, 3, 'routes from the snapshot');
      const answers = await Promise.all(Array.from({ length: 30 }, (_, i) => second!.reserve(`s-${i}`, [['snap-sku', 1]])));
      assert.ok(answers.every((a) => a.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED), 'sells from the snapshot');
      await second.services.health.probe();
      const report = second.services.health.report();
      assert.equal(report.inventory, 'SERVING');
      assert.ok(report.degraded.some((line) => /etcd down/.test(line)), report.degraded.join('; '));

      etcd.resume();
      await waitFor(() => second!.services.cache.staleness() === 0, 20_000, 'the cache in sync with etcd again');
      await second.services.ledger.drain(30_000);
      const stock = (await second.services.operator.stock(['snap-sku'])).get('snap-sku')!;
      assert.equal(stock.reserved, 30);
      assert.equal(stock.onHand, stock.base + stock.pool + stock.reserved + stock.committed);
      assert.deepEqual((await second.services.reconciler.reconcile(['snap-sku'], false, '')).discrepancies, []);
    } finally {
      etcd.resume();
      await (second ?? first).close();
    }
  });

  it('without a snapshot, waits for etcd with its probes answering alive but not ready, and says why', async () => {
    const config = testConfig(uniqueName('etcdwait'), { REGISTRY_SNAPSHOT_FILE: 'off' });
    const metricsPort = await freePort();
    etcd.pause('blackhole');
    const server = launchServer({
      REDIS_PREFIX: config.redisPrefix,
      ETCD_NAMESPACE: config.etcdNamespace,
      MYSQL_URL: config.mysqlUrl,
      ETCD_ENDPOINTS: `http://${etcd.address}`,
      REGISTRY_SNAPSHOT_FILE: 'off',
      ETCD_START_WAIT_MS: '500',
      METRICS_PORT: String(metricsPort),
      LEDGER_WRITER: 'off',
    });
    try {
      const waiting = await server.waitForLine((line) => /no registry snapshot/.test(String(line.msg)), 30_000);
      assert.equal(waiting.level, 'error');
      const probe = async (p: string) => {
        const res = await fetch(`http://127.0.0.1:${metricsPort}${p}`);
        return { code: res.status, body: await res.text() };
      };
      assert.equal((await probe('/livez')).code, 200);
      assert.equal((await probe('/readyz')).code, 503);
      const healthz = await probe('/healthz');
      assert.equal(healthz.code, 503);
      assert.equal(JSON.parse(healthz.body).status, 'NOT_SERVING');
      etcd.resume();
      await server.listening;
      await waitFor(async () => (await probe('/readyz')).code === 200, 20_000, 'ready once etcd answers');
      assert.ok(!existsSync(defaultSnapshotFile(config.etcdNamespace)), 'off keeps no file');
    } finally {
      etcd.resume();
      await server.stop();
      await startInventory('etcdwait', {}, config).then((inv) => inv.close()); // drops its namespace
    }
  });
});
