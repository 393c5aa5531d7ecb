import assert from 'node:assert/strict';
import { testConfig, uniqueName } from './helpers/config';
import { healthClient, unary } from './helpers/grpc';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { TcpProxy } from './helpers/tcp-proxy';

/**
 * Health tells the truth: a server whose Redis is gone says NOT_SERVING (grpc.health.v1 on both
 * ports, /readyz and /healthz answer 503); MySQL gone leaves InventoryService SERVING but degraded
 * and AdminService NOT_SERVING; both heal by themselves. Redis and MySQL are reached through
 * proxies the test cuts.
 */
describe('health', function () {
  this.timeout(60_000);
  let inv: InventoryFixture;
  let redis: TcpProxy;
  let mysql: TcpProxy;

  before(async () => {
    const base = testConfig(uniqueName('health'));
    redis = await TcpProxy.start(base.redisNodes[0]);
    mysql = await TcpProxy.start(new URL(base.mysqlUrl).host);
    const mysqlUrl = new URL(base.mysqlUrl);
    mysqlUrl.host = mysql.address;
    inv = await startInventory('health', { REDIS_NODES: redis.address, MYSQL_URL: mysqlUrl.toString(), HEALTH_INTERVAL_MS: '200' });
  });
  after(async () => {
    redis.resume();
    mysql.resume();
    await inv.close();
    await redis.close();
    await mysql.close();
  });

  async function grpcStatus(address: string, service = ''): Promise<string> {
    const client = healthClient(address);
    try {
      return (await unary<{ status: string }>(client, 'Check', { service })).status;
    } finally {
      client.close();
    }
  }

  async function probe(path: string): Promise<{ code: number; body: string }> {
    const res = await fetch(`http://127.0.0.1:${inv.server.app.metricsPort}${path}`);
    return { code: res.status, body: await res.text() };
  }

  it('is SERVING, not degraded, while every dependency answers', async () => {
    assert.equal(await grpcStatus(inv.server.inventoryAddress), 'SERVING');
    assert.equal(await grpcStatus(inv.server.adminAddress), 'SERVING');
    const healthz = await probe('/healthz');
    assert.equal(healthz.code, 200);
    assert.deepEqual(JSON.parse(healthz.body).degraded, []);
    assert.equal(JSON.parse(healthz.body).status, 'SERVING');
    assert.equal((await probe('/readyz')).code, 200);
    assert.equal((await probe('/livez')).code, 200);
  });

  it('says NOT_SERVING on both ports when Redis is gone, and SERVING again when it is back', async () => {
    redis.pause('blackhole');
    await waitFor(async () => (await grpcStatus(inv.server.inventoryAddress)) === 'NOT_SERVING', 10_000, 'NOT_SERVING');
    assert.equal(await grpcStatus(inv.server.adminAddress), 'NOT_SERVING');
    assert.equal((await probe('/readyz')).code, 503);
    const healthz = await probe('/healthz');
    assert.equal(healthz.code, 503);
    assert.equal(JSON.parse(healthz.body).status, 'NOT_SERVING');
    assert.match((await probe('/metrics')).body, /^inventory_health_status\{service="inventory"\} 0$/m, 'the metric alerts read says so too');
    assert.equal((await probe('/livez')).code, 200, 'alive all the same');
    redis.resume();
    await waitFor(async () => (await grpcStatus(inv.server.inventoryAddress)) === 'SERVING', 10_000, 'SERVING again');
    await waitFor(async () => (await probe('/readyz')).code === 200, 5000, 'ready again');
    // Commands sent into the blackhole time out up to a command timeout after it healed, and may
    // open the node's breaker once more: let them, so the next test starts from a settled server.
    await new Promise((resolve) => setTimeout(resolve, inv.config.redisCommandTimeoutMs));
    await waitFor(async () => inv.services.shards.breakers.every((b) => b.state === 'closed') && (await grpcStatus(inv.server.inventoryAddress)) === 'SERVING', 10_000, 'settled');
  });

  it('stays SERVING but degraded when MySQL is gone, with AdminService NOT_SERVING', async () => {
    mysql.pause('blackhole');
    await waitFor(async () => (await grpcStatus(inv.server.adminAddress)) === 'NOT_SERVING', 10_000, 'admin NOT_SERVING');
    assert.equal(await grpcStatus(inv.server.inventoryAddress), 'SERVING', 'reservations go on');
    const healthz = await probe('/healthz');
    assert.equal(healthz.code, 200);
    const report = JSON.parse(healthz.body);
    assert.equal(report.status, 'DEGRADED');
    assert.match(report.degraded.join(' '), /MySQL down/);
    mysql.resume();
    await waitFor(async () => (await grpcStatus(inv.server.adminAddress)) === 'SERVING', 10_000, 'admin SERVING again');
    await waitFor(async () => JSON.parse((await probe('/healthz')).body).status === 'SERVING', 5000, 'not degraded');
  });
});
