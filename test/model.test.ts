import assert from 'node:assert/strict';
import { DomainError } from '../kernel/errors';
import { CreatedPartition } from '../allocator/partitions';
import { LineItem, ReleaseReason } from '../allocator/types';
import { recordFields } from '../ledger/record';
import { InventoryFixture, startInventory } from './helpers/inventory';

/** mulberry32: a tiny seeded PRNG, so a failing run can be replayed exactly. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface ModelOrder {
  state: 'RESERVED' | 'CONFIRMED' | 'RELEASED' | 'EXPIRED' | 'REJECTED';
  items: Map<string, { qty: number; rel: number }>;
  user: string;
  request: LineItem[];
  ttl: number;
  /** Set for holds with a 1 s TTL: the time they were made. */
  shortTtlAt?: number;
}

const SEED = Number(process.env.MODEL_SEED ?? 20261122);
const STEPS = Number(process.env.MODEL_STEPS ?? 2500);
const SKUS = ['m-a', 'm-b', 'm-c'];
const INITIAL = 300;
const LIMITED = 'm-c';
const LIMIT = 6;

describe(`randomized model (seed ${SEED}, ${STEPS} steps)`, function () {
  this.timeout(300_000);
  let inv: InventoryFixture;
  const partitions = new Map<string, CreatedPartition[]>();
  before(async () => {
    // No background sweeper: the model decides when holds expire.
    // No top-up either: units returned to base would become sellable again, beyond what the model
    // tracks. And no ledger writer: the test reads the ledger streams itself.
    inv = await startInventory('model', { SWEEP_INTERVAL_MS: '600000', TOPUP_ENABLED: 'false', LEDGER_WRITER: 'off' });
    for (const sku of SKUS) partitions.set(sku, await inv.stock(sku, INITIAL, 4, sku === LIMITED ? LIMIT : 0));
  });
  after(() => inv.close());

  it('never sells a unit twice, and partitions, holds and returns always add up', async () => {
    const rand = prng(SEED);
    const pick = <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)];
    const svc = inv.services.reservations;
    const orders = new Map<string, ModelOrder>();
    const ledger = new LedgerTally(inv);
    let next = 0;
    const counts: Record<string, number> = {};

    const held = (sku: string) => {
      let n = 0;
      for (const o of orders.values()) {
        const item = o.items.get(sku);
        if (item && (o.state === 'RESERVED' || o.state === 'CONFIRMED')) n += item.qty - item.rel;
      }
      return n;
    };
    const used = (user: string, sku: string) => {
      let n = 0;
      for (const o of orders.values()) if (o.user === user && o.user !== '') n += (o.state === 'RESERVED' || o.state === 'CONFIRMED') ? (o.items.get(sku)?.qty ?? 0) - (o.items.get(sku)?.rel ?? 0) : 0;
      return n;
    };
    const avail = async (sku: string) => inv.availOf(partitions.get(sku)!);
    const settledOrders = (predicate: (o: ModelOrder) => boolean) =>
      [...orders.entries()].filter(([, o]) => predicate(o) && o.shortTtlAt === undefined);

    for (let step = 0; step < STEPS; step++) {
      const roll = rand();
      let kind: string;
      if (roll < 0.4) {
        kind = 'reserve';
        const orderId = `m-${next++}`;
        const skus = [...SKUS].sort(() => rand() - 0.5).slice(0, 1 + Math.floor(rand() * 3));
        const items = skus.map((sku) => ({ sku, quantity: 1 + Math.floor(rand() * 4) }));
        const user = rand() < 0.7 ? `u${Math.floor(rand() * 5)}` : '';
        const shortTtl = rand() < 0.25;
        // What the model expects: per-user limits first, then stock.
        const overLimit = user !== '' && items.some((i) => i.sku === LIMITED && used(user, i.sku) + i.quantity > LIMIT);
        const sellable = new Map(await Promise.all(SKUS.map(async (s) => [s, await avail(s)] as const)));
        const short = items.some((i) => i.quantity > sellable.get(i.sku)!);
        const result = await svc.reserve({ orderId, items, userId: user, ttlSeconds: shortTtl ? 1 : 0 });
        const expected = overLimit || short ? 'REJECTED' : 'RESERVED';
        assert.equal(result.outcome, expected, `step ${step}: ${orderId} ${JSON.stringify(items)} user=${user}`);
        if (result.outcome === 'REJECTED') {
          assert.equal(result.shortages[0].reason, overLimit ? 'USER_LIMIT' : 'OUT_OF_STOCK');
        }
        orders.set(orderId, {
          state: expected,
          items: new Map(items.map((i) => [i.sku, { qty: i.quantity, rel: 0 }])),
          user,
          request: items,
          ttl: shortTtl ? 1 : 0,
          shortTtlAt: shortTtl && expected === 'RESERVED' ? Date.now() : undefined,
        });
      } else if (roll < 0.5 && orders.size > 0) {
        kind = 'replay';
        const [orderId, o] = pick([...orders.entries()]);
        const result = await svc.reserve({ orderId, items: o.request, userId: o.user, ttlSeconds: o.ttl }).catch((e) => e);
        assert.ok(!(result instanceof Error), `step ${step}: replay of ${orderId} failed: ${result}`);
        assert.equal(result.replayed, true);
        assert.equal(result.outcome, o.state === 'REJECTED' ? 'REJECTED' : 'RESERVED');
      } else if (roll < 0.68) {
        kind = 'confirm';
        const candidates = settledOrders(() => true);
        if (candidates.length === 0) continue;
        const [orderId, o] = pick(candidates);
        const outcome = await svc.confirm(orderId).then(() => 'ok', (e: DomainError) => e.kind);
        const expected = { RESERVED: 'ok', CONFIRMED: 'ok', RELEASED: 'ALREADY_RELEASED', EXPIRED: 'ALREADY_EXPIRED', REJECTED: 'RESERVATION_REJECTED' }[o.state];
        assert.equal(outcome, expected, `step ${step}: confirm ${orderId} in ${o.state}`);
        if (o.state === 'RESERVED') o.state = 'CONFIRMED';
      } else if (roll < 0.9) {
        kind = 'release';
        const candidates = settledOrders(() => true);
        if (candidates.length === 0) continue;
        const [orderId, o] = pick(candidates);
        const reason = pick<ReleaseReason>(['CANCEL_BEFORE_PAYMENT', 'CANCEL_AFTER_PAYMENT', 'REFUND', 'RISK_CONTROL', 'TIMEOUT']);
        const partial = rand() < 0.5;
        const some = [...o.items.keys()].filter(() => rand() < 0.7).map((sku) => ({ sku, quantity: 1 + Math.floor(rand() * 3) }));
        // An empty list means everything, as in the API.
        const items = partial && some.length > 0 ? some : undefined;
        const expectedError = releaseError(o, reason);
        const result = await svc.release(orderId, reason, items, `rel-${step}`).catch((e: DomainError) => e);
        if (expectedError) {
          assert.ok(result instanceof DomainError, `step ${step}: release ${orderId} (${o.state}, ${reason}) should fail`);
          assert.equal(result.kind, expectedError);
          counts['release refused'] = (counts['release refused'] ?? 0) + 1;
          continue;
        }
        assert.ok(!(result instanceof Error), `step ${step}: release ${orderId} (${o.state}, ${reason}): ${result}`);
        const released = new Map(result.released.map((i) => [i.sku, i.quantity]));
        for (const [sku, item] of o.items) {
          const wanted = items ? (items.find((i) => i.sku === sku)?.quantity ?? 0) : item.qty - item.rel;
          const units = Math.min(wanted, item.qty - item.rel);
          assert.equal(released.get(sku) ?? 0, units, `step ${step}: released ${sku} of ${orderId}`);
          item.rel += units;
        }
        if ([...o.items.values()].every((i) => i.rel === i.qty)) o.state = 'RELEASED';
        assert.equal(result.reservation.state, o.state);
      } else {
        kind = 'expire';
        const short = [...orders.entries()].filter(([, o]) => o.shortTtlAt !== undefined);
        if (short.length > 0 && (counts.expire ?? 0) < 20) {
          // On a fast machine the whole run can take less than a TTL: wait for the oldest hold, so
          // that expiry is exercised however quick the steps are.
          const oldest = Math.min(...short.map(([, o]) => o.shortTtlAt!));
          await new Promise((r) => setTimeout(r, Math.max(0, oldest + 1301 - Date.now())));
        }
        const due = short.filter(([, o]) => Date.now() - o.shortTtlAt! > 1300);
        if (due.length === 0) continue;
        const [orderId, o] = pick(due);
        assert.equal(await svc.expire(orderId), 'done', `step ${step}: expire ${orderId}`);
        assert.equal(await svc.expire(orderId), 'gone', 'expires exactly once');
        for (const item of o.items.values()) item.rel = item.qty;
        o.state = 'EXPIRED';
        o.shortTtlAt = undefined;
      }
      counts[kind] = (counts[kind] ?? 0) + 1;

      // After every step, per SKU: live avail + units held by the model + units returned to base
      // equal the stock, and the ledger's own takes minus releases equal the model's holds.
      await ledger.catchUp();
      for (const sku of SKUS) {
        const a = await avail(sku);
        assert.ok(a >= 0, `step ${step}: ${sku} avail ${a}`);
        assert.equal(a + held(sku) + ledger.toBase(sku), INITIAL, `step ${step} (${kind}): ${sku} avail ${a} held ${held(sku)} base ${ledger.toBase(sku)}`);
        assert.equal(ledger.held(sku), held(sku), `step ${step} (${kind}): ledger holds of ${sku}`);
      }
    }
    for (const kind of ['reserve', 'replay', 'confirm', 'release', 'release refused', 'expire']) {
      assert.ok((counts[kind] ?? 0) > 10, `the run exercised ${kind} (${JSON.stringify(counts)})`);
    }
  });
});

