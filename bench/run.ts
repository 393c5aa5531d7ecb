/**
 * `npm run bench [-- options]`: the benchmark of the inventory core against a MySQL baseline and
 * the transport ceiling, on this machine, in one run. See `--help` and bench/README section of the
 * main README. Everything runs on 127.0.0.1, in a namespace of its own (Redis key prefix, etcd
 * prefix, MySQL databases named bench_*), which is dropped at the end.
 *
 * Scenarios (each a row of the table):
 *   ceiling      echo server (startApp, a Reserve handler that does no work), flash-sale load
 *   flash        our server: 1 SKU, N units over P partitions, C buyers in flight, 1 unit each
 *                (ceiling and flash run in alternating rounds, both servers up, a fresh SKU per
 *                round; their ratios are the medians of the rounds', so that the machine's drift
 *                during a run moves them less)
 *   sellout      the same with few units: sold out early, then out-of-stock answers ("and beyond")
 *   cart         1-5 SKUs per order out of 10,000; of the RESERVED orders 70% confirmed, 20% released
 *   baseline     flash and sellout against the MySQL conditional-UPDATE server
 *   storm        h2load replays ONE order id against our server, and the same against the echo server
 *   2 workers    ceiling and flash again with WORKERS=2
 *   profile      flash once more with the server under node --cpu-prof, summarised
 */
import { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Etcd3 } from 'etcd3';
import Redis from 'ioredis';
import mysql, { RowDataPacket } from 'mysql2/promise';
import { Config, loadConfig } from '../server/config';
import { CpuMeter, CpuReport, machineCpuMs, serverProcesses, stackPids } from './cpu';
import { H2loadResult, h2loadPath, runH2load, scrapeReserveCounters } from './h2load';
import { unaryOnce } from './h2';
import { Histogram } from './hist';
import { ChildMessage, LoadResult, LoadSpec, emptyTallies } from './loadgen';
import { formatSummary, ProfileSummary, summarize } from './profile-summary';
import { ServerProcess, forkLoadgen, startServer, stopAll, stopChild } from './procs';
import { Progress, note } from './progress';
import { SeedSku, dropInventory, seedInventory } from './seed';
import { Verdict, judge, judgeBaseline, readBaseline, readBooks } from './verify';
import { PATHS, ReserveTemplate, Writer, scanFields, unframe } from './wire';

const ROOT = path.resolve(__dirname, '..', '..');
const DIST = path.join(ROOT, 'dist');

// ------------------------------------------------------------------------------------ options

interface Options {
  quick: boolean;
  durationMs: number;
  warmupMs: number;
  concurrency: number;
  connections: number;
  loadgens: number;
  units: number;
  partitions: number;
  selloutUnits: number;
  skus: number;
  skuPartitions: number;
  skuUnits: number;
  workers: number[];
  /** Alternating ceiling/flash rounds (1 worker); the ratios are their medians. */
  rounds: number;
  baselinePool: number;
  only: Set<string> | undefined;
  skip: Set<string>;
  keep: boolean;
  out: string;
  /** Before each measured scenario, wait (up to 2 min) until the machine's other load is under this % of a core. */
  waitQuiet: number | undefined;
}

const GROUPS = ['ceiling', 'flash', 'sellout', 'cart', 'baseline', 'storm', 'workers', 'profile'];

const HELP = `npm run bench [-- options]

  --quick               smoke check, under a minute: 2 s per scenario, 500 cart SKUs
  --duration <s>        seconds of load per scenario (default 10; quick 2)
  --warmup <s>          seconds of load before each server's first scenario (default 2; quick 0.5)
  --concurrency <n>     calls in flight (default 500)
  --connections <n>     HTTP/2 connections they are spread over (default 20)
  --loadgens <n>        load-generator processes (default 1)
  --units <n>           flash sale units (default 100000)
  --partitions <n>      flash sale partitions (default 16)
  --sellout-units <n>   units of the sell-out scenario (default 5000; quick 1000)
  --skus <n>            cart SKUs (default 10000; quick 500)
  --workers <list>      worker counts to compare (default 1,2)
  --rounds <n>          ceiling and flash sale (1 worker) rounds, run alternately; the ratios are
                        the medians of the rounds' (default 3; quick 1)
  --baseline-pool <n>   mysql2 pool size of the baseline server (default 32)
  --only <list>         groups to run: ${GROUPS.join(',')}
  --skip <list>         groups to leave out
  --keep                keep the bench namespace (Redis prefix, etcd prefix, databases) afterwards
  --wait-quiet [pct]    before each scenario wait (up to 2 min) until other processes use less than
                        pct% of a core (default 40): for shared machines
  --out <dir>           results folder (default bench-results)
`;

