import assert from 'node:assert/strict';
import amqp from 'amqplib';
import { Etcd3 } from 'etcd3';
import Redis from 'ioredis';
import mysql from 'mysql2/promise';
import path from 'node:path';
import { testConfig, uniqueName } from './helpers/config';

/** Every server of the local stack answers at the configured address, with a real round trip. */
describe('local stack', () => {
  const name = uniqueName('stack');
  const config = testConfig(name);

  /** Runs `check` against a connection to each configured Redis node. */
  async function eachRedisNode(check: (redis: Redis, node: string, port: string) => Promise<void>): Promise<void> {
    for (const node of config.redisNodes) {
      const [host, port] = node.split(':');
      const redis = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 1 });
      try {
        await redis.connect();
        await check(redis, node, port);
      } finally {
        redis.disconnect();
      }
    }
  }
  const configValue = async (redis: Redis, name: string) => ((await redis.config('GET', name)) as [string, string])[1];

  it('Redis answers on every configured node and refuses to evict', () =>
    eachRedisNode(async (redis, node) => {
      const key = `${config.redisPrefix}:probe`;
      await redis.set(key, 'ok', 'PX', 10_000);
      assert.equal(await redis.get(key), 'ok');
      await redis.del(key);
      assert.equal(await configValue(redis, 'maxmemory-policy'), 'noeviction', `${node} would evict stock keys`);
    }));

  it("the stack's own Redis keeps an append-only file and rewrites it only past 1 GB", () =>
    eachRedisNode(async (redis, node, port) => {
      // A Redis that scripts/stack.sh did not start (one of the user's own) keeps its own settings.
      if ((await configValue(redis, 'dir')) !== path.resolve(__dirname, '../..', `.stack/redis-${port}`)) return;
      assert.equal(await configValue(redis, 'appendonly'), 'yes');
      assert.equal(await configValue(redis, 'appendfsync'), 'everysec');
      assert.equal(await configValue(redis, 'auto-aof-rewrite-min-size'), String(2 ** 30), `${node} would fork AOF rewrites every few seconds of a sale`);
    }));

  it('etcd answers and scopes keys under a namespace', async () => {
    const etcd = new Etcd3({ hosts: [...config.etcdEndpoints] });
    try {
      const ns = etcd.namespace(config.etcdNamespace);
      await ns.put('probe').value('ok');
      assert.equal(await etcd.get(`${config.etcdNamespace}probe`).string(), 'ok');
      await ns.delete().all();
      assert.equal(await ns.get('probe').string(), null);
    } finally {
      etcd.close();
    }
  });

  it('MariaDB answers and lets a test own a database', async () => {
    const url = new URL(config.mysqlUrl);
    const database = url.pathname.slice(1);
    url.pathname = '/';
    const conn = await mysql.createConnection(url.toString());
    try {
      await conn.query(`CREATE DATABASE \`${database}\``);
      await conn.query(`CREATE TABLE \`${database}\`.probe (id INT PRIMARY KEY)`);
      await conn.query(`INSERT INTO \`${database}\`.probe VALUES (1)`);
      const [rows] = await conn.query(`SELECT COUNT(*) AS n FROM \`${database}\`.probe`);
      assert.equal((rows as Array<{ n: number }>)[0].n, 1);
    } finally {
      await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
      await conn.end();
    }
  });

  it('RabbitMQ answers and round-trips a message on a private queue', async () => {
    const connection = await amqp.connect(config.amqpUrl);
    try {
      const channel = await connection.createConfirmChannel();
      const queue = `${name}.probe`;
      await channel.assertQueue(queue, { durable: false, autoDelete: true });
      channel.sendToQueue(queue, Buffer.from('ok'));
      await channel.waitForConfirms();
      let message: amqp.GetMessage | false = false;
      for (let i = 0; i < 50 && !message; i++) {
        message = await channel.get(queue, { noAck: true });
        if (!message) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.ok(message, 'the message did not come back');
      assert.equal(message.content.toString(), 'ok');
      await channel.deleteQueue(queue);
    } finally {
      await connection.close();
    }
  });
});