/** What the model expects a release to fail with, or undefined when it applies. */
function releaseError(o: ModelOrder, reason: ReleaseReason): string | undefined {
  if (o.state === 'RELEASED') return 'ALREADY_RELEASED';
  if (o.state === 'EXPIRED') return 'ALREADY_EXPIRED';
  if (o.state === 'REJECTED') return 'RESERVATION_REJECTED';
  if ((reason === 'CANCEL_BEFORE_PAYMENT' || reason === 'TIMEOUT') && o.state === 'CONFIRMED') return 'ALREADY_CONFIRMED';
  if ((reason === 'CANCEL_AFTER_PAYMENT' || reason === 'REFUND') && o.state === 'RESERVED') return 'NOT_CONFIRMED';
  return undefined;
}

/** Reads the shard ledger streams incrementally and sums takes, releases and returns to base per SKU. */
class LedgerTally {
  private readonly last = new Map<number, string>();
  private readonly taken = new Map<string, number>();
  private readonly released = new Map<string, number>();
  private readonly base = new Map<string, number>();

  constructor(private readonly inv: InventoryFixture) {}

  async catchUp(): Promise<void> {
    const { shards } = this.inv.services;
    const pipeline = shards.clients[0].pipeline();
    const count = shards.keys.shardCount;
    for (let s = 0; s < count; s++) pipeline.xrange(shards.keys.ledger(s), this.last.has(s) ? `(${this.last.get(s)}` : '-', '+');
    const results = (await pipeline.exec()) ?? [];
    results.forEach(([err, entries], s) => {
      if (err) throw err;
      for (const [id, flat] of entries as Array<[string, string[]]>) {
        this.last.set(s, id);
        const read = recordFields(flat);
        if ('problem' in read) throw new Error(`ledger record ${id}: ${read.problem}`);
        const f = read.fields;
        const qty = Number(f.qty);
        if (f.kind === 'take') add(this.taken, f.sku, qty);
        if (f.kind === 'release') {
          add(this.released, f.sku, qty);
          if (f.to === 'base') add(this.base, f.sku, qty);
        }
      }
    });
  }

  held(sku: string): number {
    return (this.taken.get(sku) ?? 0) - (this.released.get(sku) ?? 0);
  }

  toBase(sku: string): number {
    return this.base.get(sku) ?? 0;
  }
}

function add(map: Map<string, number>, key: string, n: number): void {
  map.set(key, (map.get(key) ?? 0) + n);
}
