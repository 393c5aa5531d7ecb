import { performance } from 'node:perf_hooks';
import { ClientClosedError, Etcd3, IKeyValue, IRangeResponse, IWatchResponse, Namespace, Watcher } from 'etcd3';
import { Logger } from '../kernel/logger';
import { admissionKey, compareRevisions, decodeAdmission, decodePartition, decodeSku, encodeAdmission, encodePartition, encodeSku, nextRevision, parseKey, partitionKey, samePartition, skuKey } from './codec';
import { RegistryEmitter } from './emitter';
import { isEtcdUnavailable } from './errors';
import { AdmissionEntry, PartitionEntry, RegistrySnapshot, SkuEntry } from './types';

export interface RegistryCacheEvents {
  /** A partition appeared, or its registration changed (new epoch, node, ...): route to this entry. */
  'partition-added': (entry: PartitionEntry) => void;
  /** A partition left the registry (or was forgotten locally): stop routing to it. */
  'partition-removed': (entry: PartitionEntry) => void;
  /** A SKU entry was created, replaced or (entry undefined) deleted. */
  'sku-changed': (entry: SkuEntry | undefined, sku: string) => void;
  /** A full re-list was applied (at start, and after a watch etcd cancelled); the differences came as events before it. */
  'reloaded': (revision: string) => void;
  /** The watch is live again: etcd acknowledged it, changes now arrive as they happen. */
  'connected': () => void;
  /** The watch is no longer live (stream broken, etcd unreachable, or watch cancelled, e.g. by compaction); the cache serves its last state and resumes or resyncs. */
  'disconnected': (err: Error) => void;
  /** A background failure worth a look: a watch cancelled by etcd, a value that does not parse, a re-list refused. Logged when nobody listens. */
  'error': (err: Error) => void;
}

export interface RegistryCacheOptions {
  /** First delay before a resync after the watch is lost, ms; doubles on each failed try. Default 200. */
  readonly resyncBackoffMs?: number;
  /** Upper bound of that delay, ms. Default 5000. */
  readonly maxResyncBackoffMs?: number;
  /** Deadline of each re-list, ms. Default 10000. */
  readonly listTimeoutMs?: number;
}

/** The partitions, SKU entry and admission limit of one SKU. `list` is rebuilt (and frozen) only when they change. */
interface SkuSlot {
  readonly partitions: Map<string, PartitionEntry>;
  list: readonly PartitionEntry[];
  entry: SkuEntry | undefined;
  admission: AdmissionEntry | undefined;
}

interface RevisionWaiter {
  readonly revision: string;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

const NO_PARTITIONS: readonly PartitionEntry[] = Object.freeze([]);

/**
 * The registry as this server sees it: loaded with one range read, then kept current by a watch of
 * the whole namespace from the loaded revision + 1. A broken watch stream (its member killed or cut
 * off from the leader, etcd unreachable) is resumed, with backoff, from the revision after the last
 * one applied, on whichever member answers: etcd replays what happened meanwhile, so nothing is
 * missed and a cluster's servers do not all re-list at once when a member goes. A watch etcd
 * cancels (compaction past that revision, which etcd3 reports as 'error' and never resumes) or one
 * that delivered what cannot be applied leads to a full re-list and a new watch; the differences
 * are emitted as events, so listeners also learn what changed while the cache was cut off.
 * Meanwhile the last state keeps being served.
 */
export class RegistryCache extends RegistryEmitter<RegistryCacheEvents> {
  private readonly ns: Namespace;
  private readonly slots = new Map<string, SkuSlot>();
  /** Keys dropped by forget(), with the mod revision at or below which a put must not bring them back. */
  private readonly forgotten = new Map<string, string>();
  private readonly waiters = new Set<RevisionWaiter>();
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly listTimeoutMs: number;

