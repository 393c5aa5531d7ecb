import { Discrepancy, Partition, partitionStateToJSON } from '../../gen/inventory/v1/admin.pb';
import { Reservation, ReservationItem, StockLevel, reservationStateToJSON } from '../../gen/inventory/v1/inventory.pb';
import { Column } from './output';

/**
 * The CLI's shapes of the API's messages: every field present (protobuf JSON would drop zeros),
 * enums by their short names (LIVE, RESERVED). The same object fills a table row and the `--json`
 * answer, so the two never disagree.
 */

/** `PARTITION_STATE_LIVE` → `LIVE`. */
function shortName(full: string, prefix: string): string {
  return full.startsWith(prefix) ? full.slice(prefix.length) : full;
}

export interface StockView {
  skuId: string;
  onHand: number;
  base: number;
  pool: number;
  reserved: number;
  committed: number;
  sellable: number;
  partitions: number;
  perUserLimit: number;
  shortfall: number;
  /** Reserves per second each server admits; 0 is unlimited. */
  admissionRate: number;
  admissionBurst: number;
  admissionOverridden: boolean;
  stale: boolean;
  totalsAsOfMs: number;
}

export function stockView(level: StockLevel): StockView {
  return {
    skuId: level.skuId,
    onHand: level.onHand,
    base: level.base,
    pool: level.pool,
    reserved: level.reserved,
    committed: level.committed,
    sellable: level.sellable,
    partitions: level.partitions,
    perUserLimit: level.perUserLimit,
    shortfall: level.shortfall,
    admissionRate: level.admission?.reservesPerSecond ?? 0,
    admissionBurst: level.admission?.burst ?? 0,
    admissionOverridden: level.admission?.overridden ?? false,
    stale: level.stale,
    totalsAsOfMs: level.totalsAsOfMs,
  };
}

export const STOCK_COLUMNS: readonly Column<StockView>[] = [
  { header: 'sku', cell: (s) => s.skuId },
  { header: 'on_hand', cell: (s) => s.onHand },
  { header: 'base', cell: (s) => s.base },
  { header: 'pool', cell: (s) => s.pool },
  { header: 'reserved', cell: (s) => s.reserved },
  { header: 'committed', cell: (s) => s.committed },
  { header: 'sellable', cell: (s) => s.sellable },
  { header: 'partitions', cell: (s) => s.partitions },
  { header: 'per_user', cell: (s) => (s.perUserLimit === 0 ? '-' : String(s.perUserLimit)) },
  { header: 'shortfall', cell: (s) => s.shortfall },
  { header: 'reserves/s', cell: (s) => (s.admissionRate === 0 ? '-' : `${s.admissionRate} (burst ${s.admissionBurst})`) },
  { header: 'stale', cell: (s) => (s.stale ? `since ${new Date(s.totalsAsOfMs).toISOString()}` : 'no') },
];

export interface PartitionView {
  partitionId: string;
  skuId: string;
  redisNode: string;
  capacity: number;
  avail: number;
  state: string;
  epoch: number;
}

export function partitionView(partition: Partition): PartitionView {
  return {
    partitionId: partition.partitionId,
    skuId: partition.skuId,
    redisNode: partition.redisNode,
    capacity: partition.capacity,
    avail: partition.avail,
    state: shortName(partitionStateToJSON(partition.state), 'PARTITION_STATE_'),
    epoch: partition.epoch,
  };
}

export const PARTITION_COLUMNS: readonly Column<PartitionView>[] = [
  { header: 'sku', cell: (p) => p.skuId },
  { header: 'partition', cell: (p) => p.partitionId },
  { header: 'redis node', cell: (p) => p.redisNode },
  { header: 'capacity', cell: (p) => p.capacity },
  { header: 'avail', cell: (p) => p.avail },
  { header: 'state', cell: (p) => p.state },
  { header: 'epoch', cell: (p) => p.epoch },
];

export interface DiscrepancyView {
  skuId: string;
  partitionId: string;
  orderId: string;
  kind: string;
  expected: number;
  actual: number;
  detail: string;
  repaired: boolean;
}

export function discrepancyView(d: Discrepancy): DiscrepancyView {
  return {
    skuId: d.skuId,
    partitionId: d.partitionId,
    orderId: d.orderId,
    kind: d.kind,
    expected: d.expected,
    actual: d.actual,
    detail: d.detail,
    repaired: d.repaired,
  };
}

export const DISCREPANCY_COLUMNS: readonly Column<DiscrepancyView>[] = [
  { header: 'sku', cell: (d) => d.skuId },
  { header: 'partition / order', cell: (d) => d.partitionId || d.orderId || '-' },
  { header: 'kind', cell: (d) => d.kind },
  { header: 'expected (MySQL)', cell: (d) => d.expected },
  { header: 'actual (Redis)', cell: (d) => d.actual },
  { header: 'repaired', cell: (d) => (d.repaired ? 'yes' : 'no') },
  { header: 'detail', cell: (d) => d.detail },
];

/** The API's item as it is: plain fields, all present. */
export type ReservationItemView = ReservationItem;

export interface ReservationView {
  orderId: string;
  state: string;
  userId: string;
  createdAt: string;
  expiresAt: string | null;
  confirmedAt: string | null;
  endedAt: string | null;
  items: ReservationItemView[];
}

/** Milliseconds since 1970 as ISO time; null for the API's 0 (not happened). */
function isoOrNull(ms: number): string | null {
  return ms === 0 ? null : new Date(ms).toISOString();
}

export function reservationView(reservation: Reservation): ReservationView {
  return {
    orderId: reservation.orderId,
    state: shortName(reservationStateToJSON(reservation.state), 'RESERVATION_STATE_'),
    userId: reservation.userId,
    createdAt: new Date(reservation.createdAtMs).toISOString(),
    expiresAt: isoOrNull(reservation.expiresAtMs),
    confirmedAt: isoOrNull(reservation.confirmedAtMs),
    endedAt: isoOrNull(reservation.endedAtMs),
    items: reservation.items,
  };
}

export const RESERVATION_ITEM_COLUMNS: readonly Column<ReservationItemView>[] = [
  { header: 'sku', cell: (i) => i.skuId },
  { header: 'quantity', cell: (i) => i.quantity },
  { header: 'released', cell: (i) => i.releasedQuantity },
  { header: 'shipped', cell: (i) => i.shippedQuantity },
  { header: 'from partitions', cell: (i) => i.pieces.map((p) => `${p.partitionId} x${p.quantity}`).join(', ') },
];
