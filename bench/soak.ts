/**
 * The soak (`npm run bench -- --only soak`, a few minutes): does Redis memory stay bounded?
 *
 * One server with a short order retention (seconds instead of days) and its own SKU with a
 * per-user limit (so allowance hashes are written too). First a probe measures Redis bytes per
 * order: N holds (live orders), then the same N confirmed (retained orders: ended, kept for
 * replays until their retention ends), then after the forgetter (what stays: the fixed-size
 * filters of forgotten ids). Then the steady load: orders reserved at a fixed rate, half of them
 * paid, a fifth cancelled, the rest left to expire, while Redis used_memory is sampled. Once
 * retention is reached, orders are forgotten as fast as they come and memory is flat: the check
 * is its spread over the second half of the load (at most 5%). At the end the ledger is drained
 * and Reconcile (dry run) and the books must be clean.
 */
import { AdminClient, InventoryClient, ReleaseReason, ReserveOutcome, ReserveResponse } from '../client';
import { RedisShards } from '../allocator/shards';
import { shardsFromConfig } from '../server/clients';
import { Bench } from './context';
import { fmt } from './format';
import { ServerProcess } from './procs';
import { Progress } from './progress';
import { SoakOptions, SoakResult, SoakSample } from './soak-result';
import { judge, readBooks } from './verify';

/** Hold lifetime of the soak's orders: short, so that a share of them expires during the load. */
const TTL_S = 2;
/** Share of RESERVED orders paid, and cancelled; the rest expire. */
const PAY = 0.5;
const CANCEL = 0.2;
const USERS = 5000;
/** The soak's SKU never sells out. */
const UNITS = 100_000_000;
/** Most allowed spread of used_memory over the second half of the load. */
const FLAT_WITHIN = 0.05;

/** The server environment of the soak: short retention, and workers that keep up with it. */
export function soakServerEnv(o: SoakOptions): Record<string, string> {
  return {
    ORDER_RETENTION_SECONDS: String(o.retentionS),
    RESERVE_TIMEOUT_MS: String(Math.min(5000, o.retentionS * 500)),
    FORGET_INTERVAL_MS: '250',
    SWEEP_INTERVAL_MS: '500',
    MAX_TTL_SECONDS: '3600',
    // The event publisher drains the outbox streams as in production (the other scenarios run without it).
    MQ_CONSUMER: 'process',
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Redis as the soak sees it: used_memory over every node, and the namespace's order counts. */
class RedisProbe {
  constructor(readonly shards: RedisShards) {}

  async usedBytes(): Promise<number> {
    const infos = await Promise.all(this.shards.clients.map((c) => c.info('memory')));
    return infos.reduce((sum, info) => sum + Number(/used_memory:(\d+)/.exec(info)?.[1] ?? NaN), 0);
  }

  /** Sum over the shards of one sorted set per shard. */
  private async zcards(key: (shard: number) => string): Promise<number> {
    const shards = Array.from({ length: this.shards.keys.shardCount }, (_, s) => s);
    const counts = await Promise.all(shards.map((s) => this.shards.client(s).zcard(key(s))));
    return counts.reduce((a, b) => a + b, 0);
  }

  retained(): Promise<number> {
    return this.zcards((s) => this.shards.keys.forget(s));
  }

  open(): Promise<number> {
    return this.zcards((s) => this.shards.keys.expiry(s));
  }

  /** Entries of the ledger and outbox streams not yet taken by the ledger writer and the event publisher. */
  async streamBacklog(): Promise<number> {
    const { keys } = this.shards;
    const shards = Array.from({ length: keys.shardCount }, (_, s) => s);
    const lengths = await Promise.all(shards.flatMap((s) => [keys.ledger(s), keys.outbox(s)].map((key) => this.shards.client(s).xlen(key))));
    return lengths.reduce((a, b) => a + b, 0);
  }

  /** used_memory once the streams are drained (entries in a stream are memory too). */
  async settledBytes(): Promise<number> {
    await until(async () => (await this.streamBacklog()) === 0, 60_000, 'the ledger and outbox streams to drain');
    await sleep(300);
    return this.usedBytes();
  }
}

async function until(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`soak: timed out waiting for ${what}`);
    await sleep(200);
  }
}

/** Runs `fn` over `items` with at most `limit` at once. */
async function pooled<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: limit }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

