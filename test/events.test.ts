import assert from 'node:assert/strict';
import amqp, { Channel, ChannelModel, ConsumeMessage } from 'amqplib';
import { TopUp } from '../allocator/topup';
import { ReleaseReason, ReservationState, ReserveOutcome } from '../gen/inventory/v1/inventory.pb';
import { InventoryEvent } from '../kernel/events';
import { createLogger } from '../kernel/logger';
import { EventPublisher, EventPublisherOptions } from '../mq/events';
import { newestPartitionId } from '../store/partitions';
import { readStock } from '../store/stock';
import { InventoryFixture, startInventory, waitFor } from './helpers/inventory';

/**
 * Events out (docs/events.md), against the stack's Redis, MySQL and RabbitMQ: each change is made
 * with no publisher running (so the event can only come from an outbox written with the change),
 * then a publisher on a private exchange publishes it to a private queue the test reads.
 */

interface Received {
  readonly routingKey: string;
  readonly properties: ConsumeMessage['properties'];
  readonly event: InventoryEvent;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('events out (outboxes to RabbitMQ)', function () {
  this.timeout(30_000);
  const logger = createLogger((process.env.TEST_LOG_LEVEL as 'silent' | undefined) ?? 'silent');
  let inv: InventoryFixture;
  let conn: ChannelModel;
  let channel: Channel;
  let exchange: string;
  const received: Received[] = [];
  const running: EventPublisher[] = [];

  before(async () => {
    inv = await startInventory('events');
    exchange = `${inv.config.redisPrefix}.events`;
    conn = await amqp.connect(inv.config.amqpUrl);
    channel = await conn.createChannel();
    await channel.assertExchange(exchange, 'topic', { durable: true });
    const { queue } = await channel.assertQueue('', { exclusive: true });
    await channel.bindQueue(queue, exchange, '#');
    await channel.consume(
      queue,
      (m) => {
        if (m) received.push({ routingKey: m.fields.routingKey, properties: m.properties, event: JSON.parse(m.content.toString()) as InventoryEvent });
      },
      { noAck: true },
    );
  });

  afterEach(async () => {
    await Promise.all(running.splice(0).map((p) => p.stop()));
  });

  after(async () => {
    await channel?.deleteExchange(exchange).catch(() => undefined);
    await conn?.close().catch(() => undefined);
    await inv?.close();
  });

  function publisher(extra: Partial<EventPublisherOptions> = {}): EventPublisher {
    const p = new EventPublisher(
      { url: inv.config.amqpUrl, exchange, pollIntervalMs: 50, claimIdleMs: 500, backoffMaxMs: 500, ...extra },
      inv.services.shards,
      inv.services.mysql,
      logger,
    );
    running.push(p);
    return p;
  }

  const copies = (id: string) => received.filter((r) => r.event.id === id);
  const ofSku = (type: string, sku: string) => received.filter((r) => r.event.type === type && r.event.sku === sku);

  async function arrived(id: string, count = 1): Promise<Received> {
    await waitFor(() => copies(id).length >= count, 10_000, `${count} deliveries of ${id}`);
    return copies(id)[0];
  }

  /** Waits until every outbox is empty, and a little longer for deliveries on their way. */
  async function drained(p: EventPublisher): Promise<void> {
    await waitFor(async () => {
      const b = await p.backlog();
      return b.redis === 0 && b.mysql === 0;
    }, 10_000, 'empty outboxes');
    await sleep(200);
  }

  async function sellOut(sku: string, units: number, tag: string): Promise<void> {
    for (let i = 0; i < units; i++) {
      const res = await inv.reserve(`${tag}-${i}`, [[sku, 1]]);
      assert.ok(res.reservation, `unit ${i} of ${sku} sold`);
    }
  }

  it('hold.expired: once per hold that expires, from the outbox written when the sweeper expired it', async () => {
    await inv.stock('exp-sku', 10, 1);
    await inv.reserve('exp-1', [['exp-sku', 2]], { ttlSeconds: 1, userId: 'buyer-1' });
    await inv.reserve('exp-2', [['exp-sku', 1]], { ttlSeconds: 1 });
    await inv.release('exp-2', ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT); // released, never expires
    await sleep(1100);
    await inv.services.sweeper.sweep();
    await inv.services.sweeper.sweep();
    assert.equal((await inv.getReservation('exp-1')).reservation?.state, ReservationState.RESERVATION_STATE_EXPIRED);

    const p = publisher();
    await p.start();
    const got = await arrived('hold.expired:exp-1');
    await drained(p);
    assert.equal(copies('hold.expired:exp-1').length, 1);
    assert.equal(copies('hold.expired:exp-2').length, 0, 'a cancelled hold is no expiry');
    assert.equal(got.routingKey, 'hold.expired');
    assert.equal(got.properties.contentType, 'application/json');
    assert.equal(got.properties.messageId, 'hold.expired:exp-1');
    assert.equal(got.properties.type, 'hold.expired');
    assert.equal(typeof got.properties.timestamp, 'number');
    assert.equal(got.event.type, 'hold.expired');
    assert.equal(got.event.sku, 'exp-sku');
    assert.ok(Math.abs(Date.parse(got.event.occurredAt) - Date.now()) < 30_000, got.event.occurredAt);
    assert.equal(got.event.data.orderId, 'exp-1');
    assert.equal(got.event.data.userId, 'buyer-1');
    assert.deepEqual(got.event.data.items, { 'exp-sku': 2 });
  });

  it('partition.exhausted: once per partition sold out, recorded by the retire', async () => {
    const [part] = await inv.stock('part-sku', 3, 1);
    await inv.reserve('part-1', [['part-sku', 3]]);
    await waitFor(() => inv.services.cache.partitions('part-sku').length === 0, 5000, 'the partition retired');

    const p = publisher();
    await p.start();
    const got = await arrived(`partition.exhausted:${part.partitionId}`);
    await drained(p);
    assert.equal(copies(`partition.exhausted:${part.partitionId}`).length, 1);
    assert.equal(got.event.sku, 'part-sku');
    assert.deepEqual(got.event.data, { partitionId: part.partitionId, capacity: 3, epoch: part.epoch });
  });

  it('stock.shortfall: once per loss that base and pool could not cover, recorded in its transaction', async () => {
    const op = inv.services.operator;
    await op.setStock('sf-set', 'sf-sku', 5, 'stock-take');
    await op.preallocate('sf-pre', 'sf-sku', 5, 1);
    await waitFor(() => inv.services.cache.partitions('sf-sku').length === 1, 5000, 'the partition registered');
    await inv.reserve('sf-order', [['sf-sku', 5]]); // every unit held: nothing free to lose
    const loss = await op.adjustStock('sf-loss', 'sf-sku', -3, 'water damage');
    assert.equal(loss.shortfall, 3);
    await op.adjustStock('sf-loss', 'sf-sku', -3, 'water damage'); // the replay records nothing again

    const p = publisher();
    await p.start();
    const got = await arrived('stock.shortfall:sf-loss');
    await drained(p);
    assert.equal(copies('stock.shortfall:sf-loss').length, 1);
    assert.equal(got.routingKey, 'stock.shortfall');
    assert.equal(got.event.sku, 'sf-sku');
    assert.equal(got.event.data.units, 3);
    assert.equal(got.event.data.reason, 'water damage');
    assert.equal(got.event.data.intentId, 'sf-loss');
  });

  it('stock.low and sku.sold_out: once per batch of partitions, however often and by how many servers the top-up looks', async () => {
    const op = inv.services.operator;
    await op.setStock('so-set', 'so-sku', 6, 'stock-take');
    const { partitions } = await op.preallocate('so-pre', 'so-sku', 6, 2); // base 0, 3 + 3 in the pool
    const newest = partitions.map((x) => x.partitionId).sort().at(-1)!;
    await waitFor(() => inv.services.cache.partitions('so-sku').length === 2, 5000, 'the partitions registered');
    const p = publisher();
    await p.start();

    // One unit at a time until a partition is empty; it retires and the top-up looks: 1 to 3 units left.
    let sold = 0;
    while (!(await inv.services.gateway.avail(partitions)).includes(0)) {
      await inv.reserve(`so-${sold}`, [['so-sku', 1]]);
      sold++;
    }
    const low = await arrived(`stock.low:so-sku:${newest}`);
    assert.equal(low.event.data.base, 0);
    assert.equal(low.event.data.threshold, 10);
    assert.ok((low.event.data.sellable as number) > 0 && (low.event.data.sellable as number) < 10);
    await sellOut('so-sku', 6 - sold, 'so-rest');
    await waitFor(() => inv.services.cache.partitions('so-sku').length === 0, 5000, 'both partitions retired');

    // Sold out: the next look (a Reserve once the empty-base verdict is a second old) records it.
    await sleep(1100);
    assert.equal((await inv.reserve('so-after-1', [['so-sku', 1]])).outcome, ReserveOutcome.RESERVE_OUTCOME_REJECTED);
    const soldOut = await arrived(`sku.sold_out:so-sku:${newest}`);
    assert.deepEqual(soldOut.event.data, { base: 0, pool: 0, newestPartitionId: newest });
    // Later looks of this server, and of another server (its own top-up, nothing remembered), add nothing.
    await sleep(1100);
    await inv.reserve('so-after-2', [['so-sku', 1]]);
    const other = new TopUp(
      {
        baseOf: async (sku) => (await readStock(inv.services.mysql, [sku])).get(sku)?.base ?? 0,
        preallocate: () => Promise.reject(new Error('nothing to carve')),
        newestPartition: (sku) => newestPartitionId(inv.services.mysql, sku),
      },
      inv.services.gateway,
      inv.services.cache,
      { thresholdUnits: 10, units: 100, partitions: 1, emptyBaseCacheMs: 1000 },
      logger,
    );
    // Its look comes once the verdict this server left in the top-up lock is gone.
    await waitFor(async () => (await inv.services.gateway.topUpLock('so-sku')) === null, 5000, 'the top-up lock free');
    assert.equal(await other.request('so-sku', Date.now() + 5000, true), false);
    await sleep(300);
    await drained(p);
    assert.equal(ofSku('stock.low', 'so-sku').length, 1, 'one stock.low');
    assert.equal(ofSku('sku.sold_out', 'so-sku').length, 1, 'one sku.sold_out');

    // Restocked and sold out again: a new batch, a new sell-out.
    await op.adjustStock('so-restock', 'so-sku', 2, 'received');
    await sleep(1100);
    await inv.reserve('so-wake', [['so-sku', 1]]); // sets off the top-up that carves the restock
    await waitFor(() => inv.services.cache.partitions('so-sku').length > 0, 5000, 'the restock carved');
    for (let i = 0; (await inv.reserve(`so-again-${i}`, [['so-sku', 1]])).reservation; i++);
    await waitFor(() => inv.services.cache.partitions('so-sku').length === 0, 5000, 'the restock sold out');
    await sleep(1100);
    await inv.reserve('so-after-3', [['so-sku', 1]]);
    await waitFor(() => ofSku('sku.sold_out', 'so-sku').length === 2, 10_000, 'a second sell-out');
    assert.notEqual(ofSku('sku.sold_out', 'so-sku')[1].event.id, soldOut.event.id);
  });

  for (const outbox of ['redis', 'mysql'] as const) {
    it(`at least once: a publisher that dies between the broker's confirm and the ack (${outbox} outbox) leaves the event to the next, same id`, async () => {
      let target: string;
      if (outbox === 'redis') {
        const [part] = await inv.stock('crash-sku', 1, 1);
        await inv.reserve('crash-1', [['crash-sku', 1]]);
        await waitFor(() => inv.services.cache.partitions('crash-sku').length === 0, 5000, 'the partition retired');
        target = `partition.exhausted:${part.partitionId}`;
      } else {
        await inv.services.operator.setStock('crash-set', 'crash-m-sku', 1, 'stock-take');
        const loss = await inv.services.operator.adjustStock('crash-loss', 'crash-m-sku', -3, 'theft');
        assert.equal(loss.shortfall, 2);
        target = 'stock.shortfall:crash-loss';
      }
      let killed: Promise<void> | undefined;
      const first: EventPublisher = publisher({
        consumer: `first-${outbox}`,
        beforeAck: (events) => {
          if (!events.some((e) => e.id === target)) return;
          killed = first.stop();
          throw new Error('killed between the confirm and the ack');
        },
      });
      await first.start();
      await arrived(target);
      await waitFor(() => killed !== undefined, 5000, 'the first publisher killed');
      await killed;
      const left = await first.backlog();
      assert.ok(left[outbox] >= 1, `the event is still in the ${outbox} outbox: ${JSON.stringify(left)}`);
      assert.equal(copies(target).length, 1);

      const second = publisher({ consumer: `second-${outbox}` });
      await second.start();
      await arrived(target, 2);
      await drained(second);
      const all = copies(target);
      assert.equal(all.length, 2, 'published again once, by the second publisher');
      assert.deepEqual(all[1].event, all[0].event, 'the same event, same id');
      assert.equal(all[1].properties.messageId, target);
    });
  }

  it('an outbox entry that is not an event is dropped, and the events behind it go out', async () => {
    const shard = 0;
    const stream = inv.services.shards.keys.outbox(shard);
    const redis = inv.services.shards.client(shard);
    await redis.xadd(stream, '*', 'e', 'not json');
    const good = { id: 'partition.exhausted:hand-made', type: 'partition.exhausted', sku: 'hand-sku', at: Date.now(), data: {} };
    await redis.xadd(stream, '*', 'e', JSON.stringify(good));
    const p = publisher();
    await p.start();
    await arrived(good.id);
    await drained(p);
    assert.equal(p.stats().malformed, 1);
  });
});
