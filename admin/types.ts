import { StockRow } from '../store/stock';

/**
 * The shapes the operator's work shares: what it needs of the registry, what it answers, and the
 * payloads of the intents that carry its work across MySQL, Redis and etcd.
 */

/** What the operator needs of the registry: SKU entries, registrations and conditional removals. */
export interface OperatorRegistry {
  putSku(sku: string, value: { perUserLimit: number }): Promise<void>;
  getSku(sku: string): Promise<{ perUserLimit: number } | undefined>;
  listPartitions(sku?: string): Promise<Array<{ sku: string; partitionId: string; node: string; shard: number; epoch: number }>>;
  registerPartition(entry: { sku: string; partitionId: string; node: string; shard: number; epoch: number; createdAt: number }): Promise<unknown>;
  removePartition(sku: string, partitionId: string, epoch: number): Promise<unknown>;
}

export interface PartitionView {
  readonly partitionId: string;
  readonly sku: string;
  readonly node: string;
  readonly shard: number;
  readonly capacity: number;
  readonly avail: number;
  readonly state: 'live' | 'exhausted' | 'drained' | 'creating' | 'aborted' | 'missing';
  readonly epoch: number;
}

export interface StockChangeResult {
  readonly stock: StockRow;
  readonly shortfall: number;
  readonly replayed: boolean;
}

export interface PreallocateResult {
  readonly partitions: PartitionView[];
  readonly stock: StockRow;
  readonly replayed: boolean;
}

export interface DrainResult {
  readonly returned: number;
  readonly partition: PartitionView;
  readonly stock: StockRow;
  readonly replayed: boolean;
}

export interface RebalanceResult {
  readonly before: PartitionView[];
  readonly after: PartitionView[];
  readonly stock: StockRow;
  readonly replayed: boolean;
}

/** A partition an intent creates or drains. */
export interface PlannedPiece {
  readonly partitionId: string;
  readonly node: string;
  readonly shard: number;
  readonly epoch: number;
  readonly units: number;
}

export interface PreallocatePayload {
  readonly partitions: PlannedPiece[];
}

export interface DrainPayload {
  readonly partition: PlannedPiece;
}

export interface RebalancePayload {
  readonly drain: PlannedPiece[];
  /** Planned new partitions; units settled when `carved` is true. */
  create: PlannedPiece[];
  readonly createFirst: boolean;
  readonly target: number;
  carved: boolean;
  readonly before: PartitionView[];
}
