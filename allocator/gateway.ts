import { HoldCode, OrderCode, TakeCode } from './codes';
import { OrderFields, PieceTuple, fieldsFromPairs } from './doc';
import { RedisShards } from './shards';
import { LuaScript } from './scripts';

/** A partition as the hot path addresses it. */
export interface PartitionRef {
  readonly sku: string;
  readonly partitionId: string;
  readonly shard: number;
  readonly epoch: number;
}

export type BeginResult =
  | { readonly kind: 'new'; readonly created: number }
  | { readonly kind: 'exists'; readonly sameRequest: boolean; readonly fields: OrderFields };

/** What order-reserve did: the whole Reserve at once, nothing (the partition is short: why), or the replay of an order that exists. */
export type ReserveHereResult =
  | Extract<BeginResult, { kind: 'exists' }>
  | { readonly kind: 'short'; readonly code: TakeCode }
  | { readonly kind: 'reserved'; readonly created: number; readonly expires: number; readonly availAfter: number };

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

export interface TakeResult {
  readonly code: TakeCode;
  readonly units: number;
  readonly availAfter: number;
}

export interface UntakeResult {
  readonly code: 1 | 2;
  readonly units: number;
  readonly to: '' | 'pool' | 'base';
}

export type ReleaseScriptResult =
  | { readonly code: OrderCode.Done | OrderCode.Replayed; readonly release: string; readonly state: string }
  | { readonly code: Exclude<OrderCode, OrderCode.Done | OrderCode.Replayed>; readonly sku?: string };

/**
 * The only class that builds key arrays and calls the Lua scripts (BullMQ's Scripts class): every
 * script's KEYS and ARGV are assembled here, from the one Keys module, so nothing else needs to
 * know the layout.
 */
export class RedisGateway {
  private readonly s: Record<
    | 'begin'
    | 'reserve'
    | 'reject'
    | 'plan'
    | 'commit'
    | 'confirm'
    | 'release'
    | 'take'
    | 'untake'
    | 'hold'
    | 'unhold'
    | 'create'
    | 'retire'
    | 'withdraw'
    | 'audit'
    | 'repair',
    LuaScript
  >;

  private readonly keysOfPartition = new WeakMap<PartitionRef, readonly [string, string]>();

  constructor(readonly shards: RedisShards) {
    this.s = {
      begin: shards.script('order-begin'),
      reserve: shards.script('order-reserve'),
      reject: shards.script('order-reject'),
      plan: shards.script('order-plan'),
      commit: shards.script('order-commit'),
      confirm: shards.script('order-confirm'),
      release: shards.script('order-release'),
      take: shards.script('take'),
      untake: shards.script('untake'),
      hold: shards.script('user-hold'),
      unhold: shards.script('user-unhold'),
      create: shards.script('partition-create'),
      retire: shards.script('partition-retire'),
      withdraw: shards.script('partition-withdraw'),
      audit: shards.script('partition-audit'),
      repair: shards.script('partition-repair'),
    };
  }

  private get keys() {
    return this.shards.keys;
  }

  /**
   * A partition's hash and takes keys, built once per partition object: the directory hands out the
   * same objects until the partition changes, so the hot path (reserveHere, take) builds none.
   */
  private partitionKeys(p: PartitionRef): readonly [string, string] {
    let keys = this.keysOfPartition.get(p);
    if (keys === undefined) {
      keys = [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.takes(p.shard, p.sku, p.partitionId)];
      this.keysOfPartition.set(p, keys);
    }
    return keys;
  }

