import { randomUUID } from 'node:crypto';
import {
  AdjustStockRequest,
  AdjustStockResponse,
  AdminServiceService,
  DrainPartitionRequest,
  DrainPartitionResponse,
  ListPartitionsRequest,
  ListPartitionsResponse,
  PreallocateRequest,
  PreallocateResponse,
  RebalanceRequest,
  RebalanceResponse,
  ReconcileRequest,
  ReconcileResponse,
  SetAdmissionLimitRequest,
  SetAdmissionLimitResponse,
  SetStockRequest,
  SetStockResponse,
} from '../gen/inventory/v1/admin.pb';
import { With } from './inventory-client';
import { CallOptions, ClientOptions, resolveOptions } from './options';
import { RetryEvent, Rpc, UnaryMethod } from './rpc';

export type SetStockInput = With<SetStockRequest, 'skuId' | 'onHand'>;
export type AdjustStockInput = With<AdjustStockRequest, 'skuId' | 'delta'>;
export type PreallocateInput = With<PreallocateRequest, 'skuId' | 'quantity'>;
export type RebalanceInput = With<RebalanceRequest, 'skuId' | 'targetPool'>;
export type DrainPartitionInput = With<DrainPartitionRequest, 'skuId' | 'partitionId'>;
export type ListPartitionsInput = Partial<ListPartitionsRequest>;
export type ReconcileInput = Partial<ReconcileRequest>;
export type SetAdmissionLimitInput = With<SetAdmissionLimitRequest, 'skuId'>;

/** An answer to a command, with the request id it was sent under (given or generated). */
export type Applied<T> = T & { readonly requestId: string };

export interface AdminClientOptions extends ClientOptions {
  /** The server's ADMIN_TOKEN, sent as `authorization: Bearer <token>` on every call. Required. */
  readonly token: string;
  readonly onRetry?: (event: RetryEvent) => void;
}

/** AdminClient's time for a whole call when the options give none: operator work moves stock across stores. */
export const ADMIN_TIMEOUT_MS = 30_000;

/** A fresh request id: a UUID, which the id rule [A-Za-z0-9._:-]{1,128} accepts. */
export function newRequestId(): string {
  return randomUUID();
}

/**
 * The operator's client of AdminService (proto/inventory/v1/admin.proto), on the same call path as
 * InventoryClient. Every command is idempotent on its request id: one is generated when the request
 * has none, sent unchanged by every retry, and returned with the answer (`requestId`) or the error
 * (`InventoryError.requestId`), so a command that failed can be sent again and applies at most once.
 */
export class AdminClient {
  private readonly rpc: Rpc;

  constructor(options: AdminClientOptions) {
    if (typeof options?.token !== 'string' || options.token === '') throw new TypeError('AdminClient.token: the ADMIN_TOKEN is required');
    const metadata = { ...options.metadata, authorization: `Bearer ${options.token}` };
    this.rpc = new Rpc(resolveOptions({ ...options, metadata }, ADMIN_TIMEOUT_MS, 'AdminClient'), options.onRetry);
  }

  /** Sets a SKU's on_hand to a counted value, creating the SKU if new. */
  setStock(request: SetStockInput, options?: CallOptions): Promise<Applied<SetStockResponse>> {
    return this.command(AdminServiceService.setStock, SetStockRequest.fromPartial(request), options);
  }

  /** Changes a SKU's on_hand by a signed delta. */
  adjustStock(request: AdjustStockInput, options?: CallOptions): Promise<Applied<AdjustStockResponse>> {
    return this.command(AdminServiceService.adjustStock, AdjustStockRequest.fromPartial(request), options);
  }

  /** Moves units from base into new partitions. */
  preallocate(request: PreallocateInput, options?: CallOptions): Promise<Applied<PreallocateResponse>> {
    return this.command(AdminServiceService.preallocate, PreallocateRequest.fromPartial(request), options);
  }

  /** Reshapes a SKU's pool: its size, partition count and Redis nodes. */
  rebalance(request: RebalanceInput, options?: CallOptions): Promise<Applied<RebalanceResponse>> {
    return this.command(AdminServiceService.rebalance, RebalanceRequest.fromPartial(request), options);
  }

  /** Empties one partition back into base. */
  drainPartition(request: DrainPartitionInput, options?: CallOptions): Promise<Applied<DrainPartitionResponse>> {
    return this.command(AdminServiceService.drainPartition, DrainPartitionRequest.fromPartial(request), options);
  }

  /** Partitions with their live avail; a read, so no request id. */
  listPartitions(request: ListPartitionsInput = {}, options?: CallOptions): Promise<ListPartitionsResponse> {
    return this.rpc.unary(AdminServiceService.listPartitions, ListPartitionsRequest.fromPartial(request), options);
  }

  /** Compares Redis with MySQL and reports (with `repair`, fixes) each discrepancy. A dry run ignores the request id. */
  reconcile(request: ReconcileInput = {}, options?: CallOptions): Promise<Applied<ReconcileResponse>> {
    return this.command(AdminServiceService.reconcile, ReconcileRequest.fromPartial(request), options);
  }

  /** Sets (or with useDefault removes) a SKU's admission limit. */
  setAdmissionLimit(request: SetAdmissionLimitInput, options?: CallOptions): Promise<Applied<SetAdmissionLimitResponse>> {
    return this.command(AdminServiceService.setAdmissionLimit, SetAdmissionLimitRequest.fromPartial(request), options);
  }

  close(): void {
    this.rpc.close();
  }

  private async command<Req extends { requestId: string }, Res>(method: UnaryMethod<Req, Res>, request: Req, options?: CallOptions): Promise<Applied<Res>> {
    const requestId = request.requestId || newRequestId();
    const res = await this.rpc.unary(method, { ...request, requestId }, options, requestId);
    return { ...res, requestId };
  }
}