  private rev = '0';
  /**
   * Where a resumed watch starts: the revision after the last one applied. Tracked here, not by
   * etcd3's own reconnect, which resumes after the revision in the watch's creation answer (the
   * member's current one) and so skips the history a watch from an older revision had not yet sent.
   */
  private resumeAt = '1';
  private running = false;
  /** Bumped by every resync and by stop(), so callbacks of a superseded attempt do nothing. */
  private generation = 0;
  private watcher: Watcher | undefined;
  private resyncTimer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private live = false;
  /** performance.now() when the cache was last known to be in sync; -Infinity before the first load. */
  private syncedAt = -Infinity;
  private firstLoad: { resolve: () => void; reject: (err: Error) => void } | undefined;

  constructor(etcd: Etcd3, namespace: string, logger: Logger, options: RegistryCacheOptions = {}) {
    super(logger);
    this.ns = etcd.namespace(namespace);
    this.initialBackoffMs = options.resyncBackoffMs ?? 200;
    this.maxBackoffMs = Math.max(this.initialBackoffMs, options.maxResyncBackoffMs ?? 5000);
    this.listTimeoutMs = options.listTimeoutMs ?? 10_000;
    this.backoffMs = this.initialBackoffMs;
  }

  /**
   * Loads the whole namespace, then watches from the loaded revision + 1. Resolves after the first
   * load. While etcd cannot be reached it keeps trying, with backoff (bound it with a timer if the
   * caller must not wait); it rejects when etcd refuses the read (e.g. permission denied) or on stop().
   */
  start(): Promise<void> {
    if (this.running) return Promise.reject(new Error('RegistryCache already started'));
    this.running = true;
    return new Promise<void>((resolve, reject) => {
      this.firstLoad = { resolve, reject };
      void this.resync();
    });
  }

  /** Cancels the watch and any pending resync; the last state stays readable. */
  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.generation++;
    clearTimeout(this.resyncTimer);
    if (this.live) this.syncedAt = performance.now();
    this.live = false;
    const stopped = new Error('RegistryCache stopped');
    this.firstLoad?.reject(stopped);
    this.firstLoad = undefined;
    for (const waiter of this.waiters) this.settle(waiter, stopped);
    await this.dropWatcher();
  }

  /** Live partitions of a SKU; the same frozen array until they change, so the hot path allocates nothing. */
  partitions(sku: string): readonly PartitionEntry[] {
    return this.slots.get(sku)?.list ?? NO_PARTITIONS;
  }

  sku(sku: string): SkuEntry | undefined {
    return this.slots.get(sku)?.entry;
  }

  /** The SKU's own admission limit, if an operator set one; the same frozen object until it changes. */
  admission(sku: string): AdmissionEntry | undefined {
    return this.slots.get(sku)?.admission;
  }

  /** Every SKU with at least one partition, an entry or an admission limit. */
  skus(): IterableIterator<string> {
    return this.slots.keys();
  }

  /**
   * Drops one partition from the local view at once (the caller just found it exhausted); the watch
   * confirms later. A put at or below the revision the cache had for it (a stale re-list, say, while
   * the delete is still queued) does not bring it back; a re-registration, at a higher revision, does.
   */
  forget(sku: string, partitionId: string): void {
    const key = partitionKey(sku, partitionId);
    const entry = this.slots.get(sku)?.partitions.get(partitionId);
    const floor = entry?.modRevision ?? this.rev;
    const previous = this.forgotten.get(key);
    if (previous === undefined || compareRevisions(floor, previous) > 0) this.forgotten.set(key, floor);
    if (entry) this.removePartition(entry);
  }

  /** The etcd revision the cache reflects. */
  get revision(): string {
    return this.rev;
  }

  /** ms since the cache was last known to be in sync: 0 while the watch is live, Infinity before the first load. */
  staleness(): number {
    return this.live ? 0 : performance.now() - this.syncedAt;
  }

