/**
 * The process-wide cap on InventoryService calls in progress. Past the cap a new call is refused at
 * once (RESOURCE_EXHAUSTED, OVERLOADED) instead of queueing: a server that accepts everything lets
 * every caller's latency grow without bound once calls arrive faster than it answers. Pure
 * counting, so it is tested without a server.
 */
export class InFlightLimit {
  private current = 0;
  /** Moving average of how long an admitted call takes, ms: when a slot is likely to free up. */
  private meanMs = MIN_RETRY_MS;

  /** @param limit calls in progress at most; 0 means no limit. */
  constructor(readonly limit: number) {}

  /** Counts a new call in, or answers false (count unchanged) when the cap is reached. */
  tryEnter(): boolean {
    if (this.limit > 0 && this.current >= this.limit) return false;
    this.current++;
    return true;
  }

  /** Counts an admitted call out, with how long it took. */
  leave(elapsedMs: number): void {
    this.current--;
    this.meanMs += (elapsedMs - this.meanMs) * 0.05;
  }

  get inFlight(): number {
    return this.current;
  }

  /**
   * When a refused caller should try again: one to two mean call durations (a slot frees about
   * every duration / limit, but callers refused together must not all come back in the same
   * millisecond), within 10 ms .. 1 s.
   */
  retryAfterMs(random: () => number = Math.random): number {
    const ms = Math.ceil(this.meanMs * (1 + random()));
    return ms < MIN_RETRY_MS ? MIN_RETRY_MS : ms > MAX_RETRY_MS ? MAX_RETRY_MS : ms;
  }
}

const MIN_RETRY_MS = 10;
const MAX_RETRY_MS = 1000;
