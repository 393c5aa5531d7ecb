import type { RedisShards } from '../allocator/shards';
import { LedgerLag } from './types';

/** The ledger's lag: what the ledger_lag metrics, Reconcile and drain() read. */

/**
 * Records not yet applied, over all shards, and the age of the oldest: XLEN and the first entry
 * of each stream (applied records are deleted), one pipeline per node on the shared clients.
 * Rejects when a Redis node does not answer.
 */
export async function ledgerLag(shards: RedisShards): Promise<LedgerLag> {
  let waiting = 0;
  let oldest = Infinity;
  // One pipeline per node; on Redis Cluster one per shard (a pipeline of the Cluster client must keep to one slot).
  await Promise.all(
    shards.streamGroups().map(async ({ shared, shards: onNode }) => {
      const pipeline = shared.pipeline();
      for (const s of onNode) {
        const stream = shards.keys.ledger(s);
        pipeline.xlen(stream);
        pipeline.xrange(stream, '-', '+', 'COUNT', 1);
      }
      const replies = (await pipeline.exec()) ?? [];
      for (let i = 0; i < replies.length; i += 2) {
        const [lenErr, len] = replies[i];
        const [rangeErr, range] = replies[i + 1];
        if (lenErr) throw lenErr;
        if (rangeErr) throw rangeErr;
        waiting += Number(len);
        const first = (range as Array<[string, string[]]>)[0];
        if (first) oldest = Math.min(oldest, Number(first[0].split('-')[0]));
      }
    }),
  );
  return { waiting, oldestAgeMs: waiting > 0 && Number.isFinite(oldest) ? Math.max(0, Date.now() - oldest) : 0 };
}
