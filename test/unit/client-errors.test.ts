import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { Metadata, status } from '@grpc/grpc-js';
import {
  CancelledError,
  DeadlineExceededError,
  InventoryErrorKind,
  RateLimitedError,
  REASON_KINDS,
  UnavailableError,
  fromServiceError,
  inventoryError,
  kindOf,
} from '../../client/errors';
import { DomainError, DomainErrorKind } from '../../kernel/errors';
import { ERROR_STATUS, toServiceError } from '../../server/domain-errors';
import { resourceExhausted, toStatus } from '../../server/errors';

/** The codes each kind may come with: a server reason sent with another code is a contract change. */
const KIND_CODES: Record<InventoryErrorKind, status[]> = {
  INVALID_ARGUMENT: [status.INVALID_ARGUMENT],
  IDEMPOTENCY_KEY_REUSED: [status.INVALID_ARGUMENT],
  UNKNOWN_SKU: [status.NOT_FOUND],
  NOT_FOUND: [status.NOT_FOUND],
  RESERVATION_ENDED: [status.FAILED_PRECONDITION],
  FAILED_PRECONDITION: [status.FAILED_PRECONDITION],
  ABORTED: [status.ABORTED],
  RATE_LIMITED: [status.RESOURCE_EXHAUSTED],
  OVERLOADED: [status.RESOURCE_EXHAUSTED],
  UNAVAILABLE: [status.UNAVAILABLE],
  DEADLINE_EXCEEDED: [status.DEADLINE_EXCEEDED],
  CANCELLED: [status.CANCELLED],
  UNAUTHENTICATED: [status.UNAUTHENTICATED],
  INTERNAL: [status.INTERNAL, status.UNIMPLEMENTED],
};

/**
 * Every reason the server's code sends, with its code, read from server/*.ts: the reasons written
 * as literals where errors are made (invalidArgument's third argument and default, unavailable,
 * resourceExhausted, new ServiceError, toStatus's own), and every domain kind through the server's
 * own mapping. A new reason in the server fails the test below until the client knows it.
 */
function serverReasons(): Map<string, status> {
  const found = new Map<string, status>();
  const serverDir = path.resolve(__dirname, '../../../server');
  const source = readdirSync(serverDir)
    .filter((f) => f.endsWith('.ts'))
    .map((f) => readFileSync(path.join(serverDir, f), 'utf8'))
    .join('\n');
  const patterns: Array<[RegExp, (m: RegExpExecArray) => status]> = [
    [/invalidArgument\(.*,\s*'([A-Z_]+)'\)/g, () => status.INVALID_ARGUMENT],
    [/function invalidArgument\([^)]*reason = '([A-Z_]+)'/g, () => status.INVALID_ARGUMENT],
    [/unavailable\(\s*'([A-Z_]+)'/g, () => status.UNAVAILABLE],
    [/resourceExhausted\(\s*'([A-Z_]+)'/g, () => status.RESOURCE_EXHAUSTED],
    [/new ServiceError\(status\.([A-Z_]+),\s*'([A-Z_]+)'/g, (m) => status[m[1] as keyof typeof status]],
    [/REASON_KEY, '([A-Z_]+)'\);\s*return \{ code: status\.([A-Z_]+)/g, (m) => status[m[2] as keyof typeof status]],
  ];
  for (const [pattern, codeOf] of patterns) {
    for (let m = pattern.exec(source); m; m = pattern.exec(source)) {
      const reason = pattern.source.startsWith('new ServiceError') ? m[2] : m[1];
      found.set(reason, codeOf(m));
    }
  }
  for (const kind of Object.keys(ERROR_STATUS) as DomainErrorKind[]) {
    const sent = toStatus(toServiceError(new DomainError(kind, 'x')));
    found.set(String(sent.metadata.get('inventory-error-reason')[0]), sent.code);
  }
  return found;
}

describe('client errors: every reason the server sends is a typed error', () => {
  const reasons = serverReasons();

  it('finds the server reasons (the scan still matches the server code)', () => {
    for (const reason of ['INVALID_FIELD', 'DUPLICATE_SKU', 'UNDECODABLE_REQUEST', 'SKU_RATE_LIMITED', 'OVERLOADED', 'DEPENDENCY_TIMEOUT', 'UNAUTHENTICATED', 'INTERNAL', 'UNKNOWN_SKU']) {
      assert.ok(reasons.has(reason), `${reason} not found in server/*.ts`);
    }
  });

  it('maps each (code, reason) the server sends to the class of its kind, with a code the kind allows', () => {
    for (const [reason, code] of reasons) {
      assert.ok(Object.hasOwn(REASON_KINDS, reason), `the client does not know the server's reason ${reason} (client/errors.ts REASON_KINDS)`);
      const err = inventoryError({ code, reason, details: 'x' });
      assert.equal(err.kind, REASON_KINDS[reason], reason);
      assert.equal(err.reason, reason);
      assert.ok(KIND_CODES[err.kind].includes(code), `${reason} is sent as ${status[code]}, which kind ${err.kind} does not expect`);
    }
  });

  it('knows no reason the server does not send', () => {
    for (const reason of Object.keys(REASON_KINDS)) assert.ok(reasons.has(reason), `${reason} is in REASON_KINDS but the server never sends it`);
  });

  it('reads reason, field and the retry hint from the trailers of a server failure', () => {
    const sent = toStatus(toServiceError(new DomainError('IDEMPOTENCY_KEY_REUSED', 'order o-1 was reserved with other items')));
    const err = fromServiceError({ ...sent, message: '' }, { attempts: 2 });
    assert.equal(err.kind, 'IDEMPOTENCY_KEY_REUSED');
    assert.equal(err.field, 'order_id');
    assert.equal(err.details, 'order o-1 was reserved with other items');
    assert.equal(err.attempts, 2);
    assert.match(err.message, /^INVALID_ARGUMENT \(IDEMPOTENCY_KEY_REUSED\): order o-1/);

    // The server's own answer, so a renamed trailer key on either side fails here.
    const limited = fromServiceError(toStatus(resourceExhausted('SKU_RATE_LIMITED', 'slow down', 250, 'items[1].sku_id')));
    assert.ok(limited instanceof RateLimitedError);
    assert.equal(limited.retryAfterMs, 250);
    assert.equal(limited.field, 'items[1].sku_id');
  });

  it('types failures without a reason by their code: the transport, a local deadline, a new reason', () => {
    assert.ok(fromServiceError({ code: status.UNAVAILABLE, details: 'No connection established', metadata: new Metadata() }) instanceof UnavailableError);
    assert.ok(inventoryError({ code: status.DEADLINE_EXCEEDED, details: 'Deadline exceeded' }) instanceof DeadlineExceededError);
    assert.ok(inventoryError({ code: status.CANCELLED, details: 'Cancelled on client' }) instanceof CancelledError);
    assert.equal(kindOf(status.NOT_FOUND, 'SOMETHING_NEW'), 'NOT_FOUND');
    assert.equal(kindOf(status.DATA_LOSS), 'INTERNAL');
    assert.equal(fromServiceError(new TypeError('cannot serialize')).kind, 'INTERNAL');
  });
});
