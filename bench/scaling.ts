/**
 * The scaling group (`--only scaling`): the same flash sale on the stack's one Redis node and on
 * the stack's 3-master Redis Cluster (`scripts/stack.sh up --redis-cluster`: ports 6400-6405, a
 * replica per master, the single node's settings), a server of ours on each, both up side by side
 * and measured in alternating rounds like the ceiling and the flash sale. Each row splits Redis's
 * CPU over the nodes (each master from its /proc/<pid>/stat, replicas apart) and gives each
 * master's share of the scripts run (INFO commandstats EVALSHA). On one 2-core machine every
 * process shares the same two cores, so a cluster cannot show more calls a second here: what the
 * rows show is the Redis CPU per call and how it spreads over the masters, which docs/capacity.md
 * turns into masters per rate.
 */
import path from 'node:path';
import { Bench, ScalingRound } from './context';
import { warmup } from './drive';
import { fmt, median, ms, renderTable } from './format';
import { Options } from './options';
import { startInventory, warmupUnits, withServer } from './phases';
import { note } from './progress';
import { NodeShare, Store, redisLayout, storeOf } from './redis-nodes';
import { Row } from './rows';
import { flash } from './scenarios';
import { SeedSku, seedInventory } from './seed';
import { scalingNamespaces, startStackCluster } from './stack';

/** A SKU on fewer partitions than masters leaves a master idle: the group sells over at least this many. */
export const MIN_SCALING_PARTITIONS = 3;

const scalingPartitions = (o: Options) => Math.max(MIN_SCALING_PARTITIONS, o.partitions);

/** Brings up the stack's Redis Cluster and gives the bench's namespace the group's parts on the node and on the cluster (bench.ns.scaling). */
export async function attachCluster(bench: Bench): Promise<void> {
  const seeds = await startStackCluster(path.join(bench.dir, 'stack-cluster.log'));
  bench.ns.scaling = scalingNamespaces(bench.ns.tag, seeds);
}

/**
 * The cluster's layout once its replicas show: CLUSTER SLOTS lists a replica only after it has
 * synced, so a cluster just started would seem to have none and their CPU would go uncounted. Waits
 * up to 10 s for a replica per master; a cluster that has fewer is taken as it is.
 */
