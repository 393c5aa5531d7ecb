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
 *   bare         a plain grpc-js echo (no interceptors, metrics, health: the transport alone), the
 *                ceiling's echo and the flash sale, in rounds at two load shapes (4 x 125 and
 *                20 x 25 connections x streams): what our stack and the sale cost over grpc-js;
 *                then what Redis spends on one Reserve's script, part by part (script-cost.ts)
 *   2 workers    ceiling and flash again with WORKERS=2
 *   profile      flash once more with the server under node --cpu-prof, summarised
 *   soak         (only when named in --only) Redis memory over minutes of steady orders with a
 *                retention of seconds: bytes per order, flat once retention is reached (soak.ts)
 *   scaling      (only when named in --only) the flash sale on the stack's one Redis node and on
 *                its 3-master Redis Cluster (scripts/stack.sh up --redis-cluster), in rounds: the
 *                Redis CPU per call split over the masters, replicas apart (scaling.ts)
 *
 * This file is the entry point: it runs the parts of a run in order, cleans up and prints the
 * report. options.ts parses the command line, phases.ts starts the servers and runs each part,
 * scenarios.ts measures one scenario into a row, report.ts prints the tables and writes the JSON.
 */
import os from 'node:os';
import path from 'node:path';
import { Bench } from './context';
import { HELP, Options, parseOptions } from './options';
import { ROOT } from './paths';
import { barePhase, baselinePhase, cartPhase, moreWorkers, oneWorker, planSkus, profiledFlash, seedOurs, soakPhase } from './phases';
import { stopAll } from './procs';
import { note } from './progress';
import { report, writeJson } from './report';
import { soakOk } from './soak';
import { attachCluster, scalingPhase } from './scaling';
import { cleanupStale, describeNamespace, dropNamespace, redisConfigs } from './stack';

/** The whole run, group by group; what each part starts and measures is in phases.ts. */
async function run(bench: Bench): Promise<void> {
  bench.refreshStack();
  note(`run ${bench.runId}: namespace ${bench.ns.tag}, results in ${path.relative(ROOT, bench.o.out)}/`);
  note(
    `machine: ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), node ${process.version}; stack pids: ` +
      Object.entries(bench.stack)
        .map(([k, v]) => `${k} ${v.join(',') || 'not found'}`)
        .join(', '),
  );
  // The cluster first, so that the sweep of stale namespaces sees the keys dead runs left on it.
  if (bench.wants('scaling')) await attachCluster(bench);
  await cleanupStale(redisConfigs(bench.ns));
  const skus = planSkus(bench);
  await seedOurs(bench, skus);
  await oneWorker(bench, skus);
  if (bench.wants('bare')) await barePhase(bench, skus);
  if (bench.wants('cart')) await cartPhase(bench);
  if (bench.wants('baseline')) await baselinePhase(bench);
  if (bench.wants('workers')) await moreWorkers(bench, skus);
  if (bench.wants('profile')) await profiledFlash(bench, skus);
  if (bench.wants('scaling')) await scalingPhase(bench);
  if (bench.wants('soak')) await soakPhase(bench);
}

/** Stops every process the run started and drops its namespace (unless --keep). */
async function cleanup(bench: Bench): Promise<void> {
  await stopAll(5000);
  const { tag } = bench.ns;
  if (bench.o.keep) {
    note(`kept namespace ${tag} (${describeNamespace(tag)})`);
    return;
  }
  await dropNamespace(redisConfigs(bench.ns), tag).catch((err) => note(`could not drop namespace ${tag}: ${String(err)}`));
}

async function main(): Promise<void> {
  let options: Options | 'help';
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`bench: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  }
  if (options === 'help') {
    process.stdout.write(HELP);
    process.exit(0);
  }
  const bench = new Bench(options);
  let exiting = false;
  const abort = (signal: string) => {
    if (exiting) return;
    exiting = true;
    process.stderr.write(`\nbench: ${signal}: stopping servers and load generators, dropping the namespace\n`);
    cleanup(bench).finally(() => process.exit(130));
  };
  process.on('SIGINT', () => abort('SIGINT'));
  process.on('SIGTERM', () => abort('SIGTERM'));
  const started = performance.now();
  let failed: unknown;
  try {
    await run(bench);
  } catch (err) {
    failed = err;
  }
  if (exiting) return;
  exiting = true;
  await cleanup(bench);
  if (bench.rows.length > 0 || bench.soak) {
    process.stdout.write(`${report(bench)}\n`);
    const file = writeJson(bench);
    process.stdout.write(`\nResults: ${path.relative(ROOT, file)} (logs and profile in ${path.relative(ROOT, bench.dir)}/); took ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
  }
  if (failed) {
    process.stderr.write(`bench failed: ${failed instanceof Error ? failed.stack : String(failed)}\n`);
    process.exit(1);
  }
  if (bench.rows.some((r) => r.check && !r.check.ok) || (bench.soak && !soakOk(bench.soak))) process.exit(3);
}

void main();
