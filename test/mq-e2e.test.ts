import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';
import amqp from 'amqplib';
import type { RowDataPacket } from 'mysql2/promise';
import { StockMessage, StockMessageKind } from '../gen/inventory/v1/stock_message.pb';
import { createLogger } from '../kernel/logger';
import { StockConsumer } from '../mq/consumer';
import { StockTopology } from '../mq/topology';
import { Config, loadConfig } from '../server/config';
import { createStockApplier } from '../server/mq-applier';
import { stockConsumerOptions } from '../server/mq-options';
import { uniqueName } from './helpers/config';
import { InventoryFixture, startInventory, stockApplierOf, waitFor } from './helpers/inventory';
import { mqNames } from './helpers/rabbitmq';
import { TcpProxy } from './helpers/tcp-proxy';

/**
 * Warehouse messages end to end: published to the stack's real RabbitMQ, consumed by the real
 * consumer, applied by the real applier to the real MySQL and Redis. Each test on its own exchanges
 * and queues, deleted afterwards.
 */
describe('warehouse messages end to end', function () {
  this.timeout(120_000);
  const name = uniqueName('mqe2e');
  let inv: InventoryFixture;
  let connection: amqp.ChannelModel;
  let channel: amqp.ConfirmChannel;
  const topologies: StockTopology[] = [];
  let n = 0;

  /** MQ_* names of one consumer's own exchanges and queues. */
  const names = (tag: string) => mqNames(`${name}.${tag}`);
  /** The inventory's configuration with another consumer's names (and other overrides). */
  const configWith = (env: Record<string, string>): Config => loadConfig({ ...envOf(inv.config), ...env });

  before(async () => {
    inv = await startInventory('mqe2e', { MQ_CONSUMER: 'inline', ...names('inline') });
    topologies.push(stockConsumerOptions(inv.config));
    connection = await amqp.connect(inv.config.amqpUrl);
    channel = await connection.createConfirmChannel();
  });
  after(async () => {
    await inv.close();
    for (const t of topologies) {
      for (const q of [t.queue, t.deadLetterQueue]) await channel.deleteQueue(q).catch(() => undefined);
      for (const e of [t.exchange, t.deadLetterExchange]) await channel.deleteExchange(e).catch(() => undefined);
    }
    await connection.close();
  });

  async function publish(topology: StockTopology, kind: StockMessageKind, sku: string, quantity: number, messageId = `${name}-${++n}`): Promise<string> {
    const body = StockMessage.toJSON(StockMessage.fromPartial({ messageId, skuId: sku, kind, quantity, occurredAt: new Date() }));
    channel.publish(topology.exchange, `stock.${StockMessageKind[kind].replace('STOCK_MESSAGE_KIND_', '').toLowerCase()}`, Buffer.from(JSON.stringify(body)), {
      contentType: 'application/json',
      persistent: true,
    });
    await channel.waitForConfirms();
    return messageId;
  }

  async function applied(sku: string): Promise<number> {
    const [[row]] = await inv.services.mysql.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM stock_messages WHERE sku_id = ? AND outcome = 'applied'", [sku]);
    return Number(row.n);
  }

  async function onHand(sku: string): Promise<number> {
    return (await inv.services.operator.stock([sku])).get(sku)!.onHand;
  }

  async function queueDepth(queue: string): Promise<number> {
    return (await channel.checkQueue(queue)).messageCount;
  }

  it('a RECEIPT of 30 shows in GetStock as +30 on_hand and +30 base within a second', async () => {
    await inv.services.operator.setStock('e2e-a-set', 'e2e-a', 100, 'count');
    const published = Date.now();
    await publish(topologies[0], StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT, 'e2e-a', 30);
    await waitFor(async () => (await inv.getStock('e2e-a')).stock[0].onHand === 130, 1000, 'GetStock to show the receipt');
    const stock = (await inv.getStock('e2e-a')).stock[0];
    assert.deepEqual([stock.onHand, stock.base], [130, 130]);
    assert.ok(Date.now() - published < 1000);
  });

  it('applies 1,000 messages exactly once while its connection to RabbitMQ is cut mid-stream', async () => {
    // The consumer reaches RabbitMQ through a proxy the test cuts (as a broker restart or a network
    // fault would): what it had not acknowledged returns to the queue and is delivered again.
    const broker = new URL(inv.config.amqpUrl);
    const proxy = await TcpProxy.start(broker.host);
    const viaProxy = new URL(inv.config.amqpUrl);
    viaProxy.host = proxy.address;
    const config = configWith({ ...names('cut'), AMQP_URL: viaProxy.toString() });
    const topology = stockConsumerOptions(config);
    topologies.push(topology);
    await inv.services.operator.setStock('e2e-b-set', 'e2e-b', 0, 'count');
    const consumer = new StockConsumer(
      stockConsumerOptions(config),
      stockApplierOf(inv),
      createLogger('silent'),
    );
    await consumer.start();
    try {
      const ids = Array.from({ length: 1000 }, (_, i) => `${name}-b-${i}`);
      for (const id of ids) channel.publish(topology.exchange, 'stock.receipt', receipt('e2e-b', id), { contentType: 'application/json', persistent: true });
      await channel.waitForConfirms();
      await waitFor(async () => (await applied('e2e-b')) >= 200, 30_000, '200 applied');
      proxy.pause('reset');
      await waitFor(() => !consumer.stats().consuming, 10_000, 'the consumer to notice');
      proxy.resume();
      // Some again, as a warehouse retrying on a lost confirm would.
      for (const id of ids.slice(0, 50)) channel.publish(topology.exchange, 'stock.receipt', receipt('e2e-b', id), { contentType: 'application/json' });
      await channel.waitForConfirms();
      // Every one of the 1,050 deliveries settled: applied once, or found applied before.
      const settled = () => consumer.stats().applied + consumer.stats().duplicates;
      await waitFor(async () => settled() >= 1050 && (await queueDepth(topology.queue)) === 0, 60_000, 'all settled');
      assert.equal(await applied('e2e-b'), 1000);
      assert.equal(await onHand('e2e-b'), 1000, 'each unit once');
      assert.equal(consumer.stats().applied, 1000, JSON.stringify(consumer.stats()));
      assert.ok(consumer.stats().connections >= 2, 'it reconnected');
      assert.equal(await queueDepth(topology.deadLetterQueue), 0);
    } finally {
      proxy.resume();
      await consumer.stop();
      await proxy.close();
    }
  });

  it('two consumers on one queue apply each message once', async () => {
    const config = configWith(names('two'));
    const topology = stockConsumerOptions(config);
    topologies.push(topology);
    await inv.services.operator.setStock('e2e-e-set', 'e2e-e', 0, 'count');
    const consumers = [1, 2].map(
      () => new StockConsumer(topology, stockApplierOf(inv), createLogger('silent')),
    );
    for (const c of consumers) await c.start();
    try {
      // 300 messages, each published twice (a warehouse retrying): the two consumers race on the copies.
      for (let i = 0; i < 300; i++) {
        for (let copy = 0; copy < 2; copy++) channel.publish(topology.exchange, 'stock.receipt', receipt('e2e-e', `${name}-e-${i}`), { contentType: 'application/json' });
      }
      await channel.waitForConfirms();
      const settled = () => consumers.reduce((n, c) => n + c.stats().applied + c.stats().duplicates, 0);
      await waitFor(() => settled() === 600, 60_000, 'every copy settled');
      assert.ok(consumers.every((c) => c.stats().applied > 0), 'both consumers took part');
      assert.equal(consumers.reduce((n, c) => n + c.stats().applied, 0), 300);
      assert.equal(await onHand('e2e-e'), 300);
    } finally {
      for (const c of consumers) await c.stop();
    }
  });

  it('changes nothing when a consumer SIGKILLed between the MySQL commit and the ack gets the message again', async () => {
    const env = names('kill');
    const topology = stockConsumerOptions(configWith(env));
    topologies.push(topology);
    await inv.services.operator.setStock('e2e-c-set', 'e2e-c', 10, 'count');
    const child = spawn(process.execPath, [path.join(__dirname, 'helpers', 'mq-child.js')], {
      env: { ...process.env, ...envOf(inv.config), ...env, MQ_STALL_MESSAGE: `${name}-kill`, LOG_LEVEL: 'silent' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const lines = createInterface({ input: child.stdout! });
    const seen = (event: string) => new Promise<void>((resolve) => lines.on('line', (l) => l.includes(`"event":"${event}"`) && resolve()));
    const started = seen('started');
    const committed = seen('committed');
    await started;
    await publish(topology, StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT, 'e2e-c', 7, `${name}-kill`);
    await committed;
    child.kill('SIGKILL');
    await new Promise((resolve) => child.once('exit', resolve));
    assert.equal(await onHand('e2e-c'), 17, 'applied once, not acknowledged');
    const again = new StockConsumer(topology, stockApplierOf(inv), createLogger('silent'));
    await again.start();
    try {
      await waitFor(() => again.stats().duplicates === 1, 30_000, 'the redelivery');
      assert.equal(await onHand('e2e-c'), 17, 'the redelivery changed nothing');
      assert.equal(await queueDepth(topology.queue), 0);
    } finally {
      await again.stop();
    }
  });

  it('loses and dead-letters nothing while MySQL is down for 20 s, and applies everything once it is back', async () => {
    const target = new URL(inv.config.mysqlUrl);
    const proxy = await TcpProxy.start(target.host);
    const viaProxy = new URL(inv.config.mysqlUrl);
    viaProxy.host = proxy.address;
    const config = configWith({ ...names('outage'), MYSQL_URL: viaProxy.toString() });
    const topology = stockConsumerOptions(config);
    topologies.push(topology);
    await inv.services.operator.setStock('e2e-d-set', 'e2e-d', 0, 'count');
    const { applier, close } = await createStockApplier(config, createLogger('silent'));
    const consumer = new StockConsumer(topology, applier, createLogger('silent'));
    await consumer.start();
    try {
      await publish(topology, StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT, 'e2e-d', 1);
      await waitFor(async () => (await onHand('e2e-d')) === 1, 5000, 'the first message');
      proxy.pause('reset');
      for (let i = 0; i < 40; i++) await publish(topology, StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT, 'e2e-d', 1);
      await waitFor(() => consumer.stats().paused, 10_000, 'the consumer to pause');
      await new Promise((resolve) => setTimeout(resolve, 20_000));
      assert.equal(await onHand('e2e-d'), 1, 'nothing applied while MySQL is away');
      assert.equal(await queueDepth(topology.deadLetterQueue), 0, 'nothing dead-lettered');
      assert.equal(consumer.stats().consuming, false, 'not pulling');
      proxy.resume();
      await waitFor(async () => (await onHand('e2e-d')) === 41, 30_000, 'all applied once MySQL is back');
      assert.equal(await queueDepth(topology.queue), 0);
      assert.equal(await queueDepth(topology.deadLetterQueue), 0);
    } finally {
      proxy.resume();
      await consumer.stop();
      await close();
      await proxy.close();
    }
  });

  function receipt(sku: string, messageId: string): Buffer {
    return Buffer.from(JSON.stringify(StockMessage.toJSON(StockMessage.fromPartial({ messageId, skuId: sku, kind: StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT, quantity: 1, occurredAt: new Date() }))));
  }
});

/** The environment that makes the server (or a child) use a test configuration's stores. */
function envOf(config: Config): Record<string, string> {
  return {
    REDIS_NODES: config.redisNodes.join(','),
    REDIS_PREFIX: config.redisPrefix,
    REDIS_SHARDS: String(config.redisShards),
    ETCD_ENDPOINTS: config.etcdEndpoints.join(','),
    ETCD_NAMESPACE: config.etcdNamespace,
    MYSQL_URL: config.mysqlUrl,
    AMQP_URL: config.amqpUrl,
  };
}

