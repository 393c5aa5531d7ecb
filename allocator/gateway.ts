import { BeginCode, CreateCode, SealedCode, HoldCode, OrderCode, PendingCode, ReserveHereCode, RetireCode, ShipCode, TakeCode, UntakeCode, WithdrawCode } from './codes';
import { OrderFields, PieceTuple, fieldsFromPairs } from './doc';
import { RedisShards } from './shards';
import { LuaScript } from './scripts';
import { ForgottenFilter, ForgottenFilterOptions } from './forgotten';

/** A partition as the hot path addresses it. */
export interface PartitionRef {
  readonly sku: string;
  readonly partitionId: string;
  readonly shard: number;
  readonly epoch: number;
}

export type BeginResult =
  /** `attempt`: 1, or the next after a rolled-back one (order-begin). */
  | { readonly kind: 'new'; readonly created: number; readonly attempt: number }
  /** `archived`: the order's record came from MySQL's archive (its retention in Redis is over). */
  | { readonly kind: 'exists'; readonly sameRequest: boolean; readonly fields: OrderFields; readonly archived?: boolean }
  /** Nothing written: the id is in the filter of forgotten ids; ask the archive (allocator/forgotten.ts). */
  | MaybeForgotten;

export interface MaybeForgotten {
  readonly kind: 'maybe-forgotten';
}

export interface GatewayOptions {
  /** How long an ended or paid order's record stays after its last change (ORDER_RETENTION_SECONDS). */
  readonly retentionSeconds: number;
  readonly filter: ForgottenFilterOptions;
}

/** Defaults for tools and tests (those of server/config.ts); the server passes its configuration. */
export const DEFAULT_GATEWAY_OPTIONS: GatewayOptions = {
  retentionSeconds: 86400,
  filter: { bits: 1 << 22, horizonMs: 30 * 86400_000 },
};

/** What order-reserve did: the whole Reserve at once, nothing (the partition is short: why), or the replay of an order that exists. */
export type ReserveHereResult =
  | Extract<BeginResult, { kind: 'exists' }>
  | MaybeForgotten
  | { readonly kind: 'short'; readonly code: TakeCode }
  | { readonly kind: 'reserved'; readonly created: number; readonly expires: number; readonly availAfter: number };

export interface TakeResult {
  readonly code: TakeCode;
  readonly units: number;
  readonly availAfter: number;
}

export interface UntakeResult {
  readonly code: UntakeCode;
  readonly units: number;
  readonly to: '' | 'pool' | 'base' | 'missing';
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
    | 'ship'
    | 'owe'
    | 'event'
    | 'sealed'
    | 'forget'
    | 'forgetTakes'
    | 'forgetUser',
    LuaScript
  >;

  readonly filter: ForgottenFilter;

  private readonly keysOfPartition = new WeakMap<PartitionRef, readonly [string, string]>();

  constructor(
    readonly shards: RedisShards,
    readonly options: GatewayOptions = DEFAULT_GATEWAY_OPTIONS,
  ) {
    this.filter = new ForgottenFilter(shards.keys, options.filter);
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
      ship: shards.script('order-ship'),
      owe: shards.script('partition-owe'),
      event: shards.script('event-once'),
      sealed: shards.script('order-sealed'),
      forget: shards.script('order-forget'),
      forgetTakes: shards.script('takes-forget'),
      forgetUser: shards.script('user-forget'),
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

  /**
   * Opens an attempt of a Reserve (PENDING with its plan), or answers the order that exists. `budgetMs`:
   * how long the attempt may work; past that a retry may roll it back (order-begin).
   */
  async begin(
    orderId: string,
    fingerprint: string,
    plan: PieceTuple[],
    doc: string,
    ttlSeconds: number,
    budgetMs: number,
    archiveAsked = false,
  ): Promise<BeginResult> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<Array<number | string>>(
      shard,
      this.s.begin,
      [this.keys.order(shard, orderId), this.keys.pending(shard), this.keys.releasing(shard), ...this.filter.checkKeys(shard)],
      [orderId, fingerprint, JSON.stringify(plan), doc, ttlSeconds, Math.max(0, Math.floor(budgetMs)), ...this.filter.checkArgs(orderId, archiveAsked)],
    );
    return beginResult(res);
  }