  /** Everything the cache holds, as etcd had it (keys, values, revisions): what a restart can serve from. */
  snapshot(): RegistrySnapshot {
    const entries: RegistrySnapshot['entries'][number][] = [];
    for (const [sku, slot] of this.slots) {
      if (slot.entry) entries.push({ key: skuKey(sku), value: encodeSku(sku, slot.entry.perUserLimit), modRevision: slot.entry.modRevision });
      if (slot.admission) entries.push({ key: admissionKey(sku), value: encodeAdmission(sku, slot.admission), modRevision: slot.admission.modRevision });
      for (const p of slot.partitions.values()) entries.push({ key: partitionKey(sku, p.partitionId), value: encodePartition(p), modRevision: p.modRevision });
    }
    return { revision: this.rev, savedAt: Date.now(), entries };
  }

  /**
   * Serves a snapshot saved earlier while etcd cannot be reached at start: its entries are applied
   * as puts (the first re-list that reaches etcd then emits the differences), and the cache counts
   * as synced when the snapshot was saved. Routing from an old snapshot sells nothing twice: every
   * take is checked against the partition in Redis, which refuses one that is retired or drained.
   */
  serveSnapshot(snapshot: RegistrySnapshot): void {
    for (const e of snapshot.entries) {
      this.applyPut(e.key, { key: Buffer.from(e.key), value: Buffer.from(e.value), mod_revision: e.modRevision } as IKeyValue);
    }
    this.syncedAt = performance.now() - Math.max(0, Date.now() - snapshot.savedAt);
  }

  /**
   * Resolves once the cache has applied revision `rev` (read-your-writes, tests). Only revisions of
   * this namespace's own writes are sure to arrive: a revision written elsewhere may never be seen.
   */
  waitForRevision(rev: string, timeoutMs = 10_000): Promise<void> {
    if (compareRevisions(this.rev, rev) >= 0) return Promise.resolve();
    if (!this.running) return Promise.reject(new Error('RegistryCache is not running'));
    return new Promise<void>((resolve, reject) => {
      const waiter: RevisionWaiter = {
        revision: rev,
        resolve,
        reject,
        timer: setTimeout(
          () => this.settle(waiter, new Error(`registry cache did not reach revision ${rev} within ${timeoutMs} ms (at ${this.rev})`)),
          timeoutMs,
        ),
      };
      this.waiters.add(waiter);
    });
  }

  /** One re-list and re-watch attempt; a failure schedules the next with a longer delay. */
  private async resync(): Promise<void> {
    const generation = ++this.generation;
    void this.dropWatcher();
    let snapshot: IRangeResponse;
    try {
      snapshot = await this.ns.getAll().prefix('').options({ deadline: Date.now() + this.listTimeoutMs }).exec();
    } catch (err) {
      if (generation !== this.generation) return;
      if (!isEtcdUnavailable(err) && (this.firstLoad || err instanceof ClientClosedError)) {
        // Refused, not unreachable (bad credentials, client closed): trying again will not help.
        const firstLoad = this.firstLoad;
        this.firstLoad = undefined;
        await this.stop();
        if (firstLoad) firstLoad.reject(err as Error);
        else this.notify('error', err as Error);
        return;
      }
      this.logger.warn({ err, retryInMs: this.backoffMs }, 'registry cache: re-list failed');
      if (!isEtcdUnavailable(err)) this.notify('error', err as Error);
      this.scheduleResync();
      return;
    }
    if (generation !== this.generation) return;
    this.applySnapshot(snapshot);
    this.firstLoad?.resolve();
    this.firstLoad = undefined;
    this.notify('reloaded', this.rev);
    // A 'reloaded' listener may have stopped the cache.
    if (generation === this.generation) this.watch(nextRevision(snapshot.header.revision));
  }

  private scheduleResync(): void {
    this.schedule(() => void this.resync());
  }

  private schedule(next: () => void): void {
    clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(next, this.backoffMs);
    this.backoffMs = Math.min(this.backoffMs * 2, this.maxBackoffMs);
  }

