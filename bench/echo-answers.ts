/**
 * The constant answers of the two echo servers (echo-server.ts on our stack, bare-echo-server.ts on
 * plain grpc-js): a RESERVED Reserve response of the real one's shape, and Confirm and Release
 * answers of the same reservation. Both servers answer these very objects, so their response bytes
 * are the same.
 */
import {
  ConfirmResponse,
  ReleaseResponse,
  ReservationState,
  ReserveOutcome,
  ReserveResponse,
} from '../gen/inventory/v1/inventory.pb';

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
export const RESERVED = ReserveResponse.fromPartial({ outcome: ReserveOutcome.RESERVE_OUTCOME_RESERVED, reservation, replayed: false });
export const CONFIRMED = ConfirmResponse.fromPartial({ reservation: { ...reservation, state: ReservationState.RESERVATION_STATE_CONFIRMED }, replayed: false });
export const RELEASED = ReleaseResponse.fromPartial({
  reservation: { ...reservation, state: ReservationState.RESERVATION_STATE_RELEASED },
  released: [{ skuId: 'echo-sku', quantity: 1 }],
});
