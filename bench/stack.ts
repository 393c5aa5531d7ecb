/**
 * The bench's namespace on the local stack (a Redis key prefix, etcd prefixes, MySQL databases
 * `<tag>_*`; with the scaling group, the same prefix on the stack's Redis Cluster): made up for a
 * run, dropped after it, and the namespaces of runs that died without dropping theirs.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Etcd3 } from 'etcd3';
import mysql, { Connection, RowDataPacket } from 'mysql2/promise';
import { Config, loadConfig } from '../server/config';
import { ROOT } from './paths';
import { note } from './progress';
import { redisLayout, withRedisNode } from './redis-nodes';
import { dropEtcdNamespace, dropRedisPrefix } from './seed';

const run = promisify(execFile);

/** The MySQL databases of a namespace are `<tag><suffix>`. */
const DATABASES = { baseline: '_base', inventory: '_inv', cart: '_cart', scaleOne: '_one', scaleCluster: '_clus' } as const;

/**
 * Virtual shards of the scaling group's namespaces: README's recommendation for a cluster, and
 * the same on the single node, so that the two rows differ in the Redis alone (the shard count
 * decides how many Reserves find a partition on their order's shard: the one-script path).
 */
const SCALING_SHARDS = 48;

export interface Namespace {
  /** `bench_<ms since 1970, base 36>_<4 hex digits>`: the Redis prefix, etcd prefix and database names start with it. */
  readonly tag: string;
  readonly config: Config;
  /** The cart's SKUs: a Redis prefix and registry namespace of their own. */
  readonly cartConfig: Config;
  readonly baselineUrl: string;
  readonly inventoryDbUrl: string;
  readonly cartDbUrl: string;
  /** The databases of the scaling group's servers. */
  readonly scalingDbUrls: { readonly single: string; readonly cluster: string };
  /** The scaling group's namespaces on the stack's Redis node and on its Redis Cluster, once the cluster is up (scalingNamespaces). */
  scaling?: { readonly single: Config; readonly cluster: Config };
}

export function newNamespace(): Namespace {
  const tag = `bench_${Date.now().toString(36)}_${randomBytes(2).toString('hex')}`;
  return {
    tag,
    config: scopedConfig(tag, `/${tag}/main/`),
    // The cart's 10,000 SKUs live in a registry namespace of their own, so that the other servers'
    // start-up listing stays small (see the note at the cart phase in phases.ts).
    cartConfig: scopedConfig(`${tag}:cart`, `/${tag}/cart/`),
    baselineUrl: mysqlUrl(`${tag}${DATABASES.baseline}`),
    inventoryDbUrl: mysqlUrl(`${tag}${DATABASES.inventory}`),
    cartDbUrl: mysqlUrl(`${tag}${DATABASES.cart}`),
    scalingDbUrls: { single: mysqlUrl(`${tag}${DATABASES.scaleOne}`), cluster: mysqlUrl(`${tag}${DATABASES.scaleCluster}`) },
  };
}

/** The scaling group's namespaces: one on the stack's Redis node, one on a Redis Cluster of these seeds; each its own Redis prefix and registry namespace, 48 shards. */
export function scalingNamespaces(tag: string, seeds: readonly string[]): { single: Config; cluster: Config } {
  const shards = { REDIS_SHARDS: String(SCALING_SHARDS) };
  return {
    single: scopedConfig(`${tag}:one`, `/${tag}/one/`, shards),
    cluster: scopedConfig(`${tag}:cluster`, `/${tag}/cluster/`, { ...shards, REDIS_CLUSTER: seeds.join(','), REDIS_NODES: '' }),
  };
}

/** The seeds `scripts/stack.sh up --redis-cluster` prints (`... REDIS_CLUSTER=127.0.0.1:6400,... (and no REDIS_NODES)`). */
export function clusterSeedsOf(output: string): string[] {
  const m = /REDIS_CLUSTER=(\S+)/.exec(output);
  if (!m) throw new Error('scripts/stack.sh up --redis-cluster printed no REDIS_CLUSTER=');
  return m[1].split(',');
}

/**
 * Brings up the stack's Redis Cluster (`scripts/stack.sh up --redis-cluster`: 3 masters with a
 * replica each, the single node's settings; the rest of the stack is reused as it is) and returns
 * its seeds. The cluster stays up afterwards, as stack.sh leaves it (`scripts/stack.sh down` stops
 * it with the rest). The script's output goes to `logFile`.
 */
export async function startStackCluster(logFile: string): Promise<string[]> {
  try {
    const { stdout, stderr } = await run('bash', [path.join(ROOT, 'scripts', 'stack.sh'), 'up', '--redis-cluster'], { timeout: 180_000 });
    appendFileSync(logFile, `${stderr}${stdout}`);
    return clusterSeedsOf(stdout);
  } catch (err) {
    const { stdout = '', stderr = '' } = err as { stdout?: string; stderr?: string };
    appendFileSync(logFile, `${stderr}${stdout}`);
    throw new Error(`scripts/stack.sh up --redis-cluster failed (see ${logFile}): ${stderr.trim().split('\n').pop() || String(err)}`);
  }
}

