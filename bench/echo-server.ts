/**
 * The transport ceiling: the same gRPC stack as the inventory server (startApp, the transport
 * adapter, health, reflection, metrics), with a Reserve handler that does no work and answers a
 * constant RESERVED response of the real one's shape. Confirm and Release answer constants too.
 * Env: the server's (INVENTORY_PORT, ADMIN_PORT, METRICS_PORT, HOST, LOG_LEVEL) and WORKERS.
 */
import {
  ConfirmResponse,
  ReleaseResponse,
  ReservationState,
  ReserveOutcome,
  ReserveResponse,
} from '../gen/inventory/v1/inventory.pb';
import { startApp } from '../server/app';
import { serve } from './serve';

const now = Date.now();
const reservation = {
  orderId: 'echo-order-0000000000',
  state: ReservationState.RESERVATION_STATE_RESERVED,
  items: [{ skuId: 'echo-sku', quantity: 1, releasedQuantity: 0, pieces: [{ partitionId: 'p0000000000000000', quantity: 1 }] }],
  userId: '',
  createdAtMs: now,
  expiresAtMs: now + 1_800_000,
  confirmedAtMs: 0,
  endedAtMs: 0,
};
const RESERVED = ReserveResponse.fromPartial({ outcome: ReserveOutcome.RESERVE_OUTCOME_RESERVED, reservation, replayed: false });
const CONFIRMED = ConfirmResponse.fromPartial({ reservation: { ...reservation, state: ReservationState.RESERVATION_STATE_CONFIRMED }, replayed: false });
const RELEASED = ReleaseResponse.fromPartial({
  reservation: { ...reservation, state: ReservationState.RESERVATION_STATE_RELEASED },
  released: [{ skuId: 'echo-sku', quantity: 1 }],
});

serve('echo server', (config, logger) =>
  startApp({
    config,
    logger,
    inventory: {
      reserve: () => Promise.resolve(RESERVED),
      confirm: () => Promise.resolve(CONFIRMED),
      release: () => Promise.resolve(RELEASED),
    },
  }),
);
