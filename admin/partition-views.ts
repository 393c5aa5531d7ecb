import type { Pool } from 'mysql2/promise';
import { PartitionInspector } from '../allocator/inspector';
import { PartitionRow, listPartitionRows } from '../store/partitions';
import { OperatorRegistry, PartitionView } from './types';

/** A partition as MySQL records it or the registry lists it (a registration MySQL lacks has no state or capacity). */
export type KnownPartitionRow = Omit<PartitionRow, 'state'> & { state?: PartitionRow['state'] };

/**
 * What an operator sees of a SKU's partitions: every partition MySQL or the registry knows of, with
 * its live avail, state and epoch read from Redis.
 */
export class PartitionViews {
  constructor(
    private readonly pool: Pool,
    private readonly inspector: PartitionInspector,
    private readonly registry: OperatorRegistry,
  ) {}

  /** Every partition MySQL or the registry knows of, for one SKU or all. */
  async known(sku?: string): Promise<KnownPartitionRow[]> {
    const rows = await listPartitionRows(this.pool, sku);
    const recorded = new Set(rows.map((r) => r.partitionId));
    const registered = (await this.registry.listPartitions(sku)).filter((e) => !recorded.has(e.partitionId));
    return [...rows, ...registered.map((e) => ({ ...e, capacity: 0 }))];
  }

  /** The partitions (or `only` those) with their Redis state; those Redis does not have ('missing') only when asked. */
  async list(sku: string | undefined, withMissing: boolean, only?: ReadonlySet<string>): Promise<PartitionView[]> {
    const all = await this.known(sku);
    const known = only ? all.filter((p) => only.has(p.partitionId)) : all;
    const states = await this.inspector.partitionStates(known);
    const views = known.map((p, i): PartitionView => {
      const live = states[i];
      return {
        partitionId: p.partitionId,
        sku: p.sku,
        node: p.node,
        shard: p.shard,
        capacity: p.capacity,
        avail: live?.avail ?? 0,
        state: (live?.state as PartitionView['state']) ?? (p.state === 'creating' || p.state === 'aborted' ? p.state : 'missing'),
        epoch: live?.epoch ?? p.epoch,
      };
    });
    return withMissing ? views : views.filter((v) => v.state !== 'missing');
  }

  /**
   * The views of the given partitions of a SKU, in that order. Reads only those in Redis: the SKU's
   * others may be on a node that is down (a top-up carving around it).
   */
  async of(sku: string, ids: readonly string[]): Promise<PartitionView[]> {
    const views = await this.list(sku, true, new Set(ids));
    return ids.map((id) => views.find((v) => v.partitionId === id)).filter((v): v is PartitionView => v !== undefined);
  }
}