  private watch(startRevision: string): void {
    this.resumeAt = startRevision;
    const watcher = this.ns.watch().prefix('').startRevision(startRevision).watcher();
    this.watcher = watcher;
    watcher
      .on('connected', () => watcher === this.watcher && this.markLive())
      .on('data', (res) => watcher === this.watcher && this.applyWatch(res))
      .on('disconnected', (err) => watcher === this.watcher && this.lose(err, 'resume'))
      .on('error', (err) => {
        if (watcher !== this.watcher) return;
        this.notify('error', new Error(`registry watch cancelled by etcd, re-listing: ${err.message}`, { cause: err }));
        this.lose(err, 'relist');
      });
  }

  /** The watch is gone: keep serving, count staleness from now, resume the watch (or re-list) after a delay. */
  private lose(err: Error, then: 'resume' | 'relist'): void {
    this.logger.warn({ err, revision: this.rev, resumeAt: this.resumeAt }, `registry cache: watch lost, will ${then === 'resume' ? 'resume it' : 're-list'}`);
    if (this.live) {
      this.live = false;
      this.syncedAt = performance.now();
      this.notify('disconnected', err);
    }
    void this.dropWatcher();
    if (then === 'relist') this.scheduleResync();
    else this.scheduleResume();
  }

  /** A new watch from the revision after the last one applied, unless a resync or stop() comes first. */
  private scheduleResume(): void {
    const generation = this.generation;
    this.schedule(() => generation === this.generation && this.watch(this.resumeAt));
  }

  private markLive(): void {
    this.backoffMs = this.initialBackoffMs;
    if (this.live) return;
    this.live = true;
    this.notify('connected');
  }

  /** Cancels the current etcd3 watcher; its late events are ignored (they fail the `watcher === this.watcher` test). */
  private async dropWatcher(): Promise<void> {
    const watcher = this.watcher;
    this.watcher = undefined;
    if (!watcher) return;
    // cancel() waits for etcd to confirm, which never comes over a dead stream: do not wait long.
    let timer: NodeJS.Timeout | undefined;
    const giveUp = new Promise<void>((resolve) => (timer = setTimeout(resolve, 1000)));
    await Promise.race([watcher.cancel().catch(() => undefined), giveUp]);
    clearTimeout(timer);
  }

  private applyWatch(res: IWatchResponse): void {
    try {
      for (const event of res.events) {
        const key = event.kv.key.toString();
        if (event.type === 'Put') this.applyPut(key, event.kv);
        else this.applyDelete(key, event.kv.mod_revision);
      }
      // A catch-up batch's header carries the member's current revision, past the events it holds
      // (etcd sends history in batches): only an answer without events (progress) vouches for it.
      const applied = res.events.length > 0 ? res.events[res.events.length - 1].kv.mod_revision : res.header.revision;
      this.resumeAt = nextRevision(applied);
      this.advance(applied);
    } catch (err) {
      // etcd3 would rethrow this from setImmediate and crash the process; start over instead.
      this.notify('error', err as Error);
      this.lose(err as Error, 'relist');
    }
  }

  /** Makes the state equal to a full listing, emitting the differences. */
  private applySnapshot(snapshot: IRangeResponse): void {
    const present = new Set<string>();
    for (const kv of snapshot.kvs) {
      const key = kv.key.toString();
      present.add(key);
      this.applyPut(key, kv);
    }
    const revision = snapshot.header.revision;
    for (const key of [...this.knownKeys()]) if (!present.has(key)) this.applyDelete(key, revision);
    for (const key of this.forgotten.keys()) if (!present.has(key)) this.forgotten.delete(key);
    this.syncedAt = performance.now();
    this.advance(revision);
  }

  private *knownKeys(): Generator<string> {
    for (const [sku, slot] of this.slots) {
      for (const partitionId of slot.partitions.keys()) yield partitionKey(sku, partitionId);
      if (slot.entry) yield skuKey(sku);
      if (slot.admission) yield admissionKey(sku);
    }
  }