export async function soak(bench: Bench, server: ServerProcess, o: SoakOptions): Promise<SoakResult> {
  const config = bench.ns.config;
  const sku = bench.sku('soak');
  // The order calls are not retried: the soak's verdict counts every error.
  const client = new InventoryClient({ address: server.target, timeoutMs: 60_000, retry: { maxAttempts: 1 } });
  const admin = new AdminClient({ address: server.adminTarget, token: config.adminToken });
  // Stocked as an operator does, so that MySQL's books and Reconcile know the SKU.
  await admin.setStock({ requestId: `${sku}-set`, skuId: sku, onHand: UNITS, reason: 'soak', perUserLimit: 1_000_000 });
  await admin.preallocate({ requestId: `${sku}-pre`, skuId: sku, quantity: UNITS, partitions: bench.o.partitions });
  const shards = shardsFromConfig(config);
  await shards.connect();
  const redis = new RedisProbe(shards);
  const reserve = (orderId: string, ttlSeconds: number, userId: string) => client.reserve({ orderId, items: [{ skuId: sku, quantity: 1 }], ttlSeconds, userId });
  const confirm = (orderId: string) => client.confirm({ orderId });
  const cancel = (orderId: string) => client.release({ orderId, reason: ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT });
  await until(async () => (await reserve(`${bench.ns.tag}-soak-ready`, 1, 'u-ready')).outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED, 30_000, 'the server to route the SKU').catch(() => undefined);
  try {
    const probe = await probeBytesPerOrder(bench, o, redis, reserve, confirm);
    const { orders, samples } = await steadyLoad(bench, o, redis, reserve, confirm, cancel);
    // The end: holds expire, the ledger drains, every order's retention passes and it is forgotten.
    await sleep((TTL_S + 1) * 1000);
    await until(async () => (await redis.open()) === 0, 60_000, 'the last holds to expire');
    await redis.settledBytes();
    const second = samples.filter((s) => s.atS >= o.durationMs / 2000);
    const used = second.map((s) => s.usedBytes);
    const mean = used.reduce((a, b) => a + b, 0) / Math.max(1, used.length);
    const spread = used.length === 0 ? NaN : (Math.max(...used) - Math.min(...used)) / mean;
    const found = await admin.reconcile({ skuIds: [sku] });
    const reconcile = found.discrepancies.map((d) => `${d.kind}${d.partitionId ? `@${d.partitionId}` : ''}: ${d.detail}`);
    const books = await readBooks(config, new Map([[sku, UNITS]]), bench.ns.inventoryDbUrl);
    const verdict = judge(books);
    return { options: o, probe, orders, samples, spread, flat: spread <= FLAT_WITHIN, reconcile, books: verdict.problems };
  } finally {
    client.close();
    admin.close();
    await shards.close();
  }
}

type Reserve = (orderId: string, ttlSeconds: number, userId: string) => Promise<ReserveResponse>;
type Call = (orderId: string) => Promise<unknown>;

/** Bytes per open hold, per confirmed order kept for its retention, and what stays once it is forgotten. */
async function probeBytesPerOrder(bench: Bench, o: SoakOptions, redis: RedisProbe, reserve: Reserve, confirm: Call): Promise<SoakResult['probe']> {
  const ids = Array.from({ length: o.probeOrders }, (_, i) => `${bench.ns.tag}-probe-${i}`);
  const bar = new Progress(`soak probe: ${fmt(ids.length)} orders`, 0);
  const baseBytes = await redis.settledBytes();
  await pooled(ids, 64, (id) => reserve(id, 3600, `u-${Number(id.slice(id.lastIndexOf('-') + 1)) % USERS}`));
  const held = await redis.settledBytes();
  bar.fraction(1 / 3, 'held');
  await pooled(ids, 64, confirm);
  const confirmed = await redis.settledBytes();
  bar.fraction(2 / 3, 'confirmed; waiting for their retention to end');
  await sleep(o.retentionS * 1000);
  await until(async () => (await redis.retained()) === 0, 120_000, 'the probe orders to be forgotten');
  const forgotten = await redis.settledBytes();
  const per = (bytes: number) => (bytes - baseBytes) / ids.length;
  const probe = { orders: ids.length, baseBytes, perLiveOrder: per(held), perRetainedOrder: per(confirmed), leftAfterForgetting: forgotten - baseBytes };
  bar.done(`${fmt(probe.perLiveOrder)} B per open hold, ${fmt(probe.perRetainedOrder)} B per retained order, ${fmt(probe.leftAfterForgetting)} B left after forgetting`);
  return probe;
}

