import Redis, { Cluster, RedisOptions } from 'ioredis';
import { Breakers, DependencyBreaker } from '../kernel/breaker';
import { splitHostPort } from './cluster-map';
import { ClusterScripts } from './cluster-scripts';
import { Keys } from './keys';
import { guardRedisClient } from './redis-edge';
import { ScriptPipe } from './script-pipe';
import { LuaScript, loadScripts } from './scripts';
import { keySlot } from './slot';

/** ioredis on one node (plain mode) or on the whole cluster (cluster mode): the commands are the same. */
export type RedisClient = Redis | Cluster;

export interface ShardOptions {
  /** Plain mode: the nodes; shard s lives on node s mod N. Ignored when `cluster` names seeds. */
  readonly nodes: readonly string[];
  /** Redis Cluster mode: seed nodes (REDIS_CLUSTER); the cluster says which master holds which shard. */
  readonly cluster?: readonly string[];
  readonly prefix: string;
  readonly shardCount: number;
  readonly commandTimeoutMs: number;
  /** One socket write per tick for all concurrent commands (see REDIS_AUTO_PIPELINE). */
  readonly autoPipeline?: boolean;
  /** The process's breakers (one per node is taken from it); a board of its own by default. */
  readonly breakers?: Breakers;
}

/** Options of a connection of its own for blocking stream reads (ledger writer, event publisher). */
export type ReaderOptions = Pick<RedisOptions, 'lazyConnect' | 'commandTimeout' | 'autoResendUnfulfilledCommands' | 'enableAutoPipelining' | 'maxRetriesPerRequest' | 'connectionName'>;

/** Shards whose streams one reader reads in one XREADGROUP, on a connection of its own. */
export interface StreamGroup {
  /** For logs and metrics: the node (plain mode) or the shard's tag (cluster mode). */
  readonly node: string;
  readonly shards: readonly number[];
  /** The shared client that reaches these shards. */
  readonly shared: RedisClient;
  /** A new connection for blocking reads of these shards. */
  open(options: ReaderOptions): RedisClient;
}

/**
 * The Redis nodes and which virtual shard lives on which. Two modes:
 * - plain (REDIS_NODES): shard s on node s mod N, a fixed map as long as the node list and shard
 *   count stay the same (node-map.ts refuses a server started with a different one);
 * - Redis Cluster (REDIS_CLUSTER): shard s lives in the slot of its hash tag `{s<N>}`, on whichever
 *   master serves that slot now (cluster-scripts.ts follows MOVED, ASK and failovers).
 * Two ways to a node:
 * - `run(shard, script, ...)` runs the Lua scripts (every change to stock and orders) over a lean
 *   pipelined connection of our own (ScriptPipe), one write per tick for all calls in flight;
 * - `client(shard)`, ioredis, for plain reads and commands off the hot path, auto-pipelined by
 *   default on plain nodes: the flash-sale benchmark measured +35-45% calls/s with it. In cluster
 *   mode ioredis's Cluster client, never auto-pipelined: its auto-pipeline groups EVALSHA by the
 *   sha instead of the key's slot (ioredis #2109, "All keys in the pipeline should belong to the
 *   same slots allocation group").
 * The scripts go through the node's (master's) circuit breaker and fail typed (kernel/dependency.ts):
 * a node that is down costs its callers nothing once the breaker is open, and `reachable(shard)`
 * lets the hot path route around it. Plain commands fail typed and go through the same breaker: in
 * cluster mode, `client(shard)` is a view of the Cluster client guarded by the breaker of the master
 * serving the shard's slot (by our slot map), so a dead master's breaker refuses its reads too.
 */
