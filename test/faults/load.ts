import * as grpc from '@grpc/grpc-js';
import { InventoryServiceClient, ReleaseReason, ReleaseRequest, ReserveOutcome, ReserveRequest, ReserveResponse, ShortageReason } from '../../gen/inventory/v1/inventory.pb';
import { REASON_KEY, RETRY_AFTER_KEY } from '../../server/errors';
import { unary } from '../helpers/grpc';

/**
 * A steady stream of orders against one InventoryService, behaving like a good order service: each
 * order reserves one unit of one SKU, then some are paid (Confirm) and some cancelled (Release);
 * every call that failed with a code the README calls retryable is retried with the same order id
 * after a bounded back-off, so that once the fault is healed every order has a definite answer.
 * Every answer (each attempt, by code and reason) is counted for the fault table.
 */
export interface LoadOptions {
  /** Order ids are `<tag>-<n>`. */
  readonly tag: string;
  /** SKUs the orders go round. */
  readonly skus: readonly string[];
  /** New orders per second. */
  readonly ratePerSecond: number;
  /** Share of reserved orders paid at once, and of those cancelled at once. */
  readonly confirmShare: number;
  readonly releaseShare: number;
  /** Deadline of one call. */
  readonly callTimeoutMs: number;
  /** How long one call of an order is retried before the order is left without an answer. */
  readonly retryForMs: number;
  /** Orders in progress past which a due order is not started (and counted as skipped). */
  readonly maxInFlight: number;
}

export const DEFAULT_LOAD: Omit<LoadOptions, 'tag' | 'skus'> = {
  ratePerSecond: Number(process.env.FAULT_RATE ?? 150),
  confirmShare: 0.3,
  releaseShare: 0.2,
  callTimeoutMs: 5000,
  retryForMs: 90_000,
  maxInFlight: 1500,
};

export type Operation = 'Reserve' | 'Confirm' | 'Release';

/** One call as a caller saw it. `answer` is OK, RESERVED, REJECTED/<reason> or <CODE>/<reason>. */
export interface Attempt {
  readonly op: Operation;
  readonly orderId: string;
  readonly start: number;
  readonly end: number;
  readonly answer: string;
  readonly message?: string;
}

/** Where an order ended, as its caller knows it. NO_ANSWER: retries ran out; ERROR: a code not to retry. */
export type OrderFinal = 'RESERVED' | 'CONFIRMED' | 'RELEASED' | 'REJECTED' | 'NO_ANSWER' | 'ERROR';

export interface OrderRecord {
  readonly orderId: string;
  readonly sku: string;
  final?: OrderFinal;
  /** The last failed answer, for an order left without a definite one. */
  lastFailure?: string;
}

/** Codes the README's retry rules (and admission's pushback) say to retry with the same order id. */
const RETRYABLE = new Set([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.ABORTED, grpc.status.RESOURCE_EXHAUSTED]);

/** A channel that dials again within a second, so that recovery times measure the server, not grpc-js's back-off. */
export const FAST_RECONNECT: Partial<grpc.ClientOptions> = {
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.min_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 1000,
};

type Called<T> = { ok: true; res: T } | { ok: false; answer: string };

export class OrderLoad {
  readonly attempts: Attempt[] = [];
  readonly orders = new Map<string, OrderRecord>();
  /** Orders due while `maxInFlight` were in progress, not started. */
  skipped = 0;
  private readonly client: InventoryServiceClient;
  private readonly pending = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;
  private started = 0;
  private launched = 0;

  constructor(address: string, private readonly options: LoadOptions) {
    this.client = new InventoryServiceClient(address, grpc.credentials.createInsecure(), FAST_RECONNECT);
  }

  start(): void {
    this.started = Date.now();
    this.timer = setInterval(() => this.tick(), 20);
  }

  /** Starts no more orders and waits until every order in progress has its answer (or ran out of retries). */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    while (this.pending.size > 0) await Promise.all([...this.pending]);
    this.client.close();
  }

  private tick(): void {
    const due = Math.floor(((Date.now() - this.started) * this.options.ratePerSecond) / 1000);
    for (; this.launched < due; this.launched++) {
      if (this.pending.size >= this.options.maxInFlight) {
        this.skipped++;
        continue;
      }
      const order: OrderRecord = { orderId: `${this.options.tag}-${this.launched}`, sku: this.options.skus[this.launched % this.options.skus.length] };
      this.orders.set(order.orderId, order);
      const run = this.run(order).finally(() => this.pending.delete(run));
      this.pending.add(run);
    }
  }

  private async run(order: OrderRecord): Promise<void> {
    const reserve = await this.call<ReserveResponse>('Reserve', order, 'reserve', ReserveRequest.fromPartial({ orderId: order.orderId, items: [{ skuId: order.sku, quantity: 1 }] }));
    if (!reserve.ok) return;
    if (reserve.res.outcome !== ReserveOutcome.RESERVE_OUTCOME_RESERVED) {
      order.final = 'REJECTED';
      return;
    }
    order.final = 'RESERVED';
    const roll = Math.random();
    if (roll < this.options.confirmShare) {
      if ((await this.call('Confirm', order, 'confirm', { orderId: order.orderId })).ok) order.final = 'CONFIRMED';
    } else if (roll < this.options.confirmShare + this.options.releaseShare) {
      const request = ReleaseRequest.fromPartial({ orderId: order.orderId, reason: ReleaseReason.RELEASE_REASON_CANCEL_BEFORE_PAYMENT });
      if ((await this.call('Release', order, 'release', request)).ok) order.final = 'RELEASED';
    }
  }

  /** One call, retried with the same request while its failure is retryable and time is left. */
  private async call<T>(op: Operation, order: OrderRecord, method: string, request: unknown): Promise<Called<T>> {
    const giveUp = Date.now() + this.options.retryForMs;
    let backoff = 50;
    for (;;) {
      const start = Date.now();
      try {
        const res = await unary<T>(this.client, method, request, new grpc.Metadata(), { deadline: start + this.options.callTimeoutMs });
        this.attempts.push({ op, orderId: order.orderId, start, end: Date.now(), answer: answerOf(res) });
        return { ok: true, res };
      } catch (err) {
        const e = err as grpc.ServiceError;
        const answer = `${grpc.status[e.code] ?? e.code}/${String(e.metadata?.get(REASON_KEY)[0] ?? '-')}`;
        this.attempts.push({ op, orderId: order.orderId, start, end: Date.now(), answer, message: e.details });
        order.lastFailure = `${op} ${answer}: ${e.details}`;
        if (!RETRYABLE.has(e.code)) {
          order.final = 'ERROR';
          return { ok: false, answer };
        }
        if (Date.now() > giveUp) {
          order.final = 'NO_ANSWER';
          return { ok: false, answer };
        }
        const pushback = Number(e.metadata?.get(RETRY_AFTER_KEY)[0] ?? 0);
        await new Promise((resolve) => setTimeout(resolve, Math.max(pushback, backoff * (0.5 + Math.random()))));
        backoff = Math.min(backoff * 2, 1000);
      }
    }
  }
}

/** RESERVED, REJECTED/<first shortage reason> for a Reserve; OK for the others. */
function answerOf(res: unknown): string {
  const reserve = res as Partial<ReserveResponse>;
  if (reserve.outcome === undefined) return 'OK';
  if (reserve.outcome === ReserveOutcome.RESERVE_OUTCOME_RESERVED) return 'RESERVED';
  const reason = reserve.shortages?.[0]?.reason;
  return `REJECTED/${reason === undefined ? '-' : ShortageReason[reason].replace('SHORTAGE_REASON_', '')}`;
}
