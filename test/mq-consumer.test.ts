import assert from 'node:assert/strict';
import os from 'node:os';
import amqp, { ChannelModel, ConfirmChannel } from 'amqplib';
import { StockConsumer, StockConsumerOptions } from '../mq/consumer';
import { routingKey } from '../mq/message';
import { ApplyOutcome, StockApplier, StockUpdate, StockUpdateKind } from '../mq/types';
import { createLogger } from '../kernel/logger';
import { loadConfig } from '../server/config';
import { uniqueName } from './helpers/config';
import { waitFor } from './helpers/inventory';
import { closeConnectionsNamed, rabbitmqctlWorks } from './helpers/rabbitmq';
import { TcpProxy } from './helpers/tcp-proxy';

/**
 * The stock consumer against the stack's real RabbitMQ, with an applier of our own that records
 * what it applied and can fail like a MySQL that is down, or refuse a message. Every test has its
 * own exchanges and queues, deleted afterwards.
 */

/** An in-memory StockApplier: applies each message id once, as the real one does by MySQL's unique key. */
class TestApplier implements StockApplier {
  /** Times apply ran per message id (applied or skipped). */
  readonly seen = new Map<string, number>();
  /** Message ids in the order they were first applied. */
  readonly order: string[] = [];
  /** Message ids to refuse, with the reason. */
  readonly refuse = new Map<string, string>();
  down = false;
  calls = 0;
  readyCalls = 0;
  private held: { at: number; reached: () => void; release: Promise<void> } | undefined;

  /**
   * Holds the apply that comes after `at` messages were applied until `release` is called, so a
   * test can act while one message is in the middle of being applied. Resolves once it is held.
   */
  holdAfter(at: number): { held: Promise<void>; release: () => void } {
    let release!: () => void;
    let reached!: () => void;
    const held = new Promise<void>((resolve) => (reached = resolve));
    this.held = { at, reached, release: new Promise<void>((resolve) => (release = resolve)) };
    return { held, release };
  }

  async apply(update: StockUpdate): Promise<ApplyOutcome> {
    this.calls += 1;
    const held = this.held;
    if (held && this.seen.size === held.at && !this.seen.has(update.messageId)) {
      this.held = undefined;
      held.reached();
      await held.release;
    }
    if (this.down) throw new Error('connect ECONNREFUSED (MySQL down, as the test says)');
    const reason = this.refuse.get(update.messageId);
    if (reason) return { kind: 'dead', reason };
    const times = this.seen.get(update.messageId) ?? 0;
    this.seen.set(update.messageId, times + 1);
    if (times === 0) this.order.push(update.messageId);
    return times === 0 ? { kind: 'applied' } : { kind: 'skipped', why: 'duplicate' };
  }

  async ready(): Promise<boolean> {
    this.readyCalls += 1;
    return !this.down;
  }

  /** Distinct message ids applied. */
  get applied(): number {
    return this.seen.size;
  }
}

const KIND_JSON: Record<StockUpdateKind, string> = {
  RECEIPT: 'STOCK_MESSAGE_KIND_RECEIPT',
  LOSS: 'STOCK_MESSAGE_KIND_LOSS',
  DAMAGE: 'STOCK_MESSAGE_KIND_DAMAGE',
  SHIPMENT: 'STOCK_MESSAGE_KIND_SHIPMENT',
  RETURN: 'STOCK_MESSAGE_KIND_RETURN',
  COUNT: 'STOCK_MESSAGE_KIND_COUNT',
};

function stockMessage(messageId: string, kind: StockUpdateKind = 'RECEIPT', quantity = 5): Record<string, unknown> {
  return {
    messageId,
    skuId: 'mq-sku',
    kind: KIND_JSON[kind],
    quantity: String(quantity),
    occurredAt: new Date().toISOString(),
    warehouseId: 'wh-1',
    ...(kind === 'SHIPMENT' ? { orderId: 'o-1' } : {}),
  };
}

