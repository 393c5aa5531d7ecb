/**
 * "No unit sold twice", checked from the stores after each scenario.
 *
 * Our server: per SKU, the live `avail` of every partition hash, and the ledger: the records still
 * in the streams `<prefix>:{s<N>}:ledger` (one `take` record per piece taken, one `release` record
 * per piece given back) plus those the ledger writer has already moved into MySQL's `ledger` table
 * (and XDELed from the stream). The streams are read first, MySQL second, and records are counted
 * once per event id: a record is in its stream until its batch has committed, so none can slip
 * between the two reads. For every SKU: avail >= 0 in every partition, sum(avail) + taken -
 * released == stocked, and no take twice; then the units held (taken - released) must equal what
 * the clients were answered (RESERVED units minus units their Releases gave back).
 *
 * The MySQL baseline: the stock row never negative, row + ledger units == stocked, and ledger rows
 * == RESERVED answers.
 */
import mysql, { RowDataPacket } from 'mysql2/promise';
import { Config } from '../server/config';
import { recordFields } from '../ledger/record';
import { redisAt, redisLayout } from './redis-nodes';

export interface SkuBook {
  stocked: number;
  avail: number;
  partitions: number;
  negative: number;
  taken: number;
  released: number;
  takeRecords: number;
  duplicateTakes: number;
}

