import { Logger } from '../kernel/logger';
import { RegistryEmitter } from './emitter';
import { isEtcdUnavailable } from './errors';
import { Registry } from './registry';
import { NewPartition, RemoveResult } from './types';

/** A partition write, as it waits in the queue. */
export type RegistryWrite =
  | { readonly kind: 'register'; readonly entry: NewPartition }
  | { readonly kind: 'remove'; readonly sku: string; readonly partitionId: string; readonly epoch: number };

/** What a write came to once etcd answered. */
export type RegistryWriteResult = RemoveResult | 'registered';

export interface RegistryWriteQueueEvents {
  /** etcd could not be reached: the write waits in memory and is replayed, in order, with backoff. */
  'queued': (write: RegistryWrite, err: Error) => void;
  /** A queued write reached etcd; `result` is what the direct call would have returned. */
  'replayed': (write: RegistryWrite, result: RegistryWriteResult) => void;
  /** A queued write that etcd refused for good (e.g. StaleEpochError) was dropped. Logged when nobody listens. */
  'error': (err: Error, write: RegistryWrite) => void;
}

export interface RegistryWriteQueueOptions {
  /** First delay between replays while etcd stays unreachable, ms; doubles each time. Default 200. */
  readonly backoffMs?: number;
  /** Upper bound of that delay, ms. Default 5000. */
  readonly maxBackoffMs?: number;
  /** Writes held at most; beyond, calls reject. Default 10000 (identical writes count once). */
  readonly maxPending?: number;
  /** How long drain() waits for the queue to empty before it rejects, ms. Default 5000, so a shutdown never hangs on a dead etcd. */
  readonly drainTimeoutMs?: number;
}

interface Drainer {
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

/**
 * Partition writes that survive an etcd outage. A call tries etcd at once and settles with the
 * answer; when etcd cannot be reached, the write is queued in memory and settles with 'queued', and
 * the queue replays it in order until etcd takes it. Replays are safe: both writes are conditional on
 * the epoch (Registry). Losing the queue with the process is acceptable: a lost delete is re-issued
 * by the next server that finds the partition exhausted.
 */
export class RegistryWriteQueue extends RegistryEmitter<RegistryWriteQueueEvents> {
  private readonly queue: Array<{ readonly write: RegistryWrite; readonly id: string }> = [];
  private readonly queuedIds = new Set<string>();
  private readonly drainers = new Set<Drainer>();
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly maxPending: number;
  private readonly drainTimeoutMs: number;
  private backoffMs: number;
  private timer: NodeJS.Timeout | undefined;
  private replaying = false;
  private closed = false;

  constructor(private readonly registry: Registry, logger: Logger, options: RegistryWriteQueueOptions = {}) {
    super(logger);
    this.initialBackoffMs = options.backoffMs ?? 200;
    this.maxBackoffMs = Math.max(this.initialBackoffMs, options.maxBackoffMs ?? 5000);
    this.maxPending = options.maxPending ?? 10_000;
    this.drainTimeoutMs = options.drainTimeoutMs ?? 5000;
    this.backoffMs = this.initialBackoffMs;
  }

  /** Registers a partition (see Registry.registerPartition), or queues the registration. */
  registerPartition(entry: NewPartition): Promise<'registered' | 'queued'> {
    return this.submit({ kind: 'register', entry }) as Promise<'registered' | 'queued'>;
  }

  /** Removes a partition if it still has `epoch` (see Registry.removePartition), or queues the removal. */
  removePartition(sku: string, partitionId: string, epoch: number): Promise<RemoveResult | 'queued'> {
    return this.submit({ kind: 'remove', sku, partitionId, epoch }) as Promise<RemoveResult | 'queued'>;
  }

  /** Writes waiting for etcd. */
  pending(): number {
    return this.queue.length;
  }

