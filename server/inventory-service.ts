import { status } from '@grpc/grpc-js';
import {
  ReleaseResponse,
  Reservation as ProtoReservation,
  ReservationState as ProtoState,
  ReserveOutcome,
  ReserveResponse,
  ShortageReason,
  StockLevel,
} from '../gen/inventory/v1/inventory.pb';
import { ReservationError, ReservationErrorKind } from '../allocator/errors';
import { ReservationService } from '../allocator/reservations';
import { Reservation, ReservationState, ReserveResult } from '../allocator/types';
import { InventoryHandlers } from './app';
import { ServiceError, unavailable } from './errors';
import { Metrics } from './metrics';
import { Limits, validId, validateRelease, validateReserve, validateSkuIds } from './validation';

/** Thin handlers: validate, call the domain, map the answer to proto. No transport in here. */
export function inventoryHandlers(reservations: ReservationService, limits: Limits, metrics: Metrics): InventoryHandlers {
  const outcomes = {
    reserved: metrics.reserveOutcomes.labels('reserved', ''),
    outOfStock: metrics.reserveOutcomes.labels('rejected', 'OUT_OF_STOCK'),
    userLimit: metrics.reserveOutcomes.labels('rejected', 'USER_LIMIT'),
  };
  return {
    async reserve(req, ctx) {
      const input = validateReserve(req, limits);
      const result = await domain(() => reservations.reserve(input, ctx.deadline));
      if (!result.replayed) {
        if (result.outcome === 'RESERVED') outcomes.reserved.inc();
        else (result.shortages.some((s) => s.reason === 'USER_LIMIT') ? outcomes.userLimit : outcomes.outOfStock).inc();
      }
      return reserveResponse(result);
    },

    async confirm(req, ctx) {
      const orderId = validId('order_id', req.orderId);
      const { reservation, replayed } = await domain(() => reservations.confirm(orderId, ctx.deadline));
      return { reservation: toProto(reservation), replayed };
    },

    async release(req, ctx) {
      const input = validateRelease(req, limits);
      const result = await domain(() => reservations.release(input.orderId, input.reason, input.items, input.releaseId, ctx.deadline));
      return ReleaseResponse.fromPartial({
        reservation: toProto(result.reservation),
        released: result.released.map((i) => ({ skuId: i.sku, quantity: i.quantity })),
        replayed: result.replayed,
      });
    },

    async getReservation(req, ctx) {
      const orderId = validId('order_id', req.orderId);
      return { reservation: toProto(await domain(() => reservations.getReservation(orderId, ctx.deadline))) };
    },

    async getStock(req) {
      const skus = validateSkuIds('sku_ids', req.skuIds);
      const stock = await domain(() =>
        Promise.all(
          skus.map(async (sku) => {
            const live = await reservations.livePool(sku);
            return StockLevel.fromPartial({
              skuId: sku,
              pool: live.pool,
              sellable: live.pool,
              partitions: live.partitions,
              perUserLimit: live.perUserLimit,
            });
          }),
        ),
      );
      return { stock };
    },
  };
}

const ERROR_STATUS: Record<ReservationErrorKind, status> = {
  UNKNOWN_SKU: status.NOT_FOUND,
  RESERVATION_NOT_FOUND: status.NOT_FOUND,
  IDEMPOTENCY_KEY_REUSED: status.INVALID_ARGUMENT,
  UNKNOWN_ITEM: status.INVALID_ARGUMENT,
  ALREADY_RELEASED: status.FAILED_PRECONDITION,
  ALREADY_EXPIRED: status.FAILED_PRECONDITION,
  ALREADY_CONFIRMED: status.FAILED_PRECONDITION,
  NOT_CONFIRMED: status.FAILED_PRECONDITION,
  RESERVATION_REJECTED: status.FAILED_PRECONDITION,
  ROLLED_BACK: status.ABORTED,
  IN_PROGRESS: status.ABORTED,
};

const ERROR_FIELD: Partial<Record<ReservationErrorKind, string>> = {
  IDEMPOTENCY_KEY_REUSED: 'order_id',
  UNKNOWN_ITEM: 'items',
};

/** Errors of a dependency that is down or slow: the call is safe to retry, so UNAVAILABLE. */
const DEPENDENCY_DOWN = /Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|MaxRetriesPerRequest|Stream isn't writeable|ended/;

/** Runs domain work and turns its failures into the statuses clients see. */
async function domain<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    if (err instanceof ReservationError) {
      throw new ServiceError(ERROR_STATUS[err.kind], err.kind, err.message, ERROR_FIELD[err.kind]);
    }
    if (err instanceof Error && DEPENDENCY_DOWN.test(`${err.name} ${err.message}`)) {
      throw unavailable('DEPENDENCY_UNAVAILABLE', 'a storage dependency is unavailable; the call is safe to retry');
    }
    throw err;
  }
}

function reserveResponse(result: ReserveResult): ReserveResponse {
  if (result.outcome === 'RESERVED') {
    return ReserveResponse.fromPartial({
      outcome: ReserveOutcome.RESERVE_OUTCOME_RESERVED,
      reservation: toProto(result.reservation),
      replayed: result.replayed,
    });
  }
  return ReserveResponse.fromPartial({
    outcome: ReserveOutcome.RESERVE_OUTCOME_REJECTED,
    shortages: result.shortages.map((s) => ({
      skuId: s.sku,
      reason: s.reason === 'USER_LIMIT' ? ShortageReason.SHORTAGE_REASON_USER_LIMIT : ShortageReason.SHORTAGE_REASON_OUT_OF_STOCK,
      requested: s.requested,
      available: s.available,
    })),
    replayed: result.replayed,
  });
}

const STATES: Record<ReservationState, ProtoState> = {
  PENDING: ProtoState.RESERVATION_STATE_UNSPECIFIED,
  REJECTED: ProtoState.RESERVATION_STATE_UNSPECIFIED,
  RESERVED: ProtoState.RESERVATION_STATE_RESERVED,
  CONFIRMED: ProtoState.RESERVATION_STATE_CONFIRMED,
  RELEASED: ProtoState.RESERVATION_STATE_RELEASED,
  EXPIRED: ProtoState.RESERVATION_STATE_EXPIRED,
};

export function toProto(r: Reservation): ProtoReservation {
  return {
    orderId: r.orderId,
    state: STATES[r.state],
    items: r.items.map((item) => ({
      skuId: item.sku,
      quantity: item.quantity,
      releasedQuantity: item.released,
      pieces: item.pieces.map((p) => ({ partitionId: p.partitionId, quantity: p.quantity })),
    })),
    userId: r.userId,
    createdAtMs: r.createdAt,
    expiresAtMs: r.expiresAt,
    confirmedAtMs: r.confirmedAt,
    endedAtMs: r.endedAt,
  };
}
