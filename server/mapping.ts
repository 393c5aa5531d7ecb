import { Partition as ProtoPartition, PartitionState } from '../gen/inventory/v1/admin.pb';
import { AdmissionLimit, Reservation as ProtoReservation, ReservationState as ProtoState, StockLevel } from '../gen/inventory/v1/inventory.pb';
import { PartitionView } from '../admin/types';
import { Reservation, ReservationState } from '../allocator/types';
import { StockRow } from '../store/stock';
import type { RateLimit } from './rate-limiter';

/** Domain values to proto messages, shared by both services. */

const STATES: Record<ReservationState, ProtoState> = {
  PENDING: ProtoState.RESERVATION_STATE_UNSPECIFIED,
  REJECTED: ProtoState.RESERVATION_STATE_UNSPECIFIED,
  RESERVED: ProtoState.RESERVATION_STATE_RESERVED,
  CONFIRMED: ProtoState.RESERVATION_STATE_CONFIRMED,
  RELEASED: ProtoState.RESERVATION_STATE_RELEASED,
  EXPIRED: ProtoState.RESERVATION_STATE_EXPIRED,
};

export function toProto(r: Reservation): ProtoReservation {
  return {
    orderId: r.orderId,
    state: STATES[r.state],
    items: r.items.map((item) => ({
      skuId: item.sku,
      quantity: item.quantity,
      releasedQuantity: item.released,
      shippedQuantity: item.shipped,
      pieces: item.pieces.map((p) => ({ partitionId: p.partitionId, quantity: p.quantity })),
    })),
    userId: r.userId,
    createdAtMs: r.createdAt,
    expiresAtMs: r.expiresAt,
    confirmedAtMs: r.confirmedAt,
    endedAtMs: r.endedAt,
  };
}

/** A SKU's quantities as MySQL holds them (sellable = base + pool); the admission limit only where GetStock gives it. */
export function stockLevel(
  row: StockRow,
  livePool?: { pool: number; partitions: number; perUserLimit: number },
  freshness: { stale: boolean; asOfMs: number } = { stale: false, asOfMs: Date.now() },
  admission?: AdmissionLimit,
): StockLevel {
  const pool = livePool?.pool ?? row.pool;
  return {
    skuId: row.sku,
    onHand: row.onHand,
    base: row.base,
    pool,
    reserved: row.reserved,
    committed: row.committed,
    sellable: row.base + pool,
    partitions: livePool?.partitions ?? 0,
    // The limit Reserve enforces is the registry's.
    perUserLimit: livePool?.perUserLimit ?? row.perUserLimit,
    shortfall: row.shortfall,
    stale: freshness.stale,
    totalsAsOfMs: freshness.asOfMs,
    admission,
  };
}

/** A SKU's admission limit as the API shows it: the burst is 0 when the rate is unlimited. */
export function admissionLimit(limit: RateLimit, overridden: boolean): AdmissionLimit {
  return { reservesPerSecond: limit.reservesPerSecond, burst: limit.reservesPerSecond > 0 ? limit.burst : 0, overridden };
}

const PARTITION_STATES: Record<PartitionView['state'], PartitionState> = {
  live: PartitionState.PARTITION_STATE_LIVE,
  exhausted: PartitionState.PARTITION_STATE_EXHAUSTED,
  drained: PartitionState.PARTITION_STATE_DRAINED,
  creating: PartitionState.PARTITION_STATE_UNSPECIFIED,
  aborted: PartitionState.PARTITION_STATE_UNSPECIFIED,
  missing: PartitionState.PARTITION_STATE_UNSPECIFIED,
};

export function partition(p: PartitionView): ProtoPartition {
  return {
    partitionId: p.partitionId,
    skuId: p.sku,
    redisNode: p.node,
    capacity: p.capacity,
    avail: p.avail,
    state: PARTITION_STATES[p.state],
    epoch: p.epoch,
  };
}

/** A SKU registered without a MySQL row yet (its partitions were carved outside the store). */
export function emptyRow(sku: string, perUserLimit: number): StockRow {
  return { sku, onHand: 0, base: 0, pool: 0, reserved: 0, committed: 0, shortfall: 0, perUserLimit };
}
