import { Etcd3, IKeyValue, IOperation, Namespace } from 'etcd3';
import { Logger } from '../kernel/logger';
import {
  PARTITIONS_PREFIX,
  admissionKey,
  decodeAdmission,
  encodeAdmission,
  SKUS_PREFIX,
  decodePartition,
  decodeSku,
  encodePartition,
  encodeSku,
  parseKey,
  partitionKey,
  skuKey,
  skuPartitionsPrefix,
} from './codec';
import { RegistryConflictError, StaleEpochError, etcdFailure, mayHaveApplied } from './errors';
import { AdmissionEntry, NewPartition, PartitionEntry, RemoveResult, SkuEntry } from './types';

export interface RegistryOptions {
  /** Deadline of each etcd call, ms. Default 5000: an unreachable etcd fails the call (and a write queue can take it) instead of hanging it. */
  readonly callTimeoutMs?: number;
  /** Conditional writes tried before giving up on a key that keeps changing. Default 5. */
  readonly casAttempts?: number;
}

/** What a compare-and-swap step decides from the key's current value: a final answer, or a write. */
type Decision<R> = { readonly done: R } | { readonly write: IOperation; readonly result: R };

/**
 * Direct reads and writes of the registry in etcd. Partition writes are conditional (compare the
 * key's mod_revision read just before), so neither etcd3's automatic retries nor a late replay can
 * delete a re-registered partition or roll one back to an older epoch.
 */
export class Registry {
  private readonly kv: Namespace;
  private readonly callTimeoutMs: number;
  private readonly casAttempts: number;

  constructor(etcd: Etcd3, namespace: string, private readonly logger: Logger, options: RegistryOptions = {}) {
    this.kv = etcd.namespace(namespace);
    this.callTimeoutMs = options.callTimeoutMs ?? 5000;
    this.casAttempts = options.casAttempts ?? 5;
  }

  /** Creates or replaces a SKU entry. */
  async putSku(sku: string, value: { perUserLimit: number }): Promise<void> {
    await this.kv.put(skuKey(sku)).value(encodeSku(sku, value.perUserLimit)).options(this.call()).exec().catch(rethrowTyped);
  }

  async getSku(sku: string): Promise<SkuEntry | undefined> {
    const key = skuKey(sku);
    const kv = await this.read(key);
    return kv && decodeSku(key, sku, kv.value, kv.mod_revision);
  }

  /** Sets a SKU's admission limit (an absolute value: a replay writes the same). */
  async putAdmission(sku: string, limit: { reservesPerSecond: number; burst: number }): Promise<void> {
    await this.kv.put(admissionKey(sku)).value(encodeAdmission(sku, limit)).options(this.call()).exec();
  }

  /**
   * Removes a SKU's admission limit, so servers apply their default; removing an absent one is a
   * no-op. Conditional on the revision first read: a limit set again meanwhile (a newer call) stays.
   */
  async deleteAdmission(sku: string): Promise<void> {
    const key = admissionKey(sku);
    let seen: string | undefined;
    await this.compareAndSwap<void>(key, (current) => {
      if (!current || (seen !== undefined && current.mod_revision !== seen)) return { done: undefined };
      seen = current.mod_revision;
      return { write: this.kv.delete().key(key), result: undefined };
    });
  }

  async getAdmission(sku: string): Promise<AdmissionEntry | undefined> {
    const key = admissionKey(sku);
    const kv = await this.read(key);
    return kv && decodeAdmission(key, sku, kv.value, kv.mod_revision);
  }

  /**
   * Registers (creates or replaces) a partition. Refuses, with StaleEpochError, to replace a
   * registration of a newer epoch: a registration replayed late must not roll a partition back. A
   * registration identical to the stored one writes nothing, so replays are free.
   */
  async registerPartition(entry: NewPartition): Promise<void> {
    const key = partitionKey(entry.sku, entry.partitionId);
    const value = encodePartition(entry);
    await this.compareAndSwap<void>(key, (current) => {
      if (current) {
        if (current.value.equals(Buffer.from(value))) return { done: undefined };
        const stored = this.decodeStored(key, entry.sku, entry.partitionId, current);
        if (stored && stored.epoch > entry.epoch) throw new StaleEpochError(entry.sku, entry.partitionId, entry.epoch, stored.epoch);
      }
      return { write: this.kv.put(key).value(value), result: undefined };
    });
  }

