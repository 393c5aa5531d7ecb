import amqp from 'amqplib';
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

/**
 * rabbitmqctl against the local stack's broker, run the way scripts/stack/rabbitmq.sh runs it
 * (rmqctl): the stack's Erlang cookie under .stack/rabbitmq (HOME), its node name, none of the
 * caller's RABBITMQ_* variables. For tests that need a real broker event, such as the broker
 * closing a client's connection.
 */
const run = promisify(execFile);
const RABBITMQCTL = '/usr/lib/rabbitmq/bin/rabbitmqctl';
const STACK_DIR = path.resolve(__dirname, '..', '..', '..', '.stack', 'rabbitmq');
const NODE = process.env.STACK_RABBITMQ_NODE ?? 'inventory@localhost';

export async function rabbitmqctl(...args: string[]): Promise<string> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!name.startsWith('RABBITMQ_')) env[name] = value;
  Object.assign(env, { HOME: STACK_DIR, RABBITMQ_CONF_ENV_FILE: path.join(STACK_DIR, 'rabbitmq-env.conf'), ERL_EPMD_ADDRESS: '127.0.0.1' });
  const { stdout } = await run(RABBITMQCTL, ['-n', NODE, ...args], { env, timeout: 20_000 });
  return stdout;
}

/** Whether rabbitmqctl reaches the stack's node (not when the stack reuses a broker it did not start). */
export async function rabbitmqctlWorks(): Promise<boolean> {
  try {
    await rabbitmqctl('-q', 'list_connections', 'pid');
    return true;
  } catch {
    return false;
  }
}

/**
 * Has the broker close every connection whose client-given `connection_name` starts with `prefix`
 * (CONNECTION_FORCED, as when an operator or a broker shutdown closes it). Answers how many.
 */
export async function closeConnectionsNamed(prefix: string, reason = 'closed by a test'): Promise<number> {
  const listing = await rabbitmqctl('-q', 'list_connections', 'pid', 'client_properties');
  const pids = listing
    .split('\n')
    .filter((line) => line.includes(`{"connection_name","${prefix}`))
    .map((line) => line.split('\t')[0]);
  await Promise.all(pids.map((pid) => rabbitmqctl('close_connection', pid, reason)));
  return pids.length;
}

/** MQ_* settings naming a consumer's own exchanges and queues, all starting with `prefix`, so tests never share the stack's. */
export function mqNames(prefix: string): Record<'MQ_STOCK_EXCHANGE' | 'MQ_STOCK_QUEUE' | 'MQ_DEAD_LETTER_EXCHANGE' | 'MQ_DEAD_LETTER_QUEUE', string> {
  return {
    MQ_STOCK_EXCHANGE: `${prefix}.stock`,
    MQ_STOCK_QUEUE: `${prefix}.updates`,
    MQ_DEAD_LETTER_EXCHANGE: `${prefix}.dead`,
    MQ_DEAD_LETTER_QUEUE: `${prefix}.updates.dead`,
  };
}

/** Deletes a test's stock queues and exchanges (named by mqNames) from the stack's RabbitMQ. */
export async function deleteMqNames(amqpUrl: string, names: ReturnType<typeof mqNames>): Promise<void> {
  const connection = await amqp.connect(amqpUrl);
  try {
    const channel = await connection.createChannel();
    for (const q of [names.MQ_STOCK_QUEUE, names.MQ_DEAD_LETTER_QUEUE]) await channel.deleteQueue(q);
    for (const e of [names.MQ_STOCK_EXCHANGE, names.MQ_DEAD_LETTER_EXCHANGE]) await channel.deleteExchange(e);
  } finally {
    await connection.close();
  }
}
