/**
 * Driving load at a server with the bench's own load generators (child processes, see loadgen.ts):
 * one measured load with CPU accounting and a progress bar, the warm-up before a server's first
 * scenario, and the wait until a server routes to freshly seeded SKUs.
 */
import { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Bench } from './context';
import { CpuMeter, serverProcesses } from './cpu';
import { fmt } from './format';
import { unaryOnce } from './h2';
import { Histogram, SparseHistogram } from './hist';
import { ChildMessage, LoadResult, LoadSpec, emptyTallies } from './loadgen';
import { DIST } from './paths';
import { ServerProcess, forkLoadgen, stopChild } from './procs';
import { Progress } from './progress';
import { Drive } from './rows';
import { Store, nodeLoads, redisCounters, redisGroups } from './redis-nodes';
import { beforeMeasuring } from './settle';
import { Writer, scanFields, unframe } from './wire';

/** How long a load generator waits for calls still in flight when the load stops; then they count as TIMEOUT. */
export const DRAIN_MS = 30_000;

export function reserveSpec(bench: Bench, target: string, sku: string, prefix: string, durationMs: number): LoadSpec {
  return {
    target,
    workload: 'reserve',
    durationMs,
    concurrency: bench.o.concurrency,
    connections: bench.o.connections,
    orderPrefix: prefix,
    sku,
    quantity: 1,
    drainMs: DRAIN_MS,
  };
}

/**
 * CPU of the server, the stack, the bench itself and the given load generators over one load; the
 * store's Redis as `redis` (its nodes, a cluster's masters, each also on its own) and `replicas`.
 */
export function cpuMeter(bench: Bench, server: ServerProcess, loadgens: readonly number[], store: Store = bench.store): CpuMeter {
  return new CpuMeter(
    () => ({
      loadgen: [...loadgens],
      ...serverProcesses(server.pid),
      ...redisGroups(store),
      mariadb: bench.stack.mariadb ?? [],
      etcd: bench.stack.etcd ?? [],
      bench: [process.pid],
    }),
    { split: new Set(['redis', 'replicas']) },
  );
}

export interface DriveOptions {
  /** false for a warm-up: no progress bar, no settling first. */
  readonly show?: boolean;
  /** The Redis the server runs on (default: the stack's node in the bench's namespace). */
  readonly store?: Store;
}

/** Runs one load (all load generators), with CPU accounting and a progress bar. */
export async function drive(bench: Bench, label: string, spec: LoadSpec, server: ServerProcess, { show = true, store = bench.store }: DriveOptions = {}): Promise<Drive> {
  const n = bench.o.loadgens;
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
    if (show) await beforeMeasuring(bench.ns, bench.o.waitQuiet, label);
    const meter = cpuMeter(bench, server, children.map((c) => c.pid!).filter(Boolean), store);
    const started = performance.now();
    bench.lastLoadStartedAt = started;
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
    const before = await redisCounters(store.layout);
    meter.start();
    for (const child of children) child.send({ type: 'go' });
    await done;
    const cpu = meter.stop();
    const after = await redisCounters(store.layout);
    const result = mergeResults(results);
    bar?.done(`${fmt(result.answered)} calls in ${(result.elapsedMs / 1000).toFixed(1)} s = ${fmt((result.answered * 1000) / result.elapsedMs)}/s`);
    return { result, cpu, redisForks: after.forks - before.forks, redisNodes: nodeLoads(store, before, after, cpu.byPid ?? {}) };
  } finally {
    for (const child of children) {
      if (child.connected) child.send({ type: 'exit' });
      void stopChild(child, 3000);
    }
  }
}

/** Load before a server's first scenario, unmeasured, so that its code is compiled before anything counts. */
export async function warmup(bench: Bench, server: ServerProcess, sku: string): Promise<void> {
  if (bench.o.warmupMs <= 0) return;
  await drive(bench, '  warm-up', reserveSpec(bench, server.target, sku, `${bench.ns.tag}-w${bench.serial()}-`, bench.o.warmupMs), server, { show: false });
}

/** Waits until the server routes to each SKU (GetStock answers with at least `partitions` live partitions). */
export async function awaitSkus(server: ServerProcess, skus: readonly string[], partitions: number): Promise<void> {
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

/** The results of several load generators as one. */
function mergeResults(results: LoadResult[]): LoadResult {
  if (results.length === 1) return results[0];
  const sum = (of: (r: LoadResult) => number) => results.reduce((total, r) => total + of(r), 0);
  const merged = (hists: SparseHistogram[]) => {
    const h = new Histogram();
    for (const one of hists) h.add(one);
    return h.toSparse();
  };
  const codes: Record<string, number> = {};
  for (const r of results) for (const [c, n] of Object.entries(r.codes)) codes[c] = (codes[c] ?? 0) + n;
  const methods: LoadResult['methods'] = {};
  for (const m of new Set(results.flatMap((r) => Object.keys(r.methods)))) {
    const of = results.flatMap((r) => (r.methods[m] ? [r.methods[m]] : []));
    methods[m] = { calls: of.reduce((total, s) => total + s.calls, 0), hist: merged(of.map((s) => s.hist)) };
  }
  const timeline: Array<[number, number]> = [];
  for (const r of results) {
    r.timeline.forEach(([a, b], i) => {
      timeline[i] ??= [0, 0];
      timeline[i][0] += a;
      timeline[i][1] += b;
    });
  }
  const { reserve, release, confirm } = emptyTallies();
  for (const r of results) {
    for (const k of Object.keys(reserve) as Array<keyof typeof reserve>) reserve[k] += r.reserve[k];
    for (const k of Object.keys(release) as Array<keyof typeof release>) release[k] += r.release[k];
    confirm.ok += r.confirm.ok;
  }
  return {
    elapsedMs: Math.max(0, ...results.map((r) => r.elapsedMs)),
    sent: sum((r) => r.sent),
    answered: sum((r) => r.answered),
    codes,
    methods,
    hist: merged(results.map((r) => r.hist)),
    reserve,
    release,
    confirm,
    timeline,
    cpuMs: sum((r) => r.cpuMs),
  };
}
