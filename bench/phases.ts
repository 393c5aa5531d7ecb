/**
 * The parts of a run, in the order run.ts calls them: the SKUs each seeds, the servers each starts
 * and stops, their warm-ups, and the scenarios measured on them (the alternating ceiling and
 * flash sale rounds, the cart, the MySQL baseline, more workers, the profiled flash sale).
 */
import { mkdirSync, readFileSync, readdirSync, renameSync } from 'node:fs';
import path from 'node:path';
import { Config } from '../server/config';
import { BareRound, Bench, Round } from './context';
import { awaitSkus, warmup } from './drive';
import { fmt } from './format';
import { Options, shapeName } from './options';
import { DIST } from './paths';
import { ServerProcess, startServer } from './procs';
import { summarize } from './profile-summary';
import { Progress } from './progress';
import { baselineFlash, cart, ceiling, flash, storm } from './scenarios';
import { scriptCost } from './script-cost';
import { SeedSku, seedInventory } from './seed';
import { soak, soakServerEnv } from './soak';
import { namespaceEnv } from './stack';

/** Our server's SKUs (but the cart's), named up front so that one seeding creates them all. */
export interface SkuPlan {
  /** Sold out half way by the 1-worker warm-up. */
  readonly warm: string;
  /** One per round. */
  readonly flash: readonly string[];
  readonly sellout: string;
  readonly storm: string;
  /** Per worker count over 1: the flash sale's SKU and the warm-up's. */
  readonly multi: ReadonlyArray<readonly [workers: number, sku: string, warm: string]>;
  readonly profiled: string;
  readonly profiledWarm: string;
  /** The bare group: per shape, one per round; and its server's warm-up. */
  readonly bareFlash: ReadonlyArray<readonly string[]>;
  readonly bareWarm: string;
}

/** The storm's stock: it must sell exactly one unit of it. */
const STORM_UNITS = 1000;

export function planSkus(bench: Bench): SkuPlan {
  const warm = bench.sku('warm');
  const flashSkus = Array.from({ length: bench.o.rounds }, () => bench.sku('flash'));
  const sellout = bench.sku('sellout');
  const stormSku = bench.sku('storm');
  const multi = bench.o.workers.filter((w) => w > 1).map((w) => [w, bench.sku(`flash${w}w`), bench.sku(`warm${w}w`)] as const);
  const bareFlash = bench.wants('bare') ? bench.o.shapes.map(() => Array.from({ length: bench.o.rounds }, () => bench.sku('bareflash'))) : [];
  return {
    warm,
    flash: flashSkus,
    sellout,
    storm: stormSku,
    multi,
    profiled: bench.sku('flashprof'),
    profiledWarm: bench.sku('warmprof'),
    bareFlash,
    bareWarm: bench.sku('barewarm'),
  };
}

/** Seeds the SKUs of the plan, when a group that sells on our server is wanted. */
export async function seedOurs(bench: Bench, skus: SkuPlan): Promise<void> {
  if (!['flash', 'bare', 'sellout', 'cart', 'storm', 'workers', 'profile'].some((g) => bench.wants(g))) return;
  const o = bench.o;
  const warmUnits = warmupUnits(o);
  const small: SeedSku[] = [
    ...[skus.warm, skus.profiledWarm, skus.bareWarm, ...skus.multi.map(([, , w]) => w)].map((sku) => ({ sku, units: warmUnits, partitions: o.partitions })),
    ...[...skus.flash, ...skus.bareFlash.flat()].map((sku) => ({ sku, units: o.units, partitions: o.partitions })),
    { sku: skus.sellout, units: o.selloutUnits, partitions: o.partitions },
    { sku: skus.storm, units: STORM_UNITS, partitions: o.partitions },
    { sku: skus.profiled, units: o.units, partitions: o.partitions },
    ...skus.multi.map(([, sku]) => ({ sku, units: o.units, partitions: o.partitions })),
  ];
  bench.seeding.flash = await seedInventory(bench.ns.config, small, { concurrency: 8 });
}