/** The configurations whose Redis hold the namespace's keys: the stack's node(s), and the cluster when the scaling group uses one. */
export function redisConfigs(ns: Namespace): Config[] {
  return ns.scaling ? [ns.config, ns.scaling.cluster] : [ns.config];
}

/** Every configuration of the namespace with ledger streams of its own: the main one, the cart's, and the scaling group's. */
export function ledgerConfigs(ns: Namespace): Config[] {
  return [ns.config, ns.cartConfig, ...(ns.scaling ? [ns.scaling.single, ns.scaling.cluster] : [])];
}

/** The environment that puts a server of ours in a namespace: its Redis prefix (and cluster), registry namespace and database. */
export function namespaceEnv(config: Config, dbUrl: string): Record<string, string> {
  return {
    REDIS_PREFIX: config.redisPrefix,
    ETCD_NAMESPACE: config.etcdNamespace,
    MYSQL_URL: dbUrl,
    REDIS_SHARDS: String(config.redisShards),
    ...(config.redisCluster.length > 0 ? { REDIS_CLUSTER: config.redisCluster.join(','), REDIS_NODES: '' } : {}),
  };
}

/** What `--keep` leaves behind, for the note that says so. */
export function describeNamespace(tag: string): string {
  return `Redis prefix, etcd prefix /${tag}/, databases ${tag}${Object.values(DATABASES).join(', ')}`;
}

function scopedConfig(redisPrefix: string, etcdNamespace: string, env: Record<string, string> = {}): Config {
  return loadConfig({ ...process.env, REDIS_PREFIX: redisPrefix, ETCD_NAMESPACE: etcdNamespace, LOG_LEVEL: 'silent', ...env });
}

/** The configured MySQL server's URL with another database ('' for none). */
function mysqlUrl(database: string): string {
  const url = new URL(loadConfig().mysqlUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

async function withMysqlServer<T>(use: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await mysql.createConnection({ uri: mysqlUrl('') });
  try {
    return await use(conn);
  } finally {
    await conn.end();
  }
}

/**
 * Drops one bench namespace: Redis keys `<tag>:*` on the Redis of each of `configs` (the stack's
 * node, the cluster's masters), etcd keys under `/<tag>/`, the databases `<tag>_*`.
 */
export async function dropNamespace(configs: readonly Config[], tag: string): Promise<void> {
  if (!/^bench_[a-z0-9]+_[a-f0-9]+$/.test(tag)) throw new Error(`refusing to drop ${tag}: not a bench namespace`);
  for (const config of configs) await dropRedisPrefix({ ...config, redisPrefix: tag });
  await dropEtcdNamespace(configs[0].etcdEndpoints, `/${tag}/`);
  await withMysqlServer(async (conn) => {
    for (const suffix of Object.values(DATABASES)) await conn.query(`DROP DATABASE IF EXISTS \`${tag}${suffix}\``);
  });
}

/** Namespaces of bench runs that died without cleaning up (older than an hour), on the Redis of each of `configs`. */
export async function cleanupStale(configs: readonly Config[]): Promise<void> {
  const tags = new Set<string>();
  const old = (tag: string) => {
    const m = /^bench_([a-z0-9]+)_[a-f0-9]{4}$/.exec(tag);
    return m !== null && Date.now() - parseInt(m[1], 36) > 3_600_000;
  };
  const databaseSuffix = new RegExp(`(${Object.values(DATABASES).join('|')})$`);
  try {
    const nodes = new Set<string>();
    for (const config of configs) for (const node of (await redisLayout(config)).masters) nodes.add(node);
    for (const node of nodes) {
      await withRedisNode(node, async (redis) => {
        let cursor = '0';
        let rounds = 0;
        do {
          const [next, keys] = await redis.scan(cursor, 'MATCH', 'bench_*', 'COUNT', 5000);
          cursor = next;
          for (const k of keys) tags.add(k.split(':')[0]);
        } while (cursor !== '0' && ++rounds < 100_000);
      });
    }
    const etcd = new Etcd3({ hosts: [...configs[0].etcdEndpoints] });
    try {
      const keys = await etcd.getAll().prefix('/bench_').keys();
      for (const k of keys) tags.add(k.split('/')[1]);
    } finally {
      etcd.close();
    }
    await withMysqlServer(async (conn) => {
      const [rows] = await conn.query<RowDataPacket[]>("SHOW DATABASES LIKE 'bench\\_%'");
      for (const r of rows) tags.add(String(Object.values(r)[0]).replace(databaseSuffix, ''));
    });
    for (const tag of tags) {
      if (!old(tag)) continue;
      note(`dropping stale namespace ${tag} of an earlier run`);
      await dropNamespace(configs, tag);
    }
  } catch (err) {
    note(`could not look for stale bench namespaces: ${err instanceof Error ? err.message : String(err)}`);
  }
}
