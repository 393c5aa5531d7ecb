import assert from 'node:assert/strict';
import amqp from 'amqplib';
import type { RowDataPacket } from 'mysql2/promise';
import { StockMessage, StockMessageKind } from '../../gen/inventory/v1/stock_message.pb';
import { loadConfig } from '../../server/config';
import { stockConsumerOptions } from '../../server/mq-options';
import { testConfig, uniqueName } from '../helpers/config';
import { InventoryFixture, startInventory, waitFor } from '../helpers/inventory';
import { mqNames } from '../helpers/rabbitmq';
import { TcpProxy } from '../helpers/tcp-proxy';
import { FAULT_ENV, ON_HAND, noFailures, runScenario, servingThroughout, stockSkus } from './scenario';

/**
 * The other dependencies under steady load, each behind a TCP proxy of the test's own (the shared
 * stack's servers are never paused): etcd frozen for 30 s, MySQL stopped for 30 s, RabbitMQ gone
 * for a few seconds while warehouse messages arrive.
 */
describe('faults: etcd, MySQL, RabbitMQ', function () {
  const stack = loadConfig();

  /** The fixture with one dependency reached through `proxy`, closed (proxy healed first) afterwards. */
  async function behindProxy(tag: string, target: string, env: (address: string) => Record<string, string>, body: (inv: InventoryFixture, proxy: TcpProxy) => Promise<void>) {
    const proxy = await TcpProxy.start(target);
    const inv = await startInventory(tag, { ...FAULT_ENV, ...env(proxy.address) });
    try {
      await body(inv, proxy);
    } finally {
      proxy.resume();
      await inv.close();
      await proxy.close();
    }
  }

  it('etcd frozen for 30 s', async () => {
    const etcd = new URL(stack.etcdEndpoints[0]);
    await behindProxy('fetcd', etcd.host, (address) => ({ ETCD_ENDPOINTS: `${etcd.protocol}//${address}` }), async (inv, proxy) => {
      const skus = ['fe-a', 'fe-b'];
      await stockSkus(inv, skus);
      await runScenario({
        name: 'etcd frozen 30 s (proxy blackhole: nothing flows, nothing closes, like SIGSTOP)',
        inv,
        skus,
        faultMs: 30_000,
        inject: async () => proxy.pause('blackhole'),
        heal: async () => proxy.resume(),
        checks: { 'no call failed (routing from the registry snapshot)': noFailures, 'InventoryService SERVING throughout': servingThroughout },
      });
    });
  });

  it('MySQL stopped for 30 s', async () => {
    const mysql = new URL(testConfig(uniqueName('fmysql')).mysqlUrl);
    await behindProxy('fmysql', mysql.host, (address) => ({ MYSQL_URL: Object.assign(new URL(mysql), { host: address }).toString() }), async (inv, proxy) => {
      const skus = ['fy-a', 'fy-b'];
      await stockSkus(inv, skus);
      let waited = 0;
      await runScenario({
        name: 'MySQL stopped 30 s (proxy refuses every connection)',
        inv,
        skus,
        faultMs: 30_000,
        inject: async () => proxy.pause('reset'),
        async heal() {
          waited = (await inv.services.ledger.lag()).waiting;
          proxy.resume();
        },
        checks: {
          'no call failed (reservations go on)': noFailures,
          'InventoryService SERVING throughout': servingThroughout,
          'the ledger waited in Redis and caught up': () => assert.ok(waited > 0, 'ledger records waited while MySQL was down'),
        },
      });
    });
  });

  it('RabbitMQ gone for 5 s while warehouse messages arrive', async () => {
    const broker = new URL(stack.amqpUrl);
    const name = uniqueName('fmq');
    const queues = mqNames(name);
    const viaProxy = (address: string) => Object.assign(new URL(broker), { host: address }).toString();
    await behindProxy('fmq', broker.host, (address) => ({ MQ_CONSUMER: 'inline', AMQP_URL: viaProxy(address), ...queues }), async (inv, proxy) => {
      const skus = ['fq-a', 'fq-b'];
      await stockSkus(inv, skus);
      const topology = stockConsumerOptions(inv.config);
      // The warehouses publish straight to the broker; only the server's connections go through the proxy.
      const connection = await amqp.connect(stack.amqpUrl);
      const channel = await connection.createConfirmChannel();
      const published: string[] = [];
      const publish = async (running: () => boolean) => {
        while (running()) {
          const messageId = `${name}-${published.length}`;
          const body = StockMessage.toJSON(StockMessage.fromPartial({ messageId, skuId: skus[0], kind: StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT, quantity: 1, occurredAt: new Date() }));
          channel.publish(topology.exchange, 'stock.receipt', Buffer.from(JSON.stringify(body)), { contentType: 'application/json', persistent: true });
          await channel.waitForConfirms();
          published.push(messageId);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      const appliedOnce = async () => {
        const count = async () => {
          const [[row]] = await inv.services.mysql.query<RowDataPacket[]>("SELECT COUNT(*) AS n FROM stock_messages WHERE sku_id = ? AND outcome = 'applied'", [skus[0]]);
          return Number(row.n);
        };
        await waitFor(async () => (await count()) >= published.length && (await channel.checkQueue(topology.queue)).messageCount === 0, 30_000, 'every message consumed');
        assert.equal(await count(), published.length, 'each message applied once');
        assert.equal((await channel.checkQueue(topology.deadLetterQueue)).messageCount, 0, 'none dead-lettered');
        await inv.services.ledger.drain(30_000);
        const stock = (await inv.services.operator.stock([skus[0]])).get(skus[0])!;
        assert.equal(stock.onHand, ON_HAND + published.length, 'on hand grew by each receipt once');
      };
      try {
        await runScenario({
          name: `RabbitMQ gone 5 s (proxy resets the server's connections) while warehouse receipts arrive (~20/s)`,
          inv,
          skus,
          faultMs: 5000,
          alongside: publish,
          inject: async () => proxy.pause('reset'),
          heal: async () => proxy.resume(),
          checks: {
            'no call failed': noFailures,
            'every stock message applied exactly once': appliedOnce,
          },
        });
      } finally {
        for (const q of [topology.queue, topology.deadLetterQueue]) await channel.deleteQueue(q).catch(() => undefined);
        for (const e of [topology.exchange, topology.deadLetterExchange]) await channel.deleteExchange(e).catch(() => undefined);
        await connection.close();
      }
    });
  });
});
