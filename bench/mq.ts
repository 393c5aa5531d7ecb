/**
 * `npm run bench:mq`: the warehouses' stock messages through one consumer, on the local stack's real
 * RabbitMQ, Redis, etcd and MariaDB, in a namespace of its own (dropped afterwards).
 *
 *   ceiling     the bare transport: the same quorum queue, a consumer that only acknowledges
 *   throughput  N mixed messages over S SKUs published first, then one StockConsumer with the real
 *               applier drains them: messages applied per second
 *   latency     with the consumer running, mixed messages at a steady rate, and among them probes
 *               (a RECEIPT of 1 on a SKU of its own): publish to the change being visible where
 *               GetStock reads it (the SKU's MySQL row), p50/p99
 *
 * The mix: 40% RECEIPT, 20% LOSS, 10% DAMAGE, 10% RETURN, 20% COUNT (with a rising sequence); half
 * of the SKUs have pooled partitions, so losses that base cannot cover shrink the pool in Redis.
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import type { ConfirmChannel } from 'amqplib';
import { StockMessage, StockMessageKind } from '../gen/inventory/v1/stock_message.pb';
import { createLogger } from '../kernel/logger';
import { StockConsumer } from '../mq/consumer';
import { routingKey } from '../mq/message';
import { StockTopology, declareTopology } from '../mq/topology';
import { StockUpdateKind } from '../mq/types';
import { Config, loadConfig } from '../server/config';
import { createStockApplier } from '../server/mq-applier';
import { stockConsumerOptions } from '../server/mq-options';
import { readStock } from '../store/stock';
import { createMysqlPool, dropDatabase } from '../store/mysql';
import { Histogram } from './hist';
import { renderTable } from './format';
import { dropInventory } from './seed';

const { values: args } = parseArgs({
  options: {
    messages: { type: 'string', default: '10000' },
    skus: { type: 'string', default: '100' },
    rate: { type: 'string', default: '200' },
    probes: { type: 'string', default: '200' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  process.stdout.write(
    'npm run bench:mq -- [--messages 10000] [--skus 100] [--rate 200] [--probes 200]\n' +
      '  messages: mixed messages of the throughput run (and of the ceiling)\n' +
      '  skus:     SKUs they spread over\n' +
      '  rate:     messages per second published during the latency run\n' +
      '  probes:   RECEIPTs timed from publish to visible, during the latency run\n',
  );
  process.exit(0);
}
const MESSAGES = positive('messages');
const SKUS = positive('skus');
const RATE = positive('rate');
const PROBES = positive('probes');

function positive(name: keyof typeof args): number {
  const n = Number(args[name]);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} takes a whole number above 0`);
  return n;
}

const KINDS: Array<[StockUpdateKind, StockMessageKind, number]> = [
  ['RECEIPT', StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT, 0.4],
  ['LOSS', StockMessageKind.STOCK_MESSAGE_KIND_LOSS, 0.2],
  ['DAMAGE', StockMessageKind.STOCK_MESSAGE_KIND_DAMAGE, 0.1],
  ['RETURN', StockMessageKind.STOCK_MESSAGE_KIND_RETURN, 0.1],
  ['COUNT', StockMessageKind.STOCK_MESSAGE_KIND_COUNT, 0.2],
];

/** Builds mixed messages over the SKUs; COUNTs carry a rising per-SKU sequence. */
class Mix {
  private readonly sequence = new Map<string, number>();
  private n = 0;

  constructor(private readonly skus: readonly string[]) {}

  next(): [string, Buffer] {
    const sku = this.skus[this.n++ % this.skus.length];
    let roll = Math.random();
    const [kind, proto] = KINDS.find(([, , share]) => (roll -= share) < 0) ?? KINDS[0];
    const sequence = kind === 'COUNT' ? (this.sequence.get(sku) ?? 0) + 1 : undefined;
    if (sequence !== undefined) this.sequence.set(sku, sequence);
    const quantity = kind === 'COUNT' ? 900 + Math.floor(Math.random() * 200) : 1 + Math.floor(Math.random() * 20);
    return [routingKey(kind), encode({ sku, kind: proto, quantity, sequence })];
  }
}