function parseOptions(argv: string[]): Options {
  const quick = argv.includes('--quick');
  const o: Options = {
    quick,
    durationMs: quick ? 2000 : 10_000,
    warmupMs: quick ? 500 : 2000,
    concurrency: 500,
    connections: 20,
    loadgens: 1,
    units: 100_000,
    partitions: 16,
    selloutUnits: quick ? 1000 : 5000,
    skus: quick ? 500 : 10_000,
    skuPartitions: 2,
    skuUnits: 1000,
    workers: [1, 2],
    rounds: quick ? 1 : 3,
    baselinePool: 32,
    only: undefined,
    skip: new Set(),
    keep: false,
    out: path.join(ROOT, 'bench-results'),
    waitQuiet: undefined,
  };
  const num = (flag: string, v: string | undefined, min: number, max: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isFinite(n) || n < min || n > max) throw new Error(`${flag}: expected a number in ${min}..${max}, got ${v}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = argv[i + 1];
    switch (a) {
      case '--quick':
        break;
      case '--help':
      case '-h':
        process.stdout.write(HELP);
        process.exit(0);
      // eslint-disable-next-line no-fallthrough
      case '--duration':
        o.durationMs = num(a, v, 0.5, 600) * 1000;
        i++;
        break;
      case '--warmup':
        o.warmupMs = num(a, v, 0, 60) * 1000;
        i++;
        break;
      case '--concurrency':
        o.concurrency = num(a, v, 1, 20_000);
        i++;
        break;
      case '--connections':
        o.connections = num(a, v, 1, 1000);
        i++;
        break;
      case '--loadgens':
        o.loadgens = num(a, v, 1, 16);
        i++;
        break;
      case '--units':
        o.units = num(a, v, 1, 1e9);
        i++;
        break;
      case '--partitions':
        o.partitions = num(a, v, 1, 1024);
        i++;
        break;
      case '--sellout-units':
        o.selloutUnits = num(a, v, 1, 1e9);
        i++;
        break;
      case '--skus':
        o.skus = num(a, v, 10, 1_000_000);
        i++;
        break;
      case '--workers':
        o.workers = (v ?? '').split(',').map((w) => num(a, w, 1, 64));
        i++;
        break;
      case '--rounds':
        o.rounds = num(a, v, 1, 20);
        if (!Number.isInteger(o.rounds)) throw new Error(`${a}: expected a whole number of rounds, got ${v}`);
        i++;
        break;
      case '--baseline-pool':
        o.baselinePool = num(a, v, 1, 400);
        i++;
        break;
      case '--only':
        o.only = new Set((v ?? '').split(','));
        i++;
        break;
      case '--skip':
        o.skip = new Set((v ?? '').split(','));
        i++;
        break;
      case '--keep':
        o.keep = true;
        break;
      case '--wait-quiet':
        if (v !== undefined && /^\d+$/.test(v)) {
          o.waitQuiet = num(a, v, 1, 200);
          i++;
        } else {
          o.waitQuiet = 40;
        }
        break;
      case '--out':
        o.out = path.resolve(v ?? 'bench-results');
        i++;
        break;
      default:
        throw new Error(`unknown option ${a} (see --help)`);
    }
  }
  for (const g of [...(o.only ?? []), ...o.skip]) if (!GROUPS.includes(g)) throw new Error(`unknown group ${g}; groups: ${GROUPS.join(', ')}`);
  if (o.connections > o.concurrency) o.connections = o.concurrency;
  return o;
}

// ------------------------------------------------------------------------------------ results

/** What one measured load gave: the load generators' results, the CPU of every process, Redis's forks meanwhile. */
interface Drive {
  result: LoadResult;
  cpu: CpuReport;
  redisForks: number;
}

interface Row {
  id: string;
  title: string;
  server: 'inventory' | 'baseline' | 'echo';
  workers: number;
  client: 'lean' | 'h2load';
  answered: number;
  elapsedMs: number;
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  codes: Record<string, number>;
  errors: number;
  reserved?: number;
  rejected?: number;
  replayed?: number;
  stocked?: number;
  sold?: number;
  soldOutAtMs?: number;
  sellingCallsPerSec?: number;
  beyondCallsPerSec?: number;
  methods?: Record<string, { calls: number; p50Ms: number; p99Ms: number }>;
  cart?: { orders: number; ordersPerSec: number; confirms: number; releases: number; unitsReserved: number; unitsReleased: number };
  cpu: CpuReport;
  serverUsPerCall: number;
  /** The server's ledger writer child (LEDGER_WRITER=process), per call. */
  ledgerUsPerCall: number;
  storeUsPerCall: number;
  check: Verdict | undefined;
  notes: string[];
}

interface Ratio {
  what: string;
  value: number;
  display: string;
  /** Each round's value, when the ratio is the median of several. */
  rounds?: number[];
  target?: string;
  met?: boolean;
}

/** The middle value (the mean of the two middle ones for an even count). */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const fmt = (n: number, digits = 0) => (Number.isFinite(n) ? n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits }) : '-');
const ms = (n: number) => (n >= 100 ? fmt(n, 0) : n >= 10 ? fmt(n, 1) : fmt(n, 2));

// ------------------------------------------------------------------------------------ the run

class Bench {
  readonly runId = new Date().toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  readonly tag = `bench_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`;
  readonly dir: string;
  readonly config: Config;
  readonly cartConfig: Config;
  readonly baselineUrl: string;
  readonly inventoryDbUrl: string;
  readonly cartDbUrl: string;
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  readonly seeding: Record<string, unknown> = {};
  /** The alternating rounds of the transport ceiling and the flash sale, 1 worker. */
  readonly rounds: Array<{ ceiling?: Row; flash?: Row }> = [];
  profile: ProfileSummary | undefined;
  profileFile: string | undefined;
  /** performance.now() when the last measured load started (after the settle steps). */
  lastLoadStartedAt = 0;
  /** The measured flash sale within the profile (start-up, warm-up and shutdown left out). */
  profileWindow: { fromMs: number; toMs: number } | undefined;
  private stack: Record<string, number[]> = {};
  private skuCounter = 0;

  constructor(readonly o: Options) {
    this.dir = path.join(o.out, this.runId);
    mkdirSync(this.dir, { recursive: true });
    const base = loadConfig();
    this.config = loadConfig({ ...process.env, REDIS_PREFIX: this.tag, ETCD_NAMESPACE: `/${this.tag}/main/`, LOG_LEVEL: 'silent' });
    // The cart's 10,000 SKUs live in a registry namespace of their own, so that the other servers'
    // start-up listing stays small (see the note at the cart scenario in run()).
    this.cartConfig = loadConfig({ ...process.env, REDIS_PREFIX: `${this.tag}:cart`, ETCD_NAMESPACE: `/${this.tag}/cart/`, LOG_LEVEL: 'silent' });
    const db = new URL(base.mysqlUrl);
    db.pathname = `/${this.tag}_base`;
    this.baselineUrl = db.toString();
    db.pathname = `/${this.tag}_inv`;
    this.inventoryDbUrl = db.toString();
    db.pathname = `/${this.tag}_cart`;
    this.cartDbUrl = db.toString();
  }

  wants(group: string): boolean {
    return (this.o.only ? this.o.only.has(group) : true) && !this.o.skip.has(group);
  }

  refreshStack(): void {
    const ports = this.config.redisNodes.map((n) => Number(n.slice(n.lastIndexOf(':') + 1)));
    this.stack = stackPids(ROOT, ports);
  }

  sku(kind: string): string {
    return `${kind}-${++this.skuCounter}`;
  }

  // ------------------------------------------------------------------ servers

  startInventory(workers: number, label: string, nodeArgs: string[] = [], cart = false): Promise<ServerProcess> {
    const config = cart ? this.cartConfig : this.config;
    return startServer({
      name: `inventory server (${label})`,
      script: path.join(DIST, 'server', 'main.js'),
      nodeArgs,
      workers,
      logFile: path.join(this.dir, `${label}.server.log`),
      env: {
        REDIS_PREFIX: config.redisPrefix,
        ETCD_NAMESPACE: config.etcdNamespace,
        MYSQL_URL: cart ? this.cartDbUrl : this.inventoryDbUrl,
        DEMO_DATA: 'false',
      },
    });
  }

  startEcho(workers: number, label: string): Promise<ServerProcess> {
    return startServer({
      name: `echo server (${label})`,
      script: path.join(DIST, 'bench', 'echo-server.js'),
      workers,
      logFile: path.join(this.dir, `${label}.server.log`),
      env: {},
    });
  }

  startBaseline(workers: number, label: string, stock: ReadonlyArray<readonly [string, number]>): Promise<ServerProcess> {
    return startServer({
      name: `baseline server (${label})`,
      script: path.join(DIST, 'bench', 'baseline-server.js'),
      workers,
      logFile: path.join(this.dir, `${label}.server.log`),
      env: {
        BENCH_MYSQL_URL: this.baselineUrl,
        BENCH_STOCK: stock.map(([s, n]) => `${s}=${n}`).join(','),
        BENCH_POOL: String(this.o.baselinePool),
      },
    });
  }

  // ------------------------------------------------------------------ load

  reserveSpec(target: string, sku: string, prefix: string, durationMs: number): LoadSpec {
    return {
      target,
      workload: 'reserve',
      durationMs,
      concurrency: this.o.concurrency,
      connections: this.o.connections,
      orderPrefix: prefix,
      sku,
      quantity: 1,
      drainMs: 30_000,
    };
  }

  /** Runs one load (all load generators), with CPU accounting and a progress bar. */
  async drive(label: string, spec: LoadSpec, server: ServerProcess, show = true): Promise<Drive> {
    const n = this.o.loadgens;
    const children: ChildProcess[] = [];
    const results: LoadResult[] = new Array(n);
    const progress = new Map<number, { answered: number; reserved: number; errors: number }>();
    const bar = show ? new Progress(label, spec.durationMs) : undefined;
    try {
      await Promise.all(
        Array.from({ length: n }, (_, i) => {
          const child = forkLoadgen(path.join(DIST, 'bench', 'loadgen.js'));
          children.push(child);
          const part: LoadSpec = {
            ...spec,
            concurrency: Math.max(1, Math.round(spec.concurrency / n)),
            connections: Math.max(1, Math.round(spec.connections / n)),
            orderPrefix: `${spec.orderPrefix}${i}-`,
            cart: spec.cart ? { ...spec.cart, seed: spec.cart.seed + i * 7919 } : undefined,
          };
          return new Promise<void>((resolve, reject) => {
            const exited = (code: number | null) => reject(new Error(`load generator exited (code ${code}) before it was ready`));
            const onMessage = (m: ChildMessage) => {
              if (m.type === 'ready') {
                child.off('exit', exited);
                child.off('message', onMessage);
                resolve();
              } else if (m.type === 'error') reject(new Error(`load generator: ${m.message}`));
            };
            child.on('message', onMessage);
            child.once('exit', exited);
            child.send({ type: 'start', spec: part });
          });
        }),
      );
      if (show) {
        await this.settle(label);
        await this.waitQuiet(label);
      }
      const meter = new CpuMeter(() => ({
        loadgen: children.map((c) => c.pid!).filter(Boolean),
        ...serverProcesses(server.pid),
        redis: this.stack.redis ?? [],
        mariadb: this.stack.mariadb ?? [],
        etcd: this.stack.etcd ?? [],
        bench: [process.pid],
      }));
      const started = performance.now();
      this.lastLoadStartedAt = started;
      const done = Promise.all(
        children.map(
          (child, i) =>
            new Promise<void>((resolve, reject) => {
              child.on('message', (m: ChildMessage) => {
                if (m.type === 'progress') {
                  progress.set(i, m);
                  let answered = 0;
                  let reserved = 0;
                  let errors = 0;
                  for (const p of progress.values()) {
                    answered += p.answered;
                    reserved += p.reserved;
                    errors += p.errors;
                  }
                  const el = performance.now() - started;
                  bar?.update(
                    Math.min(el, spec.durationMs),
                    `${fmt(answered)} calls  ${fmt((answered * 1000) / el)}/s  reserved ${fmt(reserved)}${errors ? `  errors ${fmt(errors)}` : ''}`,
                  );
                } else if (m.type === 'result') {
                  results[i] = m.result;
                  resolve();
                } else if (m.type === 'error') reject(new Error(`load generator: ${m.message}`));
              });
              child.once('exit', (code) => reject(new Error(`load generator exited (code ${code}) during the run`)));
            }),
        ),
      );
      const forksBefore = await this.redisForks();
      meter.start();
      for (const child of children) child.send({ type: 'go' });
      await done;
      const cpu = meter.stop();
      const redisForks = (await this.redisForks()) - forksBefore;
      const result = mergeResults(results);
      bar?.done(
        `${fmt(result.answered)} calls in ${(result.elapsedMs / 1000).toFixed(1)} s = ${fmt((result.answered * 1000) / result.elapsedMs)}/s`,
      );
      return { result, cpu, redisForks };
    } finally {
      for (const child of children) {
        if (child.connected) child.send({ type: 'exit' });
        void stopChild(child, 3000);
      }
    }
  }

  /** Waits until the server routes to each SKU (GetStock answers with at least `partitions` live partitions). */
  async awaitSkus(server: ServerProcess, skus: readonly string[], partitions: number): Promise<void> {
    const until = performance.now() + 120_000;
    for (const sku of skus) {
      for (;;) {
        const w = new Writer();
        w.string(1, sku);
        const res = await unaryOnce(server.target, '/inventory.v1.InventoryService/GetStock', w.framed(), 5000).catch(() => ({ code: -1, body: undefined }));
        let live = -1;
        const at = unframe(res.body);
        if (res.code === 0 && at && res.body) {
          const body = res.body;
          scanFields(body, at[0], at[1], (field, wt, _v, from, to) => {
            if (field === 1 && wt === 2) scanFields(body, from, to, (f, w2, v) => {
              if (f === 8 && w2 === 0) live = v;
            });
          });
          if (live === -1) live = 0;
        }
        if (live >= partitions) break;
        if (performance.now() > until) throw new Error(`the cart server did not learn SKU ${sku} from the registry within 2 minutes`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
  }

  /**
   * Before each measured scenario, so that it does not pay for earlier ones: lets the ledger writer
   * apply what they left in the ledger streams (while it makes progress: a stopped server's writer
   * is gone), then settles Redis's append-only file (settleRedis).
   */
  async settle(label: string): Promise<void> {
    const started = performance.now();
    let backlog = await this.ledgerBacklog();
    const first = backlog;
    let progressAt = performance.now();
    while (backlog > 0 && performance.now() - progressAt < 3000 && performance.now() - started < 120_000) {
      await new Promise((r) => setTimeout(r, 250));
      const now = await this.ledgerBacklog();
      if (now < backlog) progressAt = performance.now();
      backlog = now;
    }
    if (first > 0 && backlog < first) {
      note(`${label}: waited ${((performance.now() - started) / 1000).toFixed(1)} s for the ledger writer to apply ${fmt(first - backlog)} records of earlier scenarios`);
    }
    await this.settleRedis(label);
  }

  /** Records in the ledger streams of the bench's namespaces: not yet applied to MySQL. */
  async ledgerBacklog(): Promise<number> {
    const nodes = this.config.redisNodes.map(redisAt);
    try {
      let n = 0;
      for (const config of [this.config, this.cartConfig]) {
        for (let shard = 0; shard < config.redisShards; shard++) {
          n += await nodes[shard % nodes.length].xlen(`${config.redisPrefix}:{s${shard}}:ledger`);
        }
      }
      return n;
    } finally {
      for (const redis of nodes) redis.disconnect();
    }
  }

  /**
   * Lets an AOF rewrite in progress finish, and rewrites the AOF of
   * each Redis node whose file has grown since its last rewrite, so that the writes of earlier
   * scenarios do not set one off during this one (Redis rewrites once the file has doubled, in a
   * forked child that takes a core for seconds). A rewrite that a scenario's own writes set off
   * still happens in it, and its CPU counts under redis (CpuMeter counts Redis's children).
   */
  async settleRedis(label: string): Promise<void> {
    for (const node of this.config.redisNodes) {
      const redis = redisAt(node);
      try {
        const persistence = async () => infoFields(await redis.info('persistence'));
        let p = await persistence();
        if (p.aof_enabled !== '1') continue;
        const grownMb = (Number(p.aof_current_size) - Number(p.aof_base_size)) / 2 ** 20;
        if (p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0' && grownMb < 8) continue;
        const started = performance.now();
        if (p.aof_rewrite_in_progress === '0') await redis.bgrewriteaof().catch(() => undefined); // one in progress or scheduled: wait for it
        for (;;) {
          await new Promise((r) => setTimeout(r, 200));
          p = await persistence();
          if (p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0') break;
          if (performance.now() - started > 120_000) throw new Error(`Redis ${node}: AOF rewrite still running after 2 minutes`);
        }
        note(`${label}: Redis ${node}: AOF rewritten first (${fmt(grownMb)} MB since the last rewrite; ${((performance.now() - started) / 1000).toFixed(1)} s)`);
      } finally {
        redis.disconnect();
      }
    }
  }

  /** Forks of the Redis nodes since they started (INFO stats total_forks): AOF rewrites, RDB saves. */
  async redisForks(): Promise<number> {
    let forks = 0;
    for (const node of this.config.redisNodes) {
      const redis = redisAt(node);
      try {
        forks += Number(infoFields(await redis.info('stats')).total_forks ?? 0);
      } finally {
        redis.disconnect();
      }
    }
    return forks;
  }

  /** --wait-quiet: polls the machine's busy time (1 s samples) until it is under the threshold, for at most 2 minutes. */
  async waitQuiet(label: string): Promise<void> {
    const limit = this.o.waitQuiet;
    if (limit === undefined) return;
    const until = performance.now() + 120_000;
    for (let waited = 0; ; waited++) {
      const a = machineCpuMs();
      await new Promise((r) => setTimeout(r, 1000));
      const b = machineCpuMs();
      const busyPct = (b.busy - a.busy) / 10; // % of one core over 1 s
      if (busyPct < limit) {
        if (waited > 0) note(`${label}: machine quiet after ${waited} s (${busyPct.toFixed(0)}% busy)`);
        return;
      }
      if (performance.now() > until) {
        note(`${label}: machine still ${busyPct.toFixed(0)}% busy after 2 min of waiting; measuring anyway`);
        return;
      }
      if (waited % 10 === 0) note(`${label}: waiting for a quiet machine (${busyPct.toFixed(0)}% of a core busy)`);
    }
  }

  async warmup(server: ServerProcess, sku: string): Promise<void> {
    if (this.o.warmupMs <= 0) return;
    await this.drive('  warm-up', this.reserveSpec(server.target, sku, `${this.tag}-w${++this.skuCounter}-`, this.o.warmupMs), server, false);
  }

  row(
    id: string,
    title: string,
    server: Row['server'],
    workers: number,
    { result, cpu, redisForks }: Drive,
    extra: Partial<Row> = {},
  ): Row {
    const hist = Histogram.fromSparse(result.hist);
    const errors = Object.entries(result.codes).filter(([c]) => c !== 'OK');
    const store = server === 'baseline' ? cpu.groups.mariadb?.ms ?? 0 : server === 'inventory' ? cpu.groups.redis?.ms ?? 0 : 0;
    const row: Row = {
      id,
      title,
      server,
      workers,
      client: 'lean',
      answered: result.answered,
      elapsedMs: result.elapsedMs,
      callsPerSec: (result.answered * 1000) / result.elapsedMs,
      p50Ms: hist.quantile(0.5) / 1000,
      p99Ms: hist.quantile(0.99) / 1000,
      p999Ms: hist.quantile(0.999) / 1000,
      maxMs: hist.max / 1000,
      codes: result.codes,
      errors: errors.reduce((a, [, n]) => a + n, 0),
      reserved: result.reserve.reserved,
      rejected: result.reserve.rejected,
      replayed: result.reserve.replayed,
      cpu,
      serverUsPerCall: ((cpu.groups.server?.ms ?? 0) * 1000) / Math.max(1, result.answered),
      ledgerUsPerCall: ((cpu.groups.ledger?.ms ?? 0) * 1000) / Math.max(1, result.answered),
      storeUsPerCall: (store * 1000) / Math.max(1, result.answered),
      check: undefined,
      notes: [],
      ...extra,
    };
    const methods: Row['methods'] = {};
    for (const [m, s] of Object.entries(result.methods)) {
      const h = Histogram.fromSparse(s.hist);
      methods[m] = { calls: s.calls, p50Ms: h.quantile(0.5) / 1000, p99Ms: h.quantile(0.99) / 1000 };
    }
    row.methods = methods;
    // Selling vs sold-out phases from the timeline (100 ms buckets).
    let lastSale = -1;
    result.timeline.forEach(([, r], i) => {
      if (r > 0) lastSale = i;
    });
    if (row.stocked !== undefined && row.reserved !== undefined && row.reserved >= row.stocked && lastSale >= 0) {
      const sellingCalls = result.timeline.slice(0, lastSale + 1).reduce((a, [n]) => a + n, 0);
      const sellingMs = (lastSale + 1) * 100;
      row.soldOutAtMs = sellingMs;
      row.sellingCallsPerSec = (sellingCalls * 1000) / sellingMs;
      const beyondMs = result.elapsedMs - sellingMs;
      if (beyondMs > 0) row.beyondCallsPerSec = ((result.answered - sellingCalls) * 1000) / beyondMs;
    }
    // The stack's Redis forks only to rewrite its AOF (it saves no RDB); one of the user's own may also save RDB snapshots.
    if (redisForks > 0) row.notes.push(`Redis forked ${redisForks} time${redisForks > 1 ? 's' : ''} during it (AOF rewrite or RDB save; counted in its CPU)`);
    if (result.codes.TIMEOUT) row.notes.push(`${result.codes.TIMEOUT} calls unanswered ${30} s after the load stopped`);
    if (cpu.otherPct > 25) {
      const steal = cpu.stealPct > 5 ? `, ${cpu.stealPct.toFixed(0)}% of it steal (the hypervisor serving other machines)` : '';
      row.notes.push(`noisy: other processes used ${cpu.otherPct.toFixed(0)}% of a core meanwhile${steal}`);
    }
    const lg = cpu.groups.loadgen?.pct ?? 0;
    if (lg > 50) row.notes.push(`load generator used ${lg.toFixed(0)}% of a core (> 50%): try --loadgens 2`);
    return row;
  }

  record(row: Row): void {
    this.rows.push(row);
    const check = row.check ? (row.check.ok ? 'check ok' : `CHECK FAILED: ${row.check.problems.join('; ')}`) : '';
    note(
      `${row.title}: ${fmt(row.callsPerSec)} calls/s, p50 ${ms(row.p50Ms)} ms, p99 ${ms(row.p99Ms)} ms, ` +
        `CPU server ${row.cpu.groups.server?.pct.toFixed(0)}% ledger ${row.cpu.groups.ledger?.pct.toFixed(0)}% redis ${row.cpu.groups.redis?.pct.toFixed(0)}% ` +
        `mariadb ${row.cpu.groups.mariadb?.pct.toFixed(0)}% loadgen ${row.cpu.groups.loadgen?.pct.toFixed(0)}% other ${row.cpu.otherPct.toFixed(0)}%` +
        (check ? `; ${check}` : ''),
    );
  }

  // ------------------------------------------------------------------ scenarios

  async flash(server: ServerProcess, workers: number, id: string, title: string, sku: string, units: number): Promise<Row> {
    const run = await this.drive(title, this.reserveSpec(server.target, sku, `${this.tag}-${id}-`, this.o.durationMs), server);
    const { result } = run;
    const books = await readBooks(this.config, new Map([[sku, units]]), this.inventoryDbUrl);
    const check = judge(books, result.reserve.unitsReserved, result.reserve.reserved);
    if (result.reserve.reserved > units) check.problems.push(`${result.reserve.reserved} RESERVED answers for ${units} units`);
    // Out of stock is an answer (REJECTED, status OK); an error status means the figures are not a sale's.
    const errors = Object.entries(result.codes).filter(([code]) => code !== 'OK');
    if (errors.length > 0) check.problems.push(`calls answered with an error: ${errors.map(([code, n]) => `${code} ${n}`).join(', ')}`);
    const row = this.row(id, title, 'inventory', workers, run, {
      stocked: units,
      sold: result.reserve.unitsReserved,
      check: { ...check, ok: check.problems.length === 0 },
    });
    this.record(row);
    return row;
  }

  async baselineFlash(server: ServerProcess, workers: number, id: string, title: string, sku: string, units: number): Promise<Row> {
    const run = await this.drive(title, this.reserveSpec(server.target, sku, `${this.tag}-${id}-`, this.o.durationMs), server);
    const { result } = run;
    const books = await readBaseline(this.baselineUrl, new Map([[sku, units]]));
    const check = judgeBaseline(books, result.reserve.reserved);
    const row = this.row(id, title, 'baseline', workers, run, { stocked: units, sold: books[0]?.ledgerUnits, check });
    this.record(row);
    return row;
  }

  async ceiling(server: ServerProcess, workers: number, id: string, title: string): Promise<Row> {
    const run = await this.drive(title, this.reserveSpec(server.target, 'echo-sku', `${this.tag}-${id}-`, this.o.durationMs), server);
    const row = this.row(id, title, 'echo', workers, run);
    row.reserved = undefined;
    row.rejected = undefined;
    this.record(row);
    return row;
  }

  async cart(server: ServerProcess, workers: number, skus: readonly SeedSku[]): Promise<Row> {
    const id = `cart-${workers}w`;
    const title = `mixed cart, ${workers} worker${workers > 1 ? 's' : ''}`;
    const spec: LoadSpec = {
      target: server.target,
      workload: 'cart',
      durationMs: this.o.durationMs,
      concurrency: this.o.concurrency,
      connections: this.o.connections,
      orderPrefix: `${this.tag}-${id}-`,
      cart: { skuPrefix: 'cart-', skuCount: skus.length, maxSkus: 5, maxQty: 2, confirmPct: 70, releasePct: 20, seed: 12345 },
      drainMs: 30_000,
    };
    const run = await this.drive(title, spec, server);
    const { result } = run;
    const stocked = new Map(skus.map((s) => [s.sku, s.units] as [string, number]));
    const books = await readBooks(this.cartConfig, stocked, this.cartDbUrl);
    const clientHeld = result.reserve.unitsReserved - result.release.unitsReleased;
    const check = judge(books, clientHeld);
    const orders = result.methods.reserve?.calls ?? 0;
    const row = this.row(id, title, 'inventory', workers, run, {
      stocked: check.stocked,
      sold: check.held,
      check,
      cart: {
        orders,
        ordersPerSec: (orders * 1000) / result.elapsedMs,
        confirms: result.methods.confirm?.calls ?? 0,
        releases: result.methods.release?.calls ?? 0,
        unitsReserved: result.reserve.unitsReserved,
        unitsReleased: result.release.unitsReleased,
      },
    });
    this.record(row);
    return row;
  }

  async storm(server: ServerProcess, kind: 'inventory' | 'echo', sku: string, units: number, orderId: string): Promise<Row | undefined> {
    const bin = h2loadPath();
    if (!bin) {
      this.notes.push('h2load not found (scripts/bench.sh installs nghttp2-client with apt-get): duplicate storm skipped');
      return undefined;
    }
    const id = kind === 'echo' ? 'storm-ceiling-1w' : 'storm-1w';
    const title = kind === 'echo' ? 'replay storm, echo (h2load)' : 'replay storm, ours (h2load)';
    const template = new ReserveTemplate(orderId, 0, sku, 1);
    const bodyFile = path.join(this.dir, `${id}.body.bin`);
    writeFileSync(bodyFile, template.template);
    const streams = Math.max(1, Math.round(this.o.concurrency / this.o.connections));
    await this.settle(title);
    await this.waitQuiet(title);
    const before = await scrapeReserveCounters(server.metricsPort);
    const meter = new CpuMeter(() => ({
      loadgen: [],
      ...serverProcesses(server.pid),
      redis: this.stack.redis ?? [],
      mariadb: this.stack.mariadb ?? [],
      etcd: this.stack.etcd ?? [],
      bench: [process.pid],
    }));
    const bar = new Progress(title, this.o.durationMs + 1000);
    const started = performance.now();
    meter.start();
    const ticker = setInterval(() => bar.update(performance.now() - started, 'h2load running'), 250);
    let res: H2loadResult;
    try {
      res = await runH2load({
        target: server.target,
        path: PATHS.reserve,
        bodyFile,
        durationS: this.o.durationMs / 1000,
        warmupS: this.o.quick ? 0.3 : 1,
        clients: this.o.connections,
        streams,
        logFile: path.join(this.dir, `${id}.h2load.log`),
      });
    } finally {
      clearInterval(ticker);
    }
    const cpu = meter.stop();
    const after = await scrapeReserveCounters(server.metricsPort);
    bar.done(`${fmt(res.succeeded)} answered, ${fmt(res.reqPerSec)} req/s (h2load)`);
    const codes: Record<string, number> = {};
    for (const [c, n] of Object.entries(after.codes)) if (n - (before.codes[c] ?? 0) > 0) codes[c] = n - (before.codes[c] ?? 0);
    if (res.failed + res.errored + res.timeout > 0) codes.HTTP_FAILED = res.failed + res.errored + res.timeout;
    // h2load's CPU over its whole life (it ran ~1 s of warm-up more than the measured window).
    cpu.groups.loadgen = { ms: res.cpuMs, pct: (100 * res.cpuMs) / cpu.wallMs };
    const answered = res.hist.total || res.succeeded;
    const row: Row = {
      id,
      title,
      server: kind,
      workers: 1,
      client: 'h2load',
      answered,
      elapsedMs: res.elapsedMs,
      callsPerSec: res.reqPerSec,
      p50Ms: res.hist.quantile(0.5) / 1000,
      p99Ms: res.hist.quantile(0.99) / 1000,
      p999Ms: res.hist.quantile(0.999) / 1000,
      maxMs: res.hist.max / 1000,
      codes,
      errors: Object.entries(codes).filter(([c]) => c !== 'OK').reduce((a, [, n]) => a + n, 0),
      cpu,
      serverUsPerCall: ((cpu.groups.server?.ms ?? 0) * 1000) / Math.max(1, answered),
      ledgerUsPerCall: ((cpu.groups.ledger?.ms ?? 0) * 1000) / Math.max(1, answered),
      storeUsPerCall: (((kind === 'inventory' ? cpu.groups.redis?.ms : 0) ?? 0) * 1000) / Math.max(1, answered),
      check: undefined,
      notes: [`CPU window includes h2load's warm-up (${this.o.quick ? 0.3 : 1} s)`],
    };
    if (kind === 'inventory') {
      const books = await readBooks(this.config, new Map([[sku, units]]), this.inventoryDbUrl);
      const v = judge(books);
      const b = books.get(sku)!;
      if (b.takeRecords !== 1) v.problems.push(`${b.takeRecords} take records for the one replayed order (want exactly 1)`);
      if (units - b.avail !== 1) v.problems.push(`${units - b.avail} units deducted (want exactly 1)`);
      const fresh = after.nonReplays - before.nonReplays;
      if (fresh !== 1) v.problems.push(`${fresh} non-replayed Reserve answers (want exactly 1)`);
      row.check = { ...v, ok: v.problems.length === 0 };
      row.stocked = units;
      row.sold = units - b.avail;
      row.replayed = (codes.OK ?? 0) - fresh;
    }
    this.record(row);
    return row;
  }

  // ------------------------------------------------------------------ whole run

  async run(): Promise<void> {
    const o = this.o;
    this.refreshStack();
    note(`run ${this.runId}: namespace ${this.tag}, results in ${path.relative(ROOT, o.out)}/`);
    note(
      `machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}; stack pids: ` +
        Object.entries(this.stack)
          .map(([k, v]) => `${k} ${v.join(',') || 'not found'}`)
          .join(', '),
    );
    await cleanupStale(this.config);

    // Each server's warm-up sells out a SKU of its own half way through, so that the JIT has seen
    // both paths of the flash sale (selling, then sold out) before the first measured round.
    const warmUnits = Math.max(1000, Math.round(o.warmupMs * 10));
    const warm = this.sku('warm');
    const flashSkus = Array.from({ length: o.rounds }, () => this.sku('flash'));
    const selloutSku = this.sku('sellout');
    const stormSku = this.sku('storm');
    const stormUnits = 1000;
    const cartSkus: SeedSku[] = Array.from({ length: o.skus }, (_, i) => ({ sku: `cart-${i}`, units: o.skuUnits, partitions: o.skuPartitions }));

    // --- seeding (ours)
    const needInventory = ['flash', 'sellout', 'cart', 'storm', 'workers', 'profile'].some((g) => this.wants(g));
    const multi = o.workers.filter((w) => w > 1);
    const flashMulti = multi.map((w) => [w, this.sku(`flash${w}w`), this.sku(`warm${w}w`)] as const);
    const profSku = this.sku('flashprof');
    const profWarm = this.sku('warmprof');
    if (needInventory) {
      const small: SeedSku[] = [
        ...[warm, profWarm, ...flashMulti.map(([, , w]) => w)].map((sku) => ({ sku, units: warmUnits, partitions: o.partitions })),
        ...flashSkus.map((sku) => ({ sku, units: o.units, partitions: o.partitions })),
        { sku: selloutSku, units: o.selloutUnits, partitions: o.partitions },
        { sku: stormSku, units: stormUnits, partitions: o.partitions },
        { sku: profSku, units: o.units, partitions: o.partitions },
        ...flashMulti.map(([, sku]) => ({ sku, units: o.units, partitions: o.partitions })),
      ];
      const s1 = await seedInventory(this.config, small, { concurrency: 8 });
      this.seeding.flash = s1;
    }

    // --- transport ceiling and our server, 1 worker: both servers up, ceiling and flash sale in
    // alternating rounds; then the h2load storms, and the sell-out.
    const needEcho = this.wants('ceiling') || this.wants('storm');
    const needOurs = ['flash', 'sellout', 'storm'].some((g) => this.wants(g));
    const echo = needEcho ? await this.startEcho(1, 'echo-1w') : undefined;
    try {
      const inv = needOurs ? await this.startInventory(1, 'inventory-1w') : undefined;
      try {
        if (echo) await this.warmup(echo, 'echo-sku');
        if (inv) await this.warmup(inv, warm);
        for (let k = 1; k <= o.rounds; k++) {
          const [suffix, title] = o.rounds > 1 ? [`-r${k}`, `, round ${k}`] : ['', ''];
          const round: { ceiling?: Row; flash?: Row } = {};
          if (echo && this.wants('ceiling')) round.ceiling = await this.ceiling(echo, 1, `ceiling-1w${suffix}`, `transport ceiling, 1 worker${title}`);
          if (inv && this.wants('flash')) round.flash = await this.flash(inv, 1, `flash-1w${suffix}`, `flash sale, 1 worker${title}`, flashSkus[k - 1], o.units);
          this.rounds.push(round);
        }
        if (echo && this.wants('storm')) await this.storm(echo, 'echo', 'echo-sku', 0, `${this.tag}-dup-echo`);
        if (inv && this.wants('sellout')) await this.flash(inv, 1, 'sellout-1w', 'flash sell-out, 1 worker', selloutSku, o.selloutUnits);
        if (inv && this.wants('storm')) await this.storm(inv, 'inventory', stormSku, stormUnits, `${this.tag}-dup-1`);
      } finally {
        await inv?.stop();
      }
    } finally {
      await echo?.stop();
    }

    // --- mixed cart, 1 worker: its own server and namespace, started BEFORE its SKUs are seeded.
    // A server started after 10,000 SKUs x 2 partitions are registered never becomes ready: the
    // registry cache lists the whole etcd prefix in one range call, whose answer (~4.9 MB) is over
    // grpc-js's default 4 MB receive limit of the etcd3 client (RESOURCE_EXHAUSTED, retried for
    // ever). Started first, the server learns the SKUs through its watch, in small batches.
    if (this.wants('cart')) {
      const inv = await this.startInventory(1, 'inventory-cart-1w', [], true);
      try {
        const cartWarm = 'cart-warm';
        await seedInventory(this.cartConfig, [{ sku: cartWarm, units: 10_000_000, partitions: o.partitions }], { concurrency: 1 });
        const bar = new Progress(`seeding ${fmt(o.skus)} cart SKUs`, 0);
        const t0 = performance.now();
        const seeded = await seedInventory(this.cartConfig, cartSkus, {
          concurrency: 32,
          onProgress: (d, t) => bar.fraction(d / t, `${fmt(d)}/${fmt(t)} SKUs, ${fmt((d * 1000) / (performance.now() - t0))} SKUs/s`),
        });
        bar.done(`${fmt(seeded.skus)} SKUs x ${o.skuPartitions} partitions in ${(seeded.ms / 1000).toFixed(1)} s (${fmt((seeded.skus * 1000) / seeded.ms)} SKUs/s; etcd-bound)`);
        this.seeding.cart = seeded;
        await this.awaitSkus(inv, [cartWarm, ...cartSkus.slice(-32).map((c) => c.sku)], o.skuPartitions);
        await this.warmup(inv, cartWarm);
        await this.cart(inv, 1, cartSkus);
      } finally {
        await inv.stop();
      }
    }

    // --- MySQL baseline, 1 worker
    if (this.wants('baseline')) {
      const bFlash = this.sku('bflash');
      const bSellout = this.sku('bsellout');
      const bWarm = this.sku('bwarm');
      const base = await this.startBaseline(1, 'baseline-1w', [
        [bWarm, 10_000_000],
        [bFlash, o.units],
        [bSellout, o.selloutUnits],
      ]);
      try {
        await this.warmup(base, bWarm);
        await this.baselineFlash(base, 1, 'baseline-flash-1w', 'MySQL baseline flash, 1 worker', bFlash, o.units);
        await this.baselineFlash(base, 1, 'baseline-sellout-1w', 'MySQL baseline sell-out, 1 w', bSellout, o.selloutUnits);
      } finally {
        await base.stop();
      }
    }

    // --- more workers: ceiling and flash
    if (this.wants('workers')) {
      for (const [w, sku, warmSku] of flashMulti) {
        const echo = await this.startEcho(w, `echo-${w}w`);
        try {
          await this.warmup(echo, 'echo-sku');
          await this.ceiling(echo, w, `ceiling-${w}w`, `transport ceiling, ${w} workers`);
        } finally {
          await echo.stop();
        }
        const inv = await this.startInventory(w, `inventory-${w}w`);
        try {
          await this.warmup(inv, warmSku);
          await this.flash(inv, w, `flash-${w}w`, `flash sale, ${w} workers`, sku, o.units);
        } finally {
          await inv.stop();
        }
      }
    }

    // --- profile
    if (this.wants('profile')) {
      const profDir = path.join(this.dir, 'cpuprofile');
      mkdirSync(profDir, { recursive: true });
      const spawnedAt = performance.now();
      const inv = await this.startInventory(1, 'inventory-profile', ['--cpu-prof', `--cpu-prof-dir=${profDir}`]);
      let row: Row | undefined;
      try {
        await this.warmup(inv, profWarm);
        row = await this.flash(inv, 1, 'flash-1w-profiled', 'flash sale, 1 w, --cpu-prof', profSku, o.units);
        // From the start of the load itself: flash() first waits for the ledger and Redis to settle.
        const from = this.lastLoadStartedAt - spawnedAt;
        this.profileWindow = { fromMs: from, toMs: from + row.elapsedMs };
        row.notes.push('server under node --cpu-prof (slower); not used in the ratios');
      } finally {
        await inv.stop();
      }
      const files = readdirSync(profDir).filter((f) => f.endsWith('.cpuprofile'));
      if (files.length > 0) {
        this.profileFile = path.join(this.dir, 'flash-1w.server.cpuprofile');
        renameSync(path.join(profDir, files[0]), this.profileFile);
        this.profile = summarize(JSON.parse(readFileSync(this.profileFile, 'utf8')), 25, this.profileWindow);
      } else {
        this.notes.push('the profiled server wrote no .cpuprofile');
      }
    }
  }

  // ------------------------------------------------------------------ report

  find(id: string): Row | undefined {
    return this.rows.find((r) => r.id === id);
  }

  ratios(): Ratio[] {
    const out: Ratio[] = [];
    const pairs = this.rounds.filter((r): r is { ceiling: Row; flash: Row } => r.ceiling !== undefined && r.flash !== undefined);
    const flashRows = this.rounds.flatMap((r) => (r.flash ? [r.flash] : []));
    const ceilingRows = this.rounds.flatMap((r) => (r.ceiling ? [r.ceiling] : []));
    const flashRate = flashRows.length > 0 ? median(flashRows.map((r) => r.callsPerSec)) : undefined;
    const ceilingRate = ceilingRows.length > 0 ? median(ceilingRows.map((r) => r.callsPerSec)) : undefined;
    const ofRounds = this.rounds.length > 1 ? '; median of the rounds' : '';
    // A ratio of each round's pair (ceiling, then flash sale right after it), and their median.
    const paired = (f: (p: { ceiling: Row; flash: Row }) => number, show: (v: number) => string) => {
      const rounds = pairs.map(f);
      const value = median(rounds);
      return { value, rounds, display: rounds.length > 1 ? `${show(value)} (rounds ${rounds.map(show).join(', ')})` : show(value) };
    };
    const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
    const times = (v: number) => `${v.toFixed(2)}x`;
    const base = this.find('baseline-flash-1w');
    if (flashRate !== undefined && base) {
      const v = flashRate / base.callsPerSec;
      out.push({ what: `flash sale vs MySQL baseline, calls/s (1 worker each${ofRounds})`, value: v, display: times(v), target: '>= 4x', met: v >= 4 });
    }
    if (pairs.length > 0) {
      const calls = paired((p) => p.flash.callsPerSec / p.ceiling.callsPerSec, pct);
      out.push({ what: 'flash sale vs transport ceiling, calls/s', ...calls, target: '>= 60%', met: calls.value >= 0.6 });
      const p99 = paired((p) => p.flash.p99Ms / p.ceiling.p99Ms, times);
      out.push({ what: 'flash sale p99 vs transport ceiling p99', ...p99, target: '<= 1.5x', met: p99.value <= 1.5 });
      const ours = median(pairs.map((p) => p.flash.serverUsPerCall + p.flash.storeUsPerCall));
      const echoUs = median(pairs.map((p) => p.ceiling.serverUsPerCall));
      const cpu = paired((p) => (p.flash.serverUsPerCall + p.flash.storeUsPerCall) / p.ceiling.serverUsPerCall, times);
      out.push({
        what: `server+Redis CPU per Reserve (${fmt(ours)} µs${ofRounds}) vs echo server per call (${fmt(echoUs)} µs)`,
        ...cpu,
        target: '<= 2x',
        met: cpu.value <= 2,
      });
      const ledgerUs = median(pairs.map((p) => p.flash.ledgerUsPerCall));
      if (ledgerUs > 0) {
        const all = paired((p) => (p.flash.serverUsPerCall + p.flash.ledgerUsPerCall + p.flash.storeUsPerCall) / p.ceiling.serverUsPerCall, times);
        out.push({ what: `the same with the ledger writer process (+${fmt(ledgerUs)} µs)`, ...all });
      }
    }
    const storm = this.find('storm-1w');
    const stormCeil = this.find('storm-ceiling-1w');
    if (storm && stormCeil) {
      const v = storm.callsPerSec / stormCeil.callsPerSec;
      out.push({ what: 'duplicate storm (one order id, h2load) vs h2load on the echo server', value: v, display: pct(v), target: 'close to 100%', met: v >= 0.8 });
    }
    for (const w of this.o.workers.filter((x) => x > 1)) {
      const f = this.find(`flash-${w}w`);
      const c = this.find(`ceiling-${w}w`);
      if (f && flashRate) out.push({ what: `flash sale, ${w} workers vs 1${ofRounds}`, value: f.callsPerSec / flashRate, display: times(f.callsPerSec / flashRate) });
      if (c && ceilingRate) out.push({ what: `transport ceiling, ${w} workers vs 1${ofRounds}`, value: c.callsPerSec / ceilingRate, display: times(c.callsPerSec / ceilingRate) });
      if (f && c) out.push({ what: `flash sale vs transport ceiling, ${w} workers`, value: f.callsPerSec / c.callsPerSec, display: `${((100 * f.callsPerSec) / c.callsPerSec).toFixed(0)}%` });
    }
    const checked = this.rows.filter((r) => r.check);
    if (checked.length > 0) {
      const failed = checked.filter((r) => !r.check!.ok);
      out.push({
        what: `no unit sold twice (${checked.map((r) => r.id).join(', ')})`,
        value: failed.length,
        display: failed.length === 0 ? 'none oversold' : `FAILED: ${failed.map((r) => r.id).join(', ')}`,
        target: 'zero oversell',
        met: failed.length === 0,
      });
    }
    return out;
  }

  report(): string {
    const lines: string[] = [];
    const o = this.o;
    lines.push('');
    lines.push(
      `Inventory core benchmark ${this.runId}${o.quick ? ' (--quick)' : ''}: ${os.cpus().length} cores, node ${process.version}; ` +
        `${o.concurrency} calls in flight over ${o.connections} HTTP/2 connections from ${o.loadgens} load generator${o.loadgens > 1 ? 's' : ''}, ` +
        `${o.durationMs / 1000} s per scenario; flash ${fmt(o.units)} units / ${o.partitions} partitions, sell-out ${fmt(o.selloutUnits)} units, ` +
        `cart ${fmt(o.skus)} SKUs x ${o.skuPartitions} partitions x ${fmt(o.skuUnits)} units`,
    );
    lines.push('');
    const head = ['scenario', 'client', 'calls', 'calls/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors by code', 'sold / stocked', 'check'];
    const table: string[][] = [head];
    for (const r of this.rows) {
      const errs = Object.entries(r.codes)
        .filter(([c]) => c !== 'OK')
        .map(([c, n]) => `${c} ${fmt(n)}`)
        .join(', ');
      let sold = '';
      if (r.stocked !== undefined && r.sold !== undefined) sold = `${fmt(r.sold)} / ${fmt(r.stocked)}`;
      table.push([
        r.title,
        r.client,
        fmt(r.answered),
        fmt(r.callsPerSec),
        ms(r.p50Ms),
        ms(r.p99Ms),
        ms(r.p999Ms),
        errs || '0',
        sold,
        r.check ? (r.check.ok ? 'ok' : 'FAILED') : '',
      ]);
    }
    lines.push(...renderTable(table, [false, false, true, true, true, true, true, false, true, false]));
    lines.push('');
    lines.push('CPU during each scenario, % of one core (machine = all cores busy; other = processes outside the benchmark):');
    const cpuHead = ['scenario', 'loadgen', 'server', 'ledger', 'redis', 'mariadb', 'etcd', 'other', 'machine', 'server µs/call', 'ledger µs/call', 'store µs/call'];
    const cpuTable: string[][] = [cpuHead];
    const pct = (r: Row, g: string) => (r.cpu.groups[g] ? `${r.cpu.groups[g].pct.toFixed(0)}%` : '-');
    for (const r of this.rows) {
      cpuTable.push([
        r.title,
        pct(r, 'loadgen'),
        pct(r, 'server'),
        pct(r, 'ledger'),
        pct(r, 'redis'),
        pct(r, 'mariadb'),
        pct(r, 'etcd'),
        `${r.cpu.otherPct.toFixed(0)}%`,
        `${r.cpu.machineBusyPct.toFixed(0)}%`,
        fmt(r.serverUsPerCall),
        r.server === 'inventory' ? fmt(r.ledgerUsPerCall) : '-',
        r.server === 'echo' ? '-' : fmt(r.storeUsPerCall),
      ]);
    }
    lines.push(...renderTable(cpuTable, [false, true, true, true, true, true, true, true, true, true, true, true]));

    const details: string[] = [];
    for (const r of this.rows) {
      const bits: string[] = [];
      if (r.reserved !== undefined && r.client === 'lean') bits.push(`RESERVED ${fmt(r.reserved)}, REJECTED ${fmt(r.rejected ?? 0)}${r.replayed ? `, replayed ${fmt(r.replayed)}` : ''}`);
      if (r.client === 'h2load' && r.replayed !== undefined) bits.push(`replayed answers ${fmt(r.replayed)}, deductions ${fmt(r.sold ?? 0)}`);
      if (r.soldOutAtMs !== undefined) {
        bits.push(
          `sold out after ${(r.soldOutAtMs / 1000).toFixed(1)} s: selling ${fmt(r.sellingCallsPerSec ?? NaN)} calls/s, then sold out ${fmt(r.beyondCallsPerSec ?? NaN)} calls/s`,
        );
      }
      if (r.cart) {
        const m = r.methods ?? {};
        bits.push(
          `${fmt(r.cart.orders)} orders (${fmt(r.cart.ordersPerSec)}/s), ${fmt(r.cart.confirms)} confirms, ${fmt(r.cart.releases)} releases; ` +
            `p99 reserve ${ms(m.reserve?.p99Ms ?? NaN)} / confirm ${ms(m.confirm?.p99Ms ?? NaN)} / release ${ms(m.release?.p99Ms ?? NaN)} ms; ` +
            `units reserved ${fmt(r.cart.unitsReserved)}, released ${fmt(r.cart.unitsReleased)}, held ${fmt(r.sold ?? 0)}`,
        );
      }
      if (r.check && !r.check.ok) bits.push(`CHECK FAILED: ${r.check.problems.join('; ')}`);
      bits.push(...r.notes);
      if (bits.length > 0) details.push(`  ${r.title}: ${bits.join('; ')}`);
    }
    if (details.length > 0) {
      lines.push('');
      lines.push('Details:');
      lines.push(...details);
    }

    lines.push('');
    lines.push('Ratios (same machine, same client settings, same run):');
    for (const r of this.ratios()) {
      const target = r.target ? `  target ${r.target}: ${r.met ? 'MET' : 'NOT MET'}` : '';
      lines.push(`  ${r.what}: ${r.display}${target}`);
    }
    if (this.profile) {
      lines.push('');
      const w = this.profileWindow;
      lines.push(
        `Server profile of the flash sale (${path.relative(ROOT, this.profileFile!)}` +
          (w ? `, samples ${(w.fromMs / 1000).toFixed(1)}-${(w.toMs / 1000).toFixed(1)} s after start: the measured load only` : '') +
          '):',
      );
      lines.push(...formatSummary(this.profile).split('\n').map((l) => `  ${l}`));
    }
    if (this.notes.length > 0) {
      lines.push('');
      lines.push('Notes:');
      for (const n of this.notes) lines.push(`  ${n}`);
    }
    return lines.join('\n');
  }

  writeJson(): string {
    const file = path.join(this.o.out, `${this.runId}.json`);
    const json = {
      runId: this.runId,
      namespace: this.tag,
      machine: { cores: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg() },
      options: { ...this.o, only: this.o.only ? [...this.o.only] : undefined, skip: [...this.o.skip] },
      seeding: this.seeding,
      rows: this.rows,
      ratios: this.ratios(),
      profile: this.profile ? { file: path.relative(ROOT, this.profileFile!), window: this.profileWindow, ...this.profile } : undefined,
      notes: this.notes,
    };
    writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
    return file;
  }

  async cleanup(): Promise<void> {
    await stopAll(5000);
    if (this.o.keep) {
      note(`kept namespace ${this.tag} (Redis prefix, etcd prefix /${this.tag}/, databases ${this.tag}_base, _inv, _cart)`);
      return;
    }
    await dropNamespace(this.config, this.tag).catch((err) => note(`could not drop namespace ${this.tag}: ${String(err)}`));
  }
}

