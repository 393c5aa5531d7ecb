/**
 * The Redis nodes a server of ours runs on, as the bench sees them: the plain nodes of REDIS_NODES,
 * or the masters and replicas a Redis Cluster has now (CLUSTER SLOTS), which node holds each
 * shard's keys, each node's redis-server process (found by its port) and what INFO says it ran.
 * The scaling group splits the Redis CPU of a flash sale over the masters with these.
 */
import Redis from 'ioredis';
import { mastersOf, parseClusterSlots, slotNode, splitHostPort } from '../allocator/cluster-map';
import { RespValue } from '../allocator/resp';
import { keySlot } from '../allocator/slot';
import { Config } from '../server/config';
import { redisPid } from './cpu';
import { ROOT } from './paths';

/** A client of one Redis node, `host:port` (no redirects followed). */
export function redisAt(node: string): Redis {
  const [host, port] = splitHostPort(node);
  return new Redis({ host, port, maxRetriesPerRequest: 1 });
}

/** `use` with a client of one Redis node, disconnected after. */
export async function withRedisNode<T>(node: string, use: (redis: Redis) => Promise<T>): Promise<T> {
  const redis = redisAt(node);
  try {
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

/** Where a namespace's keys live. */
export interface RedisLayout {
  /** The nodes that hold keys: the plain nodes, or the cluster's masters. */
  readonly masters: readonly string[];
  /** The cluster's replicas (none in plain mode): they hold copies and cost CPU to keep them. */
  readonly replicas: readonly string[];
  /** The node holding shard `shard`'s keys (`{s<N>}`). */
  nodeOfShard(shard: number): string;
}

/** Plain mode: shard s lives on node s mod N (allocator/shards.ts). */
export function plainLayout(nodes: readonly string[]): RedisLayout {
  return { masters: nodes, replicas: [], nodeOfShard: (shard) => nodes[shard % nodes.length] };
}

/** A cluster's layout from its CLUSTER SLOTS reply (asked of a node at `askedHost`). */
export function clusterLayout(reply: RespValue, askedHost: string): RedisLayout {
  const owners = parseClusterSlots(reply, askedHost);
  const replicas = new Set<string>();
  for (const range of reply as RespValue[]) {
    if (!Array.isArray(range)) continue;
    for (const node of range.slice(3)) if (Array.isArray(node)) replicas.add(slotNode(node, askedHost));
  }
  return {
    masters: mastersOf(owners),
    replicas: [...replicas],
    nodeOfShard: (shard) => {
      const slot = keySlot(`{s${shard}}`);
      const node = owners[slot];
      if (!node) throw new Error(`no master of the Redis cluster serves slot ${slot} (shard ${shard})`);
      return node;
    },
  };
}

/** The layout of a namespace's Redis now: its plain nodes, or its cluster as the first seed that answers sees it. */
export async function redisLayout(config: Config): Promise<RedisLayout> {
  if (config.redisCluster.length === 0) return plainLayout(config.redisNodes);
  let last: unknown;
  for (const seed of config.redisCluster) {
    try {
      const reply = await withRedisNode(seed, (redis) => redis.cluster('SLOTS') as Promise<RespValue>);
      return clusterLayout(reply, splitHostPort(seed)[0]);
    } catch (err) {
      last = err;
    }
  }
  throw new Error(`no seed of the Redis cluster ${config.redisCluster.join(',')} answers CLUSTER SLOTS: ${String(last)}`);
}

/**
 * Where a server of ours keeps its stock: its namespace's configuration (Redis prefix, shards,
 * plain nodes or cluster seeds), its MySQL database, the Redis layout and the redis-server
 * process of each node, whose CPU is the store's.
 */
export interface Store {
  readonly config: Config;
  readonly dbUrl: string;
  readonly layout: RedisLayout;
  /** Each node's redis-server pid (masters and replicas; a node whose process is not found is left out). */
  readonly pids: ReadonlyMap<string, number>;
}

/** A store on `layout` (redisLayout, or plainLayout of the configured nodes), its processes found by their ports. */
export function storeOf(config: Config, dbUrl: string, layout: RedisLayout): Store {
  const pids = new Map<string, number>();
  for (const node of [...layout.masters, ...layout.replicas]) {
    const pid = redisPid(ROOT, splitHostPort(node)[1]);
    if (pid !== undefined) pids.set(node, pid);
  }
  return { config, dbUrl, layout, pids };
}

/** A store's Redis processes as CPU groups: `redis` (the nodes; a cluster's masters) and `replicas`. */
export function redisGroups(store: Store): { redis: number[]; replicas: number[] } {
  const of = (nodes: readonly string[]) => nodes.flatMap((n) => (store.pids.has(n) ? [store.pids.get(n)!] : []));
  return { redis: of(store.layout.masters), replicas: of(store.layout.replicas) };
}

/** INFO's `name:value` lines. */
export function infoFields(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon > 0 && !line.startsWith('#')) out[line.slice(0, colon)] = line.slice(colon + 1);
  }
  return out;
}

