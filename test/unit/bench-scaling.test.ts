import assert from 'node:assert/strict';
import { keySlot } from '../../allocator/slot';
import { RedisCounters, Store, clusterLayout, commandCalls, infoFields, nodeLoads, nodeShares, plainLayout } from '../../bench/redis-nodes';
import { Row } from '../../bench/rows';
import { scalingSummary } from '../../bench/scaling';
import { clusterSeedsOf } from '../../bench/stack';
import { loadConfig } from '../../server/config';

describe('bench scaling group: the Redis nodes and their part in a load', () => {
  // CLUSTER SLOTS as Redis 7.0 answers it for scripts/stack.sh up --redis-cluster (3 masters, a replica each).
  const slots = [
    [0, 5460, ['127.0.0.1', 6400, 'a'], ['127.0.0.1', 6404, 'e']],
    [5461, 10922, ['127.0.0.1', 6401, 'b'], ['127.0.0.1', 6405, 'f']],
    [10923, 16383, ['', 6402, 'c'], ['127.0.0.1', 6403, 'd']],
  ];
  const masterOfSlot = (slot: number) => (slot <= 5460 ? '127.0.0.1:6400' : slot <= 10922 ? '127.0.0.1:6401' : '127.0.0.1:6402');

  it('reads masters, replicas and the master of each shard from CLUSTER SLOTS', () => {
    const layout = clusterLayout(slots, '127.0.0.1');
    assert.deepEqual(layout.masters, ['127.0.0.1:6400', '127.0.0.1:6401', '127.0.0.1:6402']);
    assert.deepEqual([...layout.replicas].sort(), ['127.0.0.1:6403', '127.0.0.1:6404', '127.0.0.1:6405']);
    const holders = new Set<string>();
    for (let shard = 0; shard < 48; shard++) {
      const node = layout.nodeOfShard(shard);
      assert.equal(node, masterOfSlot(keySlot(`inv:{s${shard}}:ledger`)), `shard ${shard}`);
      holders.add(node);
    }
    assert.equal(holders.size, 3, '48 shards reach every master');
  });

  it('a replica serving two ranges (after a reshard) is one replica; a slot nobody serves is an error', () => {
    const layout = clusterLayout([[0, 99, ['h', 1, 'a'], ['h', 2, 'b']], [100, 199, ['h', 1, 'a'], ['h', 2, 'b']]], 'h');
    assert.deepEqual(layout.replicas, ['h:2']);
    const shardOutside = Array.from({ length: 64 }, (_, s) => s).find((s) => keySlot(`{s${s}}`) > 199)!;
    assert.throws(() => layout.nodeOfShard(shardOutside), /no master of the Redis cluster serves slot/);
  });

  it('plain nodes: shard s on node s mod N, no replicas', () => {
    const layout = plainLayout(['a:1', 'b:2']);
    assert.deepEqual([layout.nodeOfShard(0), layout.nodeOfShard(1), layout.nodeOfShard(4), layout.nodeOfShard(7)], ['a:1', 'b:2', 'a:1', 'b:2']);
    assert.deepEqual(layout.replicas, []);
  });

  it('counts EVALSHA calls in INFO commandstats, not EVAL ones, and 0 when it never ran', () => {
    const stats =
      '# Commandstats\r\ncmdstat_eval:calls=7,usec=70,usec_per_call=10.00,rejected_calls=0,failed_calls=0\r\n' +
      'cmdstat_evalsha:calls=123456,usec=5000000,usec_per_call=40.50,rejected_calls=0,failed_calls=2\r\n' +
      'cmdstat_info:calls=3,usec=90,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n';
    assert.equal(commandCalls(stats, 'evalsha'), 123456);
    assert.equal(commandCalls(stats, 'EVAL'), 7);
    assert.equal(commandCalls('# Commandstats\r\ncmdstat_ping:calls=1,usec=1\r\n', 'evalsha'), 0);
    assert.equal(infoFields('# Stats\r\ntotal_forks:12\r\n').total_forks, '12');
  });

  it('attributes CPU to each node by its process and the scripts to each master by its counter', () => {
    const config = loadConfig({ REDIS_CLUSTER: '127.0.0.1:6400', REDIS_NODES: '', LOG_LEVEL: 'silent' });
    const layout = clusterLayout(slots, '127.0.0.1');
    // 6405 has no process found: its CPU is unknown, not zero.
    const pids = new Map([['127.0.0.1:6400', 100], ['127.0.0.1:6401', 101], ['127.0.0.1:6402', 102], ['127.0.0.1:6403', 103], ['127.0.0.1:6404', 104]]);
    const store: Store = { config, dbUrl: 'mysql://x/y', layout, pids };
    const before: RedisCounters = { forks: 0, scriptCalls: { '127.0.0.1:6400': 1000, '127.0.0.1:6401': 10, '127.0.0.1:6402': 0 } };
    const after: RedisCounters = { forks: 0, scriptCalls: { '127.0.0.1:6400': 1600, '127.0.0.1:6401': 310, '127.0.0.1:6402': 100 } };
    const loads = nodeLoads(store, before, after, { 100: 300, 101: 150, 102: 50, 103: 20, 104: 30 });
    const shares = nodeShares(loads, 1000, 2000);
    const by = (node: string) => shares.find((s) => s.node === node)!;
    assert.deepEqual(
      ['127.0.0.1:6400', '127.0.0.1:6401', '127.0.0.1:6402'].map((n) => [by(n).role, by(n).scriptCalls, by(n).callShare, by(n).usPerCall, by(n).pct]),
      [
        ['master', 600, 0.6, 300, 15],
        ['master', 300, 0.3, 150, 7.5],
        ['master', 100, 0.1, 50, 2.5],
      ],
    );
    assert.deepEqual([by('127.0.0.1:6404').role, by('127.0.0.1:6404').usPerCall, by('127.0.0.1:6404').callShare], ['replica', 30, 0]);
    assert.ok(Number.isNaN(by('127.0.0.1:6405').usPerCall), 'a node without a process has no CPU figure');
  });

  it('summarises rounds: medians per kind and per node, sales and errors summed, one failed check fails all', () => {
    const row = (id: string, callsPerSec: number, redisUs: number, masterUs: number[], ok = true): Row =>
      ({
        id,
        answered: 1500,
        callsPerSec,
        p50Ms: 1,
        p99Ms: 2,
        errors: 1,
        sold: 10,
        stocked: 100,
        check: { ok, held: 10, stocked: 100, avail: 90, takeRecords: 10, problems: [] },
        serverUsPerCall: 100,
        storeUsPerCall: redisUs,
        redisNodes: [
          ...masterUs.map((us, i) => ({ node: `m${i}`, role: 'master' as const, cpuMs: us, scriptCalls: 1000, usPerCall: us, pct: us / 10, callShare: 1 / masterUs.length })),
          { node: 'r0', role: 'replica' as const, cpuMs: 5, scriptCalls: 0, usPerCall: 5, pct: 0.5, callShare: 0 },
        ],
      }) as unknown as Row;
    const summary = scalingSummary([row('a', 1000, 60, [20, 20, 20]), row('b', 3000, 90, [30, 30, 30]), row('c', 2000, 75, [25, 25, 25], false)])!;
    assert.deepEqual([summary.callsPerSec, summary.redisUsPerCall, summary.replicaUsPerCall, summary.errors, summary.sold, summary.stocked], [2000, 75, 5, 3, 30, 300]);
    // 3 masters x 1,000 scripts for 1,500 calls; 75 ms of the masters' CPU over 3,000 scripts.
    assert.deepEqual([summary.scriptsPerCall, summary.redisUsPerScript], [2, 25]);
    assert.equal(summary.checkOk, false);
    assert.deepEqual(summary.nodes.map((n) => [n.node, n.role, n.usPerCall]), [['m0', 'master', 25], ['m1', 'master', 25], ['m2', 'master', 25], ['r0', 'replica', 5]]);
    // 25 ms of CPU over 1,000 scripts: 25 µs per script the master ran.
    assert.equal(summary.nodes[0].usPerScript, 25);
    assert.equal(scalingSummary([]), undefined);
  });

  it("takes the cluster's seeds from what scripts/stack.sh up --redis-cluster prints", () => {
    const out = 'stack up (812 ms):\n  redis     127.0.0.1:6390   reused\n  use the cluster with: REDIS_CLUSTER=127.0.0.1:6400,127.0.0.1:6401,127.0.0.1:6402 (and no REDIS_NODES)\n';
    assert.deepEqual(clusterSeedsOf(out), ['127.0.0.1:6400', '127.0.0.1:6401', '127.0.0.1:6402']);
    assert.throws(() => clusterSeedsOf('stack up (5 ms):\n'), /printed no REDIS_CLUSTER=/);
  });
});
