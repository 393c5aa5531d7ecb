/**
 * The events the inventory publishes for other systems (docs/events.md has each one's meaning, id
 * rule and data). Written to an outbox in the same atomic step as the change they report (a Redis
 * stream per shard, a MySQL table) and published from there by mq/events.ts, at least once: the id
 * is the same however often an event is written or published, so consumers deduplicate by it.
 */
export const EVENT_TYPES = ['hold.expired', 'stock.low', 'stock.shortfall', 'sku.sold_out', 'partition.exhausted'] as const;

export type EventType = (typeof EVENT_TYPES)[number];

/** One event, as published (the message body, JSON). */
export interface InventoryEvent {
  /** Stable across retries and republishing: `<type>:<what it is about>` (docs/events.md). */
  readonly id: string;
  readonly type: EventType;
  /** The SKU the event is about; null for a hold of several SKUs (see data.items). */
  readonly sku: string | null;
  /** When the change happened (ISO 8601, UTC, ms). */
  readonly occurredAt: string;
  readonly data: Readonly<Record<string, unknown>>;
}

/** An event's id from its type and what it is about: `<type>:<part>:<part>...`. */
export function eventId(type: EventType, ...parts: string[]): string {
  return [type, ...parts].join(':');
}

/**
 * Reads an outbox entry: a JSON object with id, type, sku and data, and the time either as
 * `occurredAt` (ISO, written by TypeScript) or `at` (ms since the epoch, written by the Lua scripts,
 * which have no date formatting). Answers the problem instead when it is not an event.
 */
export function parseOutboxEvent(text: string): InventoryEvent | { problem: string } {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { problem: 'not JSON' };
  }
  if (raw === null || typeof raw !== 'object') return { problem: 'not an object' };
  const { id, type, sku, at, occurredAt, data } = raw;
  if (typeof id !== 'string' || id === '') return { problem: 'id missing' };
  if (!EVENT_TYPES.includes(type as EventType)) return { problem: `unknown type ${String(type)}` };
  const time = typeof at === 'number' ? new Date(at) : typeof occurredAt === 'string' ? new Date(occurredAt) : undefined;
  if (!time || Number.isNaN(time.getTime())) return { problem: 'time missing' };
  return {
    id,
    type: type as EventType,
    sku: typeof sku === 'string' ? sku : null,
    occurredAt: time.toISOString(),
    data: data !== null && typeof data === 'object' && !Array.isArray(data) ? (data as Record<string, unknown>) : {},
  };
}
