/** What the soak (soak.ts) is given and finds: in a file of its own, so that the run's context can hold it. */

export interface SoakOptions {
  readonly durationMs: number;
  /** Orders started per second. */
  readonly rate: number;
  readonly retentionS: number;
  /** Orders of the bytes-per-order probe. */
  readonly probeOrders: number;
}

export interface SoakSample {
  readonly atS: number;
  readonly usedBytes: number;
  /** Orders in Redis whose retention runs (ended, or confirmed), and holds still open. */
  readonly retained: number;
  readonly open: number;
}

export interface SoakResult {
  readonly options: SoakOptions;
  readonly probe: { orders: number; baseBytes: number; perLiveOrder: number; perRetainedOrder: number; leftAfterForgetting: number };
  readonly orders: { started: number; reserved: number; paid: number; cancelled: number; errors: number; skipped: number };
  readonly samples: SoakSample[];
  /** (max - min) / mean of used_memory over the second half of the load. */
  readonly spread: number;
  readonly flat: boolean;
  readonly reconcile: string[];
  readonly books: string[];
}
