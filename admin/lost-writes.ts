import type { Pool } from 'mysql2/promise';
import { PartitionRef } from '../allocator/gateway';
import { PartitionInspector } from '../allocator/inspector';
import { RestoreScripts } from '../allocator/restore-scripts';
import { Logger } from '../kernel/logger';
import { highestSeqs, ordersChangedBetween, partitionsById, partitionsInShards } from '../store/lost-writes';
import { PartitionLedgerView, partitionAsOf } from '../store/partition-ledger';
import { PartitionRow } from '../store/partitions';
import { LostPartition, RedisPartitionSeq, SUSPECT, findLostPartitions, planRestore } from './lost-writes-plan';

/**
 * Finds a Redis node that came back having lost acknowledged writes (appendfsync everysec after
 * an OS crash, a failover to a replica that lagged), stops selling from what it lost and restores
 * what MySQL knows (docs/consistency.md, "A Redis node that lost writes").
 *
 * Run for a node when this server (re)connects to it, before its script pipe sends it a call
 * (ScriptPipe.setGate), and for every node at start. Cheap when nothing was lost: one MySQL query
 * for the node's partitions, one for their highest applied change numbers (by index), and one
 * HMGET per partition, pipelined.
 *
 * For each partition whose change number in Redis is behind MySQL's:
 *   1. stop it (partition-suspend: state suspect, which takes refuse; change number raised to
 *      MySQL's so nothing is numbered twice), with an error log and the metric;
 *   2. create again the records of the orders MySQL holds changes of in what Redis lost
 *      (order-restore, never over an existing record);
 *   3. give it MySQL's balance as of its change number and its orders' takes and releases, and
 *      let it sell again (partition-restore, conditional on that number: a racing restore or a
 *      release applied meanwhile makes it a no-op, and the next round reads again).
 * A step that fails (MySQL down, the ledger not caught up) leaves the partition suspect, and
 * `retry` (every LOST_WRITES_RETRY_MS) finishes it: a partition never sells from a state MySQL
 * contradicts. What MySQL never received is gone; Reconcile reports each incident
 * (REDIS_LOST_WRITES) with both numbers.
 */
export interface LostWritesDependencies {
  readonly pool: Pool;
  readonly redis: RestoreScripts;
  readonly inspector: PartitionInspector;
  readonly logger: Logger;
  /** Called with the partitions found behind MySQL on a node (the metric). */
  readonly onLost?: (node: string, partitions: number) => void;
}

export interface LostWritesOptions {
  /** The hold time given to a restored unpaid order (the ledger does not know the one asked for). */
  readonly ttlSeconds: number;
  /** How long an ended restored order is kept for replays. */
  readonly retentionSeconds: number;
  /** How long health reports a node's lost writes after its last partition was restored. */
  readonly noticeMs: number;
  /** How long a restore waits for MySQL to hold every change up to the partition's number. */
  readonly cutTimeoutMs?: number;
}

/** What one node's last incident looks like, for health. */
interface Incident {
  at: number;
  found: number;
  restored: number;
  suspect: Set<string>;
}

const CUT_POLL_MS = 50;

export class LostWritesGuard {
  private readonly running = new Map<string, Promise<void>>();
  private readonly incidents = new Map<string, Incident>();
  /** Nodes whose last check did not finish (MySQL or Redis failed): checked again by retry(). */
  private readonly unchecked = new Set<string>();

  constructor(
    private readonly deps: LostWritesDependencies,
    private readonly options: LostWritesOptions,
  ) {}

  /** Checks one node; one check per node at a time (a second caller shares it). Never throws. */
  checkNode(node: string): Promise<void> {
    let run = this.running.get(node);
    if (!run) {
      run = this.check(node)
        .then(() => void this.unchecked.delete(node))
        .catch((err) => {
          this.unchecked.add(node);
          this.deps.logger.warn({ err, node }, 'lost-writes check failed; partitions found behind stay stopped, retried');
        })
        .finally(() => this.running.delete(node));
      this.running.set(node, run);
    }
    return run;
  }

  async checkAll(): Promise<void> {
    await Promise.all(this.deps.redis.shards.nodes().map((node) => this.checkNode(node)));
  }

  /** Checks again the nodes whose check failed or that still have suspect partitions. */
  async retry(): Promise<void> {
    const nodes = new Set(this.unchecked);
    for (const [node, incident] of this.incidents) if (incident.suspect.size > 0) nodes.add(node);
    await Promise.all([...nodes].map((node) => this.checkNode(node)));
  }

  /** Partitions stopped because their node lost writes and not restored yet. */
  suspectPartitions(): number {
    let n = 0;
    for (const incident of this.incidents.values()) n += incident.suspect.size;
    return n;
  }

  /** Lines for health's degraded list: nodes with stopped partitions, or restored within noticeMs. */
  notices(now = Date.now()): string[] {
    const lines: string[] = [];
    for (const [node, i] of this.incidents) {
      const when = new Date(i.at).toISOString();
      if (i.suspect.size > 0) {
        lines.push(`redis ${node} came back having lost acknowledged writes (${when}): ${i.suspect.size} partition(s) stopped until restored from MySQL`);
      } else if (now - i.at < this.options.noticeMs) {
        lines.push(`redis ${node} came back having lost acknowledged writes (${when}): ${i.restored} partition(s) restored from MySQL; changes MySQL never received are gone (Reconcile lists them)`);
      }
    }
    return lines;
  }

