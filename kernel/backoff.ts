/**
 * Exponential back-off with jitter: `minMs` doubled per failure, capped at `maxMs`, then scaled by
 * a random 0.5–1 so that processes failing together do not retry together.
 */
export function backoffMs(failures: number, minMs: number, maxMs: number): number {
  const ms = Math.min(maxMs, minMs * 2 ** Math.min(failures, 20));
  return ms * (0.5 + Math.random() * 0.5);
}

/** Sleeps that `cancel()` cuts short, for a loop that must not wait out its back-off when it stops. */
export class Sleeper {
  private readonly wakers = new Set<() => void>();
  private cancelled = false;

  /** Resolves after `ms`, or at once when cancelled (now or later). */
  sleep(ms: number): Promise<void> {
    if (this.cancelled || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const wake = () => {
        clearTimeout(timer);
        this.wakers.delete(wake);
        resolve();
      };
      const timer = setTimeout(wake, ms);
      this.wakers.add(wake);
    });
  }

  /** Ends every sleep, and every later one at once. */
  cancel(): void {
    this.cancelled = true;
    for (const wake of this.wakers) wake();
  }
}
