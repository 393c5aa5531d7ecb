import { randomBytes } from 'node:crypto';
import { RedisGateway } from './gateway';

/** Registers a partition in the registry (the etcd-backed Registry or its write queue). */
export interface PartitionRegistrar {
  registerPartition(entry: {
    sku: string;
    partitionId: string;
    node: string;
    shard: number;
    epoch: number;
    createdAt: number;
  }): Promise<unknown>;
}

export interface CreatedPartition {
  readonly sku: string;
  readonly partitionId: string;
  readonly node: string;
  readonly shard: number;
  readonly epoch: number;
  readonly units: number;
}

/**
 * Carves partitions in Redis and registers them, spread round-robin over the Redis nodes (the
 * masters, on Redis Cluster) and, on each node, over its shards. Redis first, registry second: a partition is only routed to once it
 * exists, and a retry with the same ids is idempotent at both steps.
 */
export class PartitionCreator {
  private cursor = 0;

  constructor(private readonly gateway: RedisGateway, private readonly registrar: PartitionRegistrar) {}

  /** Splits `units` as evenly as possible over `count` new partitions, spread over `nodes`. */
  plan(sku: string, units: number, count: number, nodes?: readonly string[]): CreatedPartition[] {
    // Unless the caller names nodes, new stock goes where it can sell now: not onto a node that is down.
    const named = nodes && nodes.length > 0 ? nodes : this.gateway.shards.reachableNodes();
    // A master of a cluster may hold none of the virtual shards (REDIS_SHARDS too small for the slots): nothing can go there.
    const targets = named.filter((node) => this.gateway.shards.shardsOn(node).length > 0);
    if (targets.length === 0) throw new Error(`no virtual shard lives on ${named.join(', ')}`);
    const planned: CreatedPartition[] = [];
    for (let i = 0; i < count; i++) {
      const node = targets[(this.cursor + i) % targets.length];
      const shardsOnNode = this.gateway.shards.shardsOn(node);
      const shard = shardsOnNode[Math.floor((this.cursor + i) / targets.length) % shardsOnNode.length];
      planned.push({ sku, partitionId: newPartitionId(), node, shard, epoch: 1, units: splitShare(units, count, i) });
    }
    this.cursor += count;
    return planned;
  }

  /** Creates planned partitions in Redis, then registers them; safe to repeat. */
  async materialize(planned: readonly CreatedPartition[]): Promise<void> {
    for (const p of planned) {
      await this.gateway.createPartition(p, p.units);
      await this.registrar.registerPartition({ sku: p.sku, partitionId: p.partitionId, node: p.node, shard: p.shard, epoch: p.epoch, createdAt: Date.now() });
    }
  }

  /** Plans and materializes in one go (outside MySQL accounting: demo data and tests). */
  async create(sku: string, units: number, count: number, nodes?: readonly string[]): Promise<CreatedPartition[]> {
    const planned = this.plan(sku, units, count, nodes);
    await this.materialize(planned);
    return planned;
  }
}

/** The i-th of `count` shares of `units`, differing by at most one. */
export function splitShare(units: number, count: number, i: number): number {
  return Math.floor(units / count) + (i < units % count ? 1 : 0);
}

/** Sortable by creation time, unique across servers. */
export function newPartitionId(): string {
  return `p${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}