  /**
   * Replays now (not after the current backoff) and resolves once nothing is queued; rejects if the
   * queue is still not empty after `timeoutMs`, or when the queue is closed.
   */
  drain(timeoutMs = this.drainTimeoutMs): Promise<void> {
    if (this.queue.length === 0) return Promise.resolve();
    if (this.closed) return Promise.reject(new Error(`RegistryWriteQueue closed with ${this.queue.length} writes queued`));
    const drained = new Promise<void>((resolve, reject) => {
      const drainer: Drainer = {
        resolve,
        reject,
        timer: setTimeout(() => this.settleDrainer(drainer, new Error(`${this.queue.length} registry writes still queued after ${timeoutMs} ms`)), timeoutMs),
      };
      this.drainers.add(drainer);
    });
    this.replaySoon(0);
    return drained;
  }

  /** Stops replaying; writes still queued are dropped (and logged), later calls reject. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    if (this.queue.length > 0) {
      this.logger.warn({ dropped: this.queue.map((q) => q.write) }, 'registry write queue closed with writes still queued');
    }
    const err = new Error(`RegistryWriteQueue closed with ${this.queue.length} writes queued`);
    for (const drainer of this.drainers) this.settleDrainer(drainer, err);
  }

  private async submit(write: RegistryWrite): Promise<RegistryWriteResult | 'queued'> {
    if (this.closed) throw new Error('RegistryWriteQueue is closed');
    // Behind queued writes, a new one waits its turn: order is what makes replays right.
    if (this.queue.length > 0) return this.enqueue(write, new Error('queued behind earlier registry writes'));
    try {
      return await this.apply(write);
    } catch (err) {
      if (this.closed || !isEtcdUnavailable(err)) throw err;
      return this.enqueue(write, err as Error);
    }
  }

  private enqueue(write: RegistryWrite, reason: Error): 'queued' {
    const id = JSON.stringify(write);
    if (!this.queuedIds.has(id)) {
      if (this.queue.length >= this.maxPending) throw new Error(`registry write queue is full (${this.maxPending} writes)`);
      this.queue.push({ write, id });
      this.queuedIds.add(id);
      this.logger.warn({ err: reason, write, pending: this.queue.length }, 'registry write queued until etcd answers');
      this.notify('queued', write, reason);
    }
    this.replaySoon(this.backoffMs);
    return 'queued';
  }

  private async apply(write: RegistryWrite): Promise<RegistryWriteResult> {
    if (write.kind === 'remove') return this.registry.removePartition(write.sku, write.partitionId, write.epoch);
    await this.registry.registerPartition(write.entry);
    return 'registered';
  }

  /** Schedules a replay in `delayMs`, or sooner if one is already due; never two at once. */
  private replaySoon(delayMs: number): void {
    if (this.closed || this.replaying) return;
    if (this.timer && delayMs > 0) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.replay();
    }, delayMs);
  }

  /** Applies queued writes in order until the queue is empty or etcd fails again. */
  private async replay(): Promise<void> {
    this.replaying = true;
    let retryInMs: number | undefined;
    try {
      while (this.queue.length > 0 && !this.closed) {
        const { write, id } = this.queue[0];
        try {
          const result = await this.apply(write);
          this.shift(id);
          this.backoffMs = this.initialBackoffMs;
          this.notify('replayed', write, result);
        } catch (err) {
          if (this.closed) return;
          if (isEtcdUnavailable(err)) {
            this.logger.debug({ err, pending: this.queue.length, retryInMs: this.backoffMs }, 'registry write replay failed');
            retryInMs = this.backoffMs;
            this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
            return;
          }
          this.shift(id);
          this.notify('error', err as Error, write);
        }
      }
      for (const drainer of this.drainers) this.settleDrainer(drainer);
    } finally {
      this.replaying = false;
      if (retryInMs !== undefined) this.replaySoon(retryInMs);
    }
  }

  private shift(id: string): void {
    this.queue.shift();
    this.queuedIds.delete(id);
  }

  private settleDrainer(drainer: Drainer, err?: Error): void {
    clearTimeout(drainer.timer);
    this.drainers.delete(drainer);
    if (err) drainer.reject(err);
    else drainer.resolve();
  }
}