  /**
   * Removes a partition only if it still has the epoch the caller saw: 'deleted' by this call,
   * 'absent' when it is already gone (someone else removed it, or our own delete applied but its
   * answer was lost), 'changed' when another epoch is registered (left alone). A failure that leaves
   * unknown whether the delete applied is settled by re-reading the key; if that fails too, the
   * original error is thrown.
   */
  async removePartition(sku: string, partitionId: string, epoch: number): Promise<RemoveResult> {
    const key = partitionKey(sku, partitionId);
    return this.compareAndSwap<RemoveResult>(key, (current) => {
      if (!current) return { done: 'absent' };
      if (this.decodeStored(key, sku, partitionId, current)?.epoch !== epoch) return { done: 'changed' };
      return { write: this.kv.delete().key(key), result: 'deleted' };
    });
  }

  /** Partitions of one SKU, or of all SKUs; values that do not parse are logged and skipped. */
  async listPartitions(sku?: string): Promise<PartitionEntry[]> {
    const kvs = await this.list(sku === undefined ? PARTITIONS_PREFIX : skuPartitionsPrefix(sku));
    const entries: PartitionEntry[] = [];
    for (const kv of kvs) {
      const key = kv.key.toString();
      const parsed = parseKey(key);
      const entry = parsed?.kind === 'partition' ? this.decodeStored(key, parsed.sku, parsed.partitionId, kv) : undefined;
      if (entry) entries.push(entry);
    }
    return entries;
  }

  async listSkus(): Promise<SkuEntry[]> {
    const entries: SkuEntry[] = [];
    for (const kv of await this.list(SKUS_PREFIX)) {
      const key = kv.key.toString();
      const parsed = parseKey(key);
      if (parsed?.kind !== 'sku') continue;
      try {
        entries.push(decodeSku(key, parsed.sku, kv.value, kv.mod_revision));
      } catch (err) {
        this.logger.warn({ err, key }, 'registry: skipping a SKU entry that does not parse');
      }
    }
    return entries;
  }

  /**
   * Read the key, decide, write only if the key's mod_revision is still the one read (0 = absent),
   * and on a lost race decide again from the value the transaction's else branch read.
   */
  private async compareAndSwap<R>(key: string, decide: (current: IKeyValue | undefined) => Decision<R>): Promise<R> {
    let current = await this.read(key);
    for (let attempt = 0; ; attempt++) {
      const decision = decide(current);
      if ('done' in decision) return decision.done;
      if (attempt === this.casAttempts) throw new RegistryConflictError(key, attempt);
      try {
        const res = await this.kv
          .if(key, 'Mod', '==', current?.mod_revision ?? '0')
          .then(decision.write)
          .else(this.kv.get(key))
          .options(this.call())
          .commit();
        if (res.succeeded) return decision.result;
        current = res.responses[0]?.response_range?.kvs[0];
      } catch (err) {
        if (!mayHaveApplied(err)) throw etcdFailure(err);
        this.logger.warn({ err, key }, 'registry: write outcome unknown, re-reading the key');
        current = await this.read(key).catch(() => Promise.reject(etcdFailure(err)));
      }
    }
  }

  private async read(key: string): Promise<IKeyValue | undefined> {
    const res = await this.kv.get(key).options(this.call()).exec().catch(rethrowTyped);
    return res.kvs[0];
  }

  private async list(prefix: string): Promise<IKeyValue[]> {
    const res = await this.kv.getAll().prefix(prefix).options(this.call()).exec().catch(rethrowTyped);
    return res.kvs;
  }

  /** The stored partition, or undefined (logged) when its value does not parse. */
  private decodeStored(key: string, sku: string, partitionId: string, kv: IKeyValue): PartitionEntry | undefined {
    try {
      return decodePartition(key, sku, partitionId, kv.value, kv.mod_revision);
    } catch (err) {
      this.logger.warn({ err, key }, 'registry: partition value does not parse');
      return undefined;
    }
  }

  private call(): { deadline: number } {
    return { deadline: Date.now() + this.callTimeoutMs };
  }
}

/** etcd's errors leave the registry typed (kernel/dependency.ts). */
function rethrowTyped(err: unknown): never {
  throw etcdFailure(err);
}
