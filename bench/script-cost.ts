/**
 * What Redis spends on one Reserve's script, on a redis-server of its own with the stack's settings
 * (AOF everysec, noeviction, listpack orders: scripts/stack/redis.sh) and nothing else running on
 * it: the bare group's answer to "what does the rest cost". A one-item Reserve whose order's shard
 * holds a live partition is one call of order-reserve (allocator/lua/order-reserve-7.lua), sent by
 * the product's own gateway and script pipe, pipelined as the server sends them. Four loads, each
 * in rounds, with INFO commandstats (µs inside EVALSHA per call) and INFO cpu (the redis-server's
 * whole CPU per call: the script, the protocol, the AOF write):
 *   empty script   the same 7 keys and 11 arguments to a script that returns at once: what any
 *                  script call costs before it does anything
 *   checks only    order-reserve on a retired partition: the idempotency gate, the filter of
 *                  forgotten ids and the partition's checks run, nothing is written
 *   full, no AOF   a Reserve, with appendonly off: the writes without their persistence
 *   full           a Reserve as the stack runs it
 * The differences between the rows are the parts' costs; the last row is the floor of Redis CPU
 * per Reserve that no server of ours can go below with this design (one atomic script that writes
 * the order, its expiry, the take and its ledger record).
 */
import { createHash } from 'node:crypto';
import Redis from 'ioredis';
import { oneItemDoc } from '../allocator/doc';
import { PartitionRef, RedisGateway } from '../allocator/gateway';
import { fingerprint } from '../allocator/reserve';
import { LuaScript } from '../allocator/scripts';
import { RedisShards } from '../allocator/shards';
import { startRedisNode } from '../test/helpers/redis-node';
import { median } from './format';
import { note } from './progress';

export interface ScriptCostRow {
  readonly name: string;
  /** µs inside EVALSHA per call (INFO commandstats), median of the rounds. */
  readonly evalshaUs: number;
  /** The redis-server's CPU per call (INFO cpu: user + sys), median of the rounds. */
  readonly redisUs: number;
}

const SHARDS = 16;
const CALLS = 30_000;
const IN_FLIGHT = 500;
const ROUNDS = 3;
const SKU = 'cost-sku';

/** Runs `call` for `ids` with IN_FLIGHT outstanding, and reads what Redis spent on them. */
async function measure(admin: Redis, ids: readonly string[], call: (id: string) => Promise<unknown>): Promise<{ evalshaUs: number; redisUs: number }> {
  await admin.config('RESETSTAT');
  const cpuBefore = redisCpuUs(await admin.info('cpu'));
  let next = 0;
  const worker = async () => {
    while (next < ids.length) await call(ids[next++]);
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
  const cpuAfter = redisCpuUs(await admin.info('cpu'));
  const stats = /cmdstat_evalsha:calls=(\d+),usec=(\d+)/.exec(await admin.info('commandstats'));
  const calls = Number(stats?.[1] ?? 0);
  return { evalshaUs: calls > 0 ? Number(stats?.[2]) / calls : 0, redisUs: (cpuAfter - cpuBefore) / ids.length };
}

function redisCpuUs(info: string): number {
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(info)?.[1] ?? 0);
  return (field('used_cpu_user') + field('used_cpu_sys')) * 1e6;
}

/** The four loads of the header, in rounds, each round on fresh order ids; medians per load. */
export async function scriptCost(): Promise<ScriptCostRow[]> {
  const redis = await startRedisNode({ stackSettings: true, maxmemory: '2gb' });
  const node = redis.address;
  const shards = new RedisShards({ nodes: [node], shardCount: SHARDS, prefix: 'cost', commandTimeoutMs: 10_000 });
  const admin = new Redis({ port: Number(node.split(':')[1]), maxRetriesPerRequest: 1 });
  try {
    await shards.connect();
    note(`script cost: redis-server of its own on ${node} (AOF everysec), ${SHARDS} shards, ${CALLS} calls per round, ${IN_FLIGHT} in flight, ${ROUNDS} rounds per load`);
    const gateway = new RedisGateway(shards);
    const live: PartitionRef[] = [];
    const retired: PartitionRef[] = [];
    for (let shard = 0; shard < SHARDS; shard++) {
      const [on, off] = [{ sku: SKU, partitionId: `p${shard}`, shard, epoch: 1 }, { sku: `${SKU}-retired`, partitionId: `p${shard}`, shard, epoch: 1 }];
      await gateway.createPartition(on, 1_000_000_000);
      await gateway.createPartition(off, 1);
      await gateway.retire(off);
      live.push(on);
      retired.push(off);
    }
    const source = 'return 1';
    const empty: LuaScript = { name: 'empty', numberOfKeys: 7, source, sha: createHash('sha1').update(source).digest('hex') };
    const reserveOn = (parts: readonly PartitionRef[]) => (id: string) => {
      const p = parts[shards.keys.orderShard(id)];
      const user = `user-${id}`;
      return gateway.reserveHere(id, fingerprint([{ sku: p.sku, quantity: 1 }], user, 900), p, 1, oneItemDoc(p.sku, 1, user, p), 900);
    };
    const loads: Array<{ name: string; aof: boolean; call: (id: string) => Promise<unknown> }> = [
      { name: 'empty script (same keys and arguments)', aof: true, call: (id) => shards.run(shards.keys.orderShard(id), empty, Array(7).fill(shards.keys.order(0, id)), Array(11).fill(id)) },
      { name: 'order-reserve, checks only (nothing written)', aof: true, call: reserveOn(retired) },
      { name: 'order-reserve, full, AOF off', aof: false, call: reserveOn(live) },
      { name: 'order-reserve, full (as the stack runs it)', aof: true, call: reserveOn(live) },
    ];
    const rows: ScriptCostRow[] = [];
    for (const [i, load] of loads.entries()) {
      const runs: Array<{ evalshaUs: number; redisUs: number }> = [];
      for (let round = 0; round < ROUNDS; round++) {
        await admin.config('SET', 'appendonly', load.aof ? 'yes' : 'no');
        // Every shard holds a partition of each SKU, so every order finds one in its own shard.
        const ids = Array.from({ length: CALLS }, (_, n) => `o${i}r${round}-${n}`);
        runs.push(await measure(admin, ids, load.call));
      }
      const row = { name: load.name, evalshaUs: median(runs.map((r) => r.evalshaUs)), redisUs: median(runs.map((r) => r.redisUs)) };
      note(`script cost: ${row.name}: ${row.evalshaUs.toFixed(1)} µs in EVALSHA, ${row.redisUs.toFixed(1)} µs of Redis CPU per call`);
      rows.push(row);
    }
    return rows;
  } finally {
    admin.disconnect();
    await shards.close();
    await redis.stop();
  }
}