function encode(m: { sku: string; kind: StockMessageKind; quantity: number; sequence?: number }): Buffer {
  const message = StockMessage.fromPartial({ messageId: randomUUID(), skuId: m.sku, kind: m.kind, quantity: m.quantity, occurredAt: new Date(), sequence: m.sequence });
  return Buffer.from(JSON.stringify(StockMessage.toJSON(message)));
}

function publish(channel: ConfirmChannel, exchange: string, key: string, body: Buffer): void {
  channel.publish(exchange, key, body, { contentType: 'application/json', persistent: true });
}

async function publishAll(channel: ConfirmChannel, exchange: string, messages: ReadonlyArray<[string, Buffer]>): Promise<void> {
  for (const [key, body] of messages) publish(channel, exchange, key, body);
  await channel.waitForConfirms();
}

function namespace(): { tag: string; config: Config; topology: StockTopology } {
  const tag = `bench_mq_${Date.now().toString(36)}`;
  const mysql = new URL(loadConfig().mysqlUrl);
  mysql.pathname = `/${tag}`;
  const config = loadConfig({
    ...process.env,
    REDIS_PREFIX: tag,
    ETCD_NAMESPACE: `/${tag}/`,
    MYSQL_URL: mysql.toString(),
    MQ_STOCK_EXCHANGE: `${tag}.stock`,
    MQ_STOCK_QUEUE: `${tag}.updates`,
    MQ_DEAD_LETTER_EXCHANGE: `${tag}.dead`,
    MQ_DEAD_LETTER_QUEUE: `${tag}.updates.dead`,
    LOG_LEVEL: 'silent',
  });
  return { tag, config, topology: stockConsumerOptions(config) };
}