/**
 * Units of a warm-up SKU: each server's warm-up sells out a SKU of its own half way through, so
 * that the JIT has seen both paths of the flash sale (selling, then sold out) before the first
 * measured round.
 */
export function warmupUnits(o: Options): number {
  return Math.max(1000, Math.round(o.warmupMs * 10));
}

/**
 * Transport ceiling and our server, 1 worker: both servers up, ceiling and flash sale in
 * alternating rounds; then the h2load storms, and the sell-out.
 */
export async function oneWorker(bench: Bench, skus: SkuPlan): Promise<void> {
  const o = bench.o;
  const needEcho = bench.wants('ceiling') || bench.wants('storm');
  const needOurs = ['flash', 'sellout', 'storm'].some((g) => bench.wants(g));
  await withServer(needEcho ? startEcho(bench, 1, 'echo-1w') : Promise.resolve(undefined), (echo) =>
    withServer(needOurs ? startInventory(bench, 1, 'inventory-1w') : Promise.resolve(undefined), async (inv) => {
      if (echo) await warmup(bench, echo, 'echo-sku');
      if (inv) await warmup(bench, inv, skus.warm);
      for (let k = 1; k <= o.rounds; k++) {
        const [suffix, title] = o.rounds > 1 ? [`-r${k}`, `, round ${k}`] : ['', ''];
        const round: Round = {};
        if (echo && bench.wants('ceiling')) round.ceiling = await ceiling(bench, echo, 1, `ceiling-1w${suffix}`, `transport ceiling, 1 worker${title}`);
        if (inv && bench.wants('flash')) round.flash = await flash(bench, inv, 1, `flash-1w${suffix}`, `flash sale, 1 worker${title}`, skus.flash[k - 1], o.units);
        bench.rounds.push(round);
      }
      if (echo && bench.wants('storm')) await storm(bench, echo, 'echo', 'echo-sku', 0, `${bench.ns.tag}-dup-echo`);
      if (inv && bench.wants('sellout')) await flash(bench, inv, 1, 'sellout-1w', 'flash sell-out, 1 worker', skus.sellout, o.selloutUnits);
      if (inv && bench.wants('storm')) await storm(bench, inv, 'inventory', skus.storm, STORM_UNITS, `${bench.ns.tag}-dup-1`);
    }),
  );
}

/**
 * The bare transport ceiling: a plain grpc-js echo (bare-echo-server.ts), the echo server on our
 * stack and our flash sale, 1 worker each, all three up side by side; at each load shape
 * (--shapes, connections x streams) --rounds rounds of the three one right after the other, each
 * flash round on a fresh SKU, so that the machine's drift moves them alike. The ratios (report.ts)
 * are the medians of the rounds'.
 */
export async function barePhase(bench: Bench, skus: SkuPlan): Promise<void> {
  const o = bench.o;
  await withServer(startBare(bench, 'bare-1w'), (bare) =>
    withServer(startEcho(bench, 1, 'echo-bare-1w'), (echo) =>
      withServer(startInventory(bench, 1, 'inventory-bare-1w'), async (inv) => {
        await warmup(bench, bare, 'echo-sku');
        await warmup(bench, echo, 'echo-sku');
        await warmup(bench, inv, skus.bareWarm);
        for (const [i, shape] of o.shapes.entries()) {
          const tag = `${shape.connections}x${shape.streams}`;
          for (let k = 1; k <= o.rounds; k++) {
            const [suffix, title] = o.rounds > 1 ? [`-r${k}`, `, r${k}`] : ['', ''];
            const round: BareRound = { shape };
            const at = `${shapeName(shape)}${title}`;
            round.bare = await ceiling(bench, bare, 1, `bare-${tag}${suffix}`, `bare grpc-js echo, ${at}`, 'bare', shape);
            round.echo = await ceiling(bench, echo, 1, `bare-echo-${tag}${suffix}`, `same-stack echo, ${at}`, 'echo', shape);
            round.flash = await flash(bench, inv, 1, `bare-flash-${tag}${suffix}`, `flash sale, ${at}`, skus.bareFlash[i][k - 1], o.units, { shape });
            bench.bareRounds.push(round);
          }
        }
      }),
    ),
  );
  // After the servers stop, so that nothing else competes for the cores.
  bench.scriptCost = await scriptCost();
}

