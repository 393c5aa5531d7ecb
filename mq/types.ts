/**
 * What the stock-message consumer (consumer.ts) and the code that applies a message (apply.ts)
 * agree on. The consumer owns RabbitMQ: topology, delivery, acknowledgement, dead-lettering,
 * reconnection and back-off; the applier owns what a message means to the stock.
 */

/** A warehouse's stock message, parsed and checked (mq/message.ts). */
export interface StockUpdate {
  readonly messageId: string;
  readonly sku: string;
  readonly kind: StockUpdateKind;
  /** Units, > 0; for COUNT the counted on_hand, >= 0. */
  readonly quantity: number;
  readonly occurredAt: Date;
  readonly warehouseId?: string;
  readonly sequence?: number;
  readonly orderId?: string;
}

export type StockUpdateKind = 'RECEIPT' | 'LOSS' | 'DAMAGE' | 'SHIPMENT' | 'RETURN' | 'COUNT';

/** What became of a message; every outcome but a thrown error is acknowledged. */
export type ApplyOutcome =
  /** Applied now. */
  | { readonly kind: 'applied'; readonly detail?: string }
  /** Nothing to do: applied before (a redelivery), or stale (its sequence is not newer than the SKU's last). */
  | { readonly kind: 'skipped'; readonly why: 'duplicate' | 'stale' }
  /** Can never be applied (an unknown SKU, a shipment of an order that is not paid): to the dead-letter queue, with the reason. */
  | { readonly kind: 'dead'; readonly reason: string };

/**
 * Applies stock messages. `apply` throws only for a transient failure (MySQL or Redis unavailable):
 * the message is then not acknowledged, and the consumer stops pulling until `ready` answers true.
 */
export interface StockApplier {
  apply(update: StockUpdate): Promise<ApplyOutcome>;
  /** Whether what `apply` needs answers again (after a transient failure). */
  ready(): Promise<boolean>;
}
