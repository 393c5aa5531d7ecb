import { createHash } from 'node:crypto';
import { LineItem as ProtoLineItem, ReleaseReason as ProtoReleaseReason, ReleaseRequest, ReserveRequest } from '../gen/inventory/v1/inventory.pb';
import { ReserveInput } from '../allocator/reservations';
import { LineItem, ReleaseReason } from '../allocator/types';
import { ID_PATTERN, ID_RULE } from '../kernel/ids';
import { invalidArgument } from './errors';

/**
 * Checks every request before anything is touched. A failure is INVALID_ARGUMENT naming the field
 * by its proto path (`items[2].quantity`), so bad input never changes anything.
 */

export interface Limits {
  readonly maxItemQuantity: number;
  readonly maxTtlSeconds: number;
}

export const MAX_ITEMS = 100;

export function validId(field: string, value: string): string {
  if (!ID_PATTERN.test(value)) throw invalidArgument(field, value === '' ? 'is required' : ID_RULE);
  return value;
}

export function validateReserve(req: ReserveRequest, limits: Limits): ReserveInput {
  const orderId = validId('order_id', req.orderId);
  const items = validItems('items', req.items, limits, true);
  const userId = req.userId === '' ? '' : validId('user_id', req.userId);
  if (req.ttlSeconds > limits.maxTtlSeconds) {
    throw invalidArgument('ttl_seconds', `must be at most ${limits.maxTtlSeconds} (0 for the default)`);
  }
  return { orderId, items, userId, ttlSeconds: req.ttlSeconds };
}

export interface ReleaseInput {
  readonly orderId: string;
  readonly reason: ReleaseReason;
  readonly items: readonly LineItem[] | undefined;
  readonly releaseId: string;
}

const REASONS: Partial<Record<ProtoReleaseReason, ReleaseReason>> = {
  [ProtoReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT]: 'CANCEL_BEFORE_PAYMENT',
  [ProtoReleaseReason.RELEASE_REASON_CANCEL_AFTER_PAYMENT]: 'CANCEL_AFTER_PAYMENT',
  [ProtoReleaseReason.RELEASE_REASON_REFUND]: 'REFUND',
  [ProtoReleaseReason.RELEASE_REASON_RISK_CONTROL]: 'RISK_CONTROL',
  [ProtoReleaseReason.RELEASE_REASON_TIMEOUT]: 'TIMEOUT',
};

export function validateRelease(req: ReleaseRequest, limits: Limits): ReleaseInput {
  const orderId = validId('order_id', req.orderId);
  if (req.reason === ProtoReleaseReason.RELEASE_REASON_RECOVERY) {
    throw invalidArgument('reason', 'RECOVERY is reserved for the server');
  }
  const reason = REASONS[req.reason];
  if (!reason) throw invalidArgument('reason', 'is required: one of CANCEL_BEFORE_PAYMENT, CANCEL_AFTER_PAYMENT, REFUND, RISK_CONTROL, TIMEOUT');
  const items = req.items.length === 0 ? undefined : validItems('items', req.items, limits, false);
  const releaseId = req.releaseId === '' ? defaultReleaseId(reason, items) : validId('release_id', req.releaseId);
  return { orderId, reason, items, releaseId };
}

/**
 * The release id of a release that names none: a digest of what it asks, so an exact replay is
 * applied once. It starts with '=', which callers' ids cannot, so it never meets one of theirs.
 */
export function defaultReleaseId(reason: ReleaseReason, items: readonly LineItem[] | undefined): string {
  const what = items ? [...items].sort((a, b) => (a.sku < b.sku ? -1 : 1)).map((i) => `${i.sku}*${i.quantity}`).join(',') : '*';
  return `=${createHash('sha1').update(`${reason}|${what}`).digest('hex').slice(0, 20)}`;
}

export function validateSkuIds(field: string, skuIds: readonly string[]): string[] {
  if (skuIds.length === 0) throw invalidArgument(field, 'must list at least one SKU');
  if (skuIds.length > MAX_ITEMS) throw invalidArgument(field, `must list at most ${MAX_ITEMS} SKUs`);
  skuIds.forEach((sku, i) => validId(`${field}[${i}]`, sku));
  return [...new Set(skuIds)];
}

function validItems(field: string, items: readonly ProtoLineItem[], limits: Limits, required: boolean): LineItem[] {
  if (items.length === 0 && required) throw invalidArgument(field, 'must hold at least one item');
  if (items.length > MAX_ITEMS) throw invalidArgument(field, `must hold at most ${MAX_ITEMS} items`);
  // Field names (`items[2].sku_id`) are built only for an error: this runs on every Reserve.
  const seen = items.length > 1 ? new Set<string>() : undefined;
  const out: LineItem[] = new Array(items.length);
  for (let i = 0; i < items.length; i++) {
    const item = items[i];
    const sku = item.skuId;
    if (!ID_PATTERN.test(sku)) validId(`${field}[${i}].sku_id`, sku);
    if (seen) {
      if (seen.has(sku)) throw invalidArgument(`${field}[${i}].sku_id`, `${sku} appears twice; one line per SKU`, 'DUPLICATE_SKU');
      seen.add(sku);
    }
    const q = item.quantity;
    if (!Number.isInteger(q) || q < 1 || q > limits.maxItemQuantity) {
      throw invalidArgument(`${field}[${i}].quantity`, `must be a whole number from 1 to ${limits.maxItemQuantity}, got ${q}`);
    }
    out[i] = { sku, quantity: q };
  }
  return out;
}

/** A whole number within [min, max] (int64 fields arrive as JS numbers). */
export function validCount(field: string, value: number, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw invalidArgument(field, `must be a whole number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

export function validReason(field: string, value: string): string {
  if (value.length > 256) throw invalidArgument(field, 'must be at most 256 characters');
  return value;
}
