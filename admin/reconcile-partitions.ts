import type { Pool } from 'mysql2/promise';
import { PartitionLedgerView, checkpointPartition, partitionAsOf } from '../store/partition-ledger';
import { PartitionRow } from '../store/partitions';
import { PartitionRef } from '../allocator/gateway';
import { PartitionAudit, PartitionInspector } from '../allocator/inspector';
import { pause } from '../kernel/caller';
import { SkuCheck, stayForCheck } from './discrepancy';

/**
 * Reconcile's comparison of each partition's units in Redis with MySQL's ledger, at one cut.
 *
 * The Redis side is read in one script (partition-audit): avail, held and `seq`, the number of the
 * partition's last change. Every change that moves units (take, release, withdrawal, repair)
 * writes a ledger record carrying its number, so MySQL's rows 1..seq of the partition describe
 * exactly that state. MySQL is asked until it holds all of them (records on their way through the
 * stream are waited for, never mistaken for missing units), and only then are the two compared.
 * The wait ends early when Reconcile's caller goes: the call then answers DEADLINE_EXCEEDED or
 * CANCELLED, not a report (LEDGER_BEHIND is what the whole cut timeout could not get).
 *
 * A difference found there does not change while Reserves and Releases go on: each changes Redis
 * and MySQL by the same amount. So a repair stays right later, unless another repair ran in
 * between, which is its condition (the repair generation read in the cut): see
 * lua/partition-repair-2.lua.
 */
export interface KnownPartition {
  readonly ref: PartitionRef;
  /** MySQL's row, when it has one. */
  readonly row?: PartitionRow;
}

/** How often MySQL is asked again while it lacks records up to a cut. */
const CUT_POLL_MS = 50;

export interface PartitionFindings {
  /** The audit of each partition, in the order given. */
  readonly audits: PartitionAudit[];
}

export async function comparePartitionUnits(
  check: SkuCheck,
  db: Pool,
  inspector: PartitionInspector,
  partitions: readonly KnownPartition[],
  cutTimeoutMs: number,
): Promise<PartitionFindings> {
  const audits = await Promise.all(partitions.map((p) => inspector.auditPartition(p.ref)));
  const deadline = Date.now() + cutTimeoutMs;
  await Promise.all(
    partitions.map(async (p, i) => {
      // Rows in flux (an operation is creating it) or that never became a partition: nothing to compare.
      if (!p.row || p.row.state === 'creating' || p.row.state === 'aborted') return;
      await compareOne(check, db, inspector, p.ref, audits[i], deadline);
    }),
  );
  return { audits };
}

async function compareOne(check: SkuCheck, db: Pool, inspector: PartitionInspector, ref: PartitionRef, audit: PartitionAudit, deadline: number): Promise<void> {
  const id = ref.partitionId;
  const lost = await inspector.lostWrites(ref);
  if (lost) {
    check.report(
      'REDIS_LOST_WRITES',
      lost.mysqlSeq,
      lost.redisSeq,
      `the Redis node came back at change ${lost.redisSeq} of this partition while MySQL held ${lost.mysqlSeq}: ` +
        (audit.state === 'suspect'
          ? 'stopped until restored from MySQL (retried by the server)'
          : `restored from MySQL as of change ${lost.mysqlSeq}; changes after ${lost.mysqlSeq} that the ledger writer had not copied are lost from every store (their orders are unknown)`),
      id,
    );
    if (audit.state === 'suspect') return;
  }
  // A partition whose hash is gone changes no more: all MySQL has of it is the whole story.
  const view = audit.exists ? await viewAtCut(check, db, id, audit.seq, deadline) : await partitionAsOf(db, id, Number.MAX_SAFE_INTEGER);
  if (!view) return;
  if (audit.exists && (view.rows > audit.seq || view.highestSeq > audit.seq)) {
    // MySQL may hold changes made after the cut; Redis going back behind them is what matters.
    const now = await inspector.auditPartition(ref);
    if (view.rows > audit.seq || now.seq < view.highestSeq) {
      check.report('PARTITION_ROLLED_BACK', view.highestSeq, now.seq, 'MySQL holds changes of this partition that Redis has forgotten (a failover lost writes): drain it and check the orders that took from it', id);
      return;
    }
  }
  if (audit.exists && !view.complete) {
    check.report('LEDGER_BEHIND', audit.seq, view.rows, `MySQL still lacks records of this partition up to change ${audit.seq}; not compared (is the ledger writer running?)`, id);
    return;
  }
  if (audit.exists) await checkpointPartition(db, id, audit.seq, view);

  if (audit.held !== view.held) {
    check.report('HELD_MISMATCH', view.held, audit.held, 'units orders hold from this partition differ between MySQL and Redis', id);
  }
  if (audit.avail === view.pool) return;
  const missing = audit.avail < view.pool;
  const d = check.report(
    'POOL_MISMATCH',
    view.pool,
    audit.avail,
    missing ? 'pool units of this partition are missing from Redis' : 'Redis has units of this partition that MySQL never counted',
    id,
  );
  if (!check.repair) return;
  stayForCheck(check, `before repairing partition ${id}`);
  const units = Math.abs(view.pool - audit.avail);
  const reason = missing ? 'pool units missing from Redis returned to base' : 'units MySQL never counted taken off sale';
  const res = await inspector.repairPartition(ref, audit.fix, missing ? 'missing' : 'excess', units, `reconcile:${id}:fix${audit.fix}`, reason, view.highestSeq + 1);
  if (res.kind === 'repaired') {
    d.repaired = true;
    d.detail += missing ? `; ${units} moved from pool to base` : `; ${res.units} taken off sale`;
  } else {
    d.detail += '; another repair of this partition ran since it was read, nothing done: run Reconcile again';
  }
}

/**
 * MySQL's view of the partition at `seq`, asked again until it holds every change up to there or
 * the cut's deadline passes; throws DEADLINE_EXCEEDED or CANCELLED once the caller goes first.
 */
async function viewAtCut(check: SkuCheck, db: Pool, partitionId: string, seq: number, deadline: number): Promise<PartitionLedgerView | undefined> {
  for (;;) {
    stayForCheck(check, `waiting for MySQL to hold partition ${partitionId}'s records up to change ${seq}`);
    const view = await partitionAsOf(db, partitionId, seq);
    if (!view || view.complete || view.rows > seq || Date.now() >= deadline) return view;
    await pause(Math.min(CUT_POLL_MS, deadline - Date.now()), check.caller);
  }
}
