/**
 * A ledger writer in a process of its own, for tests that kill it with SIGKILL. Configured by the
 * environment (REDIS_NODES, REDIS_PREFIX, REDIS_SHARDS, MYSQL_URL as the server reads them, plus
 * LEDGER_CONSUMER, LEDGER_BATCH and LEDGER_STALL_AFTER). Prints one JSON line per batch after its
 * COMMIT and before its XACK: `{"event":"batch","n":1,"records":..,"applied":..,"duplicates":..}`.
 * With LEDGER_STALL_AFTER=n it prints `{"event":"stalled"}` at batch n and hangs there, committed
 * but not acknowledged, until it is killed.
 */
import { shardsFromConfig } from '../../server/clients';
import { loadConfig } from '../../server/config';
import { createLogger } from '../../kernel/logger';
import { LedgerWriter } from '../../ledger/writer';
import { createMysqlPool } from '../../store/mysql';

async function main(): Promise<void> {
  const config = loadConfig();
  const stallAfter = Number(process.env.LEDGER_STALL_AFTER ?? 0);
  const shards = shardsFromConfig(config);
  await shards.connect();
  const pool = createMysqlPool(config.mysqlUrl);
  let n = 0;
  const writer = new LedgerWriter(shards, pool, createLogger(config.logLevel), {
    consumer: process.env.LEDGER_CONSUMER,
    batchSize: Number(process.env.LEDGER_BATCH ?? 100),
    blockMs: 200,
    async beforeAck(batch) {
      n += 1;
      process.stdout.write(`${JSON.stringify({ event: 'batch', n, records: batch.records, applied: batch.applied, duplicates: batch.duplicates })}\n`);
      if (n === stallAfter) {
        process.stdout.write(`${JSON.stringify({ event: 'stalled' })}\n`);
        await new Promise(() => {});
      }
    },
  });
  await writer.start();
  process.stdout.write(`${JSON.stringify({ event: 'started' })}\n`);
  process.once('SIGTERM', () => {
    void writer
      .stop()
      .then(() => Promise.all([shards.close(), pool.end()]))
      .finally(() => process.exit(0));
  });
}

main().catch((err) => {
  process.stderr.write(`ledger child failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