/** Calls of one command from INFO commandstats (`cmdstat_evalsha:calls=12,usec=...`); 0 when it never ran. */
export function commandCalls(commandstats: string, command: string): number {
  const stats = infoFields(commandstats)[`cmdstat_${command.toLowerCase()}`];
  const m = stats === undefined ? null : /(?:^|,)calls=(\d+)/.exec(stats);
  return m ? Number(m[1]) : 0;
}

/** What the nodes of a store had done by a moment: forks (AOF rewrites, RDB saves) of all, scripts run (EVALSHA) per master. */
export interface RedisCounters {
  readonly forks: number;
  readonly scriptCalls: Readonly<Record<string, number>>;
}

export async function redisCounters(layout: RedisLayout): Promise<RedisCounters> {
  let forks = 0;
  const scriptCalls: Record<string, number> = {};
  for (const node of [...layout.masters, ...layout.replicas]) {
    await withRedisNode(node, async (redis) => {
      forks += Number(infoFields(await redis.info('stats')).total_forks ?? 0);
      if (layout.masters.includes(node)) scriptCalls[node] = commandCalls(await redis.info('commandstats'), 'evalsha');
    });
  }
  return { forks, scriptCalls };
}

/** One Redis node's part in a measured load. */
export interface NodeLoad {
  readonly node: string;
  readonly role: 'master' | 'replica';
  /** CPU ms over the measured window (its forked children included), from /proc/<pid>/stat. */
  readonly cpuMs: number;
  /** Scripts it ran meanwhile (INFO commandstats evalsha; masters only). */
  readonly scriptCalls: number;
}

/** A node's figures per call of the load, as a row keeps them. */
export interface NodeShare extends NodeLoad {
  /** Its CPU over all answered calls of the load, µs: the masters' add up to the row's Redis µs/call. */
  readonly usPerCall: number;
  /** % of one core over the window. */
  readonly pct: number;
  /** Its part of the masters' script calls (0..1); 0 for replicas. */
  readonly callShare: number;
}

/** Each node's CPU and the masters' script calls, from counters before and after a load and its per-process CPU. */
export function nodeLoads(store: Store, before: RedisCounters, after: RedisCounters, cpuMsByPid: Readonly<Record<number, number>>): NodeLoad[] {
  const load = (node: string, role: NodeLoad['role']): NodeLoad => {
    const pid = store.pids.get(node);
    return {
      node,
      role,
      cpuMs: pid === undefined ? NaN : cpuMsByPid[pid] ?? NaN,
      scriptCalls: role === 'master' ? (after.scriptCalls[node] ?? 0) - (before.scriptCalls[node] ?? 0) : 0,
    };
  };
  return [...store.layout.masters.map((n) => load(n, 'master')), ...store.layout.replicas.map((n) => load(n, 'replica'))];
}

/** Per call of a load of `answered` calls over `wallMs`: each node's CPU, and each master's share of the scripts run. */
export function nodeShares(loads: readonly NodeLoad[], answered: number, wallMs: number): NodeShare[] {
  const scripts = loads.reduce((sum, n) => sum + (n.role === 'master' ? n.scriptCalls : 0), 0);
  return loads.map((n) => ({
    ...n,
    usPerCall: (n.cpuMs * 1000) / Math.max(1, answered),
    pct: (100 * n.cpuMs) / wallMs,
    callShare: n.role === 'master' && scripts > 0 ? n.scriptCalls / scripts : 0,
  }));
}
