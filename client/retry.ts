import { status } from '@grpc/grpc-js';

/**
 * When and how long to wait before sending a failed call again. Pure: the clock and the random
 * source are passed in, so the schedule is tested without a server (test/unit/client-retry.test.ts).
 */
export interface RetryPolicy {
  /** Attempts in all, the first one included; 1 turns retries off. Default 5. */
  readonly maxAttempts: number;
  /** Ceiling of the first retry's wait; it doubles per retry. Default 50 ms. */
  readonly initialBackoffMs: number;
  /** The ceiling never grows past this. Default 2000 ms. */
  readonly maxBackoffMs: number;
  /**
   * Also retry RESOURCE_EXHAUSTED answers that carry the server's `retry-after-ms` hint (admission
   * control: nothing was done, so the same call is safe), waiting at least that long. Default true.
   */
  readonly honourPushback: boolean;
}

export const DEFAULT_RETRY_POLICY: RetryPolicy = Object.freeze({
  maxAttempts: 5,
  initialBackoffMs: 50,
  maxBackoffMs: 2000,
  honourPushback: true,
});

/** An attempt is not started with less time than this left before the caller's deadline. */
export const MIN_ATTEMPT_MS = 20;

/** What the retry decision needs to know of a failed attempt. */
export interface AttemptFailure {
  readonly code: status;
  /** The server's `retry-after-ms` hint, when it sent one. */
  readonly retryAfterMs?: number;
}

/**
 * Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
 * a uniform wait between 0 and min(maxBackoffMs, initialBackoffMs * 2^retry), so that clients
 * failing together spread their retries instead of returning in step. `retry` counts from 0.
 */
export function fullJitterBackoffMs(policy: RetryPolicy, retry: number, random: () => number = Math.random): number {
  const ceiling = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** Math.min(retry, 30));
  return random() * ceiling;
}

/**
 * The wait before the next attempt, or undefined when the call ends with this failure: the code is
 * not one that may be retried, the attempts are used up, or the wait would leave the next attempt
 * less than MIN_ATTEMPT_MS before the caller's deadline (`msLeft` from now), so retries never
 * outlast the deadline.
 *
 * Only UNAVAILABLE and DEADLINE_EXCEEDED are retried on backoff: the server did not finish the
 * call (or its answer was lost), and every call is idempotent on its ids, so sending the same
 * request again applies it at most once. RESOURCE_EXHAUSTED is retried after the server's hint,
 * spread by up to one backoff step, when the policy honours pushback. Everything else is an answer.
 */
export function retryDelayMs(
  policy: RetryPolicy,
  failure: AttemptFailure,
  attemptsMade: number,
  msLeft: number,
  random: () => number = Math.random,
): number | undefined {
  if (attemptsMade >= policy.maxAttempts) return undefined;
  const backoff = fullJitterBackoffMs(policy, attemptsMade - 1, random);
  let delay: number;
  if (failure.code === status.UNAVAILABLE || failure.code === status.DEADLINE_EXCEEDED) delay = backoff;
  else if (failure.code === status.RESOURCE_EXHAUSTED && policy.honourPushback && failure.retryAfterMs !== undefined) delay = failure.retryAfterMs + backoff;
  else return undefined;
  return msLeft - delay >= MIN_ATTEMPT_MS ? delay : undefined;
}

/** Checks a caller's policy once, naming the bad option. */
export function checkRetryPolicy(policy: RetryPolicy, where: string): RetryPolicy {
  const whole = (name: keyof RetryPolicy, min: number) => {
    const value = policy[name];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
      throw new TypeError(`${where}.${name}: must be a whole number >= ${min}, got ${String(value)}`);
    }
  };
  whole('maxAttempts', 1);
  whole('initialBackoffMs', 0);
  whole('maxBackoffMs', 0);
  return policy;
}
