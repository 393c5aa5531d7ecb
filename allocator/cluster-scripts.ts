import { EventEmitter } from 'node:events';
import type { Breakers, DependencyBreaker } from '../kernel/breaker';
import { DependencyUnavailable } from '../kernel/dependency';
import { mastersOf, parseClusterSlots, parseRedirect, splitHostPort } from './cluster-map';
import { RedisReplyError } from './resp';
import { ScriptPipe } from './script-pipe';
import { LuaScript } from './scripts';

export interface ClusterScriptsOptions {
  /** Seed nodes (host:port): any of them answers CLUSTER SLOTS. */
  readonly seeds: readonly string[];
  readonly commandTimeoutMs: number;
  readonly name: string;
  readonly scripts: readonly LuaScript[];
  readonly breakers: Breakers;
  /** How often the slot map is read again when nothing prompted it. Default 10 s. */
  readonly refreshIntervalMs?: number;
}

/**
 * The script path on Redis Cluster: one ScriptPipe per master, each script sent to the master of
 * its slot by our own copy of the slot map (CLUSTER SLOTS). No cluster client of a library in the
 * hot path: the pipe's one-write-per-tick batching stays as on plain Redis.
 *
 * - MOVED: the slot has a new owner; the map is read again and the call resent there, once.
 * - ASK: the slot is being migrated and this key is already on the target: ASKING and the call,
 *   once, on the target; the map is left as it is.
 * - TRYAGAIN (a multi-key call during a migration) and CLUSTERDOWN: resent after a short back-off
 *   while the command timeout allows, then failed typed (DependencyUnavailable).
 * - A master lost (failover): its pipe's calls fail, the map is read again every 200 ms until the
 *   slot has an owner that answers, and the calls go there. Every script is idempotent, so one that
 *   ran on the old master before it died and runs again on the new one changes nothing twice; one
 *   the old master acknowledged but never replicated is lost with it (Reconcile and the lost-writes
 *   check report it, docs/consistency.md).
 * Each master has its breaker ('redis' + host:port).
 */
