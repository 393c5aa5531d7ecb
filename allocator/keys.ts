/**
 * The one module that names Redis keys. Every key lives in a virtual shard whose number is its
 * hash tag: `<prefix>:{s<N>}:...`. All keys one script touches share a shard, so every script runs
 * unchanged on Redis Cluster; the shard also picks the node on plain multi-node Redis (ShardMap).
 *
 * Every key has an end (issue "Bounded Redis"; Redis runs with noeviction, so a key that never
 * ends is memory that never comes back). Per shard, what creates each key, what ends it, and its
 * size (measured by `npm run bench -- --only soak`, Redis 7 with hash-max-listpack-value 1024 as
 * the stack runs it; with Redis's default of 64 the order hash is a hashtable and about 1.7x):
 *
 *   o:<order>            reservation (orders whose id hashes to the shard). Created by Reserve.
 *                        Ends ORDER_RETENTION_SECONDS after its last change (released, expired,
 *                        rejected, shipped, and confirmed orders alike): the forgetter
 *                        (forgetter.ts) archives it in MySQL (order_archive) and deletes it.
 *                        With its take and allowance fields and index entries: ~830 B per open
 *                        hold, ~860 B per order kept for its retention (soak probe)
 *   forget               zset: orders by the ms their retention ends (includes/retention.lua);
 *                        an entry per ended or paid order, removed as the order is forgotten
 *   seen:<generation>    Bloom filter of the order ids forgotten in one generation
 *                        (forgotten.ts): FORGOTTEN_FILTER_BITS / 8 bytes (512 KiB by default),
 *                        created at full size by the first forget of the generation, expires two
 *                        generations later (FORGOTTEN_HORIZON_SECONDS each, 30 days by default)
 *   p:<sku>:<partition>  partition hash (avail, epoch, state, seq, cap; lostat/lostto: the numbers of
 *                        a lost-writes incident, admin/lost-writes.ts). Created by Preallocate,
 *                        Rebalance or a top-up; a partition that no longer sells (exhausted,
 *                        drained) is deleted by the forgetter with the last take record of its
 *                        takes hash: no order can return units to it any more (a late return goes
 *                        to base through the ledger). ~200 B
 *   t:<sku>:<partition>  takes of that partition per order (t:/r:/x: fields, ~50 B per order and
 *                        attempt); the forgetter deletes an order's fields when it forgets the
 *                        order, and the hash goes with its last field
 *   u:<sku>:<user>       a buyer's per-user allowance of a SKU (users hash to shards): what the
 *                        per-user limit counts is the units the buyer holds or bought in orders
 *                        that are open or ended less than the retention ago. Fields per order go
 *                        when the order is forgotten, the key with the last of them
 *   pending              zset: Reserve calls not answered yet (crash recovery); an entry lives
 *                        for one Reserve call
 *   expiry               zset: unpaid holds by expiry time; an entry per open hold
 *   releasing            zset: releases recorded but not yet fully applied; an entry for the
 *                        length of one Release
 *   ledger               stream of change records for the ledger writer, which deletes each
 *                        record once MySQL has committed it: as long as MySQL lags
 *   outbox               stream of events for other systems (kernel/events.ts, docs/events.md),
 *                        appended in the same script as the change they report; the publisher
 *                        (mq/events.ts, consumer group `events`) deletes each once RabbitMQ has
 *                        confirmed it. Trimmed at ~100,000 entries (includes/outbox.lua) should
 *                        no publisher drain it
 *   ev:<event id>        marker that a derived event (stock.low, sku.sold_out) is in the outbox
 *                        already, so servers seeing the same moment add it once; expires after a
 *                        week (the top-up's stockEventTtlSeconds)
 *   topup:<sku>          short-lived lock (PX): one server at a time tops a SKU up
 *
 * And one key outside the shards, on every node in plain multi-node mode:
 *   <prefix>:nodemap     the node list and shard count recorded at first start (node-map.ts);
 *                        lives as long as the deployment (a few dozen bytes)
 */
export class Keys {
  /** Per shard, built once: the tag, and the shard-wide keys the hot path names on every call. */
  private readonly tags: readonly string[];
  private readonly ledgers: readonly string[];
  private readonly expiries: readonly string[];
  private readonly pendings: readonly string[];

  constructor(readonly prefix: string, readonly shardCount: number) {
    this.tags = Array.from({ length: shardCount }, (_, s) => `${prefix}:{s${s}}`);
    this.ledgers = this.tags.map((tag) => `${tag}:ledger`);
    this.expiries = this.tags.map((tag) => `${tag}:expiry`);
    this.pendings = this.tags.map((tag) => `${tag}:pending`);
  }

  tag(shard: number): string {
    return this.tags[shard] ?? `${this.prefix}:{s${shard}}`;
  }

  partition(shard: number, sku: string, partitionId: string): string {
    return `${this.tag(shard)}:p:${sku}:${partitionId}`;
  }

  takes(shard: number, sku: string, partitionId: string): string {
    return `${this.tag(shard)}:t:${sku}:${partitionId}`;
  }

  order(shard: number, orderId: string): string {
    return `${this.tag(shard)}:o:${orderId}`;
  }

  user(shard: number, sku: string, userId: string): string {
    return `${this.tag(shard)}:u:${sku}:${userId}`;
  }

  ledger(shard: number): string {
    return this.ledgers[shard] ?? `${this.tag(shard)}:ledger`;
  }

  pending(shard: number): string {
    return this.pendings[shard] ?? `${this.tag(shard)}:pending`;
  }

  expiry(shard: number): string {
    return this.expiries[shard] ?? `${this.tag(shard)}:expiry`;
  }

  releasing(shard: number): string {
    return `${this.tag(shard)}:releasing`;
  }

  /** zset: ended and paid orders by the ms their retention ends (includes/retention.lua). */
  forget(shard: number): string {
    return `${this.tag(shard)}:forget`;
  }

  /** The shard's filter of order ids forgotten in one generation (allocator/forgotten.ts). */
  seen(shard: number, generation: number): string {
    return `${this.tag(shard)}:seen:${generation}`;
  }

  /** The shard's event outbox stream. */
  outbox(shard: number): string {
    return `${this.tag(shard)}:outbox`;
  }

  /** Marker of a derived event already in the outbox of the SKU's shard (event-once). */
  eventMark(sku: string, eventId: string): string {
    return `${this.tag(this.skuShard(sku))}:ev:${eventId}`;
  }

  /**
   * Plain multi-node mode: the node list and shard count recorded at first start, on every node
   * (node-map.ts). No hash tag: it is per node, not per shard. One small string for the life of
   * the deployment.
   */
  nodeMap(): string {
    return `${this.prefix}:nodemap`;
  }

  /** Lock that makes the top-up of a SKU single-flight across servers. */
  topUpLock(sku: string): string {
    return `${this.tag(this.skuShard(sku))}:topup:${sku}`;
  }

  /** The shard of per-SKU coordination keys. */
  skuShard(sku: string): number {
    return fnv1a(`k:${sku}`) % this.shardCount;
  }

  /** The shard an order's record lives in. */
  orderShard(orderId: string): number {
    return fnv1a(orderId) % this.shardCount;
  }

  /** The shard a buyer's allowances live in. */
  userShard(userId: string): number {
    return fnv1a(`u:${userId}`) % this.shardCount;
  }
}

/** 32-bit FNV-1a: fast, stable across processes and releases (shard placement depends on it). */
export function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