  async begin(orderId: string, fingerprint: string, plan: PieceTuple[], doc: string, ttlSeconds: number): Promise<BeginResult> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<Array<number | string>>(
      shard,
      this.s.begin,
      [this.keys.order(shard, orderId), this.keys.pending(shard)],
      [orderId, fingerprint, JSON.stringify(plan), doc, ttlSeconds],
    );
    return beginResult(res);
  }

  /**
   * A one-item Reserve from a partition in the order's own shard, in one call: taken and committed
   * when the partition has the whole quantity; otherwise nothing is written ('short': go on with
   * `begin` and the general path).
   */
  async reserveHere(orderId: string, fingerprint: string, p: PartitionRef, units: number, reservedDoc: string, ttlSeconds: number): Promise<ReserveHereResult> {
    const shard = p.shard;
    if (shard !== this.keys.orderShard(orderId)) throw new Error(`reserveHere: partition ${p.partitionId} is not in the shard of order ${orderId}`);
    const [partitionKey, takesKey] = this.partitionKeys(p);
    const res = await this.shards.run<Array<number | string>>(
      shard,
      this.s.reserve,
      [this.keys.order(shard, orderId), this.keys.expiry(shard), partitionKey, takesKey, this.keys.ledger(shard)],
      [orderId, fingerprint, ttlSeconds, reservedDoc, units, p.epoch, p.sku, p.partitionId],
    );
    if (res[0] === 3) return { kind: 'reserved', created: Number(res[1]), expires: Number(res[2]), availAfter: Number(res[3]) };
    if (res[0] === 4) return { kind: 'short', code: res[1] as TakeCode };
    return beginResult(res) as Extract<BeginResult, { kind: 'exists' }>;
  }

  /**
   * A Reserve that nothing can fill, in one call: REJECTED with these shortages unless the order
   * exists ('exists': the replay). The record keeps what replays and refusals read (state, fp,
   * answer, times), without the doc, plan and ttl of an order that held something.
   */
  async reject(orderId: string, fingerprint: string, shortages: string, retentionSeconds: number): Promise<BeginResult> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<Array<number | string>>(shard, this.s.reject, [this.keys.order(shard, orderId)], [
      fingerprint,
      shortages,
      retentionSeconds,
    ]);
    return beginResult(res);
  }

  /** Adds pieces to a PENDING order's plan; false when the order is no longer PENDING. */
  async extendPlan(orderId: string, pieces: PieceTuple[]): Promise<boolean> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<number[]>(shard, this.s.plan, [this.keys.order(shard, orderId)], [
      JSON.stringify(pieces),
    ]);
    return res[0] === 1;
  }

  /** Closes a Reserve; its expiry (ms, 0 when rejected), or undefined when the order is no longer PENDING (rolled back by recovery). */
  async commit(orderId: string, outcome: 'RESERVED' | 'REJECTED', payload: string, retentionSeconds: number): Promise<number | undefined> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<number[]>(
      shard,
      this.s.commit,
      [this.keys.order(shard, orderId), this.keys.pending(shard), this.keys.expiry(shard)],
      [orderId, outcome, payload, retentionSeconds],
    );
    return res[0] === 1 ? res[2] : undefined;
  }

  async confirm(orderId: string): Promise<OrderCode> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<number[]>(
      shard,
      this.s.confirm,
      [this.keys.order(shard, orderId), this.keys.expiry(shard), this.keys.ledger(shard)],
      [orderId],
    );
    return res[0] as OrderCode;
  }

  async release(
    orderId: string,
    releaseId: string,
    reason: string,
    items: Record<string, number> | undefined,
    retentionSeconds: number,
    recoveryGraceMs: number,
  ): Promise<ReleaseScriptResult> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<Array<number | string>>(
      shard,
      this.s.release,
      [this.keys.order(shard, orderId), this.keys.expiry(shard), this.keys.releasing(shard), this.keys.pending(shard)],
      [orderId, releaseId, reason, items ? JSON.stringify(items) : '', retentionSeconds, recoveryGraceMs],
    );
    const code = res[0] as OrderCode;
    if (code === OrderCode.Done || code === OrderCode.Replayed) return { code, release: String(res[1]), state: String(res[2]) };
    return { code, sku: res[1] === undefined ? undefined : String(res[1]) } as ReleaseScriptResult;
  }

  /** The release has been applied everywhere: drop it from the recovery index. */
  async releaseApplied(orderId: string, releaseId: string): Promise<void> {
    const shard = this.keys.orderShard(orderId);
    await this.shards.client(shard).zrem(this.keys.releasing(shard), `${orderId}\n${releaseId}`);
  }

  async take(p: PartitionRef, orderId: string, wanted: number, minimum: number): Promise<TakeResult> {
    const [partitionKey, takesKey] = this.partitionKeys(p);
    const res = await this.shards.run<number[]>(
      p.shard,
      this.s.take,
      [partitionKey, takesKey, this.keys.ledger(p.shard)],
      [orderId, wanted, minimum, p.epoch, p.sku, p.partitionId],
    );
    return { code: res[0] as TakeCode, units: res[1], availAfter: res[2] };
  }

  async untake(
    p: PartitionRef,
    orderId: string,
    units: number,
    releaseId: string,
    from: 'reserved' | 'committed',
    reason: string,
  ): Promise<UntakeResult> {
    const res = await this.shards.run<[number, number, string]>(
      p.shard,
      this.s.untake,
      [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.takes(p.shard, p.sku, p.partitionId), this.keys.ledger(p.shard)],
      [orderId, units, releaseId, from, reason, p.sku, p.partitionId],
    );
    return { code: res[0] as 1 | 2, units: res[1], to: res[2] as UntakeResult['to'] };
  }

  async hold(userId: string, sku: string, orderId: string, units: number, limit: number): Promise<{ code: HoldCode; units: number }> {
    const shard = this.keys.userShard(userId);
    const res = await this.shards.run<number[]>(shard, this.s.hold, [this.keys.user(shard, sku, userId)], [
      orderId,
      units,
      limit,
    ]);
    return { code: res[0] as HoldCode, units: res[1] };
  }

  async unhold(userId: string, sku: string, orderId: string, units: number, releaseId: string): Promise<number> {
    const shard = this.keys.userShard(userId);
    const res = await this.shards.run<number[]>(shard, this.s.unhold, [this.keys.user(shard, sku, userId)], [
      orderId,
      units,
      releaseId,
    ]);
    return res[1];
  }

  /** Creates a live partition; idempotent (an existing one is reported, not changed). */
  async createPartition(p: PartitionRef, units: number): Promise<{ created: boolean; avail: number; epoch: number }> {
    const res = await this.shards.run<Array<number | string>>(
      p.shard,
      this.s.create,
      [this.keys.partition(p.shard, p.sku, p.partitionId)],
      [p.sku, p.partitionId, units, p.epoch],
    );
    return res[0] === 1
      ? { created: true, avail: units, epoch: p.epoch }
      : { created: false, avail: Number(res[1]), epoch: Number(res[2]) };
  }

  /** Marks an empty partition exhausted: 1 retired now, 2 not live already, -1 not empty (keep it). */
  async retire(p: PartitionRef): Promise<1 | 2 | -1> {
    return this.shards.run<1 | 2 | -1>(p.shard, this.s.retire, [this.keys.partition(p.shard, p.sku, p.partitionId)], [p.epoch]);
  }

  /**
   * Withdraws free units of a partition to base: all and for good ('drain'), or up to `units`
   * ('shrink'). Idempotent per event id, which is also the ledger record's id; `seq` is the
   * record's partition sequence number (0 when nothing was withdrawn or it was not kept).
   */
  async withdraw(
    p: PartitionRef,
    mode: 'drain' | 'shrink',
    units: number,
    eventId: string,
    reason: string,
  ): Promise<{ code: 1 | 2 | -2; units: number; state: string; seq: number }> {
    const res = await this.shards.run<[1 | 2 | -2, number, string, number]>(
      p.shard,
      this.s.withdraw,
      [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.ledger(p.shard)],
      [mode, units, eventId, p.sku, p.partitionId, reason],
    );
    return { code: res[0], units: res[1], state: res[2], seq: res[3] };
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

  /** A short lease on a SKU's top-up; false when another server holds it. */
  async acquireTopUpLock(sku: string, token: string, ttlMs: number): Promise<boolean> {
    const shard = this.keys.skuShard(sku);
    return (await this.shards.client(shard).set(this.keys.topUpLock(sku), token, 'PX', ttlMs, 'NX')) === 'OK';
  }

  async releaseTopUpLock(sku: string): Promise<void> {
    await this.shards.client(this.keys.skuShard(sku)).del(this.keys.topUpLock(sku));
  }

  /**
   * Leaves the top-up lock holding `value` for `ttlMs` instead of releasing it: the holder's
   * verdict (base is empty) for the servers waiting on it, and no new top-up meanwhile.
   */
  async settleTopUpLock(sku: string, value: string, ttlMs: number): Promise<void> {
    await this.shards.client(this.keys.skuShard(sku)).set(this.keys.topUpLock(sku), value, 'PX', ttlMs);
  }

  /** The top-up lock's value: a holder's token, a verdict, or null when free. */
  async topUpLock(sku: string): Promise<string | null> {
    return this.shards.client(this.keys.skuShard(sku)).get(this.keys.topUpLock(sku));
  }

  async order(orderId: string): Promise<OrderFields | undefined> {
    const shard = this.keys.orderShard(orderId);
    const fields = await this.shards.client(shard).hgetall(this.keys.order(shard, orderId));
    return fields.state ? fields : undefined;
  }

  /** Live `avail` of many partitions, sent back to back (ioredis writes them in one go per node). */
  async avail(partitions: readonly PartitionRef[]): Promise<number[]> {
    return Promise.all(
      partitions.map((p) => this.shards.client(p.shard).hget(this.keys.partition(p.shard, p.sku, p.partitionId), 'avail')),
    ).then((values) => values.map((v) => Number(v ?? 0)));
  }

  /**
   * Members of a shard index (expiry, pending, releasing) whose score is at most `upTo` (`Infinity`:
   * any), oldest first: `limit` of them after skipping `offset`, each with its score (ms).
   */
  async due(
    shard: number,
    index: 'expiry' | 'pending' | 'releasing',
    upTo: number,
    limit: number,
    offset = 0,
  ): Promise<Array<{ member: string; score: number }>> {
    const max = Number.isFinite(upTo) ? upTo : '+inf';
    const flat = await this.shards.client(shard).zrangebyscore(this.keys[index](shard), '-inf', max, 'WITHSCORES', 'LIMIT', offset, limit);
    const entries: Array<{ member: string; score: number }> = [];
    for (let i = 0; i < flat.length; i += 2) entries.push({ member: flat[i], score: Number(flat[i + 1]) });
    return entries;
  }

  /** One partition read at one instant (partition-audit): the Redis side of Reconcile's cut. */
  async auditPartition(p: PartitionRef): Promise<PartitionAudit> {
    const [partitionKey, takesKey] = this.partitionKeys(p);
    const res = await this.shards.run<[number, string, number, number, number, number, number]>(p.shard, this.s.audit, [partitionKey, takesKey], []);
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
      this.s.repair,
      [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.ledger(p.shard)],
      [fix, mode, units, eventId, p.sku, p.partitionId, reason, seqIfGone],
    );
    return res[0] === 1 ? { kind: 'repaired', units: res[1], seq: res[2] } : { kind: 'changed' };
  }

  /** Orders that hold units of a partition now (taken minus released > 0), read with HSCAN. */
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

  /** Units one order still holds of one partition (taken minus released). */
  async heldBy(p: PartitionRef, orderId: string): Promise<number> {
    const [taken, released] = await this.shards.client(p.shard).hmget(this.keys.takes(p.shard, p.sku, p.partitionId), `t:${orderId}`, `r:${orderId}`);
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

function beginResult(res: Array<number | string>): BeginResult {
  if (res[0] === 1) return { kind: 'new', created: Number(res[1]) };
  return { kind: 'exists', sameRequest: res[1] === 1, fields: fieldsFromPairs(res as string[], 2) };
}
