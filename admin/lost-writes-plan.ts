import { DocItem, DocPiece, OrderDoc, PieceTuple, ReleaseRecord } from '../allocator/doc';
import { itemsFingerprint } from '../allocator/reserve';
import type { OrderLedgerRow } from '../store/lost-writes';
import type { PartitionRow } from '../store/partitions';

/**
 * The pure half of the lost-writes check (lost-writes.ts does the I/O): which partitions Redis
 * has forgotten changes of, and what Redis must hold again for the orders MySQL recorded.
 */

/** A partition as the check read it in Redis: undefined when its hash is gone. */
export interface RedisPartitionSeq {
  readonly seq: number;
  readonly state: string;
}

/** A partition whose Redis state is older than what MySQL's ledger has applied. */
export interface LostPartition {
  readonly row: PartitionRow;
  /** Its change number in Redis (0 when the hash is gone). */
  readonly redisSeq: number;
  /** The highest change number MySQL holds. */
  readonly mysqlSeq: number;
  /** The partition hash itself is gone. */
  readonly missing: boolean;
  /** Already stopped by an earlier check (state `suspect`): restore it, do not stop it again. */
  readonly suspended: boolean;
}

/**
 * Compares each partition's sequence number in Redis with the highest MySQL has applied. Redis
 * numbers every change and the ledger only ever receives what Redis wrote, so MySQL ahead of
 * Redis means Redis lost acknowledged changes. A live partition whose hash is gone lost at least
 * its creation. A suspended partition is reported again until it is restored.
 */
export function findLostPartitions(
  rows: readonly PartitionRow[],
  redis: ReadonlyMap<string, RedisPartitionSeq | undefined>,
  mysql: ReadonlyMap<string, number>,
): LostPartition[] {
  const lost: LostPartition[] = [];
  for (const row of rows) {
    const r = redis.get(row.partitionId);
    const mysqlSeq = mysql.get(row.partitionId) ?? 0;
    if (!r) {
      // A retired partition's hash may end with it; only a live one must exist.
      if (row.state === 'live') lost.push({ row, redisSeq: 0, mysqlSeq, missing: true, suspended: false });
      continue;
    }
    if (r.state === SUSPECT) lost.push({ row, redisSeq: r.seq, mysqlSeq, missing: false, suspended: true });
    else if (r.seq < mysqlSeq) lost.push({ row, redisSeq: r.seq, mysqlSeq, missing: false, suspended: false });
  }
  return lost;
}

/** The state of a partition that lost changes and is not restored yet: takes refuse it. */
export const SUSPECT = 'suspect';

/** An order record to create again in Redis, from what MySQL recorded of it. */
export interface RestoredOrder {
  readonly orderId: string;
  readonly state: 'RESERVED' | 'CONFIRMED' | 'RELEASED' | 'EXPIRED';
  readonly doc: OrderDoc;
  /** The items part of the fingerprint (reserve.ts itemsFingerprint): a replay with these items is the same request. */
  readonly items: string;
  readonly created: number;
  /** When an unpaid hold expires (0 once paid or ended). */
  readonly expires: number;
  readonly confirmed: number;
  readonly ended: number;
}

export interface RestorePlan {
  /** Fields of the partition's takes hash: t:<order>, r:<order>, x:<order>:<release id>. */
  readonly takes: Record<string, string>;
  readonly orders: RestoredOrder[];
}

/**
 * What Redis must hold again for the orders that changed a partition in the changes it lost,
 * from every ledger row MySQL has of them: the partition's takes and releases per order (so a
 * replayed take answers ALREADY_TAKEN and a replayed release REPLAYED, never a second unit), and
 * each order's record with its pieces on every partition, its state and its releases.
 * `partitions` gives the shard and epoch of each partition an order took from; `ttlMs` is the
 * hold time of an unpaid order (the ledger does not know the one asked for: the default).
 */
export function planRestore(
  partitionId: string,
  rows: readonly OrderLedgerRow[],
  partitions: ReadonlyMap<string, PartitionRow>,
  ttlMs: number,
): RestorePlan {
  const takes: Record<string, string> = {};
  const orders: RestoredOrder[] = [];
  for (const [orderId, own] of groupBy(rows, (r) => r.orderId)) {
    for (const r of own) {
      if (r.partitionId !== partitionId) continue;
      if (r.kind === 'take') add(takes, `t:${orderId}`, r.qty);
      else if (r.kind === 'release') {
        add(takes, `r:${orderId}`, r.qty);
        const id = releaseId(r);
        if (id !== undefined) takes[`x:${orderId}:${id}`] = releaseGuard(takes[`x:${orderId}:${id}`], r);
      }
    }
    const order = orderFromRows(orderId, own, partitions, ttlMs);
    if (order) orders.push(order);
  }
  return { takes, orders };
}

