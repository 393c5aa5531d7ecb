import { RespValue } from './resp';
import { SLOT_COUNT } from './slot';

/**
 * Which master serves each of Redis Cluster's 16384 slots, from a CLUSTER SLOTS reply:
 * `[[start, end, [host, port, id, ...], replica...], ...]`. A node that announces no host (an
 * empty string, or "?" on some versions) is reached at the host we asked. Slots no master
 * serves are undefined.
 */
export function parseClusterSlots(reply: RespValue, askedHost: string): Array<string | undefined> {
  if (!Array.isArray(reply)) throw new Error(`CLUSTER SLOTS: unexpected reply ${JSON.stringify(reply)}`);
  const owners = new Array<string | undefined>(SLOT_COUNT).fill(undefined);
  for (const range of reply) {
    if (!Array.isArray(range) || range.length < 3 || !Array.isArray(range[2])) continue;
    const [start, end, master] = range as [number, number, RespValue[]];
    const node = slotNode(master, askedHost);
    for (let slot = Number(start); slot <= Number(end) && slot < SLOT_COUNT; slot++) owners[slot] = node;
  }
  return owners;
}

/** `host:port` of a node entry of CLUSTER SLOTS (`[host, port, id, ...]`, a master's or a replica's). */
export function slotNode(entry: readonly RespValue[], askedHost: string): string {
  const host = typeof entry[0] === 'string' && entry[0] !== '' && entry[0] !== '?' ? entry[0] : askedHost;
  return `${host.includes(':') ? `[${host}]` : host}:${Number(entry[1])}`;
}

/** The distinct masters of a slot map, in the order of the slots they serve first. */
export function mastersOf(owners: ReadonlyArray<string | undefined>): string[] {
  return [...new Set(owners.filter((n): n is string => n !== undefined))];
}

/** A -MOVED or -ASK reply: where the slot is (MOVED) or where this one call should go (ASK). */
export interface Redirect {
  readonly kind: 'MOVED' | 'ASK';
  readonly slot: number;
  readonly node: string;
}

export function parseRedirect(message: string): Redirect | undefined {
  const m = /^(MOVED|ASK) (\d+) (\S+)$/.exec(message);
  if (!m) return undefined;
  // Redis 7 may announce ":port" alone (no hostname known): the caller reaches it at the same host.
  return { kind: m[1] as 'MOVED' | 'ASK', slot: Number(m[2]), node: m[3] };
}

export function splitHostPort(node: string): [string, number] {
  const at = node.lastIndexOf(':');
  return [node.slice(0, at).replace(/^\[|\]$/g, ''), Number(node.slice(at + 1))];
}
