import { DependencyUnavailable } from '../kernel/dependency';
import { Logger } from '../kernel/logger';
import { takerOf } from './attempts';
import { SealedCode } from './codes';
import { OrderFields, PieceTuple, asArray, parseDoc } from './doc';
import { RedisGateway } from './gateway';
import { RECOVERY_RELEASE } from './releases';
import { OrderArchive } from './types';

export interface ForgetterOptions {
  /** Orders read per page of a shard's forget index. Default 200. */
  readonly batch?: number;
  /** Pages per shard and round. Default 10. */
  readonly pagesPerRound?: number;
}

/** What one round did, for the metrics. */
export interface ForgetCounts {
  orders: number;
  partitions: number;
}

/**
 * Ends the records of orders whose retention is over, so Redis holds live state plus the retention
 * window and never the whole history (the key lifecycle: keys.ts). Each round, per shard, the due
 * entries of the `forget` index, oldest first:
 *
 *   1. order-sealed: the record, read once its retention is over on the Redis clock (from then on
 *      no script changes it) and no release of it is still being applied;
 *   2. the page's records into MySQL's archive, in one statement: replays, Confirm and Release of
 *      a forgotten order are answered from there;
 *   3. its take records cleared from every partition its attempts planned or took from
 *      (takes-forget; an exhausted or drained partition that nothing holds goes with its last
 *      records), and its part of the buyer's allowances (user-forget);
 *   4. order-forget: its id into the filter of forgotten ids (forgotten.ts), its record deleted.
 *
 * Every step is idempotent and the record goes last, so a process that dies anywhere leaves the
 * entry for the next round; several servers may forget the same shard at once. MySQL down stops
 * step 2: orders wait in Redis (memory grows by the orders ending meanwhile) and nothing is lost.
 */
export class Forgetter {
  constructor(
    private readonly gateway: RedisGateway,
    private readonly archive: OrderArchive,
    private readonly options: ForgetterOptions,
    private readonly logger: Logger,
    private readonly onForgotten: (counts: ForgetCounts) => void = () => {},
  ) {}

  /** One pass over every reachable shard; the server runs it periodically, tests on demand. */
  async forget(): Promise<ForgetCounts> {
    const counts: ForgetCounts = { orders: 0, partitions: 0 };
    for (let shard = 0; shard < this.gateway.shards.keys.shardCount; shard++) {
      if (!this.gateway.shards.reachable(shard)) continue;
      try {
        await this.forgetShard(shard, counts);
      } catch (err) {
        if (!(err instanceof DependencyUnavailable)) throw err;
        this.logger.warn({ err, shard }, 'forget: stopped this round (a dependency is unavailable); ended orders wait in Redis');
      }
    }
    if (counts.orders > 0) this.onForgotten(counts);
    return counts;
  }

  /** The shard count, for the backlog metric. */
  get shardCount(): number {
    return this.gateway.shards.keys.shardCount;
  }

  /** Due entries of a shard's forget index and the age of the oldest, for the backlog metric. */
  async backlog(shard: number): Promise<{ due: number; oldestDueAgeMs: number }> {
    const now = Date.now();
    const due = await this.gateway.due(shard, 'forget', now, 1);
    const count = due.length === 0 ? 0 : await this.gateway.shards.client(shard).zcount(this.gateway.shards.keys.forget(shard), '-inf', now);
    return { due: count, oldestDueAgeMs: due.length === 0 ? 0 : now - due[0].score };
  }

  private async forgetShard(shard: number, counts: ForgetCounts): Promise<void> {
    const batch = this.options.batch ?? 200;
    let kept = 0;
    for (let page = 0; page < (this.options.pagesPerRound ?? 10); page++) {
      // A second of slack: the Redis clock may run ahead of ours; order-sealed decides.
      const entries = await this.gateway.due(shard, 'forget', Date.now() + 1000, batch, kept);
      // The orders of a page are independent: their calls go out together (one pipe write per tick).
      const reads = await Promise.all(entries.map(({ member }) => this.gateway.sealedOrder(member)));
      const sealed: Array<{ orderId: string; fields: OrderFields }> = [];
      reads.forEach((read, i) => {
        if (read.code === SealedCode.Sealed) sealed.push({ orderId: entries[i].member, fields: read.fields });
        else if (read.code === SealedCode.Releasing) kept++;
      });
      if (sealed.length > 0) await this.archive.save(sealed);
      const forgotten = await Promise.all(
        sealed.map(async ({ orderId, fields }) => {
          counts.partitions += await this.clearRecords(orderId, fields);
          return this.gateway.forgetOrder(orderId, fields.forget);
        }),
      );
      for (const done of forgotten) {
        if (done) counts.orders++;
        else kept++;
      }
      if (entries.length < batch) break;
    }
  }

  /** Step 3: the order's take and allowance records; answers the retired partitions that went with them. */
  private async clearRecords(orderId: string, fields: OrderFields): Promise<number> {
    const takers = Array.from({ length: Number(fields.att ?? 1) }, (_, i) => takerOf(orderId, i + 1));
    const doc = fields.doc ? parseDoc(fields.doc) : undefined;
    const releaseIds = [...new Set([...Object.keys(doc?.releases ?? {}), RECOVERY_RELEASE])];
    const takeFields = takers.flatMap((t) => [`t:${t}`, `r:${t}`, ...releaseIds.map((r) => `x:${t}:${r}`)]);
    const work: Array<Promise<boolean | number>> = [...touchedPartitions(fields)].map((key) => {
      const [shard, sku, partitionId] = JSON.parse(key) as [number, string, string];
      return this.gateway.forgetTakes({ shard, sku, partitionId }, takeFields);
    });
    if (doc?.user) {
      for (const sku of Object.keys(doc.limits ?? {})) work.push(this.gateway.forgetAllowance(doc.user, sku, takers, releaseIds));
    }
    return (await Promise.all(work)).filter((removed) => removed === true).length;
  }
}

/**
 * Every partition an order's attempts may hold take records in: the pieces it took (doc), its
 * plan, and what earlier attempts planned (`past`, order-begin), as JSON [shard, sku, partition].
 */
function touchedPartitions(fields: OrderFields): Set<string> {
  const found = new Set<string>();
  const add = (shard: number, sku: string, partitionId: string) => found.add(JSON.stringify([Number(shard), sku, partitionId]));
  if (fields.doc) {
    for (const item of parseDoc(fields.doc).items) for (const piece of item.pieces) add(piece.s, item.sku, piece.p);
  }
  for (const [sku, partitionId, shard] of asArray<PieceTuple>(fields.plan ? JSON.parse(fields.plan) : undefined)) add(shard, sku, partitionId);
  for (const [sku, partitionId, shard] of asArray<[string, string, number]>(fields.past ? JSON.parse(fields.past) : undefined)) add(shard, sku, partitionId);
  return found;
}