/** An order's record from its ledger rows; undefined when MySQL has no take of it. */
export function orderFromRows(
  orderId: string,
  rows: readonly OrderLedgerRow[],
  partitions: ReadonlyMap<string, PartitionRow>,
  ttlMs: number,
): RestoredOrder | undefined {
  const items = new Map<string, DocItem>();
  const releases: Record<string, ReleaseRecord> = {};
  let created = Infinity;
  let confirmed = 0;
  let ended = 0;
  let expired = false;
  const pieceOf = (r: OrderLedgerRow): DocPiece | undefined => {
    const item = items.get(r.sku);
    return item?.pieces.find((p) => p.p === r.partitionId);
  };
  for (const r of rows) {
    if (r.kind === 'take' && r.partitionId) {
      const p = partitions.get(r.partitionId);
      let item = items.get(r.sku);
      if (!item) items.set(r.sku, (item = { sku: r.sku, qty: 0, rel: 0, pieces: [] }));
      item.qty += r.qty;
      item.pieces.push({ p: r.partitionId, s: p?.shard ?? 0, e: p?.epoch ?? 0, q: r.qty, r: 0 });
      created = Math.min(created, r.at);
    } else if (r.kind === 'confirm') {
      confirmed = Math.max(confirmed, r.at);
    } else if (r.kind === 'release' && r.partitionId) {
      const item = items.get(r.sku);
      const piece = pieceOf(r);
      if (!item || !piece) continue;
      item.rel += r.qty;
      piece.r += r.qty;
      ended = Math.max(ended, r.at);
      if (r.reason === 'EXPIRE') expired = true;
      const id = releaseId(r);
      if (id === undefined) continue;
      const release = (releases[id] ??= { reason: r.reason ?? '', from: r.from === 'committed' ? 'committed' : 'reserved', at: r.at, pieces: [], items: {} });
      const tuple: PieceTuple = [r.sku, r.partitionId, piece.s, piece.e, r.qty];
      release.pieces.push(tuple);
      release.items[r.sku] = (release.items[r.sku] ?? 0) + r.qty;
    }
  }
  if (items.size === 0) return undefined;
  const docItems = [...items.values()];
  const open = docItems.some((i) => i.rel < i.qty);
  const state = open ? (confirmed ? 'CONFIRMED' : 'RESERVED') : expired ? 'EXPIRED' : 'RELEASED';
  return {
    orderId,
    state,
    doc: { items: docItems, user: '', limits: {}, releases },
    items: itemsFingerprint(docItems.map((i) => ({ sku: i.sku, quantity: i.qty }))),
    created,
    expires: state === 'RESERVED' ? created + ttlMs : 0,
    confirmed,
    ended: open ? 0 : ended,
  };
}

/** The release id of a release row: its event id is release:<order>:<partition>:<release id>[:missing]. */
function releaseId(r: OrderLedgerRow): string | undefined {
  const prefix = `release:${r.orderId}:${r.partitionId}:`;
  if (!r.eventId.startsWith(prefix)) return undefined;
  const rest = r.eventId.slice(prefix.length);
  return rest.endsWith(':missing') ? rest.slice(0, -':missing'.length) : rest;
}

/** untake's record of one release (`<units>:<to>`), the rows of one release id added up. */
function releaseGuard(before: string | undefined, r: OrderLedgerRow): string {
  const [units, to] = (before ?? '0:').split(':');
  // A release that paid a debt and returned the rest reports where the rest went.
  const where = r.to === 'missing' && to ? to : r.to;
  return `${Number(units) + r.qty}:${where}`;
}

function add(fields: Record<string, string>, field: string, qty: number): void {
  fields[field] = String(Number(fields[field] ?? '0') + qty);
}

function groupBy<T>(list: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>();
  for (const t of list) {
    const k = key(t);
    const g = groups.get(k);
    if (g) g.push(t);
    else groups.set(k, [t]);
  }
  return groups;
}