  /**
   * A one-item Reserve from a partition in the order's own shard, in one call: taken and committed
   * when the partition has the whole quantity; otherwise nothing is written ('short': go on with
   * `begin` and the general path).
   */
  async reserveHere(
    orderId: string,
    fingerprint: string,
    p: PartitionRef,
    units: number,
    reservedDoc: string,
    ttlSeconds: number,
    archiveAsked = false,
  ): Promise<ReserveHereResult> {
    const shard = p.shard;
    if (shard !== this.keys.orderShard(orderId)) throw new Error(`reserveHere: partition ${p.partitionId} is not in the shard of order ${orderId}`);
    const [partitionKey, takesKey] = this.partitionKeys(p);
    const res = await this.shards.run<Array<number | string>>(
      shard,
      this.s.reserve,
      [this.keys.order(shard, orderId), this.keys.expiry(shard), partitionKey, takesKey, this.keys.ledger(shard), ...this.filter.checkKeys(shard)],
      [orderId, fingerprint, ttlSeconds, reservedDoc, units, p.epoch, p.sku, p.partitionId, ...this.filter.checkArgs(orderId, archiveAsked)],
    );
    if (res[0] === ReserveHereCode.Reserved) return { kind: 'reserved', created: Number(res[1]), expires: Number(res[2]), availAfter: Number(res[3]) };
    if (res[0] === ReserveHereCode.Short) return { kind: 'short', code: res[1] as TakeCode };
    return beginResult(res) as Exclude<BeginResult, { kind: 'new' }>;
  }

