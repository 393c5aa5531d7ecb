/**
 * `npm run stock -- ...`: speak the warehouses' side of RabbitMQ from a terminal, to see the loop
 * work: publish a stock message, read the dead letters, tail the events the inventory publishes.
 *
 *   npm run stock -- receipt demo-phone 30            goods arrived
 *   npm run stock -- loss demo-phone 5                (also damage, return)
 *   npm run stock -- count demo-phone 950 --sequence 7
 *   npm run stock -- shipment demo-phone 2 --order o-1
 *   npm run stock -- tail                             the events exchange, as they come (Ctrl-C stops)
 *   npm run stock -- dead                             the dead-letter queue, with each reason (left in place)
 *
 * Addresses and names come from the same environment as the server (AMQP_URL, MQ_*).
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';
import { StockMessage, StockMessageKind } from '../gen/inventory/v1/stock_message.pb';
import { checkMessage, routingKey } from '../mq/message';
import { subscribeToEvents } from '../mq/event-tap';
import { declareTopology } from '../mq/topology';
import { loadConfigOrExit } from '../server/config';
import { stockConsumerOptions } from '../server/mq-options';

const KINDS: Record<string, StockMessageKind> = {
  receipt: StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT,
  loss: StockMessageKind.STOCK_MESSAGE_KIND_LOSS,
  damage: StockMessageKind.STOCK_MESSAGE_KIND_DAMAGE,
  shipment: StockMessageKind.STOCK_MESSAGE_KIND_SHIPMENT,
  return: StockMessageKind.STOCK_MESSAGE_KIND_RETURN,
  count: StockMessageKind.STOCK_MESSAGE_KIND_COUNT,
};

const USAGE = `usage:
  npm run stock -- <receipt|loss|damage|return|count> <sku> <quantity> [--sequence N] [--warehouse W] [--id MESSAGE_ID]
  npm run stock -- shipment <sku> <quantity> --order ORDER_ID
  npm run stock -- tail        print the inventory's events as they are published (Ctrl-C stops)
  npm run stock -- dead        list the dead-letter queue with each reason (messages stay there)
`;

function fail(message: string): never {
  process.stderr.write(`stock: ${message}\n${USAGE}`);
  process.exit(2);
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      sequence: { type: 'string' },
      warehouse: { type: 'string' },
      order: { type: 'string' },
      id: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE);
    return;
  }
  const config = loadConfigOrExit();
  const [command, sku, quantity] = positionals;
  const connection = await amqp.connect(config.amqpUrl);
  try {
    if (command === 'tail') return await tail(connection, config.mqEventsExchange);
    if (command === 'dead') return await listDead(connection, config.mqDeadLetterQueue);
    const kind = KINDS[command];
    if (kind === undefined) fail(`unknown command ${command}`);
    if (!sku || quantity === undefined) fail(`${command} takes a SKU and a quantity`);
    const message = StockMessage.fromPartial({
      messageId: values.id ?? `cli-${randomUUID()}`,
      skuId: sku,
      kind,
      quantity: Number(quantity),
      occurredAt: new Date(),
      warehouseId: values.warehouse,
      sequence: values.sequence === undefined ? undefined : Number(values.sequence),
      orderId: values.order,
    });
    const checked = checkMessage(message);
    if ('problem' in checked) fail(checked.problem);
    const channel = await connection.createConfirmChannel();
    // The exchange and the queue exist even before any consumer ever ran: nothing published is dropped.
    await declareTopology(channel, stockConsumerOptions(config));
    const body = Buffer.from(JSON.stringify(StockMessage.toJSON(message)));
    channel.publish(config.mqStockExchange, routingKey(checked.update.kind), body, { contentType: 'application/json', persistent: true, messageId: message.messageId });
    await channel.waitForConfirms();
    process.stdout.write(`published ${checked.update.kind} ${sku} ${quantity} as ${message.messageId} to ${config.mqStockExchange}\n`);
  } finally {
    if (command !== 'tail') await connection.close();
  }
}

/** Binds a private, exclusive queue to every event and prints each as it comes. */
async function tail(connection: amqp.ChannelModel, exchange: string): Promise<void> {
  const channel = await connection.createChannel();
  const queue = await subscribeToEvents(channel, exchange);
  process.stdout.write(`tailing ${exchange} (Ctrl-C stops)\n`);
  await channel.consume(queue, (msg) => {
    if (!msg) return;
    process.stdout.write(`${msg.fields.routingKey}  ${msg.content.toString()}\n`);
    channel.ack(msg);
  });
  process.once('SIGINT', () => void connection.close().finally(() => process.exit(0)));
}

/** Reads every dead letter, prints it with its reason, and puts them all back. */
async function listDead(connection: amqp.ChannelModel, queue: string): Promise<void> {
  const channel = await connection.createChannel();
  await channel.checkQueue(queue);
  const held: amqp.GetMessage[] = [];
  for (let msg = await channel.get(queue); msg; msg = await channel.get(queue)) {
    held.push(msg);
    const reason = String(msg.properties.headers?.['x-inventory-reason'] ?? msg.properties.headers?.['x-death']?.[0]?.reason ?? '?');
    process.stdout.write(`${reason}\n  ${msg.content.toString()}\n`);
  }
  for (const msg of held) channel.nack(msg, false, true);
  process.stdout.write(`${held.length} dead letter${held.length === 1 ? '' : 's'} in ${queue}\n`);
  await channel.close();
}

main().catch((err) => {
  process.stderr.write(`stock: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