describe('stock consumer (RabbitMQ)', function () {
  const base = uniqueName('mq');
  const url = loadConfig().amqpUrl;
  const logger = createLogger((process.env.TEST_LOG_LEVEL as 'silent' | undefined) ?? 'silent');
  let admin: ChannelModel;
  let publisher: ConfirmChannel;
  let useRabbitmqctl = false;
  let consumer: StockConsumer | undefined;
  let proxy: TcpProxy | undefined;
  let names: Pick<StockConsumerOptions, 'exchange' | 'queue' | 'deadLetterExchange' | 'deadLetterQueue'>;
  let testNo = 0;

  before(async () => {
    admin = await amqp.connect(url);
    admin.on('error', () => undefined);
    publisher = await admin.createConfirmChannel();
    useRabbitmqctl = await rabbitmqctlWorks();
  });
  after(async () => {
    await admin?.close();
  });

  beforeEach(() => {
    testNo += 1;
    const name = `${base}.${testNo}`;
    names = { exchange: `${name}.stock`, queue: `${name}.updates`, deadLetterExchange: `${name}.dead`, deadLetterQueue: `${name}.updates.dead` };
  });
  afterEach(async () => {
    await consumer?.stop();
    consumer = undefined;
    await proxy?.close();
    proxy = undefined;
    const ch = await admin.createChannel();
    ch.on('error', () => undefined);
    await ch.deleteQueue(names.queue);
    await ch.deleteQueue(names.deadLetterQueue);
    await ch.deleteExchange(names.exchange);
    await ch.deleteExchange(names.deadLetterExchange);
    await ch.close();
  });

  function startConsumer(applier: StockApplier, overrides: Partial<StockConsumerOptions> = {}): Promise<void> {
    consumer = new StockConsumer({ url, ...names, prefetch: 64, backoffMinMs: 20, backoffMaxMs: 300, ...overrides }, applier, logger);
    return consumer.start();
  }

  async function publish(body: Buffer | Record<string, unknown>, key = routingKey('RECEIPT')): Promise<void> {
    const raw = Buffer.isBuffer(body);
    const content = raw ? body : Buffer.from(JSON.stringify(body));
    publisher.publish(names.exchange, key, content, { contentType: 'application/json', persistent: true, messageId: raw ? 'raw' : String(body.messageId) });
    await publisher.waitForConfirms();
  }

  /** Ready messages and consumers of a queue (passive declare: throws if the queue is gone). */
  async function queueState(queue: string): Promise<{ messageCount: number; consumerCount: number }> {
    const ch = await admin.createChannel();
    try {
      return await ch.checkQueue(queue);
    } finally {
      await ch.close();
    }
  }

  /**
   * Waits until the consumer has caught up: nothing ready in the queue and no delivery taken for
   * 300 ms (so nothing waits in the client either).
   */
  async function caughtUp(timeoutMs: number): Promise<void> {
    let last = -1;
    let since = Date.now();
    await waitFor(async () => {
      const delivered = consumer!.stats().delivered;
      if (delivered !== last) [last, since] = [delivered, Date.now()];
      return Date.now() - since >= 300 && (await queueState(names.queue)).messageCount === 0;
    }, timeoutMs, 'the consumer caught up');
  }

  /**
   * Stops the consumer (its unacked deliveries go back) and answers what is left in the queue: what
   * was never acked. A quorum queue applies acks through its log, so its count may lag a moment:
   * read until it is 0, for 3 s at most.
   */
  async function leftInQueueAfterStop(): Promise<number> {
    await consumer!.stop();
    let left = (await queueState(names.queue)).messageCount;
    for (const until = Date.now() + 3000; left > 0 && Date.now() < until; left = (await queueState(names.queue)).messageCount) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return left;
  }

  it('applies messages of different SKUs at once, and each SKU’s one after another in delivery order', async () => {
    const applier = new TestApplier();
    const inFlight = new Map<string, number>();
    let peak = 0;
    let overlapSameSku = false;
    const perSku = new Map<string, string[]>();
    const slow: StockApplier = {
      ready: () => applier.ready(),
      async apply(update) {
        const now = (inFlight.get(update.sku) ?? 0) + 1;
        if (now > 1) overlapSameSku = true;
        inFlight.set(update.sku, now);
        peak = Math.max(peak, [...inFlight.values()].reduce((a, b) => a + b, 0));
        await new Promise((resolve) => setTimeout(resolve, 5));
        inFlight.set(update.sku, inFlight.get(update.sku)! - 1);
        perSku.set(update.sku, [...(perSku.get(update.sku) ?? []), update.messageId]);
        return applier.apply(update);
      },
    };
    await startConsumer(slow, { concurrency: 8 });
    const skus = ['lane-a', 'lane-b', 'lane-c', 'lane-d'];
    const sent = new Map<string, string[]>();
    for (let i = 0; i < 80; i++) {
      const sku = skus[i % skus.length];
      const id = `lane-${i}`;
      sent.set(sku, [...(sent.get(sku) ?? []), id]);
      publisher.publish(names.exchange, routingKey('RECEIPT'), Buffer.from(JSON.stringify({ ...stockMessage(id), skuId: sku })), { contentType: 'application/json' });
    }
    await publisher.waitForConfirms();
    await waitFor(() => applier.applied === 80, 20_000, 'all applied');
    assert.deepEqual(new Map([...perSku].sort()), new Map([...sent].sort()), 'each SKU in delivery order');
    assert.equal(overlapSameSku, false, 'never two of one SKU at once');
    assert.ok(peak > 1 && peak <= 4, `${peak} at once (4 SKUs)`);
  });

  it('declares the topology, applies every message in order of delivery and acks it', async () => {
    const applier = new TestApplier();
    await startConsumer(applier);
    assert.equal(consumer!.stats().consuming, true);
    const kinds: StockUpdateKind[] = ['RECEIPT', 'LOSS', 'DAMAGE', 'SHIPMENT', 'RETURN', 'COUNT'];
    const ids = Array.from({ length: 60 }, (_, i) => `flow-${i}`);
    for (const [i, id] of ids.entries()) {
      const kind = kinds[i % kinds.length];
      await publish(stockMessage(id, kind), routingKey(kind));
    }
    await waitFor(() => applier.applied === 60, 10_000, '60 messages applied');
    assert.deepEqual(applier.order, ids, 'one at a time, in the order published');
    // A redelivered message is skipped and acked too.
    await publish(stockMessage('flow-0'));
    await waitFor(() => consumer!.stats().duplicates === 1, 5000, 'the duplicate skipped');

    assert.equal(await leftInQueueAfterStop(), 0, 'every message was acked');
    const stats = consumer!.stats();
    assert.equal(stats.applied, 60);
    assert.equal(stats.connections, 1, 'no channel error (an ack twice or on a wrong tag closes the channel)');
    assert.deepEqual(stats.deadLettered, { malformed: 0, rejected: 0 });
    assert.equal((await queueState(names.deadLetterQueue)).messageCount, 0);
  });

  it('dead-letters a malformed message and a refused one with x-inventory-reason, and goes on', async () => {
    const applier = new TestApplier();
    applier.refuse.set('dl-unknown', 'unknown SKU mq-sku');
    await startConsumer(applier);
    await publish(Buffer.from('{not json'));
    await publish({ ...stockMessage('dl-zero'), quantity: '0' });
    await publish(stockMessage('dl-unknown'));
    await publish(stockMessage('dl-good'));
    await waitFor(() => applier.seen.has('dl-good'), 10_000, 'the good message applied');
    await waitFor(() => consumer!.stats().deadLettered.rejected === 1, 5000, 'the refused message dead-lettered');

    const ch = await admin.createChannel();
    const letters: amqp.GetMessage[] = [];
    for (let i = 0; i < 3; i++) {
      const letter = await ch.get(names.deadLetterQueue, { noAck: true });
      assert.ok(letter, `dead letter ${i + 1} of 3 is in the dead-letter queue`);
      letters.push(letter);
    }
    assert.equal(await ch.get(names.deadLetterQueue, { noAck: true }), false, 'and no more');
    await ch.close();
    const headers = letters.map((l) => l.properties.headers ?? {});
    assert.deepEqual(
      headers.map((h) => [h['x-inventory-reason-class'], h['x-inventory-reason']]),
      [
        ['malformed', 'the body is not JSON'],
        ['malformed', 'quantity must be a whole number from 1 to 1000000000'],
        ['rejected', 'unknown SKU mq-sku'],
      ],
    );
    assert.equal(letters[0].content.toString(), '{not json', 'the original body');
    assert.equal(letters[2].properties.messageId, 'dl-unknown', 'and properties');
    assert.equal(headers[2]['x-inventory-original-routing-key'], 'stock.receipt');

    assert.equal(await leftInQueueAfterStop(), 0, 'the dead letters were acked in the work queue');
    assert.deepEqual(consumer!.stats().deadLettered, { malformed: 2, rejected: 1 });
    assert.equal(consumer!.stats().connections, 1);
  });

  it('while apply fails, acks and dead-letters nothing and stops pulling; applies everything once ready', async () => {
    const applier = new TestApplier();
    await startConsumer(applier);
    for (let i = 0; i < 5; i++) await publish(stockMessage(`up-${i}`));
    await waitFor(() => applier.applied === 5, 5000, 'the first 5 applied (the consumer at its full prefetch)');
    applier.down = true;
    for (let i = 0; i < 20; i++) await publish(stockMessage(`down-${i}`));
    await waitFor(() => consumer!.stats().paused, 5000, 'the consumer paused');
    // Cancelled and every delivery nacked back: all 20 ready in the queue, no consumer.
    await waitFor(async () => {
      const state = await queueState(names.queue);
      return state.consumerCount === 0 && state.messageCount === 20;
    }, 5000, 'the consumer cancelled and all 20 messages back in the queue');
    const calls = applier.calls;
    await waitFor(() => applier.readyCalls >= 3, 5000, 'ready() polled');
    assert.equal(applier.calls, calls, 'nothing is applied while ready() says no');
    const state = await queueState(names.queue);
    assert.deepEqual([state.messageCount, state.consumerCount], [20, 0], 'still nothing taken');
    assert.equal((await queueState(names.deadLetterQueue)).messageCount, 0, 'nothing dead-lettered');
    assert.equal(consumer!.stats().outages, 1);

    applier.down = false;
    await waitFor(() => applier.applied === 25, 10_000, 'all 20 applied once MySQL is back');
    await waitFor(() => !consumer!.stats().paused, 5000, 'the outage over');
    // One consumer again (the narrow first one's cancel may reach the queue's log a moment later).
    await waitFor(async () => (await queueState(names.queue)).consumerCount === 1, 3000, 'one consumer again');
    assert.equal(await leftInQueueAfterStop(), 0);
    assert.equal((await queueState(names.deadLetterQueue)).messageCount, 0);
    assert.equal(consumer!.stats().connections, 1, 'the pause kept the connection');
  });

  it('loses nothing when RabbitMQ closes the connection mid-stream of 1,000 messages', async () => {
    const applier = new TestApplier();
    let consumerUrl = url;
    if (!useRabbitmqctl) {
      // The stack reuses a broker we cannot run rabbitmqctl against: cut the TCP connection instead.
      proxy = await TcpProxy.start(new URL(url).host);
      const viaProxy = new URL(url);
      viaProxy.host = proxy.address;
      consumerUrl = viaProxy.toString();
    }
    await startConsumer(applier, { url: consumerUrl });
    // The 301st message is held in the middle of its apply while the connection is cut.
    const hold = applier.holdAfter(300);
    const total = 1000;
    for (let i = 0; i < total; i++) {
      publisher.publish(names.exchange, routingKey('RECEIPT'), Buffer.from(JSON.stringify(stockMessage(`cut-${i}`))), { contentType: 'application/json', persistent: true });
    }
    await publisher.waitForConfirms();

    await hold.held;
    if (proxy) {
      proxy.pause('reset');
      await new Promise((resolve) => setTimeout(resolve, 200));
      proxy.resume();
    } else {
      // This process's consumer only: other test processes may share the broker.
      const ours = `inventory-stock-consumer:${os.hostname()}:${process.pid}`;
      assert.ok((await closeConnectionsNamed(ours, 'mq-consumer test')) >= 1, 'the broker closed the consumer connection');
    }
    hold.release();
    await waitFor(() => consumer!.stats().connections >= 2, 10_000, 'a reconnection');
    await waitFor(() => applier.applied === total, 20_000, 'all 1,000 messages applied');
    // Messages applied before the cut whose acks it lost come again: wait for them too.
    await caughtUp(10_000);

    assert.equal(await leftInQueueAfterStop(), 0, 'the queue ends empty');
    assert.equal((await queueState(names.deadLetterQueue)).messageCount, 0, 'nothing dead-lettered');
    const stats = consumer!.stats();
    assert.equal(stats.applied, total);
    // The message applied across the cut could not be acked on the dead channel: it came again
    // and was skipped (at least once), as did nothing else twice without a reason.
    assert.ok(stats.duplicates >= 1, 'the message applied during the cut was delivered again');
    assert.equal(stats.connections, 2, 'one reconnection: no ack on a wrong channel or tag closed a channel since');
    assert.equal(stats.delivered, stats.applied + stats.duplicates);
  });

  it('re-declares and goes on when the broker cancels the consumer (its queue deleted)', async () => {
    const applier = new TestApplier();
    await startConsumer(applier);
    for (let i = 0; i < 5; i++) await publish(stockMessage(`before-${i}`));
    await waitFor(() => applier.applied === 5, 5000, 'the first 5 applied');

    let consumed = 0;
    consumer!.on('consuming', () => (consumed += 1));
    const ch = await admin.createChannel();
    await ch.deleteQueue(names.queue);
    await ch.close();
    await waitFor(() => consumed >= 1, 10_000, 'a new consumer on a re-declared queue');
    assert.ok(consumer!.stats().connections >= 2, 'on a new connection');

    for (let i = 0; i < 5; i++) await publish(stockMessage(`after-${i}`));
    await waitFor(() => applier.applied === 10, 5000, 'the next 5 applied');
    assert.equal(await leftInQueueAfterStop(), 0);
  });
});

