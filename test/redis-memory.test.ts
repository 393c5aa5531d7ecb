import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import Redis from 'ioredis';
import { ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { parseMemoryInfo } from '../server/redis-memory';
import { expectCode, healthClient, unary } from './helpers/grpc';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';
import { LogLine, capturingLogger } from './helpers/logs';
import { RedisNode, startRedisNode } from './helpers/redis-node';

/**
 * Redis memory against a redis-server of the test's own with a 64 MB maxmemory (noeviction), filled
 * by the test: past REDIS_MEMORY_WARN_RATIO the gauges say so, one warning is logged and health is
 * degraded while Reserves go on; from REDIS_MEMORY_FULL_RATIO writes are refused and InventoryService
 * says NOT_SERVING; with the filler deleted it is SERVING again, with one info line.
 */
describe('redis memory', function () {
  this.timeout(60_000);
  const MAXMEMORY = 64 * 2 ** 20;
  let node: RedisNode;
  let inv: InventoryFixture;
  let filler: Redis;
  let lines: LogLine[];
  let fillers = 0;

  before(async () => {
    node = await startRedisNode({ maxmemory: String(MAXMEMORY) });
    const capture = capturingLogger();
    lines = capture.lines;
    inv = await startInventory('memory', { REDIS_NODES: node.address, REDIS_MEMORY_CHECK_MS: '100', HEALTH_INTERVAL_MS: '100' }, undefined, capture.logger);
    const [host, port] = node.address.split(':');
    filler = new Redis({ host, port: Number(port), maxRetriesPerRequest: 1 });
    await inv.stock('mem-sku', 100, 2);
  });
  after(async () => {
    filler?.disconnect();
    await inv?.close();
    await node?.stop();
  });

  /**
   * Writes junk until the node uses `ratio` of its maxmemory, in pieces that shrink near the mark or
   * when refused (a big value meets OOM early: Redis counts the request's own buffer); stops when
   * even the smallest is refused.
   */
  async function fillTo(ratio: number): Promise<void> {
    let size = 1 << 18;
    for (;;) {
      const { usedBytes, maxBytes } = parseMemoryInfo(await filler.info('memory'));
      if (usedBytes >= ratio * maxBytes) return;
      size = Math.max(64, Math.min(size, Math.floor((ratio * maxBytes - usedBytes) / 2)));
      try {
        await filler.set(`filler:${fillers++}`, Buffer.alloc(size, 'x'));
      } catch (err) {
        if (!/OOM/.test((err as Error).message)) throw err;
        if (size === 64) return;
        size = Math.max(64, size >> 2);
      }
    }
  }

  /** This node's value of each memory gauge, from the server's metrics registry. */
  async function gauges(): Promise<{ used: number; max: number; ratio: number }> {
    const value = async (name: string) => {
      const metric = await inv.metrics.registry.getSingleMetric(name)!.get();
      return metric.values.find((v) => v.labels.node === node.address)?.value ?? NaN;
    };
    const [used, max, ratio] = [await value('inventory_redis_used_bytes'), await value('inventory_redis_maxmemory_bytes'), await value('inventory_redis_memory_ratio')];
    return { used, max, ratio };
  }

  async function grpcHealth(): Promise<string> {
    const client = healthClient(inv.server.inventoryAddress);
    try {
      return (await unary<{ status: string }>(client, 'Check', { service: '' })).status;
    } finally {
      client.close();
    }
  }

  const healthz = async () => (await (await fetch(`http://127.0.0.1:${inv.server.app.metricsPort}/healthz`)).json()) as { status: string; degraded: string[] };
  const memoryLines = () => lines.filter((l) => l.node === node.address && typeof l.usedBytes === 'number');
  const reserved = async (orderId: string) => (await inv.reserve(orderId, [['mem-sku', 1]])).outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED;

  it('exports the used memory and the limit of the node, and logs nothing about them while below the warn ratio', async () => {
    const { used, max, ratio } = await gauges();
    assert.equal(max, MAXMEMORY);
    assert.ok(used > 0 && used < 0.5 * MAXMEMORY, `used ${used}`);
    assert.equal(ratio, used / max);
    assert.equal((await healthz()).status, 'SERVING');
    assert.deepEqual(memoryLines(), []);
  });

  it('past the warn ratio: the gauges show it, one warning says what to do, health is degraded and Reserves go on', async () => {
    await fillTo(0.85);
    await waitFor(async () => (await healthz()).status === 'DEGRADED', 5000, 'health DEGRADED');
    const { used, max, ratio } = await gauges();
    assert.ok(ratio >= 0.8 && ratio < 0.98, `ratio ${ratio}`);
    assert.ok(Math.abs(ratio - used / max) < 1e-9);
    assert.match((await healthz()).degraded.join('\n'), new RegExp(`redis ${node.address} past 80% of its maxmemory`));
    assert.equal(await grpcHealth(), 'SERVING');
    assert.ok(await reserved('mem-1'), 'degraded, not refusing');
    await new Promise((resolve) => setTimeout(resolve, 500)); // a few more checks: still one warning
    const logged = memoryLines();
    assert.equal(logged.length, 1, JSON.stringify(logged));
    const [warning] = logged;
    assert.equal(warning.level, 'warn');
    assert.equal(warning.maxmemoryBytes, MAXMEMORY);
    assert.ok((warning.usedBytes as number) >= 0.8 * MAXMEMORY);
    for (const advice of [/raise maxmemory/, /ORDER_RETENTION_SECONDS/, /inventory_forget_backlog_orders/]) assert.match(warning.msg, advice);
  });

  it('near full: InventoryService says NOT_SERVING, with an error log line; at the limit writes are refused', async () => {
    await fillTo(0.985);
    await waitFor(async () => (await grpcHealth()) === 'NOT_SERVING', 5000, 'NOT_SERVING');
    assert.ok((await gauges()).ratio >= 0.98);
    assert.equal((await fetch(`http://127.0.0.1:${inv.server.app.metricsPort}/readyz`)).status, 503);
    assert.match((await healthz()).degraded.join('\n'), /full \(maxmemory\), writes refused: nothing can be reserved/);
    await fillTo(1.5); // until Redis answers OOM: what NOT_SERVING warned of
    await expectCode(inv.reserve('mem-2', [['mem-sku', 1]]), status.UNAVAILABLE);
    assert.deepEqual(memoryLines().map((l) => l.level), ['warn', 'error']);
  });

  it('with the filler deleted: SERVING again, not degraded, with one info line', async () => {
    // One DEL (not UNLINK, which frees in the background): memory drops at once, between two checks.
    await filler.del(...Array.from({ length: fillers }, (_, i) => `filler:${i}`));
    await waitFor(async () => (await healthz()).status === 'SERVING', 5000, 'SERVING, not degraded');
    assert.equal(await grpcHealth(), 'SERVING');
    assert.ok((await gauges()).ratio < 0.8);
    assert.ok(await reserved('mem-3'));
    assert.deepEqual(memoryLines().map((l) => l.level), ['warn', 'error', 'info']);
  });
});
