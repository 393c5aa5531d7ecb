/**
 * The measured scenarios, each one load against a server that is already up and warm: the flash
 * sale (and sell-out) on ours, the same on the MySQL baseline, the transport ceiling, the mixed
 * cart and the h2load replay storm. Each checks the books where there are any, records its row
 * and prints a line about it.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { Bench } from './context';
import { fmt, ms } from './format';
import { H2loadResult, h2loadPath, runH2load, scrapeReserveCounters } from './h2load';
import { DRAIN_MS, cpuMeter, drive, reserveSpec } from './drive';
import { LoadSpec } from './loadgen';
import { Shape } from './options';
import { ServerProcess } from './procs';
import { Progress, note } from './progress';
import { Store } from './redis-nodes';
import { Row, callFigures, cpuPerCall, errorCodes, loadRow } from './rows';
import { SeedSku } from './seed';
import { beforeMeasuring } from './settle';
import { judge, judgeBaseline, readBaseline, readBooks } from './verify';
import { PATHS, ReserveTemplate } from './wire';

/** Keeps the row for the report and prints its line. */
function record(bench: Bench, row: Row): Row {
  bench.rows.push(row);
  const check = row.check ? (row.check.ok ? 'check ok' : `CHECK FAILED: ${row.check.problems.join('; ')}`) : '';
  const pct = (group: string) => row.cpu.groups[group]?.pct.toFixed(0);
  note(
    `${row.title}: ${fmt(row.callsPerSec)} calls/s, p50 ${ms(row.p50Ms)} ms, p99 ${ms(row.p99Ms)} ms, ` +
      `CPU server ${pct('server')}% ledger ${pct('ledger')}% redis ${pct('redis')}% ` +
      `mariadb ${pct('mariadb')}% loadgen ${pct('loadgen')}% other ${row.cpu.otherPct.toFixed(0)}%` +
      (check ? `; ${check}` : ''),
  );
  return row;
}

/** Where a load runs: at `shape` (connections x streams) when given, else --connections and --concurrency; against a server on `store` (default: the stack's node). */
export interface LoadAt {
  readonly shape?: Shape;
  readonly store?: Store;
}

/** One load of 1-unit Reserves of one SKU, each call a fresh order id. */
function driveReserves(bench: Bench, server: ServerProcess, id: string, title: string, sku: string, { shape, store }: LoadAt) {
  const spec = reserveSpec(bench, server.target, sku, `${bench.ns.tag}-${id}-`, bench.o.durationMs);
  const shaped = shape ? { ...spec, connections: shape.connections, concurrency: shape.connections * shape.streams } : spec;
  return drive(bench, title, shaped, server, { store });
}

/** Our flash sale (or sell-out) of `units` of `sku`, checked in the Redis and MySQL of the server's store. */
export async function flash(bench: Bench, server: ServerProcess, workers: number, id: string, title: string, sku: string, units: number, at: LoadAt = {}): Promise<Row> {
  const run = await driveReserves(bench, server, id, title, sku, at);
  const { result } = run;
  const store = at.store ?? bench.store;
  const books = await readBooks(store.config, new Map([[sku, units]]), store.dbUrl);
  const check = judge(books, result.reserve.unitsReserved, result.reserve.reserved);
  if (result.reserve.reserved > units) check.problems.push(`${result.reserve.reserved} RESERVED answers for ${units} units`);
  // An error status means the figures are not a sale's.
  const errors = errorCodes(result.codes);
  if (errors.length > 0) check.problems.push(`calls answered with an error: ${errors.map(([code, n]) => `${code} ${n}`).join(', ')}`);
  return record(
    bench,
    loadRow(id, title, 'inventory', workers, run, {
      stocked: units,
      sold: result.reserve.unitsReserved,
      check: { ...check, ok: check.problems.length === 0 },
    }),
  );
}

/** The same flash sale against the MySQL baseline server. */
export async function baselineFlash(bench: Bench, server: ServerProcess, workers: number, id: string, title: string, sku: string, units: number): Promise<Row> {
  const run = await driveReserves(bench, server, id, title, sku, {});
  const books = await readBaseline(bench.ns.baselineUrl, new Map([[sku, units]]));
  const check = judgeBaseline(books, run.result.reserve.reserved);
  return record(bench, loadRow(id, title, 'baseline', workers, run, { stocked: units, sold: books[0]?.ledgerUnits, check }));
}

