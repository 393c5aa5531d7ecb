import { performance } from 'node:perf_hooks';
import { AdmissionLimit } from '../gen/inventory/v1/inventory.pb';
import { resourceExhausted } from './errors';
import { admissionLimit } from './mapping';
import { RateLimit, SkuRateLimiter, UNLIMITED } from './rate-limiter';

/** Per-SKU overrides as every server sees them (the watched registry cache). */
export interface AdmissionOverrides {
  admission(sku: string): RateLimit | undefined;
}

export interface AdmissionDefaults {
  /** 0 = unlimited. */
  readonly admissionReservesPerSecond: number;
  /** 0 = one second's worth. */
  readonly admissionBurst: number;
}

/**
 * Per-SKU admission of Reserves in this process: each SKU's limit is its override from the
 * registry, else the configured default, and a token bucket per SKU enforces it before any Redis
 * call. The rate is per server process: N servers admit up to N times it for the fleet.
 */
export class ReserveAdmission {
  private readonly defaultLimit: RateLimit;
  private readonly limiter: SkuRateLimiter;

  constructor(
    private readonly overrides: AdmissionOverrides,
    defaults: AdmissionDefaults,
    private readonly refused: { inc(): void },
    private readonly clock: () => number = () => performance.now(),
  ) {
    const rate = defaults.admissionReservesPerSecond;
    this.defaultLimit = rate === 0 ? UNLIMITED : Object.freeze({ reservesPerSecond: rate, burst: defaults.admissionBurst || rate });
    this.limiter = new SkuRateLimiter((sku) => this.overrides.admission(sku) ?? this.defaultLimit);
  }

  /**
   * Admits a Reserve of these items (one token of each SKU), or throws RESOURCE_EXHAUSTED
   * SKU_RATE_LIMITED naming the first SKU over its rate, with the time until it admits again.
   * A refused order takes no token from its other SKUs.
   */
  admit(items: readonly { readonly sku: string }[]): void {
    const refusal = this.limiter.admit(items, this.clock());
    if (refusal === undefined) return;
    this.refused.inc();
    const limit = this.overrides.admission(refusal.sku) ?? this.defaultLimit;
    throw resourceExhausted(
      'SKU_RATE_LIMITED',
      `sku ${refusal.sku} is over its admission limit of ${limit.reservesPerSecond} Reserves per second on this server; nothing was reserved, retry after ${refusal.retryAfterMs} ms`,
      refusal.retryAfterMs,
      `items[${refusal.index}].sku_id`,
    );
  }

  /** The limit this server applies to the SKU now (GetStock). */
  effective(sku: string): AdmissionLimit {
    const override = this.overrides.admission(sku);
    return admissionLimit(override ?? this.defaultLimit, override !== undefined);
  }

  /** The limit a SKU without an override gets. */
  get defaults(): RateLimit {
    return this.defaultLimit;
  }
}
