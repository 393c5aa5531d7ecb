import { GroupReader, ackAndDelete, claimIdle, createGroups, pairs, readGroup } from '../allocator/stream-group';
import { NodeLoop, StreamEntry } from './types';

/**
 * The writer's side of the consumer group shared by every ledger writer (the stream reading itself
 * is allocator/stream-group.ts): create it, read this consumer's records (its pending ones first),
 * take over records of consumers that stopped, find records left with no consumer, and acknowledge
 * (XACK and XDEL) what MySQL has committed.
 */
export class ConsumerGroup {
  private readonly reader: GroupReader;

  constructor(
    readonly group: string,
    readonly consumer: string,
    batchSize: number,
    private readonly blockMs: number,
    claimIdleMs: number,
    forgetConsumersAfterMs: number,
  ) {
    this.reader = { group, consumer, batchSize, claimIdleMs, forgetConsumersAfterMs };
  }

  /** Creates the group on every stream of the node (an existing one is left as it is). */
  async ensure(loop: NodeLoop): Promise<void> {
    await createGroups(loop.conn, loop.streams, this.group);
    loop.groupsReady = true;
  }

  /**
   * Takes over records other consumers have held unacknowledged for claimIdleMs (their process
   * died, or lost them in a reconnect); the history read then applies them. Returns how many. A
   * consumer removed while it read leaves its records pending with no one: recoverOrphans applies them.
   */
  async claim(loop: NodeLoop): Promise<number> {
    const { claimed, dropped } = await claimIdle(loop.conn, loop.streams, this.reader);
    for (const stream of dropped) loop.orphaned.add(stream);
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
    const read = await readGroup(loop.conn, loop.streams, this.reader, history ? 'pending' : 'new', this.blockMs);
    if (history && read.length === 0) loop.history = false;
    return read.map((e) => ({ ...e, shard: loop.shards[loop.streams.indexOf(e.stream)] }));
  }

  /** XACK and XDEL per stream, atomically. */
  ack(loop: NodeLoop, entries: readonly StreamEntry[]): Promise<void> {
    return ackAndDelete(loop.conn, this.group, entries);
  }
}