async function layoutWithReplicas(config: Parameters<typeof redisLayout>[0]): Promise<Awaited<ReturnType<typeof redisLayout>>> {
  for (let waitedMs = 0; ; waitedMs += 500) {
    const layout = await redisLayout(config);
    if (layout.replicas.length >= layout.masters.length || waitedMs >= 10_000) return layout;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}

/** The flash sale on 1 Redis node and on the cluster, --rounds rounds of the two one right after the other, each on fresh SKUs. */
export async function scalingPhase(bench: Bench): Promise<void> {
  const o = bench.o;
  if (!bench.ns.scaling) await attachCluster(bench);
  const configs = bench.ns.scaling!;
  const dbs = bench.ns.scalingDbUrls;
  const single = storeOf(configs.single, dbs.single, await redisLayout(configs.single));
  const cluster = storeOf(configs.cluster, dbs.cluster, await layoutWithReplicas(configs.cluster));
  const { masters, replicas } = cluster.layout;
  const missing = [...masters, ...replicas].filter((n) => !cluster.pids.has(n));
  note(
    `scaling: Redis Cluster masters ${masters.join(', ')}, replicas ${replicas.join(', ')}` +
      (missing.length > 0 ? `; no redis-server process found for ${missing.join(', ')} (their CPU is not counted)` : ''),
  );
  if (masters.length < 2) bench.notes.push(`scaling: the Redis Cluster has ${masters.length} master(s): nothing to split the sale over`);
  const partitions = scalingPartitions(o);
  if (partitions !== o.partitions) bench.notes.push(`scaling: ${partitions} partitions instead of --partitions ${o.partitions}, so that every master holds some`);

  const plan = () => ({ warm: bench.sku('scalewarm'), rounds: Array.from({ length: o.rounds }, () => bench.sku('scale')) });
  const skus = { single: plan(), cluster: plan() };
  const seeds = ({ warm, rounds }: { warm: string; rounds: string[] }): SeedSku[] => [
    { sku: warm, units: warmupUnits(o), partitions },
    ...rounds.map((sku) => ({ sku, units: o.units, partitions })),
  ];
  bench.seeding.scalingSingle = await seedInventory(single.config, seeds(skus.single), { concurrency: 8 });
  bench.seeding.scalingCluster = await seedInventory(cluster.config, seeds(skus.cluster), { concurrency: 8 });

  const clusterName = `${masters.length}-master cluster`;
  await withServer(startInventory(bench, 1, 'inventory-scaling-1node', { at: single }), (one) =>
    withServer(startInventory(bench, 1, 'inventory-scaling-cluster', { at: cluster }), async (many) => {
      await warmup(bench, one, skus.single.warm);
      await warmup(bench, many, skus.cluster.warm);
      for (let k = 1; k <= o.rounds; k++) {
        const [suffix, title] = o.rounds > 1 ? [`-r${k}`, `, round ${k}`] : ['', ''];
        const round: ScalingRound = {};
        const sale = (server: typeof one, store: Store, id: string, name: string, sku: string) =>
          flash(bench, server, 1, `scaling-${id}${suffix}`, `flash sale, ${name}${title}`, sku, o.units, { store });
        round.single = await sale(one, single, '1node', '1 Redis node', skus.single.rounds[k - 1]);
        round.cluster = await sale(many, cluster, 'cluster', clusterName, skus.cluster.rounds[k - 1]);
        const idle = (round.cluster.redisNodes ?? []).filter((n) => n.role === 'master' && n.scriptCalls === 0);
        if (idle.length > 0) round.cluster.notes.push(`master(s) ${idle.map((n) => n.node).join(', ')} ran no script: the sale did not reach them`);
        bench.scalingRounds.push(round);
      }
    }),
  );
}

/** Medians over rounds of one kind of row (1 node, or the cluster), with each node's figures. */
export interface ScalingSummary {
  readonly rows: string[];
  readonly callsPerSec: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly errors: number;
  readonly sold: number;
  readonly stocked: number;
  readonly checkOk: boolean;
  readonly serverUsPerCall: number;
  /** The nodes' (a cluster's masters') Redis CPU per call. */
  readonly redisUsPerCall: number;
  /** The replicas' CPU per call (0 for a node without replicas). */
  readonly replicaUsPerCall: number;
  /** Scripts the masters ran per call: 1 where a Reserve finds a partition on its order's shard, 3 or more where not (begin, take, commit). */
  readonly scriptsPerCall: number;
  /** The masters' CPU per script they ran, µs. */
  readonly redisUsPerScript: number;
  readonly nodes: ReadonlyArray<NodeSummary>;
}

export interface NodeSummary {
  readonly node: string;
  readonly role: NodeShare['role'];
  readonly pct: number;
  readonly usPerCall: number;
  readonly scriptCalls: number;
  readonly callShare: number;
  /** Its CPU per script it ran: what one call it served cost it (masters). */
  readonly usPerScript: number;
}

/** Medians of `rows` (errors, sales and stock summed): undefined for none. */
export function scalingSummary(rows: readonly Row[]): ScalingSummary | undefined {
  if (rows.length === 0) return undefined;
  const m = (f: (r: Row) => number) => median(rows.map(f));
  const nodeRows = (r: Row) => r.redisNodes ?? [];
  const masters = (r: Row) => nodeRows(r).filter((n) => n.role === 'master');
  const scripts = (r: Row) => masters(r).reduce((sum, n) => sum + n.scriptCalls, 0);
  const part = (r: Row, role: NodeShare['role']) => nodeRows(r).reduce((sum, n) => sum + (n.role === role ? n.usPerCall : 0), 0);
  const names = [...new Map(rows.flatMap(nodeRows).map((n) => [n.node, n.role] as const))];
  const nodes = names.map(([node, role]): NodeSummary => {
    const of = rows.flatMap((r) => nodeRows(r).filter((n) => n.node === node));
    const mn = (f: (n: NodeShare) => number) => median(of.map(f));
    return {
      node,
      role,
      pct: mn((n) => n.pct),
      usPerCall: mn((n) => n.usPerCall),
      scriptCalls: mn((n) => n.scriptCalls),
      callShare: mn((n) => n.callShare),
      usPerScript: role === 'master' ? mn((n) => (n.scriptCalls > 0 ? (n.cpuMs * 1000) / n.scriptCalls : NaN)) : NaN,
    };
  });
  return {
    rows: rows.map((r) => r.id),
    callsPerSec: m((r) => r.callsPerSec),
    p50Ms: m((r) => r.p50Ms),
    p99Ms: m((r) => r.p99Ms),
    errors: rows.reduce((sum, r) => sum + r.errors, 0),
    sold: rows.reduce((sum, r) => sum + (r.sold ?? 0), 0),
    stocked: rows.reduce((sum, r) => sum + (r.stocked ?? 0), 0),
    checkOk: rows.every((r) => r.check?.ok === true),
    serverUsPerCall: m((r) => r.serverUsPerCall),
    redisUsPerCall: m((r) => r.storeUsPerCall),
    replicaUsPerCall: m((r) => part(r, 'replica')),
    scriptsPerCall: m((r) => scripts(r) / Math.max(1, r.answered)),
    redisUsPerScript: m((r) => (masters(r).reduce((sum, n) => sum + n.cpuMs, 0) * 1000) / scripts(r)),
    nodes,
  };
}

/** The two kinds of row, each summarised over the rounds, with its name in the tables. */
function kinds(bench: Bench): { single?: Kind; cluster?: Kind } {
  const of = (pick: (r: ScalingRound) => Row | undefined) => scalingSummary(bench.scalingRounds.map(pick).filter((r): r is Row => r !== undefined));
  const single = of((r) => r.single);
  const cluster = of((r) => r.cluster);
  return {
    single: single && { name: '1 Redis node', summary: single },
    cluster: cluster && { name: `${cluster.nodes.filter((n) => n.role === 'master').length}-master cluster`, summary: cluster },
  };
}

interface Kind {
  readonly name: string;
  readonly summary: ScalingSummary;
}

/** The scaling group's tables: medians per kind, each node's part, and the comparison. Empty when the group did not run. */
export function scalingReport(bench: Bench): string[] {
  const { single, cluster } = kinds(bench);
  const all = [single, cluster].filter((k): k is Kind => k !== undefined);
  if (all.length === 0) return [];
  const o = bench.o;
  const rounds = bench.scalingRounds.length;
  const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
  const lines = [
    '',
    `Scaling: the flash sale (${fmt(o.units)} units / ${scalingPartitions(o)} partitions, ${o.concurrency} in flight over ` +
      `${o.connections} connections) on 1 Redis node and on a Redis Cluster, ${rounds > 1 ? `medians of ${rounds} rounds` : '1 round'}. All processes share ` +
      "this machine's cores: compare the Redis CPU per call and its split over the masters, not calls/s.",
  ];
  const table: string[][] = [
    ['redis', 'calls/s', 'p50 ms', 'p99 ms', 'errors', 'sold / stocked', 'check', 'server µs/call', 'redis µs/call', 'replicas µs/call', 'scripts/call', 'redis µs/script'],
  ];
  for (const { name, summary: s } of all) {
    table.push([
      name,
      fmt(s.callsPerSec),
      ms(s.p50Ms),
      ms(s.p99Ms),
      fmt(s.errors),
      `${fmt(s.sold)} / ${fmt(s.stocked)}`,
      s.checkOk ? 'ok' : 'FAILED',
      fmt(s.serverUsPerCall),
      fmt(s.redisUsPerCall),
      s.nodes.some((n) => n.role === 'replica') ? fmt(s.replicaUsPerCall) : '-',
      fmt(s.scriptsPerCall, 2),
      fmt(s.redisUsPerScript, 1),
    ]);
  }
  lines.push(...renderTable(table, [false, true, true, true, true, true, false, true, true, true, true, true]));
  lines.push('', 'Per Redis node (CPU from /proc/<pid>/stat over the measured load, forks included; µs/call over all calls of the load; scripts from INFO commandstats):');
  const nodes: string[][] = [['redis', 'node', 'role', 'CPU %', 'µs/call', 'scripts', 'share of scripts', 'µs per script']];
  for (const { name, summary } of all) {
    for (const n of summary.nodes) {
      const master = n.role === 'master';
      nodes.push([name, n.node, n.role, `${n.pct.toFixed(0)}%`, fmt(n.usPerCall, 1), master ? fmt(n.scriptCalls) : '-', master ? pct(n.callShare) : '-', master ? fmt(n.usPerScript, 1) : '-']);
    }
  }
  lines.push(...renderTable(nodes, [false, false, false, true, true, true, true, true]));
  if (single && cluster) {
    const [one, c] = [single.summary, cluster.summary];
    const masters = c.nodes.filter((n) => n.role === 'master');
    lines.push('', 'Scaling ratios:');
    lines.push(`  ${cluster.name} vs 1 node, Redis CPU per call (masters): ${(c.redisUsPerCall / one.redisUsPerCall).toFixed(2)}x (${fmt(c.redisUsPerCall)} vs ${fmt(one.redisUsPerCall)} µs)`);
    lines.push(`  ${cluster.name} vs 1 node, Redis CPU per script: ${(c.redisUsPerScript / one.redisUsPerScript).toFixed(2)}x (${fmt(c.redisUsPerScript, 1)} vs ${fmt(one.redisUsPerScript, 1)} µs)`);
    lines.push(`  ${cluster.name}: replicas' CPU per call: ${fmt(c.replicaUsPerCall)} µs (${pct(c.replicaUsPerCall / c.redisUsPerCall)} of the masters')`);
    if (masters.length > 0) {
      const busiest = masters.reduce((a, b) => (b.callShare > a.callShare ? b : a));
      lines.push(
        `  ${cluster.name}: busiest master ${busiest.node} ran ${pct(busiest.callShare)} of the scripts (even: ${pct(1 / masters.length)}) ` +
          `at ${fmt(busiest.usPerScript, 1)} µs per script`,
      );
    }
    lines.push(`  ${cluster.name} vs 1 node, calls/s: ${pct(c.callsPerSec / one.callsPerSec)} (same cores: not a measure of scaling)`);
  }
  return lines;
}

/** The scaling group for the results JSON: its rounds (row ids) and the medians per kind. */
export function scalingJson(bench: Bench) {
  if (bench.scalingRounds.length === 0) return undefined;
  return {
    rounds: bench.scalingRounds.map((r) => ({ single: r.single?.id, cluster: r.cluster?.id })),
    ...Object.fromEntries(Object.entries(kinds(bench)).map(([kind, k]) => [kind, k && { name: k.name, ...k.summary }])),
  };
}