describe('stock consumer configuration (MQ_*)', () => {
  it('has the documented defaults and refuses a dead-letter exchange or queue that is the work one', () => {
    const config = loadConfig({});
    assert.deepEqual(
      [config.mqConsumer, config.mqStockExchange, config.mqStockQueue, config.mqDeadLetterExchange, config.mqDeadLetterQueue, config.mqPrefetch],
      ['process', 'inventory.stock', 'inventory.stock-updates', 'inventory.stock.dead', 'inventory.stock-updates.dead', 64],
    );
    assert.throws(() => loadConfig({ MQ_DEAD_LETTER_EXCHANGE: 'inventory.stock' }), /MQ_DEAD_LETTER_EXCHANGE/);
    assert.throws(() => loadConfig({ MQ_DEAD_LETTER_QUEUE: 'inventory.stock-updates' }), /MQ_DEAD_LETTER_QUEUE/);
    assert.throws(() => loadConfig({ MQ_STOCK_QUEUE: 'amq.stock' }), /MQ_STOCK_QUEUE/);
    assert.throws(() => loadConfig({ MQ_CONSUMER: 'thread' }), /MQ_CONSUMER/);
    assert.throws(() => loadConfig({ MQ_PREFETCH: '0' }), /MQ_PREFETCH/);
  });
});
