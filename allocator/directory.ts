/**
 * What the reservation path needs of the partition registry: the local, watched view (read on the
 * hot path, no etcd round trip) and a way to deregister an exhausted partition. The etcd-backed
 * RegistryCache and RegistryWriteQueue (registry/) provide them.
 */
export interface DirectoryPartition {
  readonly sku: string;
  readonly partitionId: string;
  readonly node: string;
  readonly shard: number;
  readonly epoch: number;
}

export interface DirectorySku {
  readonly sku: string;
  readonly perUserLimit: number;
}

export interface PartitionDirectory {
  /** Live partitions of a SKU (the same array until it changes). */
  partitions(sku: string): readonly DirectoryPartition[];
  sku(sku: string): DirectorySku | undefined;
  /** Stop routing to a partition at once; the registry watch confirms later. */
  forget(sku: string, partitionId: string): void;
}

export interface PartitionDeregistrar {
  /** Conditional on the epoch: never removes a newer registration. */
  removePartition(sku: string, partitionId: string, epoch: number): Promise<unknown>;
}
