import type { LedgerLag } from '../ledger/types';
import {
  DrainPartitionRequest,
  DrainPartitionResponse,
  ListPartitionsRequest,
  ListPartitionsResponse,
  RebalanceRequest,
  RebalanceResponse,
  ReconcileRequest,
  ReconcileResponse,
} from '../gen/inventory/v1/admin.pb';
import { GetStockResponse } from '../gen/inventory/v1/inventory.pb';
import type { BreakerState } from '../kernel/breaker';
import type { InventoryEvent } from '../kernel/events';
import type { Logger } from '../kernel/logger';
import type { EventTapState } from '../mq/event-tap';
import type { AdminHandlers, InventoryHandlers } from './app';
import { toServiceError } from './domain-errors';
import { ServiceError, invalidArgument } from './errors';
import { HealthReport, overallStatus } from './health';
import type { CallContext } from './transport';
import { MAX_ITEMS } from './validation';

/**
 * What the web console reads and acts through. The stock, the partitions and every action go
 * through the very handlers of the gRPC services (GetStock, ListPartitions, Rebalance,
 * DrainPartition, Reconcile): the same validation (a bad field is named the same way), the same
 * idempotency on the request id, the same errors.
 */
export interface ConsoleSources {
  readonly admin: Pick<AdminHandlers, 'listPartitions' | 'rebalance' | 'drainPartition' | 'reconcile'>;
  readonly inventory: Pick<InventoryHandlers, 'getStock'>;
  /** SKU ids from MySQL's list, in order, those starting with `prefix`, `limit` at most. */
  skuIds(prefix: string, limit: number): Promise<string[]>;
  /** The SKUs this server's registry cache knows: the list while MySQL does not answer. */
  registeredSkus(): Iterable<string>;
  readonly health: { report(): HealthReport };
  /** This process's circuit breakers. */
  readonly breakers: { all(): ReadonlyArray<{ dependency: string; node: string | undefined; state: BreakerState }> };
  /** Ledger records waiting in Redis for MySQL (all shards, whichever process writes them). */
  readonly ledger: { lag(): Promise<LedgerLag> };
  /** The recent events as RabbitMQ carries them (mq/event-tap.ts). */
  readonly events: { recent(): readonly InventoryEvent[]; state(): EventTapState };
}

/** SKUs listed at most: one GetStock call's worth. */
export const SKU_PAGE = MAX_ITEMS;

/** A section of the overview that could not be read, and why, in words. */
export interface Unreadable {
  readonly error: string;
}

export interface Overview {
  /** When it was read, ms since 1970. */
  readonly at: number;
  readonly health: HealthReport & { readonly status: ReturnType<typeof overallStatus> };
  readonly breakers: ReadonlyArray<{ dependency: string; node: string; state: BreakerState }>;
  readonly ledger: LedgerLag | Unreadable;
  /** GetStock's answer (proto3 JSON) for the listed SKUs; `source` says where the list came from. */
  readonly skus: { source: 'mysql' | 'registry'; limit: number; stock: unknown[] } | Unreadable;
  readonly events: EventTapState & { recent: readonly InventoryEvent[] };
}

/** One action of the console: the request message (from proto3 JSON), the handler, the answer (to proto3 JSON). */
interface Action<Req, Res> {
  readonly request: { fromJSON(object: unknown): Req };
  readonly response: { toJSON(message: Res): unknown };
  call(admin: ConsoleSources['admin'], request: Req, ctx: CallContext): Promise<Res>;
}

function action<Req, Res>(
  request: Action<Req, Res>['request'],
  response: Action<Req, Res>['response'],
  call: Action<Req, Res>['call'],
): Action<Req, Res> {
  return { request, response, call };
}

