import { ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import Redis from 'ioredis';

const run = promisify(execFile);

/** One node of a test's own Redis Cluster as CLUSTER NODES describes it. */
export interface ClusterNode {
  readonly id: string;
  readonly address: string;
  readonly master: boolean;
  /** Slot ranges it serves (masters). */
  readonly slots: ReadonlyArray<readonly [number, number]>;
  readonly failed: boolean;
}

/**
 * A throwaway Redis Cluster of a test's own: `masters` masters with one replica each, on ports
 * basePort.. in a temp dir, created by `redis-cli --cluster create`, with a short
 * cluster-node-timeout so a killed master fails over in about two seconds.
 */
export interface RedisClusterFixture {
  /** host:port of every node, as seeds for REDIS_CLUSTER. */
  readonly seeds: readonly string[];
  nodes(): Promise<ClusterNode[]>;
  /** The master serving a slot now. */
  masterOf(slot: number): Promise<ClusterNode>;
  /** A plain connection to one node (no redirects followed). */
  client(address: string): Redis;
  /** SIGKILL a node (a crash). */
  kill(address: string): void;
  /** Waits until a node other than `address` serves `slot` and the live nodes say cluster_state:ok; returns it. */
  waitForFailover(address: string, slot: number, timeoutMs?: number): Promise<ClusterNode>;
  /**
   * Moves one slot, keys and all, from its master to `to` with raw commands (SETSLOT
   * IMPORTING/MIGRATING, MIGRATE, SETSLOT NODE); `midway` runs while the slot is marked migrating
   * and no key has moved yet. Returns the number of keys moved.
   */
  moveSlot(slot: number, to: string, midway?: () => Promise<void>): Promise<number>;
  stop(): Promise<void>;
}

export async function startRedisCluster(options: { basePort: number; masters?: number; nodeTimeoutMs?: number }): Promise<RedisClusterFixture> {
  const masters = options.masters ?? 3;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'inv-cluster-'));
  const ports = Array.from({ length: masters * 2 }, (_, i) => options.basePort + i);
  const children = new Map<string, ChildProcess>();
  const clients = new Map<string, Redis>();
  const client = (address: string): Redis => {
    let c = clients.get(address);
    if (!c) {
      const [host, port] = address.split(':');
      c = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
      c.on('error', () => undefined);
      clients.set(address, c);
    }
    return c;
  };
  for (const port of ports) {
    const nodeDir = path.join(dir, String(port));
    rmSync(nodeDir, { recursive: true, force: true });
    await run('mkdir', ['-p', nodeDir]);
    const child = spawn(
      'redis-server',
      [
        '--port', String(port), '--bind', '127.0.0.1', '--dir', nodeDir, '--save', '', '--appendonly', 'no',
        '--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 1000),
        '--maxmemory-policy', 'noeviction', '--hash-max-listpack-value', '1024',
      ],
      { stdio: 'ignore' },
    );
    children.set(`127.0.0.1:${port}`, child);
  }
  const seeds = ports.map((p) => `127.0.0.1:${p}`);
  const ok = async (address: string) => /cluster_state:ok/.test(await client(address).cluster('INFO').catch(() => ''));
  const killAll = () => {
    for (const c of clients.values()) c.disconnect();
    for (const child of children.values()) if (alive(child)) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await form();
  } catch (err) {
    killAll();
    throw err;
  }
  async function form(): Promise<void> {
  await waitUntil(async () => (await Promise.all(seeds.map((s) => client(s).ping().then(() => true, () => false)))).every(Boolean), 10_000, 'redis-server up');
  await run('redis-cli', ['--cluster', 'create', ...seeds, '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 });
  await waitUntil(async () => (await Promise.all(seeds.map(ok))).every(Boolean), 20_000, 'cluster_state:ok');
  // Replicas in sync, so that a failover has something to promote.
  await waitUntil(async () => {
    const infos = await Promise.all(seeds.map((s) => client(s).info('replication')));
    return infos.filter((i) => /role:slave/.test(i)).every((i) => /master_link_status:up/.test(i));
  }, 20_000, 'replicas in sync');
  }

  const nodes = async (): Promise<ClusterNode[]> => {
    for (const s of seeds) {
      if (!alive(children.get(s))) continue;
      const text = await client(s).cluster('NODES').catch(() => undefined);
      if (typeof text === 'string') return parseNodes(text);
    }
    throw new Error('no cluster node answers');
  };
  const masterOf = async (slot: number): Promise<ClusterNode> => {
    const found = (await nodes()).find((n) => n.master && !n.failed && n.slots.some(([a, b]) => slot >= a && slot <= b));
    if (!found) throw new Error(`no master serves slot ${slot}`);
    return found;
  };
  return {
    seeds,
    nodes,
    masterOf,
    client,
    kill(address) {
      children.get(address)?.kill('SIGKILL');
    },
    async waitForFailover(address, slot, timeoutMs = 15_000) {
      let promoted: ClusterNode | undefined;
      await waitUntil(async () => {
        promoted = await masterOf(slot);
        if (promoted.address === address) return false;
        const live = seeds.filter((s) => s !== address && alive(children.get(s)));
        return (await Promise.all(live.map(ok))).every(Boolean);
      }, timeoutMs, `failover of ${address}`);
      return promoted!;
    },
    async moveSlot(slot, to, midway) {
      const all = await nodes();
      const source = await masterOf(slot);
      const target = all.find((n) => n.address === to);
      if (!target || target.address === source.address) throw new Error(`cannot move slot ${slot} from ${source.address} to ${to}`);
      const [host, port] = target.address.split(':');
      await client(target.address).cluster('SETSLOT', slot, 'IMPORTING', source.id);
      await client(source.address).cluster('SETSLOT', slot, 'MIGRATING', target.id);
      await midway?.();
      let moved = 0;
      for (;;) {
        const keys = (await client(source.address).cluster('GETKEYSINSLOT', slot, 1000)) as string[];
        if (keys.length === 0) break;
        await client(source.address).call('MIGRATE', host, port, '', 0, 5000, 'KEYS', ...keys);
        moved += keys.length;
      }
      // The target first, then the source: no window where neither claims the slot (Redis docs, "Live resharding").
      await client(target.address).cluster('SETSLOT', slot, 'NODE', target.id);
      await client(source.address).cluster('SETSLOT', slot, 'NODE', target.id);
      for (const m of all.filter((n) => n.master && !n.failed && n.address !== source.address && n.address !== target.address)) {
        await client(m.address).cluster('SETSLOT', slot, 'NODE', target.id).catch(() => undefined);
      }
      return moved;
    },
    async stop() {
      for (const c of clients.values()) c.disconnect();
      await Promise.all(
        [...children.values()].map(async (child) => {
          if (!alive(child)) return;
          const exited = new Promise((resolve) => child.once('exit', resolve));
          child.kill('SIGKILL');
          await exited;
        }),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function alive(child: ChildProcess | undefined): boolean {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

/** CLUSTER NODES: `<id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot> <slot>...` */
export function parseNodes(text: string): ClusterNode[] {
  return text
    .trim()
    .split('\n')
    .map((line) => {
      const parts = line.split(' ');
      const flags = parts[2].split(',');
      const slots = parts
        .slice(8)
        .filter((s) => !s.startsWith('['))
        .map((s): [number, number] => {
          const [a, b] = s.split('-').map(Number);
          return [a, b ?? a];
        });
      return { id: parts[0], address: parts[1].split('@')[0], master: flags.includes('master'), slots, failed: flags.includes('fail') || flags.includes('fail?') };
    });
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check().catch(() => false))) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