/** The flash sale's load against the echo server: what the transport alone allows. */
export async function ceiling(bench: Bench, server: ServerProcess, workers: number, id: string, title: string, kind: 'echo' | 'bare' = 'echo', shape?: Shape): Promise<Row> {
  const row = loadRow(id, title, kind, workers, await driveReserves(bench, server, id, title, 'echo-sku', { shape }));
  // The echo servers' constant RESERVED answers sell nothing: no counts to show.
  row.reserved = undefined;
  row.rejected = undefined;
  return record(bench, row);
}

/** Orders of 1-5 SKUs out of `skus`; of the RESERVED ones 70% confirmed, 20% released. */
export async function cart(bench: Bench, server: ServerProcess, workers: number, skus: readonly SeedSku[]): Promise<Row> {
  const id = `cart-${workers}w`;
  const title = `mixed cart, ${workers} worker${workers > 1 ? 's' : ''}`;
  const spec: LoadSpec = {
    target: server.target,
    workload: 'cart',
    durationMs: bench.o.durationMs,
    concurrency: bench.o.concurrency,
    connections: bench.o.connections,
    orderPrefix: `${bench.ns.tag}-${id}-`,
    cart: { skuPrefix: 'cart-', skuCount: skus.length, maxSkus: 5, maxQty: 2, confirmPct: 70, releasePct: 20, seed: 12345 },
    drainMs: DRAIN_MS,
  };
  const run = await drive(bench, title, spec, server);
  const { result } = run;
  const stocked = new Map(skus.map((s) => [s.sku, s.units] as [string, number]));
  const books = await readBooks(bench.ns.cartConfig, stocked, bench.ns.cartDbUrl);
  const clientHeld = result.reserve.unitsReserved - result.release.unitsReleased;
  const check = judge(books, clientHeld);
  const orders = result.methods.reserve?.calls ?? 0;
  return record(
    bench,
    loadRow(id, title, 'inventory', workers, run, {
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
    }),
  );
}

/**
 * h2load sends ONE Reserve (one order id) over and over: against ours, every answer but the first
 * must be a replay that sells nothing; against the echo server, what h2load itself reaches.
 */
export async function storm(bench: Bench, server: ServerProcess, kind: 'inventory' | 'echo', sku: string, units: number, orderId: string): Promise<Row | undefined> {
  const o = bench.o;
  const bin = h2loadPath();
  if (!bin) {
    bench.notes.push('h2load not found (scripts/bench.sh installs nghttp2-client with apt-get): duplicate storm skipped');
    return undefined;
  }
  const id = kind === 'echo' ? 'storm-ceiling-1w' : 'storm-1w';
  const title = kind === 'echo' ? 'replay storm, echo (h2load)' : 'replay storm, ours (h2load)';
  const template = new ReserveTemplate(orderId, 0, sku, 1);
  const bodyFile = path.join(bench.dir, `${id}.body.bin`);
  writeFileSync(bodyFile, template.template);
  const streams = Math.max(1, Math.round(o.concurrency / o.connections));
  const warmupS = o.quick ? 0.3 : 1;
  await beforeMeasuring(bench.ns, o.waitQuiet, title);
  const before = await scrapeReserveCounters(server.metricsPort);
  const meter = cpuMeter(bench, server, []);
  const bar = new Progress(title, o.durationMs + 1000);
  const started = performance.now();
  meter.start();
  const ticker = setInterval(() => bar.update(performance.now() - started, 'h2load running'), 250);
  let res: H2loadResult;
  try {
    res = await runH2load({
      target: server.target,
      path: PATHS.reserve,
      bodyFile,
      durationS: o.durationMs / 1000,
      warmupS,
      clients: o.connections,
      streams,
      logFile: path.join(bench.dir, `${id}.h2load.log`),
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
    ...callFigures(answered, res.elapsedMs, res.reqPerSec, res.hist, codes),
    cpu,
    ...cpuPerCall(kind, cpu, answered),
    check: undefined,
    notes: [`CPU window includes h2load's warm-up (${warmupS} s)`],
  };
  if (kind === 'inventory') {
    const books = await readBooks(bench.ns.config, new Map([[sku, units]]), bench.ns.inventoryDbUrl);
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
  return record(bench, row);
}