/**
 * Mixed cart, 1 worker: its own server and namespace, started BEFORE its SKUs are seeded.
 * A server started after 10,000 SKUs x 2 partitions are registered never becomes ready: the
 * registry cache lists the whole etcd prefix in one range call, whose answer (~4.9 MB) is over
 * grpc-js's default 4 MB receive limit of the etcd3 client (RESOURCE_EXHAUSTED, retried for
 * ever). Started first, the server learns the SKUs through its watch, in small batches.
 */
export async function cartPhase(bench: Bench): Promise<void> {
  const o = bench.o;
  const cartSkus: SeedSku[] = Array.from({ length: o.skus }, (_, i) => ({ sku: `cart-${i}`, units: o.skuUnits, partitions: o.skuPartitions }));
  await withServer(startInventory(bench, 1, 'inventory-cart-1w', { at: { config: bench.ns.cartConfig, dbUrl: bench.ns.cartDbUrl } }), async (inv) => {
    const cartWarm = 'cart-warm';
    await seedInventory(bench.ns.cartConfig, [{ sku: cartWarm, units: 10_000_000, partitions: o.partitions }], { concurrency: 1 });
    const bar = new Progress(`seeding ${fmt(o.skus)} cart SKUs`, 0);
    const t0 = performance.now();
    const seeded = await seedInventory(bench.ns.cartConfig, cartSkus, {
      concurrency: 32,
      onProgress: (d, t) => bar.fraction(d / t, `${fmt(d)}/${fmt(t)} SKUs, ${fmt((d * 1000) / (performance.now() - t0))} SKUs/s`),
    });
    bar.done(`${fmt(seeded.skus)} SKUs x ${o.skuPartitions} partitions in ${(seeded.ms / 1000).toFixed(1)} s (${fmt((seeded.skus * 1000) / seeded.ms)} SKUs/s; etcd-bound)`);
    bench.seeding.cart = seeded;
    await awaitSkus(inv, [cartWarm, ...cartSkus.slice(-32).map((c) => c.sku)], o.skuPartitions);
    await warmup(bench, inv, cartWarm);
    await cart(bench, inv, 1, cartSkus);
  });
}

/** MySQL baseline, 1 worker: its flash sale and sell-out. */
export async function baselinePhase(bench: Bench): Promise<void> {
  const o = bench.o;
  const bFlash = bench.sku('bflash');
  const bSellout = bench.sku('bsellout');
  const bWarm = bench.sku('bwarm');
  const stock: Array<[string, number]> = [
    [bWarm, 10_000_000],
    [bFlash, o.units],
    [bSellout, o.selloutUnits],
  ];
  await withServer(startBaseline(bench, 1, 'baseline-1w', stock), async (base) => {
    await warmup(bench, base, bWarm);
    await baselineFlash(bench, base, 1, 'baseline-flash-1w', 'MySQL baseline flash, 1 worker', bFlash, o.units);
    await baselineFlash(bench, base, 1, 'baseline-sellout-1w', 'MySQL baseline sell-out, 1 w', bSellout, o.selloutUnits);
  });
}

/** More workers: the ceiling and the flash sale again, one server at a time. */
export async function moreWorkers(bench: Bench, skus: SkuPlan): Promise<void> {
  for (const [w, sku, warmSku] of skus.multi) {
    await withServer(startEcho(bench, w, `echo-${w}w`), async (echo) => {
      await warmup(bench, echo, 'echo-sku');
      await ceiling(bench, echo, w, `ceiling-${w}w`, `transport ceiling, ${w} workers`);
    });
    await withServer(startInventory(bench, w, `inventory-${w}w`), async (inv) => {
      await warmup(bench, inv, warmSku);
      await flash(bench, inv, w, `flash-${w}w`, `flash sale, ${w} workers`, sku, bench.o.units);
    });
  }
}

