import { pairs } from './record';
import { NodeLoop, StreamEntry } from './types';

/**
 * The writer's side of the consumer group shared by every ledger writer: create it, read this
 * consumer's records (its pending ones first), take over records of consumers that stopped, find
 * records left with no consumer, and acknowledge (XACK and XDEL) what MySQL has committed.
 */
export class ConsumerGroup {
  constructor(
    readonly group: string,
    readonly consumer: string,
    private readonly batchSize: number,
    private readonly blockMs: number,
    private readonly claimIdleMs: number,
    private readonly forgetConsumersAfterMs: number,
  ) {}

  /** Creates the group on every stream of the node (an existing one is left as it is). */
  async ensure(loop: NodeLoop): Promise<void> {
    for (const stream of loop.streams) {
      try {
        await loop.conn.xgroup('CREATE', stream, this.group, '0', 'MKSTREAM');
      } catch (err) {
        if (!(err instanceof Error && err.message.startsWith('BUSYGROUP'))) throw err;
      }
    }
    loop.groupsReady = true;
  }

  /**
   * Takes over records other consumers have held unacknowledged for claimIdleMs (their process
   * died, or lost them in a reconnect); the history read then applies them. Returns how many. Also forgets consumers
   * long idle with nothing pending, so the group does not collect one per process ever started.
   */
  async claim(loop: NodeLoop): Promise<number> {
    let claimed = 0;
    for (const stream of loop.streams) {
      let cursor = '0-0';
      for (let round = 0; round < 10; round++) {
        const reply = (await loop.conn.call(
          'XAUTOCLAIM',
          stream,
          this.group,
          this.consumer,
          this.claimIdleMs,
          cursor,
          'COUNT',
          this.batchSize,
          'JUSTID',
        )) as [string, string[], string[]?];
        claimed += reply[1].length;
        cursor = reply[0];
        if (cursor === '0-0') break;
      }
      const consumers = (await loop.conn.call('XINFO', 'CONSUMERS', stream, this.group)) as unknown[][];
      for (const flat of consumers) {
        const info = pairs(flat);
        if (info.name !== this.consumer && Number(info.pending) === 0 && Number(info.idle) > this.forgetConsumersAfterMs) {
          const dropped = Number(await loop.conn.xgroup('DELCONSUMER', stream, this.group, String(info.name)));
          // It read records between XINFO and DELCONSUMER (back after an hour's sleep): they left the
          // pending list with it and would never be delivered again.
          if (dropped > 0) loop.orphaned.add(stream);
        }
      }
    }
    if (claimed > 0) loop.history = true;
    return claimed;
  }

  /**
   * The records of a stream that were delivered but are pending with no consumer (only a
   * DELCONSUMER racing a read leaves such): delivered ones (up to the group's last id) still in the
   * stream and absent from the pending list. Applying one twice is harmless, so a record that was
   * in flight elsewhere costs a duplicate at worst.
   */
  async orphans(loop: NodeLoop, stream: string): Promise<StreamEntry[]> {
    const groups = (await loop.conn.call('XINFO', 'GROUPS', stream)) as unknown[][];
    const lastId = groups.map(pairs).find((g) => g.name === this.group)?.['last-delivered-id'];
    if (typeof lastId !== 'string') return [];
    const pending = (await loop.conn.call('XPENDING', stream, this.group, '-', '+', 100_000)) as Array<[string, ...unknown[]]>;
    const known = new Set(pending.map(([id]) => id));
    const shard = loop.shards[loop.streams.indexOf(stream)];
    const delivered = await loop.conn.xrange(stream, '-', lastId, 'COUNT', 100_000);
    return delivered.filter(([id]) => !known.has(id)).map(([id, fields]): StreamEntry => ({ stream, shard, id, fields }));
  }

  /** One read over all streams of the node: this consumer's pending records while `history`, else new ones (blocking). */
  async read(loop: NodeLoop, stopping: boolean): Promise<StreamEntry[]> {
    const history = loop.history;
    if (!history && stopping) return [];
    const args: Array<string | number> = ['GROUP', this.group, this.consumer, 'COUNT', this.batchSize];
    if (!history) args.push('BLOCK', this.blockMs);
    args.push('STREAMS', ...loop.streams, ...loop.streams.map(() => (history ? '0' : '>')));
    const reply = (await loop.conn.call('XREADGROUP', ...args)) as Array<[string, Array<[string, string[] | null]>]> | null;
    const entries: StreamEntry[] = [];
    for (const [stream, records] of reply ?? []) {
      const shard = loop.shards[loop.streams.indexOf(stream)];
      for (const [id, fields] of records) entries.push({ stream, shard, id, fields });
    }
    if (history && entries.length === 0) loop.history = false;
    return entries;
  }

  /** XACK and XDEL per stream, atomically (MULTI on one key, so it also holds on Redis Cluster). */
  async ack(loop: NodeLoop, entries: readonly StreamEntry[]): Promise<void> {
    const byStream = new Map<string, string[]>();
    for (const e of entries) byStream.set(e.stream, [...(byStream.get(e.stream) ?? []), e.id]);
    await Promise.all(
      [...byStream].map(async ([stream, ids]) => {
        const replies = await loop.conn.multi().xack(stream, this.group, ...ids).xdel(stream, ...ids).exec();
        if (!replies) throw new Error(`ledger writer: XACK/XDEL on ${stream} was aborted`);
        for (const [err] of replies) if (err) throw err;
      }),
    );
  }
}
