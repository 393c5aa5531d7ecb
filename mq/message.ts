import { StockMessage, StockMessageKind } from '../gen/inventory/v1/stock_message.pb';
import { ID_PATTERN, ID_RULE } from '../kernel/ids';
import { StockUpdate, StockUpdateKind } from './types';

/**
 * A stock message off the wire, checked before anything is touched: JSON (proto3 JSON of
 * inventory.v1.StockMessage, mapped with ts-proto's fromJSON), every field in range. A message
 * that fails names the field and why, and goes to the dead-letter queue with that reason.
 */
export type ParsedMessage = { readonly update: StockUpdate } | { readonly problem: string };

const KINDS: Record<number, StockUpdateKind> = {
  [StockMessageKind.STOCK_MESSAGE_KIND_RECEIPT]: 'RECEIPT',
  [StockMessageKind.STOCK_MESSAGE_KIND_LOSS]: 'LOSS',
  [StockMessageKind.STOCK_MESSAGE_KIND_DAMAGE]: 'DAMAGE',
  [StockMessageKind.STOCK_MESSAGE_KIND_SHIPMENT]: 'SHIPMENT',
  [StockMessageKind.STOCK_MESSAGE_KIND_RETURN]: 'RETURN',
  [StockMessageKind.STOCK_MESSAGE_KIND_COUNT]: 'COUNT',
};

/** The largest quantity a message may carry: far beyond any warehouse, well inside 2^53. */
export const MAX_MESSAGE_QUANTITY = 1_000_000_000;

export function parseStockMessage(body: Buffer, contentType: string | undefined): ParsedMessage {
  if (contentType !== undefined && contentType !== 'application/json') return { problem: `content-type ${contentType} is not application/json` };
  let json: unknown;
  try {
    json = JSON.parse(body.toString('utf8'));
  } catch {
    return { problem: 'the body is not JSON' };
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) return { problem: 'the body is not a JSON object' };
  let message: StockMessage;
  try {
    message = StockMessage.fromJSON(json);
  } catch (err) {
    return { problem: `the body is not an inventory.v1.StockMessage: ${(err as Error).message}` };
  }
  return checkMessage(message);
}

export function checkMessage(m: StockMessage): ParsedMessage {
  const bad = (field: string, why: string) => ({ problem: `${field} ${why}` });
  if (!ID_PATTERN.test(m.messageId)) return bad('message_id', m.messageId === '' ? 'is required' : ID_RULE);
  if (!ID_PATTERN.test(m.skuId)) return bad('sku_id', m.skuId === '' ? 'is required' : ID_RULE);
  const kind = KINDS[m.kind];
  if (!kind) return bad('kind', 'must be one of RECEIPT, LOSS, DAMAGE, SHIPMENT, RETURN, COUNT');
  const min = kind === 'COUNT' ? 0 : 1;
  if (!Number.isSafeInteger(m.quantity) || m.quantity < min || m.quantity > MAX_MESSAGE_QUANTITY) {
    return bad('quantity', `must be a whole number from ${min} to ${MAX_MESSAGE_QUANTITY}`);
  }
  if (!m.occurredAt || Number.isNaN(m.occurredAt.getTime())) return bad('occurred_at', 'is required (RFC 3339)');
  // Stored as a TIMESTAMP: 1970-01-01T00:00:01Z .. 2038-01-19T03:14:07Z.
  if (m.occurredAt.getTime() < 1000 || m.occurredAt.getTime() > 2147483647000) return bad('occurred_at', 'must be between 1970 and 2038');
  if (m.warehouseId !== undefined && !ID_PATTERN.test(m.warehouseId)) return bad('warehouse_id', ID_RULE);
  if (m.sequence !== undefined && (!Number.isSafeInteger(m.sequence) || m.sequence < 0)) return bad('sequence', 'must be a whole number >= 0');
  if (kind === 'SHIPMENT' && m.orderId === undefined) return bad('order_id', 'is required for a SHIPMENT');
  if (m.orderId !== undefined && !ID_PATTERN.test(m.orderId)) return bad('order_id', ID_RULE);
  return {
    update: {
      messageId: m.messageId,
      sku: m.skuId,
      kind,
      quantity: m.quantity,
      occurredAt: m.occurredAt,
      warehouseId: m.warehouseId,
      sequence: m.sequence,
      orderId: kind === 'SHIPMENT' ? m.orderId : undefined,
    },
  };
}

/** The routing key of a kind on the stock exchange: `stock.receipt`, `stock.loss`, ... */
export function routingKey(kind: StockUpdateKind): string {
  return `stock.${kind.toLowerCase()}`;
}
