import { EventEmitter } from 'node:events';
import CircuitBreaker from 'opossum';
import { BreakerOpen, DependencyName, isDependencyFailure } from './dependency';

/** When a breaker opens and how long it stays open (BREAKER_* settings, README). */
export interface BreakerSettings {
  /** Calls in the window before the breaker may open at all. */
  readonly volumeThreshold: number;
  /** Share of failed calls in the window (0-100) that opens it. */
  readonly errorThresholdPercentage: number;
  /** How long it stays open before one trial call is let through (half-open), ms. */
  readonly resetTimeoutMs: number;
  /** The rolling window the share is taken over, ms. */
  readonly rollingWindowMs: number;
}

export const DEFAULT_BREAKER_SETTINGS: BreakerSettings = {
  volumeThreshold: 20,
  errorThresholdPercentage: 50,
  resetTimeoutMs: 2000,
  rollingWindowMs: 10_000,
};

export type BreakerState = 'closed' | 'open' | 'half-open';

/**
 * One long-lived circuit breaker (opossum) in front of one dependency node. Only dependency
 * failures count (DependencyUnavailable and its kinds): business outcomes come back as answers, and
 * a script or SQL error is a bug, not an outage. While open, calls fail at once with BreakerOpen,
 * which names the dependency; after `resetTimeoutMs` one trial call decides. No timeout of its own:
 * every edge already bounds its calls (command timeout, transaction timeout, call deadline).
 */
export class DependencyBreaker {
  private readonly breaker: CircuitBreaker<[() => Promise<unknown>], unknown>;
  private current: BreakerState = 'closed';

  constructor(
    readonly dependency: DependencyName,
    readonly node: string | undefined,
    settings: BreakerSettings,
    onChange: (breaker: DependencyBreaker, state: BreakerState) => void,
    /** Which errors are failures of the dependency; typed ones by default (an edge whose library has its own types says). */
    countsAsFailure: (err: unknown) => boolean = isDependencyFailure,
  ) {
    this.breaker = new CircuitBreaker((work: () => Promise<unknown>) => work(), {
      name: node ? `${dependency} ${node}` : dependency,
      timeout: false,
      volumeThreshold: settings.volumeThreshold,
      errorThresholdPercentage: settings.errorThresholdPercentage,
      resetTimeout: settings.resetTimeoutMs,
      rollingCountTimeout: settings.rollingWindowMs,
      rollingCountBuckets: 10,
      // Latency percentiles and snapshot events cost on every call and nothing reads them.
      rollingPercentilesEnabled: false,
      enableSnapshots: false,
      errorFilter: (err: unknown) => !countsAsFailure(err),
    });
    const to = (state: BreakerState) => () => {
      this.current = state;
      onChange(this, state);
    };
    this.breaker.on('open', to('open'));
    this.breaker.on('halfOpen', to('half-open'));
    this.breaker.on('close', to('closed'));
  }

  get state(): BreakerState {
    return this.current;
  }

  /** True while calls fail fast (open, or half-open with the trial call out). */
  get refusing(): boolean {
    return this.current !== 'closed';
  }

  /** Runs a call to the dependency through the breaker. */
  run<T>(work: () => Promise<T>): Promise<T> {
    if (this.current === 'open') return Promise.reject(this.openError());
    return (this.breaker.fire(work) as Promise<T>).then(undefined, this.rethrow);
  }

  shutdown(): void {
    this.breaker.shutdown();
  }

  private readonly rethrow = (err: unknown): never => {
    // opossum's own refusal (half-open, the trial call still out) becomes ours, naming the node.
    if ((err as { code?: unknown } | null)?.code === 'EOPENBREAKER') throw this.openError();
    throw err;
  };

  private openError(): BreakerOpen {
    return new BreakerOpen(this.dependency, this.node, 'circuit breaker open after repeated failures; the call was not tried');
  }
}

/**
 * Every breaker of a process, one per dependency node, made on first use; a state change is emitted
 * ('change') for the log and the `inventory_breaker_state` gauge.
 */
export class Breakers extends EventEmitter<{ change: [breaker: DependencyBreaker, state: BreakerState] }> {
  private readonly byName = new Map<string, DependencyBreaker>();

  constructor(readonly settings: BreakerSettings = DEFAULT_BREAKER_SETTINGS) {
    super();
  }

  /** The node's breaker; `countsAsFailure` applies when this call makes it. */
  for(dependency: DependencyName, node?: string, countsAsFailure?: (err: unknown) => boolean): DependencyBreaker {
    const name = node ? `${dependency} ${node}` : dependency;
    let breaker = this.byName.get(name);
    if (!breaker) {
      breaker = new DependencyBreaker(dependency, node, this.settings, (b, state) => this.emit('change', b, state), countsAsFailure);
      this.byName.set(name, breaker);
    }
    return breaker;
  }

  all(): DependencyBreaker[] {
    return [...this.byName.values()];
  }

  shutdown(): void {
    for (const breaker of this.byName.values()) breaker.shutdown();
  }
}
