/**
 * @inventory-core/client: typed, promise-based clients of the inventory core's gRPC API, with
 * deadlines, retries of the same request on UNAVAILABLE and DEADLINE_EXCEEDED, and typed errors.
 * See client/README.md.
 */
export * from './inventory-client';
export * from './admin-client';
export * from './errors';
export { ClientOptions, CallOptions, RECONNECT_OPTIONS } from './options';
export { RetryPolicy, DEFAULT_RETRY_POLICY } from './retry';
export { RetryEvent } from './rpc';
// This package's grpc-js, so TLS credentials and status codes come from the copy the channel uses.
export { ChannelCredentials, Metadata, credentials, status } from '@grpc/grpc-js';
export * from '../gen/inventory/v1/inventory.pb';
export {
  PartitionState,
  Partition,
  StockChange,
  Discrepancy,
  SetStockRequest,
  SetStockResponse,
  AdjustStockRequest,
  AdjustStockResponse,
  PreallocateRequest,
  PreallocateResponse,
  RebalanceRequest,
  RebalanceResponse,
  DrainPartitionRequest,
  DrainPartitionResponse,
  ListPartitionsRequest,
  ListPartitionsResponse,
  ReconcileRequest,
  ReconcileResponse,
  SetAdmissionLimitRequest,
  SetAdmissionLimitResponse,
} from '../gen/inventory/v1/admin.pb';
