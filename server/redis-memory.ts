import type Redis from 'ioredis';
import { Logger } from '../kernel/logger';

/**
 * Redis memory as a first-class figure. Every node runs with `maxmemory-policy noeviction`, so a
 * node at its maxmemory refuses every write: every Reserve whose order or partitions live there
 * fails. The watcher reads `INFO memory` of each node (REDIS_MEMORY_CHECK_MS), keeps the last
 * reading for the gauges (metrics.ts), and tells health (health.ts) which nodes are past the warn
 * ratio (degraded) or full (as good as down for writes). Each crossing is logged once, not each check.
 */

export interface MemoryReading {
  /** INFO memory `used_memory`. */
  readonly usedBytes: number;
  /** INFO memory `maxmemory`; 0: no limit. */
  readonly maxBytes: number;
}

export interface MemoryLimits {
  /** REDIS_MEMORY_WARN_RATIO: past this share of maxmemory, a warning and degraded health. */
  readonly warnRatio: number;
  /** REDIS_MEMORY_FULL_RATIO: from this share on, the node counts as full (writes about to be refused). */
  readonly fullRatio: number;
}

export type MemoryLevel = 'ok' | 'high' | 'full';

/** used_memory and maxmemory out of an `INFO memory` answer; throws when either is missing. */
export function parseMemoryInfo(info: string): MemoryReading {
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:(\\d+)\\r?$`, 'm').exec(info);
    if (!m) throw new Error(`INFO memory answered without ${name}`);
    return Number(m[1]);
  };
  return { usedBytes: field('used_memory'), maxBytes: field('maxmemory') };
}

/** used / maxmemory; 0 when the node has no limit. */
export function memoryRatio(reading: MemoryReading): number {
  return reading.maxBytes > 0 ? reading.usedBytes / reading.maxBytes : 0;
}

export function memoryLevel(reading: MemoryReading, limits: MemoryLimits): MemoryLevel {
  const ratio = memoryRatio(reading);
  return ratio >= limits.fullRatio ? 'full' : ratio >= limits.warnRatio ? 'high' : 'ok';
}

const ADVICE =
  'raise maxmemory (and the machine\'s memory with it), shorten ORDER_RETENTION_SECONDS, or check inventory_forget_backlog_orders (ended orders not yet archived and deleted: MySQL down or the forgetter behind)';

export class RedisMemoryWatch {
  /** Per node: the last reading (undefined while it does not answer) and its level. */
  private readonly state = new Map<string, { reading: MemoryReading | undefined; level: MemoryLevel }>();
  private readonly unlimitedSaid = new Set<string>();

  constructor(
    /** The nodes now: the configured ones, or in cluster mode the masters the cluster has at the moment. */
    private readonly nodes: () => ReadonlyArray<{ readonly node: string; readonly client: Pick<Redis, 'info'> }>,
    private readonly limits: MemoryLimits,
    private readonly logger: Logger,
  ) {}

  /**
   * Reads every node once. A node that does not answer reads as unknown and keeps its level: health
   * already reports it down, and its next answer decides.
   */
  async check(): Promise<void> {
    await Promise.all(
      this.nodes().map(async ({ node, client }) => {
        let reading: MemoryReading | undefined;
        try {
          reading = parseMemoryInfo(await client.info('memory'));
        } catch (err) {
          this.logger.debug({ err, node }, 'redis memory: INFO memory failed');
        }
        const before = this.state.get(node)?.level ?? 'ok';
        const level = reading ? memoryLevel(reading, this.limits) : before;
        this.state.set(node, { reading, level });
        if (reading) this.tell(node, reading, before, level);
      }),
    );
  }

  /** The last reading of each node, for the gauges. */
  readings(): Array<{ node: string; reading: MemoryReading | undefined }> {
    return this.nodes().map(({ node }) => ({ node, reading: this.state.get(node)?.reading }));
  }

  /** Nodes at REDIS_MEMORY_FULL_RATIO or above: writes there are refused (or about to be). */
  fullNodes(): string[] {
    return this.nodes().map(({ node }) => node).filter((node) => this.state.get(node)?.level === 'full');
  }

  /** Degraded lines for health: nodes past the warn ratio and not full (health words full ones itself). */
  notices(): string[] {
    const high = this.nodes().map(({ node }) => node).filter((node) => this.state.get(node)?.level === 'high');
    // No figures in the line: health logs every change of its text, and memory moves every check.
    return high.map((node) => `redis ${node} past ${percent(this.limits.warnRatio)} of its maxmemory: writes will be refused when it is full`);
  }

  private tell(node: string, reading: MemoryReading, before: MemoryLevel, level: MemoryLevel): void {
    const fields = { node, usedBytes: reading.usedBytes, maxmemoryBytes: reading.maxBytes, ratio: Number(memoryRatio(reading).toFixed(3)) };
    if (reading.maxBytes === 0 && !this.unlimitedSaid.has(node)) {
      this.unlimitedSaid.add(node);
      this.logger.warn(fields, `redis ${node} has no maxmemory: Redis will grow until the machine runs out; set maxmemory (with noeviction) so the limit is known and watched`);
    }
    if (level === before) return;
    const usage = `redis ${node} uses ${mib(reading.usedBytes)} of its maxmemory ${mib(reading.maxBytes)} (${percent(memoryRatio(reading))})`;
    const ratios = { warnRatio: this.limits.warnRatio, fullRatio: this.limits.fullRatio };
    if (level === 'full') this.logger.error({ ...fields, ...ratios }, `${usage}: full, its writes are refused (noeviction) and Reserves on it fail; ${ADVICE}`);
    else if (level === 'high' && before === 'ok') this.logger.warn({ ...fields, ...ratios }, `${usage}, past REDIS_MEMORY_WARN_RATIO: writes will be refused when it is full; ${ADVICE}`);
    // Down from full: writes are taken again, and the warning of this rise was given already.
    else if (level === 'high') this.logger.info({ ...fields, ...ratios }, `${usage}, below REDIS_MEMORY_FULL_RATIO again (still past REDIS_MEMORY_WARN_RATIO)`);
    else this.logger.info({ ...fields, ...ratios }, `${usage}, below REDIS_MEMORY_WARN_RATIO again`);
  }
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function percent(ratio: number): string {
  return `${Math.round(ratio * 1000) / 10}%`;
}
