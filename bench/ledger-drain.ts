/**
 * `npm run bench:ledger [-- <records>]`: the ledger writer's CPU per record. Fills the 16 shard
 * streams of a namespace of its own with take records in the scripts' format (default 30,000),
 * then lets one LedgerWriter drain them into a fresh MySQL database and prints this process's CPU
 * per record (all its threads: GC included). Needs the local stack (`npm start` or `npm test` set
 * it up); removes its keys and database afterwards.
 */
import { randomBytes } from 'node:crypto';
import { loadConfig } from '../server/config';
import { createLogger } from '../kernel/logger';
import { shardsFromConfig } from '../server/clients';
import { LedgerWriter } from '../ledger/writer';
import { migrate } from '../store/migrations';
import { createMysqlPool, dropDatabase, ensureDatabase } from '../store/mysql';

async function main(): Promise<void> {
  const records = Number(process.argv[2] ?? 30_000);
  if (!Number.isSafeInteger(records) || records <= 0) throw new Error('usage: npm run bench:ledger [-- <records>]');
  const tag = `ledgerbench_${randomBytes(4).toString('hex')}`;
  const base = loadConfig();
  const mysqlUrl = new URL(base.mysqlUrl);
  mysqlUrl.pathname = `/${tag}`;
  const config = loadConfig({ ...process.env, REDIS_PREFIX: tag, MYSQL_URL: mysqlUrl.toString() });
  const logger = createLogger('warn');
  const shards = shardsFromConfig(config);
  await shards.connect();
  await ensureDatabase(config.mysqlUrl);
  const pool = createMysqlPool(config.mysqlUrl);
  try {
    await migrate(pool, logger);
    const at = String(Date.now());
    for (let i = 0; i < records; i += 1000) {
      const pipeline = shards.clients[0].pipeline();
      for (let j = i; j < Math.min(records, i + 1000); j++) {
        const shard = j % config.redisShards;
        const record = { id: `take:o${j}:p${shard}`, kind: 'take', sku: 'bench-sku', qty: '1', from: 'pool', to: 'reserved' };
        pipeline.xadd(shards.keys.ledger(shard), '*', 'm', JSON.stringify({ ...record, order: `o${j}`, partition: `p${shard}`, epoch: '1', seq: String(j + 1), at }));
      }
      await pipeline.exec();
    }
    const writer = new LedgerWriter(shards, pool, logger);
    const cpu = process.cpuUsage();
    const started = performance.now();
    await writer.start();
    await writer.drain(600_000);
    const used = process.cpuUsage(cpu);
    const ms = performance.now() - started;
    await writer.stop();
    const cpuMs = (used.user + used.system) / 1000;
    const stats = writer.stats();
    process.stdout.write(
      `ledger writer: ${records} records in ${ms.toFixed(0)} ms (${((records * 1000) / ms).toFixed(0)}/s), ` +
        `${stats.batches} batches, CPU ${cpuMs.toFixed(0)} ms = ${((cpuMs * 1000) / records).toFixed(1)} µs per record\n`,
    );
  } finally {
    for (let s = 0; s < config.redisShards; s++) await shards.client(s).del(shards.keys.ledger(s));
    await shards.close();
    await pool.end();
    await dropDatabase(config.mysqlUrl);
  }
}

main().catch((err) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