function mergeResults(results: LoadResult[]): LoadResult {
  if (results.length === 1) return results[0];
  const hist = new Histogram();
  const codes: Record<string, number> = {};
  const methods: LoadResult['methods'] = {};
  const timeline: Array<[number, number]> = [];
  const { reserve, release, confirm } = emptyTallies();
  let sent = 0;
  let answered = 0;
  let elapsedMs = 0;
  let cpuMs = 0;
  const methodHists: Record<string, Histogram> = {};
  for (const r of results) {
    hist.add(r.hist);
    for (const [c, n] of Object.entries(r.codes)) codes[c] = (codes[c] ?? 0) + n;
    for (const [m, s] of Object.entries(r.methods)) {
      (methodHists[m] ??= new Histogram()).add(s.hist);
      methods[m] = { calls: (methods[m]?.calls ?? 0) + s.calls, hist: s.hist };
    }
    r.timeline.forEach(([a, b], i) => {
      timeline[i] ??= [0, 0];
      timeline[i][0] += a;
      timeline[i][1] += b;
    });
    for (const k of Object.keys(reserve) as Array<keyof typeof reserve>) reserve[k] += r.reserve[k];
    for (const k of Object.keys(release) as Array<keyof typeof release>) release[k] += r.release[k];
    confirm.ok += r.confirm.ok;
    sent += r.sent;
    answered += r.answered;
    elapsedMs = Math.max(elapsedMs, r.elapsedMs);
    cpuMs += r.cpuMs;
  }
  for (const [m, h] of Object.entries(methodHists)) methods[m] = { calls: methods[m].calls, hist: h.toSparse() };
  return { elapsedMs, sent, answered, codes, methods, hist: hist.toSparse(), reserve, release, confirm, timeline, cpuMs };
}

