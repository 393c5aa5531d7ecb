import assert from 'node:assert/strict';
import { status } from '@grpc/grpc-js';
import { resolveOptions } from '../../client/options';
import { DEFAULT_RETRY_POLICY, MIN_ATTEMPT_MS, RetryPolicy, checkRetryPolicy, fullJitterBackoffMs, retryDelayMs } from '../../client/retry';

const policy: RetryPolicy = { maxAttempts: 5, initialBackoffMs: 100, maxBackoffMs: 1000, honourPushback: true };
const top = () => 0.999999;
const bottom = () => 0;

describe('client retry schedule: backoff, jitter, budget', () => {
  it('doubles the ceiling per retry up to maxBackoffMs, and waits anywhere below it (full jitter)', () => {
    const ceilings = [0, 1, 2, 3, 4, 10].map((retry) => Math.round(fullJitterBackoffMs(policy, retry, top)));
    assert.deepEqual(ceilings, [100, 200, 400, 800, 1000, 1000]);
    assert.equal(fullJitterBackoffMs(policy, 3, bottom), 0);
    assert.equal(fullJitterBackoffMs(policy, 2, () => 0.5), 200);
    const waits = Array.from({ length: 2000 }, () => fullJitterBackoffMs(policy, 2));
    assert.ok(waits.every((w) => w >= 0 && w < 400));
    assert.ok(Math.min(...waits) < 40 && Math.max(...waits) > 360, 'spread over the whole range');
  });

  it('retries UNAVAILABLE and DEADLINE_EXCEEDED only, on backoff', () => {
    assert.equal(retryDelayMs(policy, { code: status.UNAVAILABLE }, 1, 10_000, () => 0.5), 50);
    assert.equal(retryDelayMs(policy, { code: status.DEADLINE_EXCEEDED }, 2, 10_000, () => 0.5), 100);
    for (const code of [status.INVALID_ARGUMENT, status.NOT_FOUND, status.FAILED_PRECONDITION, status.ABORTED, status.CANCELLED, status.INTERNAL, status.UNAUTHENTICATED, status.UNKNOWN]) {
      assert.equal(retryDelayMs(policy, { code }, 1, 10_000), undefined, status[code]);
    }
  });

  it('retries RESOURCE_EXHAUSTED no earlier than the server asked, only with a hint and when the policy honours it', () => {
    const delay = retryDelayMs(policy, { code: status.RESOURCE_EXHAUSTED, retryAfterMs: 300 }, 1, 10_000, () => 0.5);
    assert.equal(delay, 350, 'the hint plus up to one backoff step of jitter');
    assert.equal(retryDelayMs(policy, { code: status.RESOURCE_EXHAUSTED, retryAfterMs: 300 }, 1, 10_000, bottom), 300);
    assert.equal(retryDelayMs(policy, { code: status.RESOURCE_EXHAUSTED }, 1, 10_000), undefined, 'no hint: an answer');
    assert.equal(retryDelayMs({ ...policy, honourPushback: false }, { code: status.RESOURCE_EXHAUSTED, retryAfterMs: 300 }, 1, 10_000), undefined);
  });

  it('stops after maxAttempts', () => {
    assert.notEqual(retryDelayMs(policy, { code: status.UNAVAILABLE }, 4, 10_000), undefined);
    assert.equal(retryDelayMs(policy, { code: status.UNAVAILABLE }, 5, 10_000), undefined);
    assert.equal(retryDelayMs({ ...policy, maxAttempts: 1 }, { code: status.UNAVAILABLE }, 1, 10_000), undefined);
  });

  it('never waits past the caller deadline: the next attempt needs MIN_ATTEMPT_MS left after the wait', () => {
    // Wait 50 (0.5 of 100): with 50 + MIN_ATTEMPT_MS left it goes, with one ms less it does not.
    assert.equal(retryDelayMs(policy, { code: status.UNAVAILABLE }, 1, 50 + MIN_ATTEMPT_MS, () => 0.5), 50);
    assert.equal(retryDelayMs(policy, { code: status.UNAVAILABLE }, 1, 49 + MIN_ATTEMPT_MS, () => 0.5), undefined);
    assert.equal(retryDelayMs(policy, { code: status.DEADLINE_EXCEEDED }, 1, 0, bottom), undefined, 'the deadline itself passed');
    assert.equal(retryDelayMs(policy, { code: status.RESOURCE_EXHAUSTED, retryAfterMs: 5000 }, 1, 3000, bottom), undefined, 'a hint past the deadline');
  });

  it('checks a policy and the options, naming the bad field', () => {
    assert.equal(checkRetryPolicy(DEFAULT_RETRY_POLICY, 'x'), DEFAULT_RETRY_POLICY);
    assert.throws(() => checkRetryPolicy({ ...policy, maxAttempts: 0 }, 'InventoryClient.retry'), /^TypeError: InventoryClient\.retry\.maxAttempts: must be a whole number >= 1, got 0/);
    assert.throws(() => resolveOptions({ address: 'a:1', timeoutMs: -1 }, 5000, 'InventoryClient'), /InventoryClient\.timeoutMs: must be a positive number/);
    assert.throws(() => resolveOptions({ address: [] }, 5000, 'InventoryClient'), /InventoryClient\.address/);
    assert.throws(() => resolveOptions({ address: ['inventory-1:50051', 'inventory-2:50051'] }, 5000, 'InventoryClient'), /InventoryClient\.address: several addresses must all be IPv4/);
  });

  it('spreads several addresses round robin, unless the caller gives its own service config', () => {
    const several = resolveOptions({ address: ['10.0.0.1:50051', '10.0.0.2:50051'] }, 5000, 'c');
    assert.equal(several.target, 'ipv4:10.0.0.1:50051,10.0.0.2:50051');
    assert.match(String(several.channelOptions['grpc.service_config']), /round_robin/);
    assert.equal(resolveOptions({ address: ['[::1]:1', '[::1]:2'] }, 5000, 'c').target, 'ipv6:[::1]:1,[::1]:2');
    const own = resolveOptions({ address: ['10.0.0.1:1', '10.0.0.2:1'], channelOptions: { 'grpc.service_config': '{}' } }, 5000, 'c');
    assert.equal(own.channelOptions['grpc.service_config'], '{}');
    const one = resolveOptions({ address: 'dns:///inventory:50051' }, 5000, 'c');
    assert.equal(one.target, 'dns:///inventory:50051');
    assert.equal(one.channelOptions['grpc.service_config'], undefined);
    assert.equal(one.timeoutMs, 5000);
    assert.deepEqual(one.retry, DEFAULT_RETRY_POLICY);
  });
});
