import type { Pool, PoolConnection } from 'mysql2/promise';
import { Movement, applyCheckedMovements, movementProblem } from '../store/ledger-apply';
import { transaction } from '../store/mysql';
import { recordFields } from './record';
import { DeadLetter, LedgerBatch, StreamEntry } from './types';

/**
 * One round of stream records into MySQL: each record checked and turned into a movement (or a
 * dead letter, with why), all applied in one transaction, exactly once per event id.
 */

/**
 * Applies a round's records in one transaction; records that cannot be movements go to the
 * dead-letter table in it (and are returned, for the caller to report).
 */
export async function applyBatch(
pool: Pool,
node: string,
entries: readonly StreamEntry[],
transactionTimeoutMs: number,
): Promise<{ batch: LedgerBatch; letters: DeadLetter[] }> {
  const movements: Movement[] = [];
  const letters: DeadLetter[] = [];
  for (const entry of entries) {
    const parsed = toMovement(entry);
    if ('movement' in parsed) movements.push(parsed.movement);
    else letters.push({ stream: entry.stream, id: entry.id, problem: parsed.problem, fields: parsed.fields });
  }
  const started = Date.now();
  const result = await transaction(
    pool,
    async (conn) => {
      const applied = await applyCheckedMovements(conn, movements);
      await insertDeadLetters(conn, letters);
      return applied;
    },
    // READ COMMITTED: no gap locks on the ledger's unique index, fewer deadlocks between writers.
    { isolation: 'READ COMMITTED', timeoutMs: transactionTimeoutMs },
  );
  const batch = {
    node,
    records: entries.length,
    applied: result.applied.length,
    duplicates: result.duplicates,
    deadLettered: letters.length,
    ms: Date.now() - started,
  };
  return { batch, letters };
}

const QTY = /^[1-9][0-9]{0,15}$/;
const MS = /^[0-9]{1,15}$/;
/**
 * Where a stream record may move units from and to. Units leave the building (`outside`) from the
 * pool (a loss shrinks a partition) or from committed (a shipment), and released units that are
 * physically gone pay off the shortfall (`missing`); nothing in Redis brings units in.
 */
const STREAM_FROM = new Set(['base', 'pool', 'reserved', 'committed']);
const STREAM_TO = new Set(['base', 'pool', 'reserved', 'committed', 'outside', 'missing']);

/**
 * A stream record as a movement, or why it cannot be one. Required: id, kind, sku, qty, from, to.
 * Optional: order, partition, seq (the partition's sequence number), reason, at (ms; default the
 * stream id's time). Other fields (epoch, ...) are ignored.
 */
export function toMovement(entry: StreamEntry): { movement: Movement } | { problem: string; fields: Record<string, string> } {
  if (entry.fields === null) return { problem: 'the record was deleted from the stream before it was applied', fields: {} };
  const read = recordFields(entry.fields);
  if ('problem' in read) return { problem: read.problem, fields: { m: read.raw } };
  const f = read.fields;
  const bad = (problem: string) => ({ problem, fields: f });
  for (const name of ['id', 'kind', 'sku', 'qty', 'from', 'to']) if (!f[name]) return bad(`field ${name} is missing`);
  if (!QTY.test(f.qty)) return bad(`qty ${JSON.stringify(f.qty)} is not a positive integer`);
  if (!STREAM_FROM.has(f.from)) return bad(`from ${JSON.stringify(f.from)} is not one of ${[...STREAM_FROM].join(', ')}`);
  if (!STREAM_TO.has(f.to)) return bad(`to ${JSON.stringify(f.to)} is not one of ${[...STREAM_TO].join(', ')}`);
  const atMs = f.at !== undefined && MS.test(f.at) ? Number(f.at) : Number(entry.id.split('-')[0]);
  const movement: Movement = {
    eventId: f.id,
    kind: f.kind,
    sku: f.sku,
    qty: Number(f.qty),
    from: f.from as Movement['from'],
    to: f.to as Movement['to'],
    orderId: f.order || undefined,
    partitionId: f.partition || undefined,
    partitionSeq: f.partition && f.seq !== undefined ? Number(f.seq) : undefined,
    reason: f.reason || undefined,
    source: `redis:s${entry.shard}:${entry.id}`,
    at: new Date(atMs),
  };
  const problem = movementProblem(movement);
  return problem ? bad(problem) : { movement };
}

async function insertDeadLetters(conn: PoolConnection, letters: readonly DeadLetter[]): Promise<void> {
  if (letters.length === 0) return;
  // IGNORE: the same record delivered again after a crash is kept once.
  await conn.query('INSERT IGNORE INTO ledger_dead_letters (stream, stream_id, fields, problem) VALUES ?', [
    letters.map((l) => [l.stream, l.id, JSON.stringify(l.fields), l.problem.slice(0, 512)]),
  ]);
}