/** The flash sale once more with the server under node --cpu-prof; the profile of the measured load is summarised for the report. */
export async function profiledFlash(bench: Bench, skus: SkuPlan): Promise<void> {
  const profDir = path.join(bench.dir, 'cpuprofile');
  mkdirSync(profDir, { recursive: true });
  const spawnedAt = performance.now();
  await withServer(startInventory(bench, 1, 'inventory-profile', { nodeArgs: ['--cpu-prof', `--cpu-prof-dir=${profDir}`] }), async (inv) => {
    await warmup(bench, inv, skus.profiledWarm);
    const row = await flash(bench, inv, 1, 'flash-1w-profiled', 'flash sale, 1 w, --cpu-prof', skus.profiled, bench.o.units);
    // From the start of the load itself: flash() first waits for the ledger and Redis to settle.
    const from = bench.lastLoadStartedAt - spawnedAt;
    bench.profileWindow = { fromMs: from, toMs: from + row.elapsedMs };
    row.notes.push('server under node --cpu-prof (slower); not used in the ratios');
  });
  const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
  if (files.length > 0) {
    bench.profileFile = path.join(bench.dir, 'flash-1w.server.cpuprofile');
    renameSync(path.join(profDir, files[0]), bench.profileFile);
    bench.profile = summarize(JSON.parse(readFileSync(bench.profileFile, 'utf8')), 25, bench.profileWindow);
  } else {
    bench.notes.push('the profiled server wrote no .cpuprofile');
  }
}

/** The soak: its own server with a retention of seconds; memory over minutes of steady orders (soak.ts). */
export async function soakPhase(bench: Bench): Promise<void> {
  await withServer(startInventory(bench, 1, 'inventory-soak', { env: soakServerEnv(bench.o.soak) }), async (inv) => {
    bench.soak = await soak(bench, inv, bench.o.soak);
  });
}

// ------------------------------------------------------------------ servers

/** Runs `use` on the server once it is up (or on undefined), and stops the server after. */
export async function withServer<S extends ServerProcess | undefined, T>(starting: Promise<S>, use: (server: S) => Promise<T>): Promise<T> {
  const server = await starting;
  try {
    return await use(server);
  } finally {
    await server?.stop();
  }
}

function start(bench: Bench, name: string, script: string, workers: number, label: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<ServerProcess> {
  return startServer({ name: `${name} (${label})`, script, nodeArgs, workers, logFile: path.join(bench.dir, `${label}.server.log`), env });
}

interface InventoryLaunch {
  readonly nodeArgs?: string[];
  /** Its namespace and database (default: the bench's namespace on the stack's Redis node): the cart's, or a store on the Redis Cluster. */
  readonly at?: { readonly config: Config; readonly dbUrl: string };
  readonly env?: Record<string, string>;
}

/** Our server. */
export function startInventory(bench: Bench, workers: number, label: string, { nodeArgs = [], at = bench.store, env = {} }: InventoryLaunch = {}): Promise<ServerProcess> {
  return start(
    bench,
    'inventory server',
    path.join(DIST, 'server', 'main.js'),
    workers,
    label,
    { ...namespaceEnv(at.config, at.dbUrl), DEMO_DATA: 'false', ...env },
    nodeArgs,
  );
}

function startEcho(bench: Bench, workers: number, label: string): Promise<ServerProcess> {
  return start(bench, 'echo server', path.join(DIST, 'bench', 'echo-server.js'), workers, label, {});
}

function startBare(bench: Bench, label: string): Promise<ServerProcess> {
  return startServer({
    name: `bare grpc-js echo server (${label})`,
    script: path.join(DIST, 'bench', 'bare-echo-server.js'),
    workers: 1,
    logFile: path.join(bench.dir, `${label}.server.log`),
    env: {},
    probe: 'reserve',
  });
}

function startBaseline(bench: Bench, workers: number, label: string, stock: ReadonlyArray<readonly [string, number]>): Promise<ServerProcess> {
  return start(bench, 'baseline server', path.join(DIST, 'bench', 'baseline-server.js'), workers, label, {
    BENCH_MYSQL_URL: bench.ns.baselineUrl,
    BENCH_STOCK: stock.map(([s, n]) => `${s}=${n}`).join(','),
    BENCH_POOL: String(bench.o.baselinePool),
  });
}
