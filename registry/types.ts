/** One registered partition: a slice of a SKU's pool that may sell while its key exists in etcd. */
export interface PartitionEntry {
  readonly sku: string;
  readonly partitionId: string;
  /** Redis node host:port holding the partition hash. */
  readonly node: string;
  /** Virtual shard number (its Redis hash tag); an integer >= 0. */
  readonly shard: number;
  /** Fencing epoch, bumped whenever the partition is recreated/re-owned. */
  readonly epoch: number;
  /** ms since epoch when registered. */
  readonly createdAt: number;
  /** etcd mod_revision of the key as last seen (string, as etcd3 returns it); '' on values not read from etcd. */
  readonly modRevision: string;
}

/** A SKU the service knows; a SKU without an entry is unknown (NOT_FOUND). */
export interface SkuEntry {
  readonly sku: string;
  /** 0 = no limit. */
  readonly perUserLimit: number;
  readonly modRevision: string;
}

/**
 * A SKU's own admission limit (AdminService.SetAdmissionLimit), beside its SKU entry: Reserves each
 * server admits per second (0 = unlimited) and the bucket's size. Absent: the server's default.
 */
export interface AdmissionEntry {
  readonly sku: string;
  readonly reservesPerSecond: number;
  readonly burst: number;
  readonly modRevision: string;
}

/** What a caller hands to registerPartition: the entry before etcd gave it a revision. */
export type NewPartition = Omit<PartitionEntry, 'modRevision'>;

/** Outcome of a conditional removal: deleted by us, already gone, or re-registered with another epoch. */
export type RemoveResult = 'deleted' | 'absent' | 'changed';

/** The registry as one server last saw it, kept on disk to start from while etcd is down (registry/snapshot-file.ts). */
export interface RegistrySnapshot {
  /** The etcd revision the cache had applied. */
  readonly revision: string;
  /** When it was taken, ms since 1970. */
  readonly savedAt: number;
  /** Every key of the namespace the cache knows, relative to the namespace, with its value as etcd stored it. */
  readonly entries: ReadonlyArray<{ readonly key: string; readonly value: string; readonly modRevision: string }>;
}