  private async check(node: string): Promise<void> {
    const shards = this.deps.redis.shards.shardsOn(node);
    const rows = await partitionsInShards(this.deps.pool, shards);
    this.deps.logger.debug({ node, shards: shards.length, partitions: rows.length }, 'lost-writes check');
    if (rows.length === 0) return;
    // MySQL first: it only ever holds what Redis wrote before, so a Redis number read after it
    // can only be ahead, unless Redis lost writes. The other order would take the changes
    // made in between for lost ones.
    const mysql = await highestSeqs(this.deps.pool, rows.map((r) => r.partitionId));
    const seqs = await this.deps.redis.seqs(rows.map(refOf));
    const redis = new Map<string, RedisPartitionSeq | undefined>(rows.map((r, i) => [r.partitionId, seqs[i]]));
    const lost = findLostPartitions(rows, redis, mysql);
    if (lost.length === 0) return;

    const fresh = lost.filter((p) => !p.suspended);
    const suspended = await Promise.all(fresh.map((p) => this.deps.redis.suspend(refOf(p.row), p.redisSeq, p.mysqlSeq, p.row.capacity)));
    const stopped = fresh.filter((_, i) => suspended[i]);
    const incident = this.incident(node, stopped.length > 0);
    if (stopped.length > 0) {
      incident.found += stopped.length;
      this.deps.onLost?.(node, stopped.length);
      this.deps.logger.error(
        { node, partitions: stopped.map((p) => ({ partition: p.row.partitionId, sku: p.row.sku, redisSeq: p.redisSeq, mysqlSeq: p.mysqlSeq, missing: p.missing })) },
        'redis node came back having lost acknowledged writes: its partitions behind MySQL stop selling until restored from MySQL',
      );
    }
    for (const p of lost) incident.suspect.add(p.row.partitionId);
    // One that changed between the read and the suspend (another server suspended it first) is
    // restored all the same: restore reads the partition again and is conditional.
    for (const p of lost) {
      if (await this.restore(p)) {
        incident.suspect.delete(p.row.partitionId);
        incident.restored++;
      }
    }
  }

  private incident(node: string, fresh: boolean): Incident {
    let incident = this.incidents.get(node);
    if (!incident || (fresh && incident.suspect.size === 0)) {
      incident = { at: Date.now(), found: 0, restored: 0, suspect: new Set() };
      this.incidents.set(node, incident);
    }
    return incident;
  }

  /** Steps 2 and 3 for one suspect partition; true once it sells again. */
  private async restore(p: LostPartition): Promise<boolean> {
    const { logger, pool, redis } = this.deps;
    const ref = refOf(p.row);
    const [now] = await redis.seqs([ref]);
    if (!now) return false;
    if (now.state !== SUSPECT) return true; // restored by another server
    const mark = await this.deps.inspector.lostWrites(ref);
    const view = await this.viewAt(p.row.partitionId, now.seq);
    if (!view?.complete) {
      logger.warn({ partition: p.row.partitionId, seq: now.seq, mysqlRows: view?.rows ?? 0 }, 'lost writes: MySQL lacks changes up to the partition number yet; it stays stopped, retried');
      return false;
    }
    const rows = await ordersChangedBetween(pool, p.row.partitionId, mark?.redisSeq ?? p.redisSeq, now.seq);
    const partitions = await partitionsById(pool, [...new Set(rows.flatMap((r) => (r.partitionId ? [r.partitionId] : [])))]);
    const plan = planRestore(p.row.partitionId, rows, partitions, this.options.ttlSeconds * 1000);
    let created = 0;
    for (const order of plan.orders) {
      const made = await redis.restoreOrder({ ...order, doc: JSON.stringify(order.doc) }, this.options.ttlSeconds, this.options.retentionSeconds);
      if (made) created++;
    }
    if (!(await redis.restore(ref, now.seq, view.pool, view.held, plan.takes))) return false;
    logger.warn(
      { partition: p.row.partitionId, sku: p.row.sku, seq: now.seq, redisSeqFound: mark?.redisSeq ?? p.redisSeq, avail: view.pool, held: view.held, ordersRestored: created, ordersSeen: plan.orders.length },
      'lost writes: partition restored from MySQL and selling again',
    );
    return true;
  }

  /** MySQL's view of the partition at `seq`, asked again until complete or the cut timeout. */
  private async viewAt(partitionId: string, seq: number): Promise<PartitionLedgerView | undefined> {
    const deadline = Date.now() + (this.options.cutTimeoutMs ?? 10_000);
    for (;;) {
      const view = await partitionAsOf(this.deps.pool, partitionId, seq);
      if (!view || view.complete || Date.now() >= deadline) return view;
      await new Promise((resolve) => setTimeout(resolve, CUT_POLL_MS));
    }
  }
}

function refOf(row: PartitionRow): PartitionRef {
  return { sku: row.sku, partitionId: row.partitionId, shard: row.shard, epoch: row.epoch };
}