/** A client of one Redis node, `host:port`. */
function redisAt(node: string): Redis {
  const at = node.lastIndexOf(':');
  return new Redis({ host: node.slice(0, at), port: Number(node.slice(at + 1)), maxRetriesPerRequest: 1 });
}

/** INFO's `name:value` lines. */
function infoFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon > 0) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}

function renderTable(rows: string[][], rightAlign: boolean[]): string[] {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => (r[c] ?? '').length)));
  const line = (r: string[]) => `  ${r.map((cell, c) => (rightAlign[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c]))).join('  ')}`.trimEnd();
  return [line(rows[0]), `  ${widths.map((w) => '-'.repeat(w)).join('  ')}`, ...rows.slice(1).map(line)];
}

// ------------------------------------------------------------------------------------ namespaces

/** Drops one bench namespace: Redis keys `<tag>:*`, etcd keys under `/<tag>/`, the databases `<tag>_*`. */
async function dropNamespace(config: Config, tag: string): Promise<void> {
  if (!/^bench_[a-z0-9]+_[a-f0-9]+$/.test(tag)) throw new Error(`refusing to drop ${tag}: not a bench namespace`);
  const scoped = loadConfig({ ...process.env, REDIS_PREFIX: tag, ETCD_NAMESPACE: `/${tag}/`, LOG_LEVEL: 'silent' });
  await dropInventory({ ...scoped, redisNodes: config.redisNodes, etcdEndpoints: config.etcdEndpoints });
  const server = new URL(loadConfig().mysqlUrl);
  server.pathname = '/';
  const conn = await mysql.createConnection({ uri: server.toString() });
  try {
    for (const suffix of ['_base', '_inv', '_cart']) await conn.query(`DROP DATABASE IF EXISTS \`${tag}${suffix}\``);
  } finally {
    await conn.end();
  }
}