/** Waits until `done()` holds, polling every few ms; the elapsed seconds. */
async function until(done: () => boolean | Promise<boolean>, started: number, timeoutMs = 600_000): Promise<number> {
  while (!(await done())) {
    if (Date.now() - started > timeoutMs) throw new Error('bench: timed out');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return (Date.now() - started) / 1000;
}

async function main(): Promise<void> {
  const { tag, config, topology } = namespace();
  const logger = createLogger('silent');
  const connection = await amqp.connect(config.amqpUrl);
  const channel = await connection.createConfirmChannel();
  const { applier, operator, close } = await createStockApplier(config, logger);
  // Where GetStock reads: the SKU rows in MySQL, on a pool of the watcher's own.
  const watcherPool = createMysqlPool(config.mysqlUrl);
  const skus = Array.from({ length: SKUS }, (_, i) => `${tag}-sku-${i}`);
  const rows: string[][] = [];
  try {
    // Stock to lose from: every SKU counted at 1,000, half of them with 500 pooled in 4 partitions.
    for (const [i, sku] of skus.entries()) {
      await operator.setStock(`${tag}-set-${i}`, sku, 1000, 'bench');
      if (i % 2 === 0) await operator.preallocate(`${tag}-pre-${i}`, sku, 500, 4);
    }

    // The bare transport: the same kind of queue, a consumer that only acknowledges.
    const ceiling: StockTopology = { ...topology, exchange: `${tag}.ceiling`, queue: `${tag}.ceiling`, deadLetterExchange: `${tag}.ceiling.dead`, deadLetterQueue: `${tag}.ceiling.dead` };
    await declareTopology(channel, ceiling);
    const mix = new Mix(skus);
    await publishAll(channel, ceiling.exchange, Array.from({ length: MESSAGES }, () => mix.next()));
    const bare = await connection.createChannel();
    await bare.prefetch(config.mqPrefetch);
    let acked = 0;
    const ceilingStart = Date.now();
    await bare.consume(ceiling.queue, (msg) => {
      if (!msg) return;
      bare.ack(msg);
      acked++;
    });
    const ceilingSeconds = await until(() => acked >= MESSAGES, ceilingStart);
    await bare.close();
    rows.push(['ceiling (bare consume + ack)', String(MESSAGES), ceilingSeconds.toFixed(2), Math.round(MESSAGES / ceilingSeconds).toLocaleString('en-US'), '100%', '-', '-']);

    // Throughput: the queue filled first, then one consumer with the real applier drains it.
    await declareTopology(channel, topology);
    await publishAll(channel, topology.exchange, Array.from({ length: MESSAGES }, () => mix.next()));
    const consumer = new StockConsumer(stockConsumerOptions(config), applier, logger);
    const settled = () => {
      const s = consumer.stats();
      return s.applied + s.duplicates + s.stale + s.deadLettered.malformed + s.deadLettered.rejected;
    };
    const started = Date.now();
    await consumer.start();
    const seconds = await until(() => settled() >= MESSAGES, started);
    const rate = MESSAGES / seconds;
    const stats = consumer.stats();
    rows.push([
      'throughput (one consumer, real applier)',
      String(MESSAGES),
      seconds.toFixed(2),
      Math.round(rate).toLocaleString('en-US'),
      `${Math.round((100 * ceilingSeconds) / seconds)}%`,
      '-',
      '-',
    ]);

    // Latency: a steady rate of mixed messages, probes among them, each on a SKU of its own.
    const probeSkus = Array.from({ length: PROBES }, (_, i) => `${tag}-probe-${i}`);
    for (const [i, sku] of probeSkus.entries()) await operator.setStock(`${tag}-probe-set-${i}`, sku, 1, 'bench');
    const latency = new Histogram();
    const waiting = new Map<string, number>();
    const total = Math.max(PROBES * 10, RATE * 5);
    const latencyStart = Date.now();
    let sent = 0;
    let probe = 0;
    const watcher = (async () => {
      while (sent < total || waiting.size > 0) {
        if (waiting.size > 0) {
          const rowsNow = await readStock(watcherPool, [...waiting.keys()]);
          for (const [sku, publishedAt] of [...waiting]) {
            if ((rowsNow.get(sku)?.onHand ?? 0) >= 2) {
              latency.record((Date.now() - publishedAt) * 1000);
              waiting.delete(sku);
            }
          }
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    while (sent < total) {
      const due = Math.floor(((Date.now() - latencyStart) / 1000) * RATE);
      for (; sent < Math.min(due, total); sent++) {
        if (sent % Math.floor(total / PROBES) === 0 && probe < PROBES) {
          const sku = probeSkus[probe++];
          waiting.set(sku, Date.now());
          publish(channel, topology.exchange, 'stock.receipt', encode({ sku, kind: StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT, quantity: 1 }));
        } else {
          const [key, body] = mix.next();
          publish(channel, topology.exchange, key, body);
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    await channel.waitForConfirms();
    await watcher;
    const latencySeconds = (Date.now() - latencyStart) / 1000;
    rows.push([
      `latency (${RATE.toLocaleString('en-US')}/s mixed, ${PROBES} probes)`,
      String(total),
      latencySeconds.toFixed(2),
      '-',
      '-',
      (latency.quantile(0.5) / 1000).toFixed(1),
      (latency.quantile(0.99) / 1000).toFixed(1),
    ]);
    await consumer.stop();
    const header = ['run', 'messages', 'seconds', 'messages/s', 'vs ceiling', 'p50 ms', 'p99 ms'];
    process.stdout.write(`${renderTable([header, ...rows], header.map((_, i) => i > 0)).join('\n')}\n`);
    process.stdout.write(
      `\nthroughput run: applied ${stats.applied}, stale ${stats.stale}, duplicates ${stats.duplicates}, dead-lettered ${stats.deadLettered.malformed + stats.deadLettered.rejected}` +
        ` (losses beyond base and pool are shortfalls, not dead letters)\n`,
    );
  } finally {
    for (const name of [topology.queue, topology.deadLetterQueue, `${tag}.ceiling`, `${tag}.ceiling.dead`]) await channel.deleteQueue(name).catch(() => undefined);
    for (const name of [topology.exchange, topology.deadLetterExchange, `${tag}.ceiling`, `${tag}.ceiling.dead`]) await channel.deleteExchange(name).catch(() => undefined);
    await connection.close().catch(() => undefined);
    await close();
    await watcherPool.end();
    await dropInventory(config);
    await dropDatabase(config.mysqlUrl);
  }
}



main().catch((err) => {
  process.stderr.write(`bench:mq failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
