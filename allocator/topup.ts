import { randomBytes } from 'node:crypto';
import { Caller, NO_CALLER } from '../kernel/caller';
import { DependencyUnavailable } from '../kernel/dependency';
import { EventType, eventId } from '../kernel/events';
import { Logger } from '../kernel/logger';
import { PartitionDirectory } from './directory';
import { RedisGateway } from './gateway';

export interface TopUpOptions {
  /** Top up when the SKU's live pool falls below this many units. */
  readonly thresholdUnits: number;
  /** Units carved per top-up (at most what base holds). */
  readonly units: number;
  /** Partitions per top-up. */
  readonly partitions: number;
  /** After finding base empty, do not ask MySQL again for this long: a sold-out SKU costs nothing. */
  readonly emptyBaseCacheMs: number;
  /**
   * `stock.low` when base + live pool is below this many units as the top-up looks at the SKU
   * (STOCK_LOW_THRESHOLD); 0: never. One threshold for every SKU for now. Default 10.
   */
  readonly lowStockUnits?: number;
  /**
   * How long a stock.low / sku.sold_out stays remembered in Redis, so that looks at the same moment
   * by any server add it once (its marker key's TTL). Default 7 days.
   */
  readonly stockEventTtlSeconds?: number;
}

/** The top-up lock's value while its holder's verdict stands: base has nothing to carve. */
const EMPTY_BASE = 'empty-base';
const NO_TOP_UP = Promise.resolve(false);
/** How often a server waiting on another's top-up looks at its lock. */
const LOCK_POLL_MS = 20;
/** After the lock is released, how long new partitions may take to reach this server's cache. */
const WATCH_GRACE_MS = 250;

/** What the top-up needs of the stock operator. */
export interface Carver {
  baseOf(sku: string): Promise<number>;
  preallocate(requestId: string, sku: string, quantity: number, count: number): Promise<unknown>;
  /**
   * The SKU's newest partition (any state): the batch a stock.low or sku.sold_out is about, part
   * of its id. Without it, or when the SKU never had a partition, no such event is recorded.
   */
  newestPartition?(sku: string): Promise<string | undefined>;
}

/**
 * Keeps a SKU selling while base has stock: when its live pool runs low (a partition exhausted, or
 * a Reserve came up short) a new partition is carved from base. Single-flight per SKU: one call in
 * this process, one server at a time (a short Redis lease). The lease is only an optimisation:
 * base can never go below zero, whatever the interleaving, because the carve is a conditional
 * UPDATE in MySQL.
 */
export class TopUp {
  private readonly inflight = new Map<string, Promise<boolean>>();
  private readonly emptyUntil = new Map<string, number>();
  /** The last stock event id this server added or found added, per SKU: the next look skips Redis. */
  private readonly lastStockEvent = new Map<string, string>();

  constructor(
    private readonly carver: Carver,
    private readonly gateway: RedisGateway,
    private readonly directory: PartitionDirectory,
    private readonly options: TopUpOptions,
    private readonly logger: Logger,
  ) {}

  /**
   * Resolves true once this server routes to new stock of `sku`, false when there is none to carve.
   * `short`: a Reserve came up short, so carve whatever the live pool; otherwise (a partition was
   * retired) only when the pool is below the threshold. A caller that goes stops waiting at once
   * (false); the carve it may have started goes on for the others.
   */
  request(sku: string, deadline: number, short = false, caller: Caller = NO_CALLER): Promise<boolean> {
    if (caller === NO_CALLER) return this.shared(sku, deadline, short);
    if (caller.cancelled || Date.now() >= deadline) return NO_TOP_UP;
    return whileThere(this.shared(sku, deadline, short), deadline, caller);
  }

  private shared(sku: string, deadline: number, short: boolean): Promise<boolean> {
    const emptyUntil = this.emptyUntil.get(sku);
    if (emptyUntil !== undefined) {
      // Base was found empty lately: answer that at once, and once the verdict is a second old
      // look again in the background. Buyers of a sold-out SKU never wait for MySQL (they all did,
      // once a second, for as long as a busy MySQL took to answer).
      // While MySQL is down the refresh fails and the verdict stands: base only changes through MySQL.
      if (emptyUntil <= Date.now()) void this.single(sku, deadline, short).catch(() => undefined);
      return NO_TOP_UP;
    }
    return this.single(sku, deadline, short);
  }

  /** One run per SKU at a time in this process; callers in the meantime share it. */
  private single(sku: string, deadline: number, short: boolean): Promise<boolean> {
    let running = this.inflight.get(sku);
    if (!running) {
      running = this.run(sku, deadline, short)
        .catch((err) => {
          // MySQL (or the node) cannot say whether base has units: not "none", the callers' answer
          // is UNAVAILABLE. The breaker logs the outage; one line per top-up would bury it.
          if (err instanceof DependencyUnavailable) {
            this.logger.debug({ err, sku }, 'top-up: a dependency is unavailable');
            throw err;
          }
          this.logger.warn({ err, sku }, 'top-up failed');
          return false;
        })
        .finally(() => this.inflight.delete(sku));
      this.inflight.set(sku, running);
    }
    return running;
  }

