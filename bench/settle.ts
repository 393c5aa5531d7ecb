/**
 * What the bench waits for before each measured scenario, so that the scenario does not pay for
 * earlier ones or for other users of a shared machine: the ledger writer's backlog, Redis's AOF
 * rewrites (the stack's node, and the cluster's nodes once the scaling group uses them), and
 * (--wait-quiet) a quiet machine.
 */
import Redis from 'ioredis';
import { machineCpuMs } from './cpu';
import { fmt } from './format';
import { note } from './progress';
import { infoFields, redisAt, redisLayout, withRedisNode } from './redis-nodes';
import { Namespace, ledgerConfigs, redisConfigs } from './stack';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** settle(), then --wait-quiet: the steps before a measured load. */
export async function beforeMeasuring(ns: Namespace, waitQuietPct: number | undefined, label: string): Promise<void> {
  await settle(ns, label);
  await waitQuiet(waitQuietPct, label);
}

/**
 * Lets the ledger writer apply what earlier scenarios left in the ledger streams (while it makes
 * progress: a stopped server's writer is gone), then settles Redis's append-only file (settleRedis).
 */
async function settle(ns: Namespace, label: string): Promise<void> {
  const started = performance.now();
  let backlog = await ledgerBacklog(ns);
  const first = backlog;
  let progressAt = performance.now();
  while (backlog > 0 && performance.now() - progressAt < 3000 && performance.now() - started < 120_000) {
    await sleep(250);
    const now = await ledgerBacklog(ns);
    if (now < backlog) progressAt = performance.now();
    backlog = now;
  }
  if (first > 0 && backlog < first) {
    note(`${label}: waited ${((performance.now() - started) / 1000).toFixed(1)} s for the ledger writer to apply ${fmt(first - backlog)} records of earlier scenarios`);
  }
  await settleRedis(ns, label);
}

/** Records in the ledger streams of the bench's namespaces: not yet applied to MySQL. */
async function ledgerBacklog(ns: Namespace): Promise<number> {
  const clients = new Map<string, Redis>();
  try {
    let n = 0;
    for (const config of ledgerConfigs(ns)) {
      const layout = await redisLayout(config);
      for (let shard = 0; shard < config.redisShards; shard++) {
        const node = layout.nodeOfShard(shard);
        if (!clients.has(node)) clients.set(node, redisAt(node));
        n += await clients.get(node)!.xlen(`${config.redisPrefix}:{s${shard}}:ledger`);
      }
    }
    return n;
  } finally {
    for (const redis of clients.values()) redis.disconnect();
  }
}

/**
 * Lets an AOF rewrite in progress finish, and rewrites the AOF of
 * each Redis node whose file has grown since its last rewrite, so that the writes of earlier
 * scenarios do not set one off during this one (Redis rewrites once the file has doubled, in a
 * forked child that takes a core for seconds). A rewrite that a scenario's own writes set off
 * still happens in it, and its CPU counts under redis (CpuMeter counts Redis's children).
 */
async function settleRedis(ns: Namespace, label: string): Promise<void> {
  const nodes = new Set<string>();
  for (const config of redisConfigs(ns)) {
    const layout = await redisLayout(config);
    for (const node of [...layout.masters, ...layout.replicas]) nodes.add(node);
  }
  for (const node of nodes) {
    await withRedisNode(node, async (redis) => {
      const persistence = async () => infoFields(await redis.info('persistence'));
      let p = await persistence();
      if (p.aof_enabled !== '1') return;
      const grownMb = (Number(p.aof_current_size) - Number(p.aof_base_size)) / 2 ** 20;
      if (p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0' && grownMb < 8) return;
      const started = performance.now();
      if (p.aof_rewrite_in_progress === '0') await redis.bgrewriteaof().catch(() => undefined); // one in progress or scheduled: wait for it
      for (;;) {
        await sleep(200);
        p = await persistence();
        if (p.aof_rewrite_in_progress === '0' && p.aof_rewrite_scheduled === '0') break;
        if (performance.now() - started > 120_000) throw new Error(`Redis ${node}: AOF rewrite still running after 2 minutes`);
      }
      note(`${label}: Redis ${node}: AOF rewritten first (${fmt(grownMb)} MB since the last rewrite; ${((performance.now() - started) / 1000).toFixed(1)} s)`);
    });
  }
}

/** --wait-quiet: polls the machine's busy time (1 s samples) until it is under the threshold, for at most 2 minutes. */
async function waitQuiet(limit: number | undefined, label: string): Promise<void> {
  if (limit === undefined) return;
  const until = performance.now() + 120_000;
  for (let waited = 0; ; waited++) {
    const a = machineCpuMs();
    await sleep(1000);
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