export class RedisShards {
  readonly keys: Keys;
  readonly scripts: Map<string, LuaScript>;
  /** Plain mode: one per node, in the order of `options.nodes`. Cluster mode: the one Cluster client. */
  readonly clients: readonly RedisClient[];
  /** Plain mode: one per node. Cluster mode: none here (one per master, made as masters appear: onPipe). */
  readonly pipes: readonly ScriptPipe[];
  /** Plain mode: one per node, in the order of `options.nodes`. Cluster mode: see `breaker(node)`. */
  readonly breakers: readonly DependencyBreaker[];
  /** Cluster mode only. */
  readonly cluster: ClusterScripts | undefined;
  private readonly board: Breakers;
  private readonly nodeIndexOfShard: readonly number[];
  private readonly slotOfShard: readonly number[];
  /** Cluster mode: a probe connection per master (nodeClients). */
  private readonly probes = new Map<string, Redis>();
  /** Cluster mode: the Cluster client of `clients`, unguarded (client(shard) guards it per master). */
  private readonly sharedCluster: Cluster | undefined;
  /** Cluster mode: client(shard)'s guarded view of the Cluster client, per shard, made on first use. */
  private readonly shardViews: Array<Cluster | undefined> = [];

  constructor(readonly options: ShardOptions) {
    this.keys = new Keys(options.prefix, options.shardCount);
    this.scripts = loadScripts();
    this.board = options.breakers ?? new Breakers();
    this.slotOfShard = Array.from({ length: options.shardCount }, (_, s) => keySlot(this.keys.tag(s)));
    this.nodeIndexOfShard = Array.from({ length: options.shardCount }, (_, s) => s % options.nodes.length);
    const name = `inventory-scripts:${process.pid}`;
    if (options.cluster && options.cluster.length > 0) {
      this.cluster = new ClusterScripts({ seeds: options.cluster, commandTimeoutMs: options.commandTimeoutMs, name, scripts: [...this.scripts.values()], breakers: this.board });
      this.sharedCluster = this.openCluster({ commandTimeout: options.commandTimeoutMs, connectionName: `inventory-core:${process.pid}`, maxRetriesPerRequest: 2 });
      this.clients = [this.typedCluster(this.sharedCluster)];
      this.pipes = [];
      this.breakers = [];
      return;
    }
    this.cluster = undefined;
    this.breakers = options.nodes.map((node) => this.board.for('redis', node));
    this.clients = options.nodes.map((node, i) => {
      const [host, port] = splitHostPort(node);
      const client = new Redis({
        host,
        port,
        lazyConnect: true,
        // Scripts are idempotent, so ioredis's resend after a reconnect is safe (DESIGN: known traps).
        autoResendUnfulfilledCommands: true,
        enableAutoPipelining: options.autoPipeline ?? false,
        commandTimeout: options.commandTimeoutMs,
        maxRetriesPerRequest: 2,
        connectionName: `inventory-core:${process.pid}`,
      });
      return guardRedisClient(client, node, this.breakers[i]);
    });
    this.pipes = options.nodes.map((node) => {
      const [host, port] = splitHostPort(node);
      return new ScriptPipe({ host, port, commandTimeoutMs: options.commandTimeoutMs, name, scripts: this.scripts.values() });
    });
  }

  /** Connects to every node; `scripts: false` for a process that runs no script (the ledger writer). */
  async connect({ scripts = true }: { scripts?: boolean } = {}): Promise<void> {
    const clients = this.clients.map((c) => (c.status === 'wait' ? c.connect() : undefined));
    if (this.cluster) await Promise.all([...clients, scripts ? this.cluster.connect() : this.cluster.refresh()]);
    else await Promise.all([...clients, ...(scripts ? this.pipes.map((p) => p.connect()) : [])]);
  }

  /**
   * Calls `listener` for every script pipe, now and as new ones are made (cluster mode: a master
   * that appears after a failover or a reshard), so the caller can gate and watch each.
   */
  onPipe(listener: (node: string, pipe: ScriptPipe) => void): void {
    if (!this.cluster) return this.pipes.forEach((pipe, i) => listener(this.options.nodes[i], pipe));
    this.cluster.on('pipe', listener);
    for (const node of this.cluster.masters()) {
      const pipe = this.cluster.existingPipe(node);
      if (pipe) listener(node, pipe);
    }
  }