/** The console's actions by name (POST /console/api/<name>). */
const ACTIONS = {
  rebalance: action(RebalanceRequest, RebalanceResponse, (admin, req, ctx) => admin.rebalance(req, ctx)),
  drain: action(DrainPartitionRequest, DrainPartitionResponse, (admin, req, ctx) => admin.drainPartition(req, ctx)),
  reconcile: action(ReconcileRequest, ReconcileResponse, (admin, req, ctx) => admin.reconcile(req, ctx)),
};

export type ActionName = keyof typeof ACTIONS;

export function isActionName(name: string): name is ActionName {
  return Object.hasOwn(ACTIONS, name);
}

/** The web console's reads and actions, answered as plain JSON values. */
export class ConsoleApi {
  constructor(
    private readonly sources: ConsoleSources,
    private readonly logger: Logger,
  ) {}

  /**
   * Everything the page shows but the partitions, each section read on its own: one dependency
   * that does not answer blanks its section (with why), not the page.
   */
  async overview(prefix: string, ctx: CallContext): Promise<Overview> {
    if (prefix.length > 128) throw invalidArgument('q', 'must be at most 128 characters');
    const { health, breakers, ledger, events } = this.sources;
    const report = health.report();
    const [lag, skus] = await Promise.all([this.readable(() => ledger.lag()), this.readable(() => this.stock(prefix, ctx))]);
    return {
      at: Date.now(),
      health: { status: overallStatus(report), ...report },
      breakers: breakers.all().map((b) => ({ dependency: b.dependency, node: b.node ?? '', state: b.state })),
      ledger: lag,
      skus,
      events: { ...events.state(), recent: events.recent() },
    };
  }

  /** ListPartitions for one SKU (its live partitions, avail read from Redis), as proto3 JSON. */
  async partitions(sku: string, ctx: CallContext): Promise<unknown> {
    if (sku === '') throw invalidArgument('sku_id', 'is required');
    return ListPartitionsResponse.toJSON(await this.sources.admin.listPartitions(ListPartitionsRequest.fromPartial({ skuId: sku }), ctx));
  }

  /** Runs an action from its proto3 JSON request (camelCase or snake_case names); answers its response as proto3 JSON. */
  async act(name: ActionName, body: unknown, ctx: CallContext): Promise<unknown> {
    if (body === null || typeof body !== 'object' || Array.isArray(body)) throw invalidArgument('body', 'must be a JSON object');
    const { request, response, call } = ACTIONS[name] as Action<unknown, unknown>;
    return response.toJSON(await call(this.sources.admin, request.fromJSON(body), ctx));
  }

  /** The listed SKUs' GetStock answer: MySQL's list, or the registry's while MySQL does not answer. */
  private async stock(prefix: string, ctx: CallContext): Promise<{ source: 'mysql' | 'registry'; limit: number; stock: unknown[] }> {
    let source: 'mysql' | 'registry' = 'mysql';
    let skus: string[];
    try {
      skus = await this.sources.skuIds(prefix, SKU_PAGE);
    } catch (err) {
      this.logger.debug({ err }, 'console: the SKU list could not be read from MySQL; listing the registry\'s');
      source = 'registry';
      skus = [...this.sources.registeredSkus()].filter((sku) => sku.startsWith(prefix)).sort().slice(0, SKU_PAGE);
    }
    if (skus.length === 0) return { source, limit: SKU_PAGE, stock: [] };
    const answer = await this.sources.inventory.getStock({ skuIds: skus }, ctx);
    return { source, limit: SKU_PAGE, stock: (GetStockResponse.toJSON(answer) as { stock?: unknown[] }).stock ?? [] };
  }

  /** The value, or why it could not be read (as a client of the API would be told). */
  private async readable<T>(read: () => Promise<T>): Promise<T | Unreadable> {
    try {
      return await read();
    } catch (err) {
      const told = toServiceError(err);
      if (told instanceof ServiceError) return { error: told.message };
      this.logger.error({ err }, 'console: a read failed');
      return { error: 'internal error; see the server log' };
    }
  }
}