export class ClusterScripts extends EventEmitter<{ pipe: [node: string, pipe: ScriptPipe]; map: [masters: readonly string[]] }> {
  /** Redirects followed and calls resent, since start (tests, logs). */
  readonly counts = { moved: 0, ask: 0, resent: 0 };
  private owners: Array<string | undefined> = [];
  /** The masters of `owners`, kept with it (asked on every placement and health round). */
  private masterList: readonly string[] = [];
  /** Each master's breaker, looked up once (run() asks on every script). */
  private readonly breakersByNode = new Map<string, DependencyBreaker>();
  private readonly pipes = new Map<string, ScriptPipe>();
  private refreshing: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;
  private urgent: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly options: ClusterScriptsOptions) {
    super();
    this.timer = setInterval(() => void this.refresh().catch(() => undefined), options.refreshIntervalMs ?? 10_000);
    this.timer.unref();
  }

  /** Reads the slot map and connects to every master; rejects when no seed answers. */
  async connect(): Promise<void> {
    await this.refresh();
    await Promise.all(this.masters().map((node) => this.pipe(node).connect()));
  }

  /** The masters serving slots now (host:port). */
  masters(): readonly string[] {
    return this.masterList;
  }

  /** The master serving a slot by the last map read, if any. */
  owner(slot: number): string | undefined {
    return this.owners[slot];
  }

  breaker(node: string): DependencyBreaker {
    let breaker = this.breakersByNode.get(node);
    if (breaker === undefined) this.breakersByNode.set(node, (breaker = this.options.breakers.for('redis', node)));
    return breaker;
  }

  /** The pipe to a master, made on first use (and announced, so the owner can gate and watch it). */
  pipe(node: string): ScriptPipe {
    let pipe = this.pipes.get(node);
    if (pipe === undefined) {
      const [host, port] = splitHostPort(node);
      pipe = new ScriptPipe({ host, port, commandTimeoutMs: this.options.commandTimeoutMs, name: this.options.name, scripts: this.options.scripts });
      pipe.on('disconnected', () => this.refreshSoon());
      this.pipes.set(node, pipe);
      this.emit('pipe', node, pipe);
    }
    return pipe;
  }

  /** The pipe of a master if one was made (for `down`), without making one. */
  existingPipe(node: string): ScriptPipe | undefined {
    return this.pipes.get(node);
  }

  async run<T>(slot: number, script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | number>): Promise<T> {
    const deadline = Date.now() + this.options.commandTimeoutMs;
    let asking: string | undefined;
    let redirects = 0;
    for (let attempt = 0; ; attempt++) {
      const node = asking ?? this.owner(slot) ?? (await this.refresh().then(() => this.owner(slot)));
      if (node === undefined) throw new DependencyUnavailable('redis', `slot ${slot}`, 'no master serves this slot (CLUSTERDOWN)');
      const ask = asking !== undefined;
      asking = undefined;
      try {
        return await this.breaker(node).run(() => this.pipe(node).run<T>(script, keys, args, ask));
      } catch (err) {
        const redirect = err instanceof RedisReplyError ? parseRedirect(err.message) : undefined;
        if (redirect && redirects++ < 2) {
          const target = redirect.node.startsWith(':') ? `${splitHostPort(node)[0]}${redirect.node}` : redirect.node;
          if (redirect.kind === 'ASK') {
            this.counts.ask++;
            asking = target;
          } else {
            this.counts.moved++;
            this.owners[slot] = target;
            this.masterList = mastersOf(this.owners);
            this.refreshSoon();
          }
          continue;
        }
        const wait = Math.min(200, 10 * 2 ** attempt);
        if (!retryable(err) || Date.now() + wait >= deadline) throw err;
        this.counts.resent++;
        await new Promise((resolve) => setTimeout(resolve, wait));
        if (!(err instanceof DependencyUnavailable && /TRYAGAIN/.test(err.message))) await this.refresh().catch(() => undefined);
      }
    }
  }

  /** Reads the slot map again (one read at a time; callers share it). Rejects when no node answers. */
  refresh(): Promise<void> {
    this.refreshing ??= this.readMap().finally(() => (this.refreshing = undefined));
    return this.refreshing;
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    clearTimeout(this.urgent);
    await Promise.all([...this.pipes.values()].map((p) => p.close()));
  }

  /** After a lost connection or a MOVED: read the map now, and again every 200 ms while a master's pipe is down. */
  private refreshSoon(delayMs = 0): void {
    if (this.closed || this.urgent !== undefined) return;
    this.urgent = setTimeout(() => {
      this.urgent = undefined;
      void this.refresh()
        .catch(() => undefined)
        .finally(() => {
          if (this.masters().some((node) => this.pipes.get(node)?.down)) this.refreshSoon(200);
        });
    }, delayMs);
    this.urgent.unref();
  }

  private async readMap(): Promise<void> {
    // Masters known to answer first, then the seeds: a seed may be the master that just died.
    const candidates = [...new Set([...this.masters().filter((n) => !this.pipes.get(n)?.down), ...this.options.seeds])];
    let lastErr: unknown;
    for (const node of candidates) {
      const [host, port] = splitHostPort(node);
      const probe = new ScriptPipe({ host, port, commandTimeoutMs: Math.min(1000, this.options.commandTimeoutMs), name: this.options.name, scripts: [] });
      try {
        const owners = parseClusterSlots(await probe.command(['CLUSTER', 'SLOTS']), host);
        if (owners.every((o) => o === undefined)) throw new Error(`${node} serves no slots yet`);
        this.apply(owners);
        return;
      } catch (err) {
        lastErr = err;
      } finally {
        probe.abandon(new Error('probe done'));
      }
    }
    throw new DependencyUnavailable('redis', this.options.seeds.join(','), `no cluster node answered CLUSTER SLOTS (${String(lastErr)})`, lastErr);
  }

  private apply(owners: Array<string | undefined>): void {
    const before = this.masters().join(',');
    this.owners = owners;
    this.masterList = mastersOf(owners);
    const masters = this.masters();
    for (const [node, pipe] of this.pipes) {
      if (masters.includes(node)) continue;
      // No longer a master (failed over, or emptied): its calls fail now and are resent to the slot's owner.
      this.pipes.delete(node);
      pipe.abandon(new DependencyUnavailable('redis', node, 'no longer a master of the cluster'));
    }
    if (masters.join(',') !== before) this.emit('map', masters);
  }
}

/** Failures worth resending after a pause: a lost or refused connection, TRYAGAIN, CLUSTERDOWN, a master that lost its role. */
function retryable(err: unknown): boolean {
  if (!(err instanceof DependencyUnavailable)) return false;
  const cause = err.cause;
  if (cause instanceof RedisReplyError) return /^(TRYAGAIN|CLUSTERDOWN|MASTERDOWN|READONLY|LOADING)\b/.test(cause.message);
  return true;
}
