import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { ReleaseReason, ReleaseRequest, ReserveRequest } from '../../gen/inventory/v1/inventory.pb';
import { ServiceError } from '../../server/errors';
import { defaultReleaseId, validateRelease, validateReserve, validateSkuIds } from '../../server/validation';

const limits = { maxItemQuantity: 50, maxTtlSeconds: 3600 };

function reserve(partial: Partial<ReserveRequest>) {
  return validateReserve(ReserveRequest.fromPartial({ orderId: 'o-1', items: [{ skuId: 'sku-1', quantity: 1 }], ...partial }), limits);
}

function rejects(fn: () => unknown, field: string, reason = 'INVALID_FIELD') {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ServiceError, String(err));
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.equal(err.field, field);
    assert.equal(err.reason, reason);
    assert.ok(err.message.startsWith(`${field}:`), err.message);
    return true;
  });
}

describe('request validation', () => {
  it('accepts a well-formed reservation', () => {
    const input = reserve({ userId: 'user:42', ttlSeconds: 60, items: [{ skuId: 'a.b_c-1', quantity: 50 }] });
    assert.deepEqual(input, { orderId: 'o-1', items: [{ sku: 'a.b_c-1', quantity: 50 }], userId: 'user:42', ttlSeconds: 60 });
  });

  it('names order_id when it is missing, too long or unsafe', () => {
    rejects(() => reserve({ orderId: '' }), 'order_id');
    rejects(() => reserve({ orderId: 'x'.repeat(129) }), 'order_id');
    rejects(() => reserve({ orderId: 'a{b}' }), 'order_id');
    rejects(() => reserve({ orderId: 'a b' }), 'order_id');
  });

  it('names the item field that is wrong', () => {
    rejects(() => reserve({ items: [] }), 'items');
    rejects(() => reserve({ items: Array.from({ length: 101 }, (_, i) => ({ skuId: `s${i}`, quantity: 1 })) }), 'items');
    rejects(() => reserve({ items: [{ skuId: 'ok', quantity: 1 }, { skuId: '', quantity: 1 }] }), 'items[1].sku_id');
    rejects(() => reserve({ items: [{ skuId: 'ok', quantity: 0 }] }), 'items[0].quantity');
    rejects(() => reserve({ items: [{ skuId: 'ok', quantity: -3 }] }), 'items[0].quantity');
    rejects(() => reserve({ items: [{ skuId: 'ok', quantity: 51 }] }), 'items[0].quantity');
    rejects(() => reserve({ items: [{ skuId: 'ok', quantity: 1 }, { skuId: 'ok', quantity: 2 }] }), 'items[1].sku_id', 'DUPLICATE_SKU');
  });

  it('names user_id and ttl_seconds', () => {
    rejects(() => reserve({ userId: 'bad user' }), 'user_id');
    rejects(() => reserve({ ttlSeconds: 3601 }), 'ttl_seconds');
  });

  it('requires a release reason a caller may give', () => {
    const base = { orderId: 'o-1' };
    rejects(() => validateRelease(ReleaseRequest.fromPartial(base), limits), 'reason');
    rejects(() => validateRelease(ReleaseRequest.fromPartial({ ...base, reason: ReleaseReason.RELEASE_REASON_RECOVERY }), limits), 'reason');
    rejects(() => validateRelease(ReleaseRequest.fromPartial({ ...base, reason: ReleaseReason.UNRECOGNIZED }), limits), 'reason');
    rejects(
      () => validateRelease(ReleaseRequest.fromPartial({ ...base, reason: ReleaseReason.RELEASE_REASON_REFUND, releaseId: '#x' }), limits),
      'release_id',
    );
  });

  it('derives a stable release id that callers cannot collide with', () => {
    const a = defaultReleaseId('REFUND', [{ sku: 'b', quantity: 1 }, { sku: 'a', quantity: 2 }]);
    const b = defaultReleaseId('REFUND', [{ sku: 'a', quantity: 2 }, { sku: 'b', quantity: 1 }]);
    assert.equal(a, b);
    assert.notEqual(a, defaultReleaseId('REFUND', [{ sku: 'a', quantity: 1 }, { sku: 'b', quantity: 1 }]));
    assert.notEqual(a, defaultReleaseId('RISK_CONTROL', [{ sku: 'a', quantity: 2 }, { sku: 'b', quantity: 1 }]));
    assert.ok(a.startsWith('='));
    const input = validateRelease(ReleaseRequest.fromPartial({ orderId: 'o', reason: ReleaseReason.RELEASE_REASON_TIMEOUT }), limits);
    assert.equal(input.releaseId, defaultReleaseId('TIMEOUT', undefined));
    assert.equal(input.items, undefined);
  });

  it('checks GetStock sku ids', () => {
    rejects(() => validateSkuIds('sku_ids', []), 'sku_ids');
    rejects(() => validateSkuIds('sku_ids', ['ok', 'no}']), 'sku_ids[1]');
    assert.deepEqual(validateSkuIds('sku_ids', ['a', 'a', 'b']), ['a', 'b']);
  });
});
