import type { RedisClient } from './shards';

/**
 * Reading Redis streams through a consumer group shared by many processes, the way both the ledger
 * writer (ledger/group.ts: the shards' ledger streams into MySQL) and the event publisher
 * (mq/outbox-sources.ts: the shards' outboxes to RabbitMQ) do it: each entry goes to one reader,
 * a reader's own unacknowledged entries are read again first, entries a dead reader left are taken
 * over, and an entry is deleted once acknowledged, so a stream holds exactly the entries not yet
 * done with.
 */

/** One stream entry; `fields` is null when the entry was deleted while pending. */
export interface GroupEntry {
  readonly stream: string;
  readonly id: string;
  readonly fields: string[] | null;
}

/** Who reads, in which group, and how the group is kept tidy. */
export interface GroupReader {
  readonly group: string;
  readonly consumer: string;
  /** Entries per stream per read (and per XAUTOCLAIM round). */
  readonly batchSize: number;
  /** Entries another consumer has held unacknowledged this long are taken over. */
  readonly claimIdleMs: number;
  /** Consumers idle this long with nothing pending are removed from the group. */
  readonly forgetConsumersAfterMs: number;
}

/** Creates the group on every stream, from its start (entries written before any reader ran count too); an existing group is left as it is. */
export async function createGroups(conn: RedisClient, streams: readonly string[], group: string): Promise<void> {
  for (const stream of streams) {
    try {
      await conn.xgroup('CREATE', stream, group, '0', 'MKSTREAM');
    } catch (err) {
      if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
    }
  }
}

/**
 * One read over all the streams: this consumer's pending entries (`pending`, ID 0: at start, after a
 * failure, after claiming) or new ones, waiting up to `blockMs` for them when given.
 */
export async function readGroup(conn: RedisClient, streams: readonly string[], reader: GroupReader, from: 'pending' | 'new', blockMs?: number): Promise<GroupEntry[]> {
  const args: Array<string | number> = ['GROUP', reader.group, reader.consumer, 'COUNT', reader.batchSize];
  if (from === 'new' && blockMs !== undefined) args.push('BLOCK', blockMs);
  args.push('STREAMS', ...streams, ...streams.map(() => (from === 'pending' ? '0' : '>')));
  const reply = (await conn.call('XREADGROUP', ...args)) as Array<[string, Array<[string, string[] | null]>]> | null;
  const entries: GroupEntry[] = [];
  for (const [stream, records] of reply ?? []) for (const [id, fields] of records) entries.push({ stream, id, fields });
  return entries;
}

/**
 * Takes over entries other consumers have held unacknowledged for claimIdleMs (their process died,
 * or lost them in a reconnect): they become this consumer's pending entries. Also removes consumers
 * long idle with nothing pending, so the group does not collect one per process ever started.
 * `dropped` names the streams where such a consumer had read between the look and its removal:
 * what it read left the pending list with it, and the caller must deliver it again.
 */
export async function claimIdle(conn: RedisClient, streams: readonly string[], reader: GroupReader): Promise<{ claimed: number; dropped: string[] }> {
  const { group, consumer, batchSize, claimIdleMs, forgetConsumersAfterMs } = reader;
  let claimed = 0;
  const dropped: string[] = [];
  for (const stream of streams) {
    let cursor = '0-0';
    for (let round = 0; round < 10; round++) {
      const reply = (await conn.call('XAUTOCLAIM', stream, group, consumer, claimIdleMs, cursor, 'COUNT', batchSize, 'JUSTID')) as [string, string[]];
      claimed += reply[1].length;
      cursor = reply[0];
      if (cursor === '0-0') break;
    }
    const consumers = (await conn.call('XINFO', 'CONSUMERS', stream, group)) as unknown[][];
    for (const flat of consumers) {
      const info = pairs(flat);
      if (info.name === consumer || Number(info.pending) !== 0 || Number(info.idle) <= forgetConsumersAfterMs) continue;
      if (Number(await conn.xgroup('DELCONSUMER', stream, group, String(info.name))) > 0) dropped.push(stream);
    }
  }
  return { claimed, dropped };
}

/** XACK and XDEL per stream, atomically (MULTI on one key, so it also holds on Redis Cluster). */
export async function ackAndDelete(conn: RedisClient, group: string, entries: ReadonlyArray<Pick<GroupEntry, 'stream' | 'id'>>): Promise<void> {
  const byStream = new Map<string, string[]>();
  for (const e of entries) byStream.set(e.stream, [...(byStream.get(e.stream) ?? []), e.id]);
  await Promise.all(
    [...byStream].map(async ([stream, ids]) => {
      const replies = await conn.multi().xack(stream, group, ...ids).xdel(stream, ...ids).exec();
      if (!replies) throw new Error(`XACK/XDEL on ${stream} was aborted`);
      for (const [err] of replies) if (err) throw err;
    }),
  );
}

/** [k1, v1, k2, v2, ...] → { k1: v1, ... } (the first value of a repeated key wins): a stream entry's or an XINFO reply's fields. */
export function pairs(flat: readonly unknown[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const key = String(flat[i]);
    if (!(key in out)) out[key] = flat[i + 1];
  }
  return out;
}