  private applyPut(key: string, kv: IKeyValue): void {
    const parsed = parseKey(key);
    if (!parsed) return;
    const floor = this.forgotten.get(key);
    if (floor !== undefined) {
      if (compareRevisions(kv.mod_revision, floor) <= 0) return;
      this.forgotten.delete(key);
    }
    const slot = this.slot(parsed.sku);
    try {
      if (parsed.kind === 'sku') {
        const entry = decodeSku(key, parsed.sku, kv.value, kv.mod_revision);
        const old = slot.entry;
        if (old && compareRevisions(entry.modRevision, old.modRevision) <= 0) return;
        slot.entry = entry;
        if (old?.perUserLimit !== entry.perUserLimit) this.notify('sku-changed', entry, parsed.sku);
        return;
      }
      if (parsed.kind === 'admission') {
        const entry = decodeAdmission(key, parsed.sku, kv.value, kv.mod_revision);
        const old = slot.admission;
        if (old && compareRevisions(entry.modRevision, old.modRevision) <= 0) return;
        slot.admission = entry;
        return;
      }
      const entry = decodePartition(key, parsed.sku, parsed.partitionId, kv.value, kv.mod_revision);
      const old = slot.partitions.get(parsed.partitionId);
      if (old && compareRevisions(entry.modRevision, old.modRevision) <= 0) return;
      slot.partitions.set(parsed.partitionId, entry);
      slot.list = freezeList(slot.partitions);
      if (!old || !samePartition(old, entry)) this.notify('partition-added', entry);
    } catch (err) {
      // Unreadable value: route nowhere near it.
      this.notify('error', err as Error);
      this.applyDelete(key, kv.mod_revision);
    } finally {
      this.prune(parsed.sku);
    }
  }

  /** Removes a key deleted at `revision`, unless what the cache has for it is newer. */
  private applyDelete(key: string, revision: string): void {
    const parsed = parseKey(key);
    if (!parsed) return;
    this.forgotten.delete(key);
    const slot = this.slots.get(parsed.sku);
    if (!slot) return;
    if (parsed.kind === 'sku') {
      if (slot.entry && compareRevisions(slot.entry.modRevision, revision) <= 0) {
        slot.entry = undefined;
        this.prune(parsed.sku);
        this.notify('sku-changed', undefined, parsed.sku);
      }
      return;
    }
    if (parsed.kind === 'admission') {
      if (slot.admission && compareRevisions(slot.admission.modRevision, revision) <= 0) {
        slot.admission = undefined;
        this.prune(parsed.sku);
      }
      return;
    }
    const entry = slot.partitions.get(parsed.partitionId);
    if (entry && compareRevisions(entry.modRevision, revision) <= 0) this.removePartition(entry);
  }

  private removePartition(entry: PartitionEntry): void {
    const slot = this.slots.get(entry.sku);
    if (!slot?.partitions.delete(entry.partitionId)) return;
    slot.list = freezeList(slot.partitions);
    this.prune(entry.sku);
    this.notify('partition-removed', entry);
  }

  private slot(sku: string): SkuSlot {
    let slot = this.slots.get(sku);
    if (!slot) this.slots.set(sku, (slot = { partitions: new Map(), list: NO_PARTITIONS, entry: undefined, admission: undefined }));
    return slot;
  }

  private prune(sku: string): void {
    const slot = this.slots.get(sku);
    if (slot && slot.partitions.size === 0 && !slot.entry && !slot.admission) this.slots.delete(sku);
  }

  private advance(revision: string): void {
    if (compareRevisions(revision, this.rev) > 0) this.rev = revision;
    if (this.live) this.syncedAt = performance.now();
    for (const waiter of this.waiters) if (compareRevisions(this.rev, waiter.revision) >= 0) this.settle(waiter);
  }

  private settle(waiter: RevisionWaiter, err?: Error): void {
    clearTimeout(waiter.timer);
    this.waiters.delete(waiter);
    if (err) waiter.reject(err);
    else waiter.resolve();
  }
}

function freezeList(partitions: Map<string, PartitionEntry>): readonly PartitionEntry[] {
  if (partitions.size === 0) return NO_PARTITIONS;
  return Object.freeze([...partitions.values()].sort((a, b) => (a.partitionId < b.partitionId ? -1 : a.partitionId > b.partitionId ? 1 : 0)));
}
