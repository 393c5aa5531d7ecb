import { CreatedPartition } from '../allocator/partitions';
import { Movement } from '../store/ledger-apply';
import { PartitionRow } from '../store/partitions';
import { PlannedPiece } from './types';

/** The ledger movements and partition records the operator's work writes. */

/** A movement the admin path applies to MySQL directly. */
export function adminMovement(
  eventId: string,
  kind: string,
  sku: string,
  qty: number,
  from: Movement['from'],
  to: Movement['to'],
  partitionId?: string,
  reason?: string,
): Movement {
  return { eventId, kind, sku, qty, from, to, partitionId, reason, source: 'admin' };
}

/** What a drain withdrew from a partition: units, the partition seq of its ledger record (0: none), and its state after. */
export interface Withdrawn {
  readonly units: number;
  readonly seq: number;
  readonly state: string;
}

/**
 * A withdrawal's movement as the admin path applies it, under the same event id and partition seq
 * as the record the withdraw script appended to the stream: whichever lands first counts, and
 * either copy tells Reconcile which change of the partition it was.
 */
export function withdrawnMovement(eventId: string, kind: string, sku: string, partitionId: string, w: Withdrawn, to: 'base' | 'outside', reason?: string): Movement {
  return { ...adminMovement(eventId, kind, sku, w.units, 'pool', to, partitionId, reason), partitionSeq: w.seq > 0 ? w.seq : undefined };
}

/** A drain's movement (pool -> base), as withdrawnMovement. */
export function drainMovement(sku: string, partitionId: string, w: Withdrawn): Movement {
  return withdrawnMovement(`drain:${partitionId}`, 'drain', sku, partitionId, w, 'base');
}

export function piece(p: { partitionId: string; node: string; shard: number; epoch: number; units: number }): PlannedPiece {
  return { partitionId: p.partitionId, node: p.node, shard: p.shard, epoch: p.epoch, units: p.units };
}

export function toCreated(sku: string, p: PlannedPiece): CreatedPartition {
  return { sku, ...p };
}

export function partitionRow(p: CreatedPartition): Omit<PartitionRow, 'state'> {
  return { partitionId: p.partitionId, sku: p.sku, node: p.node, shard: p.shard, capacity: p.units, epoch: p.epoch };
}
