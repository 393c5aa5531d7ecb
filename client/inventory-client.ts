import {
  ConfirmRequest,
  ConfirmResponse,
  GetReservationRequest,
  GetReservationResponse,
  GetStockRequest,
  GetStockResponse,
  InventoryServiceService,
  ReleaseRequest,
  ReleaseResponse,
  ReserveRequest,
  ReserveResponse,
} from '../gen/inventory/v1/inventory.pb';
import { CallOptions, ClientOptions, resolveOptions } from './options';
import { RetryEvent, Rpc } from './rpc';

/** `T` with the fields in `K` required and the rest optional (left out: the proto default). */
export type With<T, K extends keyof T> = Pick<T, K> & Partial<Omit<T, K>>;

export type ReserveInput = With<ReserveRequest, 'orderId' | 'items'>;
export type ConfirmInput = ConfirmRequest;
/** Without items: release everything still held. Without releaseId: a digest of (reason, items). */
export type ReleaseInput = With<ReleaseRequest, 'orderId' | 'reason'>;
export type GetReservationInput = GetReservationRequest;
export type GetStockInput = GetStockRequest;

export interface InventoryClientOptions extends ClientOptions {
  /** Told before each retry (the failed attempt's typed error and the wait), for logs and metrics. */
  readonly onRetry?: (event: RetryEvent) => void;
}

/** InventoryClient's time for a whole call when the options give none. */
export const INVENTORY_TIMEOUT_MS = 5000;

/**
 * The order service's client of InventoryService (proto/inventory/v1/inventory.proto). Every method
 * sends the same request again on UNAVAILABLE and DEADLINE_EXCEEDED (and after a RESOURCE_EXHAUSTED
 * hint) within the call's time; the server applies it once, by its order id (and release id).
 * Failures are InventoryError subclasses (errors.ts).
 */
export class InventoryClient {
  private readonly rpc: Rpc;

  constructor(options: InventoryClientOptions) {
    this.rpc = new Rpc(resolveOptions(options, INVENTORY_TIMEOUT_MS, 'InventoryClient'), options.onRetry);
  }

  /** Holds stock for every item of an order, all or none; REJECTED (with shortages) is an answer, not an error. */
  reserve(request: ReserveInput, options?: CallOptions): Promise<ReserveResponse> {
    return this.rpc.unary(InventoryServiceService.reserve, ReserveRequest.fromPartial(request), options);
  }

  /** Payment succeeded: the hold becomes a sale. */
  confirm(request: ConfirmInput, options?: CallOptions): Promise<ConfirmResponse> {
    return this.rpc.unary(InventoryServiceService.confirm, ConfirmRequest.fromPartial(request), options);
  }

  /** Gives stock back (cancel, refund, risk control, timeout). */
  release(request: ReleaseInput, options?: CallOptions): Promise<ReleaseResponse> {
    return this.rpc.unary(InventoryServiceService.release, ReleaseRequest.fromPartial(request), options);
  }

  getReservation(request: GetReservationInput, options?: CallOptions): Promise<GetReservationResponse> {
    return this.rpc.unary(InventoryServiceService.getReservation, GetReservationRequest.fromPartial(request), options);
  }

  /** Stock levels of 1-100 SKUs. */
  getStock(request: GetStockInput, options?: CallOptions): Promise<GetStockResponse> {
    return this.rpc.unary(InventoryServiceService.getStock, GetStockRequest.fromPartial(request), options);
  }

  /** Closes the channel; calls in flight fail with CancelledError or UnavailableError. */
  close(): void {
    this.rpc.close();
  }
}
