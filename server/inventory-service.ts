import { ReleaseResponse, ReserveOutcome, ReserveResponse, ShortageReason } from '../gen/inventory/v1/inventory.pb';
import { ReservationService } from '../allocator/reservations';
import { ReserveResult } from '../allocator/types';
import { ReserveAdmission } from './admission';
import { InventoryHandlers } from './app';
import { domain } from './domain-errors';
import { emptyRow, stockLevel, toProto } from './mapping';
import { Metrics } from './metrics';
import { StockTotalsReader } from './stock-totals';
import { Limits, validId, validateRelease, validateReserve, validateSkuIds } from './validation';

/** Thin handlers: validate, call the domain, map the answer to proto. No transport in here. */
export function inventoryHandlers(
  reservations: ReservationService,
  limits: Limits,
  metrics: Metrics,
  stockTotals: StockTotalsReader,
  admission: ReserveAdmission,
  demand: { count(items: readonly { readonly sku: string }[]): void },
): InventoryHandlers {
  const outcomes = {
    reserved: metrics.reserveOutcomes.batched('reserved', ''),
    outOfStock: metrics.reserveOutcomes.batched('rejected', 'OUT_OF_STOCK'),
    userLimit: metrics.reserveOutcomes.batched('rejected', 'USER_LIMIT'),
  };
  return {
    async reserve(req, ctx) {
      const input = validateReserve(req, limits);
      // Refused or not, a Reserve is demand: it makes its SKUs hot for the dashboards (hot-skus.ts).
      demand.count(input.items);
      // Before any Redis call: a refused Reserve costs the hot SKU's partitions nothing.
      admission.admit(input.items);
      const result = await domain(() => reservations.reserve(input, ctx));
      if (!result.replayed) {
        if (result.outcome === 'RESERVED') outcomes.reserved.inc();
        else (result.shortages.some((s) => s.reason === 'USER_LIMIT') ? outcomes.userLimit : outcomes.outOfStock).inc();
      }
      return reserveResponse(result);
    },

    async confirm(req, ctx) {
      const orderId = validId('order_id', req.orderId);
      const { reservation, replayed } = await domain(() => reservations.confirm(orderId, ctx));
      return { reservation: toProto(reservation), replayed };
    },

    async release(req, ctx) {
      const input = validateRelease(req, limits);
      const result = await domain(() => reservations.release(input.orderId, input.reason, input.items, input.releaseId, ctx));
      return ReleaseResponse.fromPartial({
        reservation: toProto(result.reservation),
        released: result.released.map((i) => ({ skuId: i.sku, quantity: i.quantity })),
        replayed: result.replayed,
      });
    },

    async getReservation(req, ctx) {
      const orderId = validId('order_id', req.orderId);
      return { reservation: toProto(await domain(() => reservations.getReservation(orderId, ctx))) };
    },

    async getStock(req) {
      const skus = validateSkuIds('sku_ids', req.skuIds);
      const stock = await domain(async () => {
        const [live, totals] = await Promise.all([Promise.all(skus.map((sku) => reservations.livePool(sku))), stockTotals.totals(skus)]);
        return skus.map((sku, i) => stockLevel(totals[i].row ?? emptyRow(sku, live[i].perUserLimit), live[i], totals[i], admission.effective(sku)));
      });
      return { stock };
    },
  };
}

function reserveResponse(result: ReserveResult): ReserveResponse {
  if (result.outcome === 'RESERVED') {
    // Every field set, so no fromPartial copy: this is the answer of every sale.
    return {
      outcome: ReserveOutcome.RESERVE_OUTCOME_RESERVED,
      reservation: toProto(result.reservation),
      shortages: [],
      replayed: result.replayed,
    };
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

