import { RegistryValueError } from './errors';
import { AdmissionEntry, NewPartition, PartitionEntry, SkuEntry } from './types';

/*
 * The one module that knows the registry's key layout and value format. Keys are relative to the
 * registry namespace (etcd3's namespace() adds and strips it):
 *   partitions/<sku>/<partitionId>  →  JSON NewPartition
 *   skus/<sku>                      →  JSON { sku, perUserLimit }
 *   admission/<sku>                 →  JSON { sku, reservesPerSecond, burst }
 * The admission limit has a key of its own so that SetStock (which rewrites the SKU entry) and
 * SetAdmissionLimit never overwrite each other's field.
 * modRevision is never stored: etcd keeps it beside the value.
 */

export const PARTITIONS_PREFIX = 'partitions/';
export const SKUS_PREFIX = 'skus/';
export const ADMISSION_PREFIX = 'admission/';

/** SKU and partition ids: the characters that can never split a key or escape the namespace. */
const ID = /^[A-Za-z0-9._:-]{1,128}$/;

export type RegistryKey =
  | { readonly kind: 'partition'; readonly sku: string; readonly partitionId: string }
  | { readonly kind: 'sku'; readonly sku: string }
  | { readonly kind: 'admission'; readonly sku: string };

export function partitionKey(sku: string, partitionId: string): string {
  return `${PARTITIONS_PREFIX}${checkId('sku', sku)}/${checkId('partitionId', partitionId)}`;
}

export function skuPartitionsPrefix(sku: string): string {
  return `${PARTITIONS_PREFIX}${checkId('sku', sku)}/`;
}

export function skuKey(sku: string): string {
  return `${SKUS_PREFIX}${checkId('sku', sku)}`;
}

export function admissionKey(sku: string): string {
  return `${ADMISSION_PREFIX}${checkId('sku', sku)}`;
}

/** Parses a key of the layout above; anything else under the namespace is not ours and is skipped. */
export function parseKey(key: string): RegistryKey | undefined {
  const parts = key.split('/');
  if (parts.length === 3 && `${parts[0]}/` === PARTITIONS_PREFIX && ID.test(parts[1]) && ID.test(parts[2])) {
    return { kind: 'partition', sku: parts[1], partitionId: parts[2] };
  }
  if (parts.length === 2 && `${parts[0]}/` === SKUS_PREFIX && ID.test(parts[1])) {
    return { kind: 'sku', sku: parts[1] };
  }
  if (parts.length === 2 && `${parts[0]}/` === ADMISSION_PREFIX && ID.test(parts[1])) {
    return { kind: 'admission', sku: parts[1] };
  }
  return undefined;
}

export function encodePartition(entry: NewPartition): string {
  const { sku, partitionId, node, shard, epoch, createdAt } = checkPartition(entry);
  return JSON.stringify({ sku, partitionId, node, shard, epoch, createdAt });
}

/** The frozen entry a value stands for; the key, not the value, names the SKU and partition. */
export function decodePartition(key: string, sku: string, partitionId: string, value: Buffer, modRevision: string): PartitionEntry {
  const { node, shard, epoch, createdAt } = parseObject(key, value) as Partial<NewPartition>;
  try {
    return Object.freeze({ ...checkPartition({ sku, partitionId, node, shard, epoch, createdAt } as NewPartition), modRevision });
  } catch (err) {
    throw new RegistryValueError(key, (err as Error).message);
  }
}

export function encodeSku(sku: string, perUserLimit: number): string {
  return JSON.stringify({ sku: checkId('sku', sku), perUserLimit: checkCount('perUserLimit', perUserLimit) });
}

export function decodeSku(key: string, sku: string, value: Buffer, modRevision: string): SkuEntry {
  const raw = parseObject(key, value) as { perUserLimit?: unknown };
  try {
    return Object.freeze({ sku, perUserLimit: checkCount('perUserLimit', raw.perUserLimit), modRevision });
  } catch (err) {
    throw new RegistryValueError(key, (err as Error).message);
  }
}

export function encodeAdmission(sku: string, limit: { reservesPerSecond: number; burst: number }): string {
  return JSON.stringify({
    sku: checkId('sku', sku),
    reservesPerSecond: checkCount('reservesPerSecond', limit.reservesPerSecond),
    burst: checkCount('burst', limit.burst),
  });
}

export function decodeAdmission(key: string, sku: string, value: Buffer, modRevision: string): AdmissionEntry {
  const raw = parseObject(key, value) as { reservesPerSecond?: unknown; burst?: unknown };
  try {
    return Object.freeze({ sku, reservesPerSecond: checkCount('reservesPerSecond', raw.reservesPerSecond), burst: checkCount('burst', raw.burst), modRevision });
  } catch (err) {
    throw new RegistryValueError(key, (err as Error).message);
  }
}

/** Whether two partition entries say the same thing, whatever revision each was read at. */
export function samePartition(a: PartitionEntry, b: PartitionEntry): boolean {
  return a.node === b.node && a.shard === b.shard && a.epoch === b.epoch && a.createdAt === b.createdAt;
}

/**
 * Orders two etcd revisions, decimal int64 strings as etcd3 returns them ('' counts as 0). Compared
 * as strings, so no revision ever goes through a lossy double.
 */
export function compareRevisions(a: string, b: string): number {
  const x = a === '' ? '0' : a;
  const y = b === '' ? '0' : b;
  if (x.length !== y.length) return x.length < y.length ? -1 : 1;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** The revision after `rev`, where a watch that has seen `rev` starts. */
export function nextRevision(rev: string): string {
  return (BigInt(rev === '' ? '0' : rev) + 1n).toString();
}

function checkPartition(entry: NewPartition): NewPartition {
  checkId('sku', entry.sku);
  checkId('partitionId', entry.partitionId);
  if (typeof entry.node !== 'string' || !/^\S+:\d{1,5}$/.test(entry.node)) {
    throw new TypeError(`node must be host:port, got ${JSON.stringify(entry.node)}`);
  }
  checkCount('shard', entry.shard);
  checkCount('epoch', entry.epoch);
  checkCount('createdAt', entry.createdAt);
  return entry;
}

function checkId(field: string, value: unknown): string {
  if (typeof value !== 'string' || !ID.test(value)) {
    throw new TypeError(`${field} must be 1-128 of [A-Za-z0-9._:-], got ${JSON.stringify(value)}`);
  }
  return value;
}

function checkCount(field: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
    throw new TypeError(`${field} must be an integer >= 0, got ${JSON.stringify(value)}`);
  }
  return value;
}

function parseObject(key: string, value: Buffer): object {
  let raw: unknown;
  try {
    raw = JSON.parse(value.toString('utf8'));
  } catch {
    throw new RegistryValueError(key, 'value is not JSON');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new RegistryValueError(key, 'value is not a JSON object');
  return raw;
}