  /**
   * A Reserve that nothing can fill, in one call: REJECTED with these shortages unless the order
   * exists ('exists': the replay). The record keeps what replays and refusals read (state, fp,
   * answer, times), without the doc, plan and ttl of an order that held something.
   */
  async reject(orderId: string, fingerprint: string, shortages: string, archiveAsked = false): Promise<BeginResult> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<Array<number | string>>(
      shard,
      this.s.reject,
      [this.keys.order(shard, orderId), this.keys.forget(shard), ...this.filter.checkKeys(shard)],
      [fingerprint, shortages, this.options.retentionSeconds, orderId, ...this.filter.checkArgs(orderId, archiveAsked)],
    );
    return beginResult(res);
  }

  /** Adds pieces to a PENDING attempt's plan; false when that attempt is no longer PENDING. */
  async extendPlan(orderId: string, attempt: number, pieces: PieceTuple[]): Promise<boolean> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<number[]>(shard, this.s.plan, [this.keys.order(shard, orderId)], [
      JSON.stringify(pieces),
      attempt,
    ]);
    return res[0] === PendingCode.Done;
  }

  /** Closes a Reserve attempt; its expiry (ms, 0 when rejected), or undefined when that attempt is no longer PENDING (rolled back). */
  async commit(orderId: string, attempt: number, outcome: 'RESERVED' | 'REJECTED', payload: string): Promise<number | undefined> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<number[]>(
      shard,
      this.s.commit,
      [this.keys.order(shard, orderId), this.keys.pending(shard), this.keys.expiry(shard), this.keys.forget(shard)],
      [orderId, outcome, payload, this.options.retentionSeconds, attempt],
    );
    return res[0] === PendingCode.Done ? res[2] : undefined;
  }

  async confirm(orderId: string): Promise<OrderCode> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<number[]>(
      shard,
      this.s.confirm,
      [this.keys.order(shard, orderId), this.keys.expiry(shard), this.keys.ledger(shard), this.keys.forget(shard)],
      [orderId, this.options.retentionSeconds],
    );
    return res[0] as OrderCode;
  }

  async release(
    orderId: string,
    releaseId: string,
    reason: string,
    items: Record<string, number> | undefined,
    recoveryGraceMs: number,
    /** RECOVERY only: '' the recovery worker, 'lapsed' a retry, `<n>` attempt n giving itself up (order-release). */
    rolledBackBy = '',
  ): Promise<ReleaseScriptResult> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<Array<number | string>>(
      shard,
      this.s.release,
      [
        this.keys.order(shard, orderId),
        this.keys.expiry(shard),
        this.keys.releasing(shard),
        this.keys.pending(shard),
        this.keys.outbox(shard),
        this.keys.forget(shard),
      ],
      [orderId, releaseId, reason, items ? JSON.stringify(items) : '', this.options.retentionSeconds, recoveryGraceMs, rolledBackBy],
    );
    const code = res[0] as OrderCode;
    if (code === OrderCode.Done || code === OrderCode.Replayed) return { code, release: String(res[1]), state: String(res[2]) };
    return { code, sku: res[1] === undefined ? undefined : String(res[1]) } as ReleaseScriptResult;
  }

  /**
   * Leaves a partition owing up to `units` of a loss that base and pool could not cover (at most
   * what its orders hold): releases of its units pay that debt before anything returns to sale.
   * Idempotent per event id; answers the units owed.
   */
  async owe(p: PartitionRef, units: number, eventId: string): Promise<number> {
    return this.shards.run<number>(p.shard, this.s.owe, [this.keys.partition(p.shard, p.sku, p.partitionId)], [units, eventId]);
  }

  /**
   * Ships units of a paid order (a warehouse SHIPMENT): committed -> outside, capped at what the
   * order still has committed of the SKU, once per message id. The ledger record follows in the
   * same script.
   */
  async ship(orderId: string, messageId: string, sku: string, units: number): Promise<{ code: ShipCode; units: number; state?: string }> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<Array<number | string>>(
      shard,
      this.s.ship,
      [this.keys.order(shard, orderId), this.keys.ledger(shard), this.keys.forget(shard)],
      [orderId, messageId, sku, units, this.options.retentionSeconds],
    );
    const code = res[0] as ShipCode;
    if (code === ShipCode.NotConfirmed) return { code, units: 0, state: String(res[1]) };
    return { code, units: code === ShipCode.Shipped || code === ShipCode.Replayed ? Number(res[1]) : 0 };
  }

  /** The release has been applied everywhere: drop it from the recovery index. */
  async releaseApplied(orderId: string, releaseId: string): Promise<void> {
    const shard = this.keys.orderShard(orderId);
    await this.shards.client(shard).zrem(this.keys.releasing(shard), `${orderId}\n${releaseId}`);
  }

  /** `taker`: the attempt's name in the takes hash (attempts.ts), the order id for a first attempt. */
  async take(p: PartitionRef, orderId: string, wanted: number, minimum: number, taker = orderId): Promise<TakeResult> {
    const [partitionKey, takesKey] = this.partitionKeys(p);
    const res = await this.shards.run<number[]>(
      p.shard,
      this.s.take,
      [partitionKey, takesKey, this.keys.ledger(p.shard)],
      [orderId, wanted, minimum, p.epoch, p.sku, p.partitionId, taker],
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
    taker = orderId,
  ): Promise<UntakeResult> {
    const res = await this.shards.run<[UntakeCode, number, string]>(
      p.shard,
      this.s.untake,
      [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.takes(p.shard, p.sku, p.partitionId), this.keys.ledger(p.shard)],
      [orderId, units, releaseId, from, reason, p.sku, p.partitionId, taker],
    );
    return { code: res[0] as UntakeCode, units: res[1], to: res[2] as UntakeResult['to'] };
  }

  /** `taker` (user-hold's order id): the attempt's name, as for take. */
  async hold(userId: string, sku: string, taker: string, units: number, limit: number): Promise<{ code: HoldCode; units: number }> {
    const shard = this.keys.userShard(userId);
    const res = await this.shards.run<number[]>(shard, this.s.hold, [this.keys.user(shard, sku, userId)], [
      taker,
      units,
      limit,
    ]);
    return { code: res[0] as HoldCode, units: res[1] };
  }

  async unhold(userId: string, sku: string, taker: string, units: number, releaseId: string): Promise<number> {
    const shard = this.keys.userShard(userId);
    const res = await this.shards.run<number[]>(shard, this.s.unhold, [this.keys.user(shard, sku, userId)], [
      taker,
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
    return res[0] === CreateCode.Created
      ? { created: true, avail: units, epoch: p.epoch }
      : { created: false, avail: Number(res[1]), epoch: Number(res[2]) };
  }

  /** Marks an empty partition exhausted, if it still is (and records its partition.exhausted event). */
  async retire(p: PartitionRef): Promise<RetireCode> {
    return this.shards.run<RetireCode>(
      p.shard,
      this.s.retire,
      [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.outbox(p.shard)],
      [p.epoch],
    );
  }

  /**
   * Adds an event about a SKU to the outbox of the SKU's shard unless an event of that id was added
   * within `ttlSeconds` (event-once): servers that see the same moment add it once. True when added now.
   */
  async addEventOnce(sku: string, id: string, type: string, data: Record<string, unknown>, ttlSeconds: number): Promise<boolean> {
    const shard = this.keys.skuShard(sku);
    const res = await this.shards.run<number>(shard, this.s.event, [this.keys.eventMark(sku, id), this.keys.outbox(shard)], [
      id,
      type,
      sku,
      JSON.stringify(data),
      ttlSeconds,
    ]);
    return res === 1;
  }

  /**
   * Withdraws free units of a partition to base: all and for good ('drain'), or up to `units`
   * ('shrink'); a loss shrinks to 'outside' (gone from the building, never through base). Idempotent per event id, which is also the ledger record's id; `seq` is the
   * record's partition sequence number (0 when nothing was withdrawn or it was not kept).
   */
  async withdraw(
    p: PartitionRef,
    mode: 'drain' | 'shrink',
    units: number,
    eventId: string,
    reason: string,
    to: 'base' | 'outside' = 'base',
  ): Promise<{ code: WithdrawCode; units: number; state: string; seq: number }> {
    const res = await this.shards.run<[WithdrawCode, number, string, number]>(
      p.shard,
      this.s.withdraw,
      [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.ledger(p.shard)],
      [mode, units, eventId, p.sku, p.partitionId, reason, to],
    );
    return { code: res[0], units: res[1], state: res[2], seq: res[3] };
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

  /**
   * The forgetter's read of an order whose retention may be over (order-sealed): its record when
   * it is sealed, else why not (the index entry is fixed up on the way).
   */
  async sealedOrder(orderId: string): Promise<{ code: SealedCode.Sealed; fields: OrderFields } | { code: Exclude<SealedCode, SealedCode.Sealed> }> {
    const shard = this.keys.orderShard(orderId);
    const res = await this.shards.run<Array<number | string>>(
      shard,
      this.s.sealed,
      [this.keys.order(shard, orderId), this.keys.releasing(shard), this.keys.forget(shard)],
      [orderId],
    );
    const code = res[0] as SealedCode;
    return code === SealedCode.Sealed ? { code, fields: fieldsFromPairs(res as string[], 1) } : { code };
  }

  /** Clears a forgotten order's fields from a partition's takes hash (takes-forget); true when the retired partition went too. */
  async forgetTakes(p: { sku: string; partitionId: string; shard: number }, fields: readonly string[]): Promise<boolean> {
    const keys = [this.keys.partition(p.shard, p.sku, p.partitionId), this.keys.takes(p.shard, p.sku, p.partitionId)];
    return (await this.shards.run<number>(p.shard, this.s.forgetTakes, keys, fields)) === 2;
  }

  /** Ends a forgotten order's part of a buyer's allowance (user-forget); the units that left it. */
  async forgetAllowance(userId: string, sku: string, takers: readonly string[], releaseIds: readonly string[]): Promise<number> {
    const shard = this.keys.userShard(userId);
    return this.shards.run<number>(shard, this.s.forgetUser, [this.keys.user(shard, sku, userId)], [takers.length, ...takers, ...releaseIds]);
  }

  /** Deletes a sealed, archived and cleared order (order-forget), its id into the filter; false when it was reopened meanwhile. */
  async forgetOrder(orderId: string, forgetAt: string): Promise<boolean> {
    const shard = this.keys.orderShard(orderId);
    const { key, args, ttlSeconds } = this.filter.addition(orderId);
    const res = await this.shards.run<number>(
      shard,
      this.s.forget,
      [this.keys.order(shard, orderId), this.keys.forget(shard), key],
      [orderId, forgetAt, ...args, ttlSeconds],
    );
    return res === 1;
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
    index: 'expiry' | 'pending' | 'releasing' | 'forget',
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


}

function beginResult(res: Array<number | string>): BeginResult {
  if (res[0] === BeginCode.MaybeForgotten) return { kind: 'maybe-forgotten' };
  if (res[0] === BeginCode.New) return { kind: 'new', created: Number(res[1]), attempt: Number(res[2] ?? 1) };
  return { kind: 'exists', sameRequest: res[1] === 1, fields: fieldsFromPairs(res as string[], 2) };
}