/** Orders at a fixed rate for the duration, used_memory sampled every 2 s. */
async function steadyLoad(bench: Bench, o: SoakOptions, redis: RedisProbe, reserve: Reserve, confirm: Call, cancel: Call) {
  const orders = { started: 0, reserved: 0, paid: 0, cancelled: 0, errors: 0, skipped: 0 };
  const samples: SoakSample[] = [];
  const bar = new Progress(`soak: ${o.rate} orders/s, retention ${o.retentionS} s`, o.durationMs);
  const started = performance.now();
  let inFlight = 0;
  const order = async (n: number) => {
    const id = `${bench.ns.tag}-soak-${n}`;
    inFlight++;
    try {
      const res = await reserve(id, TTL_S, `u-${n % USERS}`);
      if (res.outcome !== ReserveOutcome.RESERVE_OUTCOME_RESERVED) return;
      orders.reserved++;
      const roll = Math.random();
      await sleep(Math.random() * 500);
      if (roll < PAY) {
        await confirm(id);
        orders.paid++;
      } else if (roll < PAY + CANCEL) {
        await cancel(id);
        orders.cancelled++;
      }
    } catch {
      orders.errors++;
    } finally {
      inFlight--;
    }
  };
  const pending: Promise<void>[] = [];
  let sampling = Promise.resolve();
  let nextSample = 0;
  for (;;) {
    const elapsed = performance.now() - started;
    if (elapsed >= o.durationMs) break;
    const due = Math.floor((elapsed / 1000) * o.rate);
    while (orders.started + orders.skipped < due) {
      // A server that falls behind is not given an ever longer queue: the soak measures memory.
      if (inFlight > 2000) orders.skipped++;
      else pending.push(order(orders.started++));
    }
    if (elapsed >= nextSample) {
      nextSample += 2000;
      const atS = elapsed / 1000;
      sampling = sampling.then(async () => {
        const [usedBytes, retained, open] = await Promise.all([redis.usedBytes(), redis.retained(), redis.open()]);
        samples.push({ atS, usedBytes, retained, open });
        bar.update(elapsed, `${fmt(usedBytes / 1e6)} MB used, ${fmt(retained)} retained, ${fmt(open)} open`);
      });
    }
    await sleep(10);
  }
  await Promise.all(pending);
  await sampling;
  bar.done(`${fmt(orders.started)} orders, ${fmt(orders.reserved)} reserved, ${fmt(orders.paid)} paid, ${fmt(orders.cancelled)} cancelled, ${orders.errors} errors`);
  return { orders, samples };
}

/** The soak's part of the report. */
export function soakReport(r: SoakResult): string[] {
  const mb = (b: number) => `${(b / 1e6).toFixed(1)} MB`;
  const lines = [
    `Soak: ${r.options.rate} orders/s for ${r.options.durationMs / 1000} s, retention ${r.options.retentionS} s, holds of ${TTL_S} s ` +
      `(${PAY * 100}% paid, ${CANCEL * 100}% cancelled, the rest expire):`,
    `  Redis bytes per order (probe of ${fmt(r.probe.orders)}): open hold ${fmt(r.probe.perLiveOrder)} B, retained order (confirmed, within retention) ` +
      `${fmt(r.probe.perRetainedOrder)} B; after forgetting ${mb(r.probe.leftAfterForgetting)} stay in all (the filters of forgotten ids, fixed size)`,
    `  orders: ${fmt(r.orders.started)} started, ${fmt(r.orders.reserved)} reserved, ${fmt(r.orders.paid)} paid, ${fmt(r.orders.cancelled)} cancelled, ` +
      `${r.orders.errors} errors${r.orders.skipped ? `, ${fmt(r.orders.skipped)} not sent (server behind)` : ''}`,
    '  t (s)   used_memory   retained   open',
  ];
  const step = Math.max(1, Math.round(r.samples.length / 20));
  for (const s of r.samples.filter((_, i) => i % step === 0 || i === r.samples.length - 1)) {
    lines.push(`  ${s.atS.toFixed(0).padStart(5)}   ${mb(s.usedBytes).padStart(11)}   ${fmt(s.retained).padStart(8)}   ${fmt(s.open).padStart(4)}`);
  }
  lines.push(
    `  memory over the second half: spread ${(r.spread * 100).toFixed(1)}% (max - min over mean; want <= ${FLAT_WITHIN * 100}%): ${r.flat ? 'FLAT' : 'NOT FLAT'}`,
    `  Reconcile (dry run): ${r.reconcile.length === 0 ? 'clean' : r.reconcile.join('; ')}; books: ${r.books.length === 0 ? 'clean' : r.books.join('; ')}`,
  );
  return lines;
}

/** Whether the soak passed: flat memory, no errors, clean Reconcile and books. */
export function soakOk(r: SoakResult): boolean {
  return r.flat && r.orders.errors === 0 && r.reconcile.length === 0 && r.books.length === 0;
}