/** Reads partitions and ledgers of the SKUs in `stocked` (sku -> units stocked). */
export async function readBooks(config: Config, stocked: ReadonlyMap<string, number>, mysqlUrl?: string): Promise<Map<string, SkuBook> & { deadLetters?: number }> {
  const books = new Map<string, SkuBook>();
  for (const [sku, units] of stocked) {
    books.set(sku, { stocked: units, avail: 0, partitions: 0, negative: 0, taken: 0, released: 0, takeRecords: 0, duplicateTakes: 0 });
  }
  // The plain nodes, or the cluster's masters: a client each.
  const layout = await redisLayout(config);
  const clients = new Map(layout.masters.map((node) => [node, redisAt(node)]));
  try {
    // Partitions: every node, by key pattern, then avail and sku of each.
    for (const redis of clients.values()) {
      let cursor = '0';
      let rounds = 0;
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.redisPrefix}:*:p:*`, 'COUNT', 5000);
        cursor = next;
        if (keys.length === 0) continue;
        const pipeline = redis.pipeline();
        for (const key of keys) pipeline.hmget(key, 'sku', 'avail');
        const rows = (await pipeline.exec()) ?? [];
        for (const [err, value] of rows) {
          if (err) continue; // not a partition hash (a key that merely looks like one)
          const [sku, avail] = value as [string | null, string | null];
          const book = sku ? books.get(sku) : undefined;
          if (!book) continue;
          const n = Number(avail ?? 0);
          book.avail += n;
          book.partitions++;
          if (n < 0) book.negative++;
        }
      } while (cursor !== '0' && ++rounds < 1_000_000);
    }
    // Ledgers: one stream per shard, on its node (shard mod N, or the master of its slot).
    const streamIds = new Set<string>();
    const seen = new Map<string, Set<string>>();
    const count = (id: string, kind: string, sku: string, qty: number) => {
      const book = books.get(sku);
      if (!book) return;
      let ids = seen.get(sku);
      if (!ids) seen.set(sku, (ids = new Set()));
      if (ids.has(id)) return; // the same record in the stream and in MySQL: counted once
      ids.add(id);
      if (kind === 'take') {
        book.taken += qty;
        book.takeRecords++;
      } else if (kind === 'release') {
        book.released += qty;
      }
    };
    for (let shard = 0; shard < config.redisShards; shard++) {
      const redis = clients.get(layout.nodeOfShard(shard))!;
      const key = `${config.redisPrefix}:{s${shard}}:ledger`;
      let start = '-';
      for (let rounds = 0; rounds < 100_000; rounds++) {
        const entries = (await redis.xrange(key, start, '+', 'COUNT', 10_000)) as Array<[string, string[]]>;
        if (entries.length === 0) break;
        for (const [, fields] of entries) {
          const read = recordFields(fields);
          if ('problem' in read) continue; // the ledger writer dead-letters it; counted from MySQL
          const { id = '', kind = '', sku = '' } = read.fields;
          const qty = Number(read.fields.qty ?? 0);
          if (kind === 'take' && streamIds.has(id)) {
            const book = books.get(sku);
            if (book) book.duplicateTakes++;
          }
          streamIds.add(id);
          count(id, kind, sku, qty);
        }
        start = `(${entries[entries.length - 1][0]}`;
        if (entries.length < 10_000) break;
      }
    }
    // Then what the ledger writer has already applied to MySQL (when the server has a database).
    if (mysqlUrl) {
      const applied = await readAppliedLedger(mysqlUrl, (id, kind, sku, qty) => count(id, kind, sku, qty));
      if (applied) (books as Map<string, SkuBook> & { deadLetters?: number }).deadLetters = applied.deadLetters;
    }
  } finally {
    for (const c of clients.values()) c.disconnect();
  }
  return books;
}

/** Streams MySQL's `ledger` rows (take/release) to `onRow`; undefined when there is no such database or table. */
async function readAppliedLedger(
  url: string,
  onRow: (eventId: string, kind: string, sku: string, qty: number) => void,
): Promise<{ rows: number; deadLetters: number } | undefined> {
  let conn: mysql.Connection;
  try {
    conn = await mysql.createConnection({ uri: url });
  } catch (err) {
    if ((err as { errno?: number }).errno === 1049) return undefined; // no database: no ledger writer ran
    throw err;
  }
  try {
    let last = 0;
    let rows = 0;
    for (let rounds = 0; rounds < 100_000; rounds++) {
      let page: RowDataPacket[];
      try {
        [page] = await conn.query<RowDataPacket[]>(
          "SELECT id, event_id, kind, sku_id, qty FROM ledger WHERE id > ? AND kind IN ('take', 'release') ORDER BY id LIMIT 20000",
          [last],
        );
      } catch (err) {
        if ((err as { errno?: number }).errno === 1146) return undefined; // no ledger table
        throw err;
      }
      for (const r of page) onRow(String(r.event_id), String(r.kind), String(r.sku_id), Number(r.qty));
      rows += page.length;
      if (page.length < 20000) break;
      last = Number(page[page.length - 1].id);
    }
    let deadLetters = 0;
    try {
      const [dl] = await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS c FROM ledger_dead_letters');
      deadLetters = Number(dl[0].c);
    } catch {
      /* no such table yet */
    }
    return { rows, deadLetters };
  } finally {
    await conn.end();
  }
}

export interface Verdict {
  readonly ok: boolean;
  /** Units held by reservations (taken - released) over the SKUs checked. */
  readonly held: number;
  readonly stocked: number;
  readonly avail: number;
  readonly takeRecords: number;
  readonly problems: string[];
}

/**
 * Conservation per SKU, and held units against the clients' count (when given).
 * `expectTakeRecords`: takes that must be in the ledger (flash: one per RESERVED answer).
 */
export function judge(books: ReadonlyMap<string, SkuBook> & { deadLetters?: number }, clientHeld?: number, expectTakeRecords?: number): Verdict {
  const problems: string[] = [];
  if (books.deadLetters) problems.push(`${books.deadLetters} ledger record(s) dead-lettered by the ledger writer`);
  let held = 0;
  let stocked = 0;
  let avail = 0;
  let takeRecords = 0;
  for (const [sku, b] of books) {
    held += b.taken - b.released;
    stocked += b.stocked;
    avail += b.avail;
    takeRecords += b.takeRecords;
    if (b.negative > 0) problems.push(`${sku}: ${b.negative} partition(s) with negative avail`);
    if (b.avail + b.taken - b.released !== b.stocked) {
      problems.push(`${sku}: avail ${b.avail} + taken ${b.taken} - released ${b.released} != stocked ${b.stocked}`);
    }
    if (b.duplicateTakes > 0) problems.push(`${sku}: ${b.duplicateTakes} take record(s) twice in the ledger`);
    if (b.released > b.taken) problems.push(`${sku}: released ${b.released} > taken ${b.taken}`);
  }
  if (clientHeld !== undefined && clientHeld !== held) {
    problems.push(`clients hold ${clientHeld} units by their answers, the ledger says ${held}`);
  }
  if (expectTakeRecords !== undefined && expectTakeRecords !== takeRecords) {
    problems.push(`${expectTakeRecords} RESERVED answers but ${takeRecords} take records`);
  }
  if (problems.length > 12) problems.splice(12, problems.length - 12, `… and more`);
  return { ok: problems.length === 0, held, stocked, avail, takeRecords, problems };
}

export interface BaselineBook {
  readonly sku: string;
  readonly stocked: number;
  readonly row: number;
  readonly ledgerRows: number;
  readonly ledgerUnits: number;
}

export async function readBaseline(url: string, stocked: ReadonlyMap<string, number>): Promise<BaselineBook[]> {
  const conn = await mysql.createConnection({ uri: url });
  try {
    const out: BaselineBook[] = [];
    for (const [sku, units] of stocked) {
      const [rows] = await conn.query<RowDataPacket[]>('SELECT n FROM bench_stock WHERE sku = ?', [sku]);
      const [ledger] = await conn.query<RowDataPacket[]>('SELECT COUNT(*) AS c, COALESCE(SUM(qty), 0) AS q FROM bench_ledger WHERE sku = ?', [sku]);
      out.push({ sku, stocked: units, row: Number(rows[0]?.n ?? NaN), ledgerRows: Number(ledger[0].c), ledgerUnits: Number(ledger[0].q) });
    }
    return out;
  } finally {
    await conn.end();
  }
}

export function judgeBaseline(books: readonly BaselineBook[], reservedAnswers: number): Verdict {
  const problems: string[] = [];
  let held = 0;
  let stocked = 0;
  let avail = 0;
  let rows = 0;
  for (const b of books) {
    held += b.ledgerUnits;
    stocked += b.stocked;
    avail += b.row;
    rows += b.ledgerRows;
    if (!(b.row >= 0)) problems.push(`${b.sku}: stock row is ${b.row}`);
    if (b.row + b.ledgerUnits !== b.stocked) problems.push(`${b.sku}: row ${b.row} + ledger ${b.ledgerUnits} != stocked ${b.stocked}`);
  }
  if (rows !== reservedAnswers) problems.push(`${reservedAnswers} RESERVED answers but ${rows} ledger rows`);
  return { ok: problems.length === 0, held, stocked, avail, takeRecords: rows, problems };
}
