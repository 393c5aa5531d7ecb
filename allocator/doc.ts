import { Reservation, ReservationItem, ReservationState, Shortage } from './types';

/**
 * The JSON a reservation keeps in Redis (the order hash's `doc` field), read and written by both
 * the Lua scripts (cjson) and TypeScript. Short keys: it is written on every Reserve.
 */
export interface OrderDoc {
  items: DocItem[];
  /** Buyer id, '' when anonymous. */
  user: string;
  /** Per-user limits that applied when reserved, by SKU. */
  limits: Record<string, number>;
  releases: Record<string, ReleaseRecord>;
  /** Units shipped per shipment message id (order-ship), absent until the first. */
  ships?: Record<string, number>;
}

export interface DocItem {
  sku: string;
  qty: number;
  rel: number;
  /** Units shipped (order-ship), absent until the first shipment. */
  shipped?: number;
  pieces: DocPiece[];
}

export interface DocPiece {
  /** partition id */ p: string;
  /** shard */ s: number;
  /** epoch */ e: number;
  /** units taken */ q: number;
  /** units released */ r: number;
}

/** A planned or released piece: [sku, partition, shard, epoch, units]. */
export type PieceTuple = [string, string, number, number, number];

export interface ReleaseRecord {
  reason: string;
  from: 'reserved' | 'committed';
  at: number;
  pieces: PieceTuple[];
  items: Record<string, number>;
  /** The attempt's name in the takes and user hashes when it is not the order id (attempts.ts). */
  t?: string;
}

/**
 * The doc of a one-item order as JSON, with its one piece when taken from `from`: the text
 * JSON.stringify gives for that OrderDoc, written out directly because every Reserve of the hot
 * path builds one (a third of the time, and no objects to collect).
 */
export function oneItemDoc(sku: string, qty: number, user: string, from?: { partitionId: string; shard: number; epoch: number }): string {
  const piece = from ? `{"p":${JSON.stringify(from.partitionId)},"s":${from.shard},"e":${from.epoch},"q":${qty},"r":0}` : '';
  return `{"items":[{"sku":${JSON.stringify(sku)},"qty":${qty},"rel":0,"pieces":[${piece}]}],"user":${JSON.stringify(user)},"limits":{},"releases":{}}`;
}

/** The reservation a one-item order just got from one partition (what toReservation reads back). */
export function oneItemReservation(
  orderId: string,
  item: { sku: string; quantity: number },
  userId: string,
  from: { partitionId: string; shard: number; epoch: number },
  createdAt: number,
  expiresAt: number,
): Reservation {
  return {
    orderId,
    state: 'RESERVED',
    items: [
      {
        sku: item.sku,
        quantity: item.quantity,
        released: 0,
        shipped: 0,
        pieces: [{ partitionId: from.partitionId, shard: from.shard, epoch: from.epoch, quantity: item.quantity, released: 0 }],
      },
    ],
    userId,
    createdAt,
    expiresAt,
    confirmedAt: 0,
    endedAt: 0,
  };
}

/** Lua's cjson encodes an empty array as {}: read arrays through this. */
export function asArray<T>(value: T[] | Record<string, never> | undefined): T[] {
  return Array.isArray(value) ? value : [];
}

export function parseDoc(json: string): OrderDoc {
  const doc = JSON.parse(json) as OrderDoc;
  doc.items = asArray(doc.items);
  for (const item of doc.items) item.pieces = asArray(item.pieces);
  return doc;
}

export function parseRelease(json: string): ReleaseRecord {
  const record = JSON.parse(json) as ReleaseRecord;
  record.pieces = asArray(record.pieces);
  return record;
}

/** The order hash as HGETALL returns it. */
export type OrderFields = Record<string, string>;

export function fieldsFromPairs(pairs: string[], offset = 0): OrderFields {
  const fields: OrderFields = {};
  for (let i = offset; i + 1 < pairs.length; i += 2) fields[pairs[i]] = pairs[i + 1];
  return fields;
}

export function toReservation(orderId: string, fields: OrderFields, doc: OrderDoc = parseDoc(fields.doc)): Reservation {
  return {
    orderId,
    state: fields.state as ReservationState,
    items: doc.items.map(
      (item): ReservationItem => ({
        sku: item.sku,
        quantity: item.qty,
        released: item.rel,
        shipped: item.shipped ?? 0,
        pieces: item.pieces.map((p) => ({ partitionId: p.p, shard: p.s, epoch: p.e, quantity: p.q, released: p.r })),
      }),
    ),
    userId: doc.user,
    createdAt: Number(fields.created ?? 0),
    expiresAt: Number(fields.expires ?? 0),
    confirmedAt: Number(fields.confirmed ?? 0),
    endedAt: Number(fields.ended ?? 0),
  };
}

/** The shortages a REJECTED order answered with (its `answer` field). */
export function storedShortages(fields: OrderFields): Shortage[] | 'RECOVERED' {
  if (fields.answer === 'RECOVERED') return 'RECOVERED';
  return asArray(JSON.parse(fields.answer ?? '[]') as Shortage[]);
}
