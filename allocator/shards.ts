import Redis from 'ioredis';
import { Breakers, DependencyBreaker } from '../kernel/breaker';
import { Keys } from './keys';
import { guardRedisClient } from './redis-edge';
import { ScriptPipe } from './script-pipe';
import { LuaScript, loadScripts } from './scripts';

export interface ShardOptions {
  readonly nodes: readonly string[];
  readonly prefix: string;
  readonly shardCount: number;
  readonly commandTimeoutMs: number;
  /** One socket write per tick for all concurrent commands (see REDIS_AUTO_PIPELINE). */
  readonly autoPipeline?: boolean;
  /** The process's breakers (one per node is taken from it); a board of its own by default. */
  readonly breakers?: Breakers;
}

/**
 * The Redis nodes and which virtual shard lives on which: shard s on node s mod N, a fixed map as
 * long as the node list and shard count stay the same. Two connections per node:
 * - `run(shard, script, ...)` runs the Lua scripts (every change to stock and orders) over a lean
 *   pipelined connection of our own (ScriptPipe), one write per tick for all calls in flight;
 * - `client(shard)`, ioredis, for plain reads and commands off the hot path, auto-pipelined by
 *   default: the flash-sale benchmark measured +35-45% calls/s with it. Plain ioredis, not the
 *   cluster client, so its slot-grouping bugs with EVALSHA do not apply.
 * Both go through the node's circuit breaker and fail typed (kernel/dependency.ts): a node that is
 * down costs its callers nothing once the breaker is open, and `reachable(shard)` lets the hot path
 * route around it.
 */
export class RedisShards {
  readonly keys: Keys;
  readonly scripts: Map<string, LuaScript>;
  readonly clients: readonly Redis[];
  readonly pipes: readonly ScriptPipe[];
  /** One per node, in the order of `options.nodes`. */
  readonly breakers: readonly DependencyBreaker[];
  private readonly nodeIndexOfShard: readonly number[];

  constructor(readonly options: ShardOptions) {
    this.keys = new Keys(options.prefix, options.shardCount);
    this.scripts = loadScripts();
    const board = options.breakers ?? new Breakers();
    this.breakers = options.nodes.map((node) => board.for('redis', node));
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
      return new ScriptPipe({
        host,
        port,
        commandTimeoutMs: options.commandTimeoutMs,
        name: `inventory-scripts:${process.pid}`,
        scripts: this.scripts.values(),
      });
    });
    this.nodeIndexOfShard = Array.from({ length: options.shardCount }, (_, s) => s % options.nodes.length);
  }

  /** Connects to every node; `scripts: false` for a process that runs no script (the ledger writer). */
  async connect({ scripts = true }: { scripts?: boolean } = {}): Promise<void> {
    await Promise.all([
      ...this.clients.map((c) => (c.status === 'wait' ? c.connect() : undefined)),
      ...(scripts ? this.pipes.map((p) => p.connect()) : []),
    ]);
  }

  client(shard: number): Redis {
    return this.clients[this.nodeIndexOfShard[shard]];
  }

  /** Runs a Lua script on the node of a shard: keys first, then arguments, as its header lists them. */
  run<T = unknown>(shard: number, script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<T> {
    const node = this.nodeIndexOfShard[shard];
    const pipe = this.pipes[node];
    return this.breakers[node].run(() => pipe.run<T>(script, keys, args));
  }

  /**
   * Whether the shard's node takes calls now: its script connection is up and its breaker not open
   * (half-open lets the trial call through).
   * A node just lost reads false at once (the connection is gone), before any call has failed.
   */
  reachable(shard: number): boolean {
    const node = this.nodeIndexOfShard[shard];
    return !this.pipes[node].down && this.breakers[node].state !== 'open';
  }

  /**
   * The nodes taking calls now (see reachable), for placing new partitions; every node when all
   * are down (then nothing is ruled out).
   */
  reachableNodes(): readonly string[] {
    const up = this.options.nodes.filter((_, i) => !this.pipes[i].down && this.breakers[i].state !== 'open');
    return up.length > 0 ? up : this.options.nodes;
  }

  node(shard: number): string {
    return this.options.nodes[this.nodeIndexOfShard[shard]];
  }

  /** The shards living on one node (for placing a partition there). */
  shardsOn(node: string): number[] {
    const index = this.options.nodes.indexOf(node);
    if (index < 0) throw new Error(`${node} is not a configured Redis node`);
    return this.nodeIndexOfShard.flatMap((n, shard) => (n === index ? [shard] : []));
  }

  script(name: string): LuaScript {
    const script = this.scripts.get(name);
    if (!script) throw new Error(`no Lua script named ${name}`);
    return script;
  }

  async close(): Promise<void> {
    await Promise.all([...this.clients.map((c) => c.quit().catch(() => c.disconnect())), ...this.pipes.map((p) => p.close())]);
  }
}

function splitHostPort(node: string): [string, number] {
  const at = node.lastIndexOf(':');
  return [node.slice(0, at).replace(/^\[|\]$/g, ''), Number(node.slice(at + 1))];
}