/** Namespaces of bench runs that died without cleaning up (older than an hour). */
async function cleanupStale(config: Config): Promise<void> {
  const tags = new Set<string>();
  const old = (tag: string) => {
    const m = /^bench_([a-z0-9]+)_[a-f0-9]{4}$/.exec(tag);
    return m !== null && Date.now() - parseInt(m[1], 36) > 3_600_000;
  };
  try {
    for (const node of config.redisNodes) {
      const redis = redisAt(node);
      try {
        let cursor = '0';
        let rounds = 0;
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', 'bench_*', 'COUNT', 5000);
          cursor = next;
          for (const k of keys) tags.add(k.split(':')[0]);
        } while (cursor !== '0' && ++rounds < 100_000);
      } finally {
        redis.disconnect();
      }
    }
    const etcd = new Etcd3({ hosts: [...config.etcdEndpoints] });
    try {
      const keys = await etcd.getAll().prefix('/bench_').keys();
      for (const k of keys) tags.add(k.split('/')[1]);
    } finally {
      etcd.close();
    }
    const server = new URL(loadConfig().mysqlUrl);
    server.pathname = '/';
    const conn = await mysql.createConnection({ uri: server.toString() });
    try {
      const [rows] = await conn.query<RowDataPacket[]>("SHOW DATABASES LIKE 'bench\\_%'");
      for (const r of rows) tags.add(String(Object.values(r)[0]).replace(/_(base|inv|cart)$/, ''));
    } finally {
      await conn.end();
    }
    for (const tag of tags) {
      if (!old(tag)) continue;
      note(`dropping stale namespace ${tag} of an earlier run`);
      await dropNamespace(config, tag);
    }
  } catch (err) {
    note(`could not look for stale bench namespaces: ${err instanceof Error ? err.message : String(err)}`);
  }
}

// ------------------------------------------------------------------------------------ main

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  const bench = new Bench(options);
  let exiting = false;
  const abort = (signal: string) => {
    if (exiting) return;
    exiting = true;
    process.stderr.write(`\nbench: ${signal}: stopping servers and load generators, dropping the namespace\n`);
    bench.cleanup().finally(() => process.exit(130));
  };
  process.on('SIGINT', () => abort('SIGINT'));
  process.on('SIGTERM', () => abort('SIGTERM'));
  const started = performance.now();
  let failed: unknown;
  try {
    await bench.run();
  } catch (err) {
    failed = err;
  }
  if (exiting) return;
  exiting = true;
  await bench.cleanup();
  if (bench.rows.length > 0) {
    process.stdout.write(`${bench.report()}\n`);
    const file = bench.writeJson();
    process.stdout.write(`\nResults: ${path.relative(ROOT, file)} (logs and profile in ${path.relative(ROOT, bench.dir)}/); took ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  }
  if (failed) {
    process.stderr.write(`bench failed: ${failed instanceof Error ? failed.stack : String(failed)}\n`);
    process.exit(1);
  }
  if (bench.rows.some((r) => r.check && !r.check.ok)) process.exit(3);
}

void main();
