/**
 * The bench's namespace on the local stack (a Redis key prefix, etcd prefixes, MySQL databases
 * `<tag>_*`): made up for a run, dropped after it, and the namespaces of runs that died without
 * dropping theirs; with plain clients of one Redis node and of the MySQL server.
 */
import { randomBytes } from 'node:crypto';
import { Etcd3 } from 'etcd3';
import Redis from 'ioredis';
import mysql, { Connection, RowDataPacket } from 'mysql2/promise';
import { Config, loadConfig } from '../server/config';
import { note } from './progress';
import { dropInventory } from './seed';

/** The MySQL databases of a namespace are `<tag><suffix>`. */
const DATABASES = { baseline: '_base', inventory: '_inv', cart: '_cart' } as const;

export interface Namespace {
  /** `bench_<ms since 1970, base 36>_<4 hex digits>`: the Redis prefix, etcd prefix and database names start with it. */
  readonly tag: string;
  readonly config: Config;
  /** The cart's SKUs: a Redis prefix and registry namespace of their own. */
  readonly cartConfig: Config;
  readonly baselineUrl: string;
  readonly inventoryDbUrl: string;
  readonly cartDbUrl: string;
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
  };
}

/** What `--keep` leaves behind, for the note that says so. */
export function describeNamespace(tag: string): string {
  return `Redis prefix, etcd prefix /${tag}/, databases ${tag}${Object.values(DATABASES).join(', ')}`;
}

function scopedConfig(redisPrefix: string, etcdNamespace: string): Config {
  return loadConfig({ ...process.env, REDIS_PREFIX: redisPrefix, ETCD_NAMESPACE: etcdNamespace, LOG_LEVEL: 'silent' });
}

/** The configured MySQL server's URL with another database ('' for none). */
function mysqlUrl(database: string): string {
  const url = new URL(loadConfig().mysqlUrl);
  url.pathname = `/${database}`;
  return url.toString();
}

/** A client of one Redis node, `host:port`. */
export function redisAt(node: string): Redis {
  const at = node.lastIndexOf(':');
  return new Redis({ host: node.slice(0, at), port: Number(node.slice(at + 1)), maxRetriesPerRequest: 1 });
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

async function withMysqlServer<T>(use: (conn: Connection) => Promise<T>): Promise<T> {
  const conn = await mysql.createConnection({ uri: mysqlUrl('') });
  try {
    return await use(conn);
  } finally {
    await conn.end();
  }
}

/** Drops one bench namespace: Redis keys `<tag>:*`, etcd keys under `/<tag>/`, the databases `<tag>_*`. */
export async function dropNamespace(config: Config, tag: string): Promise<void> {
  if (!/^bench_[a-z0-9]+_[a-f0-9]+$/.test(tag)) throw new Error(`refusing to drop ${tag}: not a bench namespace`);
  const scoped = scopedConfig(tag, `/${tag}/`);
  await dropInventory({ ...scoped, redisNodes: config.redisNodes, etcdEndpoints: config.etcdEndpoints });
  await withMysqlServer(async (conn) => {
    for (const suffix of Object.values(DATABASES)) await conn.query(`DROP DATABASE IF EXISTS \`${tag}${suffix}\``);
  });
}

/** Namespaces of bench runs that died without cleaning up (older than an hour). */
export async function cleanupStale(config: Config): Promise<void> {
  const tags = new Set<string>();
  const old = (tag: string) => {
    const m = /^bench_([a-z0-9]+)_[a-f0-9]{4}$/.exec(tag);
    return m !== null && Date.now() - parseInt(m[1], 36) > 3_600_000;
  };
  const databaseSuffix = new RegExp(`(${Object.values(DATABASES).join('|')})$`);
  try {
    for (const node of config.redisNodes) {
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
    const etcd = new Etcd3({ hosts: [...config.etcdEndpoints] });
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
      await dropNamespace(config, tag);
    }
  } catch (err) {
    note(`could not look for stale bench namespaces: ${err instanceof Error ? err.message : String(err)}`);
  }
}
