import { PartitionRef } from './gateway';
import { LuaScript } from './scripts';
import { RedisShards } from './shards';

/**
 * The Redis side of the lost-writes check (admin/lost-writes.ts): reads of partitions' change
 * numbers, and the scripts that stop a partition that lost changes (partition-suspend), restore
 * it (partition-restore) and create again the orders it lost (order-restore).
 *
 * These go over the plain ioredis connection, not the script pipe: the check runs while the
 * pipe of the node it checks holds its calls (ScriptPipe.setGate), and it runs rarely, so EVAL
 * with the source is fine (Redis caches it).
 */
export interface RestoredOrderRecord {
  readonly orderId: string;
  readonly state: string;
  readonly doc: string;
  readonly items: string;
  readonly created: number;
  readonly expires: number;
  readonly confirmed: number;
  readonly ended: number;
}

export class RestoreScripts {
  private readonly suspendScript: LuaScript;
  private readonly restoreScript: LuaScript;
  private readonly orderScript: LuaScript;

  constructor(readonly shards: RedisShards) {
    this.suspendScript = shards.script('partition-suspend');
    this.restoreScript = shards.script('partition-restore');
    this.orderScript = shards.script('order-restore');
  }

  private get keys() {
    return this.shards.keys;
  }

  /** Each partition's change number and state now; undefined for a hash that is gone. */
  async seqs(partitions: readonly PartitionRef[]): Promise<Array<{ seq: number; state: string } | undefined>> {
    const rows = await Promise.all(
      partitions.map((p) => this.shards.client(p.shard).hmget(this.keys.partition(p.shard, p.sku, p.partitionId), 'seq', 'state')),
    );
    return rows.map(([seq, state]) => (state ? { seq: Number(seq ?? 0), state } : undefined));
  }

  /** Stops a partition found behind MySQL (partition-suspend); false when it changed since `readSeq` was read. */
  async suspend(p: PartitionRef, readSeq: number, mysqlSeq: number, capacity: number): Promise<boolean> {
    const key = this.keys.partition(p.shard, p.sku, p.partitionId);
    const res = await this.eval(p.shard, this.suspendScript, [key], [readSeq, mysqlSeq, p.sku, p.partitionId, capacity, p.epoch]);
    return res === 1;
  }

  /** Gives a suspect partition MySQL's balance as of `seq` (partition-restore); false when it changed since. */
  async restore(p: PartitionRef, seq: number, avail: number, held: number, takes: Record<string, string>): Promise<boolean> {
    const keys = [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.takes(p.shard, p.sku, p.partitionId)];
    const res = await this.eval(p.shard, this.restoreScript, keys, [seq, avail, held, JSON.stringify(takes)]);
    return res === 1;
  }

  /** Creates an order's record again unless it exists (order-restore); true when created. */
  async restoreOrder(order: RestoredOrderRecord, ttlSeconds: number, retentionSeconds: number): Promise<boolean> {
    const shard = this.keys.orderShard(order.orderId);
    const res = await this.eval(shard, this.orderScript, [this.keys.order(shard, order.orderId), this.keys.expiry(shard), this.keys.forget(shard)], [
      order.orderId,
      order.state,
      order.doc,
      order.items,
      order.created,
      order.expires,
      order.confirmed,
      order.ended,
      ttlSeconds,
      retentionSeconds,
    ]);
    return res === 1;
  }

  private eval(shard: number, script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<unknown> {
    return this.shards.client(shard).eval(script.source, keys.length, ...keys, ...args);
  }
}