  private async run(sku: string, deadline: number, short: boolean): Promise<boolean> {
    const known = new Set(this.directory.partitions(sku).map((p) => p.partitionId));
    const token = randomBytes(8).toString('hex');
    // The lease lives on the SKU's shard; with that node down the top-up goes on without it (it is
    // only an optimisation: the carve is a conditional UPDATE in MySQL), single-flight per process.
    const leased = this.gateway.shards.reachable(this.gateway.shards.keys.skuShard(sku));
    if (leased && !(await this.gateway.acquireTopUpLock(sku, token, 15_000))) {
      // Another server is carving: wait for its partitions to reach our cache, or for its verdict.
      return this.waitForNew(sku, known, deadline);
    }
    let settled = !leased;
    try {
      // Partitions on a node that is down cannot sell now: the pool is what the others hold, and
      // the top-up carves onto nodes that answer (PartitionCreator.plan).
      const all = this.directory.partitions(sku);
      const live = all.filter((p) => this.gateway.shards.reachable(p.shard));
      const pool = (await this.gateway.avail(live)).reduce((a, b) => a + b, 0);
      const lowUnits = this.options.lowStockUnits ?? 10;
      if (!short && pool >= Math.max(this.options.thresholdUnits, lowUnits)) return pool > 0;
      const base = await this.carver.baseOf(sku);
      // Never delays the top-up, never fails it: a look that misses one is followed by others. None
      // while part of the pool cannot be read: it would say sold out when it is not.
      if (live.length === all.length) void this.stockEvent(sku, base, pool, lowUnits).catch((err) => this.logger.warn({ err, sku }, 'could not record a stock event; the next look at the SKU tries again'));
      if (!short && pool >= this.options.thresholdUnits) return pool > 0;
      if (base <= 0) {
        this.emptyUntil.set(sku, Date.now() + this.options.emptyBaseCacheMs);
        // Tell the servers waiting on this lock at once, instead of letting them wait out their
        // deadline for partitions that will not come (every buyer of a sold-out sale would).
        if (leased) await this.gateway.settleTopUpLock(sku, EMPTY_BASE, this.options.emptyBaseCacheMs);
        settled = true;
        return pool > 0;
      }
      this.emptyUntil.delete(sku);
      const units = Math.min(base, this.options.units);
      const count = Math.max(1, Math.min(this.options.partitions, units));
      await this.carver.preallocate(`topup-${sku.slice(0, 80)}-${Date.now().toString(36)}-${token}`, sku, units, count);
      this.logger.info({ sku, units, partitions: count }, 'topped up the pool from base');
      return this.waitForNew(sku, known, deadline);
    } finally {
      if (!settled) await this.gateway.releaseTopUpLock(sku).catch(() => undefined);
    }
  }

  /**
   * Records `sku.sold_out` (base and live pool empty) or `stock.low` (some left, fewer than
   * `lowUnits`) in the outbox of the SKU's shard, once per batch of partitions: the id names the
   * SKU's newest partition, so looks that see the same state, on any server, add one event (Redis
   * marks the id), and the next sell-out is a new event only after new partitions were carved.
   */
  private async stockEvent(sku: string, base: number, pool: number, lowUnits: number): Promise<void> {
    const sellable = Math.max(0, base) + pool;
    let type: EventType;
    if (base <= 0 && pool === 0) type = 'sku.sold_out';
    else if (sellable < lowUnits) type = 'stock.low';
    else return;
    const newest = await this.carver.newestPartition?.(sku);
    if (newest === undefined) return;
    const id = eventId(type, sku, newest);
    if (this.lastStockEvent.get(sku) === id) return;
    const data = type === 'stock.low' ? { sellable, base, pool, threshold: lowUnits, newestPartitionId: newest } : { base, pool, newestPartitionId: newest };
    await this.gateway.addEventOnce(sku, id, type, data, this.options.stockEventTtlSeconds ?? 7 * 86_400);
    this.lastStockEvent.set(sku, id);
  }

  /**
   * Waits until the registry watch brings a partition this server did not know. Gives up when the
   * carving server's verdict is that base is empty, or when its lock is gone and no partition
   * followed within the watch's usual delay (it failed, or carved nothing).
   */
  private async waitForNew(sku: string, known: Set<string>, deadline: number): Promise<boolean> {
    const until = Math.min(deadline, Date.now() + 5000);
    let nextLockCheck = 0;
    let lockGoneAt: number | undefined;
    for (;;) {
      if (this.directory.partitions(sku).some((p) => !known.has(p.partitionId))) return true;
      const now = Date.now();
      if (now >= until) return false;
      if (now >= nextLockCheck) {
        nextLockCheck = now + LOCK_POLL_MS;
        const lock = await this.gateway.topUpLock(sku).catch(() => undefined);
        if (lock === EMPTY_BASE) {
          this.emptyUntil.set(sku, now + this.options.emptyBaseCacheMs);
          return false;
        }
        if (lock === null) lockGoneAt ??= now;
      }
      if (lockGoneAt !== undefined && now - lockGoneAt > WATCH_GRACE_MS) return false;
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }
}

/**
 * A shared wait as one caller sees it: false as soon as that caller cancels or its own deadline
 * passes (the wait is single-flight per SKU, on the first caller's deadline, and goes on for the
 * others). The flag is polled: a cancelled call has no event the domain can wait on.
 */
function whileThere(wait: Promise<boolean>, deadline: number, caller: Caller): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const finish = (more: boolean) => {
      clearInterval(poll);
      resolve(more);
    };
    const poll = setInterval(() => {
      if (caller.cancelled || Date.now() >= deadline) finish(false);
    }, LOCK_POLL_MS);
    wait.then(finish, (err: unknown) => {
      clearInterval(poll);
      reject(err);
    });
  });
}
