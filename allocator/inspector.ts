import { RepairCode } from './codes';
import { PartitionRef } from './gateway';
import { LuaScript } from './scripts';
import { RedisShards } from './shards';

/**
 * Reads of the Redis side for the operator and Reconcile, off the reservation path: a partition's
 * state at one instant (partition-audit), Reconcile's conditional repair (partition-repair), who
 * holds a partition's units, orders' states, the Redis clock. The RedisGateway keeps the scripts of
 * the reservation path; both build their keys from the one Keys module.
 */

/** A partition as partition-audit read it at one instant. */
export interface PartitionAudit {
  /** False when the partition hash does not exist (the other fields are then 0 and ''). */
  readonly exists: boolean;
  readonly state: string;
  readonly avail: number;
  readonly epoch: number;
  /** Sequence number of its last change; MySQL's rows 1..seq of the partition describe this state. */
  readonly seq: number;
  /** Units orders hold from it. */
  readonly held: number;
  /** Repair generation: how many Reconcile repairs it has had. */
  readonly fix: number;
}

/** An order's state and times (ms on the Redis clock; 0 when not set). */
export interface OrderState {
  readonly state: string;
  readonly created: number;
  readonly ended: number;
}

/** The incident partition-suspend recorded on a partition: Redis's change number when found behind, and MySQL's. */
export interface LostWritesMark {
  readonly redisSeq: number;
  readonly mysqlSeq: number;
}

export class PartitionInspector {
  private readonly audit: LuaScript;
  private readonly repair: LuaScript;

  constructor(private readonly shards: RedisShards) {
    this.audit = shards.script('partition-audit');
    this.repair = shards.script('partition-repair');
  }

  private get keys() {
    return this.shards.keys;
  }

  /** Live state of many partitions (avail, state, epoch), sent back to back. */
  async partitionStates(partitions: readonly PartitionRef[]): Promise<Array<{ avail: number; state: string; epoch: number } | undefined>> {
    const rows = await Promise.all(
      partitions.map((p) => this.shards.client(p.shard).hmget(this.keys.partition(p.shard, p.sku, p.partitionId), 'avail', 'state', 'epoch')),
    );
    return rows.map(([avail, state, epoch]) => (state ? { avail: Number(avail), state, epoch: Number(epoch) } : undefined));
  }

  /** Units each order still holds from a partition (taken minus released), from its takes hash. */
  async heldFrom(p: PartitionRef): Promise<number> {
    const fields = await this.shards.client(p.shard).hgetall(this.keys.takes(p.shard, p.sku, p.partitionId));
    let held = 0;
    for (const [field, value] of Object.entries(fields)) {
      if (field.startsWith('t:')) held += Number(value);
      else if (field.startsWith('r:')) held -= Number(value);
    }
    return held;
  }

  /** The lost-writes incident recorded on a partition (partition-suspend), if it had one. */
  async lostWrites(p: PartitionRef): Promise<LostWritesMark | undefined> {
    const [at, to] = await this.shards.client(p.shard).hmget(this.keys.partition(p.shard, p.sku, p.partitionId), 'lostat', 'lostto');
    return to === null ? undefined : { redisSeq: Number(at ?? 0), mysqlSeq: Number(to) };
  }

  /** One partition read at one instant (partition-audit): the Redis side of Reconcile's cut. */
  async auditPartition(p: PartitionRef): Promise<PartitionAudit> {
    const [partitionKey, takesKey] = [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.takes(p.shard, p.sku, p.partitionId)];
    const res = await this.shards.run<[number, string, number, number, number, number, number]>(p.shard, this.audit, [partitionKey, takesKey], []);
    return { exists: res[0] === 1, state: res[1], avail: res[2], epoch: res[3], seq: res[4], held: res[5], fix: res[6] };
  }

  /**
   * Reconcile's repair of a partition's units (partition-repair), conditional on the repair
   * generation `fix` of its cut; 'changed' when another repair ran since. `seqIfGone` numbers the
   * ledger record of a partition whose hash is gone.
   */
  async repairPartition(
    p: PartitionRef,
    fix: number,
    mode: 'missing' | 'excess',
    units: number,
    eventId: string,
    reason: string,
    seqIfGone: number,
  ): Promise<{ kind: 'repaired'; units: number; seq: number } | { kind: 'changed' }> {
    const res = await this.shards.run<number[]>(
      p.shard,
      this.repair,
      [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.ledger(p.shard)],
      [fix, mode, units, eventId, p.sku, p.partitionId, reason, seqIfGone],
    );
    return res[0] === RepairCode.Repaired ? { kind: 'repaired', units: res[1], seq: res[2] } : { kind: 'changed' };
  }

  /** Attempts (takers, attempts.ts) that hold units of a partition now (taken minus released > 0), read with HSCAN. */
  async holdersOf(p: PartitionRef): Promise<Map<string, number>> {
    const client = this.shards.client(p.shard);
    const key = this.keys.takes(p.shard, p.sku, p.partitionId);
    const taken = new Map<string, number>();
    const released = new Map<string, number>();
    let cursor = '0';
    do {
      const [next, flat] = await client.hscan(key, cursor, 'COUNT', 1000);
      for (let i = 0; i + 1 < flat.length; i += 2) {
        const field = flat[i];
        if (field.startsWith('t:')) taken.set(field.slice(2), Number(flat[i + 1]));
        else if (field.startsWith('r:')) released.set(field.slice(2), Number(flat[i + 1]));
      }
      cursor = next;
    } while (cursor !== '0');
    const holders = new Map<string, number>();
    for (const [order, units] of taken) {
      const held = units - (released.get(order) ?? 0);
      if (held > 0) holders.set(order, held);
    }
    return holders;
  }

  /** Units one attempt of an order (its taker, attempts.ts) still holds of one partition (taken minus released). */
  async heldBy(p: PartitionRef, taker: string): Promise<number> {
    const [taken, released] = await this.shards.client(p.shard).hmget(this.keys.takes(p.shard, p.sku, p.partitionId), `t:${taker}`, `r:${taker}`);
    return Number(taken ?? 0) - Number(released ?? 0);
  }

  /** The state and times of many orders (undefined: no such order), sent back to back. */
  async orderStates(orderIds: readonly string[]): Promise<Array<OrderState | undefined>> {
    const rows = await Promise.all(
      orderIds.map((id) => {
        const shard = this.keys.orderShard(id);
        return this.shards.client(shard).hmget(this.keys.order(shard, id), 'state', 'created', 'ended');
      }),
    );
    return rows.map(([state, created, ended]) => (state ? { state, created: Number(created ?? 0), ended: Number(ended ?? 0) } : undefined));
  }

  /** Whether a release of the order is recorded but not yet applied everywhere (in its shard's `releasing` index). */
  async releaseUnfinished(orderId: string): Promise<boolean> {
    const shard = this.keys.orderShard(orderId);
    const members = await this.shards.client(shard).zrange(this.keys.releasing(shard), 0, -1);
    return members.some((m) => m.startsWith(`${orderId}\n`));
  }

  /** The Redis clock, in ms (where Reconcile judges what is old enough to be stuck). */
  async redisTimeMs(shard: number): Promise<number> {
    const [seconds, micros] = await this.shards.client(shard).time();
    return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
  }
}