  /**
   * Plain mode: the shard's node's client. Cluster mode: the Cluster client (it routes by key) behind
   * the breaker of the master serving the shard's slot, for commands on the shard's keys only.
   */
  client(shard: number): RedisClient {
    if (!this.cluster) return this.clients[this.nodeIndexOfShard[shard]];
    let view = this.shardViews[shard];
    if (view === undefined) this.shardViews[shard] = view = this.shardView(this.cluster, this.slotOfShard[shard]);
    return view;
  }

  /** Runs a Lua script on the node of a shard: keys first, then arguments, as its header lists them. */
  run<T = unknown>(shard: number, script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<T> {
    if (this.cluster) return this.cluster.run<T>(this.slotOfShard[shard], script, keys, args);
    const node = this.nodeIndexOfShard[shard];
    const pipe = this.pipes[node];
    return this.breakers[node].run(() => pipe.run<T>(script, keys, args));
  }

  /**
   * Whether the shard's node takes calls now: its script connection is up and its breaker not open
   * (half-open lets the trial call through). In cluster mode, the node is the slot's master.
   * A node just lost reads false at once (the connection is gone), before any call has failed.
   */
  reachable(shard: number): boolean {
    if (this.cluster) {
      const node = this.cluster.owner(this.slotOfShard[shard]);
      return node !== undefined && this.up(node);
    }
    const node = this.nodeIndexOfShard[shard];
    return !this.pipes[node].down && this.breakers[node].state !== 'open';
  }

  /**
   * A client per node for probes and reads of the node itself (PING for health, INFO for memory):
   * the configured nodes (plain mode), or each master the cluster has now (cluster mode), on a
   * small connection of its own per master, made when the master appears and closed once it is no
   * longer one (a failover, a removed node). Cluster mode's Cluster client cannot be asked for a
   * given master's health: any master answering would do for it.
   */
  nodeClients(): ReadonlyArray<{ readonly node: string; readonly client: Redis | Cluster }> {
    if (!this.cluster) return this.options.nodes.map((node, i) => ({ node, client: this.clients[i] }));
    const masters = this.cluster.masters();
    for (const [node, client] of this.probes) {
      if (!masters.includes(node)) {
        this.probes.delete(node);
        client.disconnect();
      }
    }
    return masters.map((node) => {
      let client = this.probes.get(node);
      if (!client) {
        const [host, port] = splitHostPort(node);
        client = new Redis({ host, port, commandTimeout: this.options.commandTimeoutMs, maxRetriesPerRequest: 1, connectionName: `inventory-probe:${process.pid}` });
        client.on('error', () => undefined);
        this.probes.set(node, client);
      }
      return { node, client };
    });
  }

  /** The nodes: the configured ones (plain mode) or the masters now (cluster mode). */
  nodes(): readonly string[] {
    return this.cluster ? this.cluster.masters() : this.options.nodes;
  }

  /**
   * The nodes taking calls now (see reachable) that hold a shard, for placing new partitions;
   * every such node when all are down (then nothing is ruled out).
   */
  reachableNodes(): readonly string[] {
    const holding = this.nodes().filter((node) => this.shardsOn(node).length > 0);
    const up = holding.filter((node) => this.up(node));
    return up.length > 0 ? up : holding;
  }

  node(shard: number): string {
    if (this.cluster) return this.cluster.owner(this.slotOfShard[shard]) ?? `slot ${this.slotOfShard[shard]}`;
    return this.options.nodes[this.nodeIndexOfShard[shard]];
  }

  /** The Redis Cluster slot of a shard's hash tag. */
  slot(shard: number): number {
    return this.slotOfShard[shard];
  }

  /** The shards living on one node (for placing a partition there). */
  shardsOn(node: string): number[] {
    if (this.cluster) {
      if (!this.cluster.masters().includes(node)) throw new Error(`${node} is not a master of the Redis cluster`);
      return this.slotOfShard.flatMap((slot, shard) => (this.cluster?.owner(slot) === node ? [shard] : []));
    }
    const index = this.options.nodes.indexOf(node);
    if (index < 0) throw new Error(`${node} is not a configured Redis node`);
    return this.nodeIndexOfShard.flatMap((n, shard) => (n === index ? [shard] : []));
  }

  /**
   * Who reads the shards' streams (ledger, outbox) with blocking reads. Plain mode: one group per
   * node, all its shards in one XREADGROUP. Cluster mode: one per shard, since one command may
   * only name keys of one slot, each on a Cluster client of its own (a blocking read holds the
   * connection to its master).
   */
  streamGroups(): StreamGroup[] {
    if (this.cluster) {
      return this.slotOfShard.map((_, shard) => ({
        node: this.keys.tag(shard).slice(this.keys.prefix.length + 1),
        shards: [shard],
        shared: this.client(shard),
        open: (options: ReaderOptions) => this.typedCluster(this.openCluster(options)),
      }));
    }
    return this.options.nodes.map((node, i) => {
      const shared = this.clients[i] as Redis;
      return { node, shards: this.shardsOn(node), shared, open: (options: ReaderOptions) => shared.duplicate(options) };
    });
  }

  script(name: string): LuaScript {
    const script = this.scripts.get(name);
    if (!script) throw new Error(`no Lua script named ${name}`);
    return script;
  }

  async close(): Promise<void> {
    await Promise.all([
      ...this.clients.map((c) => c.quit().catch(() => c.disconnect())),
      ...[...this.probes.values()].map((c) => c.quit().catch(() => c.disconnect())),
      ...this.pipes.map((p) => p.close()),
      this.cluster?.close(),
    ]);
  }

  private up(node: string): boolean {
    if (!this.cluster) {
      const i = this.options.nodes.indexOf(node);
      return i >= 0 && !this.pipes[i].down && this.breakers[i].state !== 'open';
    }
    return !this.cluster.existingPipe(node)?.down && this.cluster.breaker(node).state !== 'open';
  }

  /** The Cluster client guarded by whichever master serves `slot` at each call (unguarded while no map names one). */
  private shardView(cluster: ClusterScripts, slot: number): Cluster {
    const breaker = {
      run<T>(work: () => Promise<T>): Promise<T> {
        const node = cluster.owner(slot);
        return node === undefined ? work() : cluster.breaker(node).run(work);
      },
    };
    return guardRedisClient(this.sharedCluster!, () => cluster.owner(slot) ?? `slot ${slot}`, breaker);
  }

  /** A Cluster client failing typed, naming the cluster (no breaker: it does not say which master a command went to). */
  private typedCluster(cluster: Cluster): Cluster {
    return guardRedisClient(cluster, `cluster ${this.options.cluster?.join(',')}`, UNGUARDED);
  }

  /** A Cluster client on the seeds, as it is. */
  private openCluster(options: ReaderOptions): Cluster {
    const seeds = (this.options.cluster ?? []).map((node) => {
      const [host, port] = splitHostPort(node);
      return { host, port };
    });
    const { lazyConnect = true, maxRetriesPerRequest, ...redisOptions } = options;
    const cluster = new Cluster(seeds, {
      lazyConnect,
      enableAutoPipelining: false,
      scaleReads: 'master',
      // A failover takes a second or two; commands wait for the new master instead of failing.
      retryDelayOnFailover: 200,
      retryDelayOnClusterDown: 200,
      retryDelayOnTryAgain: 50,
      slotsRefreshTimeout: Math.max(1000, this.options.commandTimeoutMs),
      redisOptions: { ...redisOptions, maxRetriesPerRequest },
    });
    return cluster;
  }
}

/** Classifies failures without a breaker (see typedCluster). */
const UNGUARDED = { run: <T>(work: () => Promise<T>) => work() };
