import type { RedisShards } from './shards';

/**
 * The guard of plain multi-node mode's node map. There, shard s lives on node s mod N: the map is
 * the node list (in order) and the shard count, and a server started with another list or count
 * would look for every shard on the wrong node and find it empty (selling stock it does not see,
 * missing orders it holds). So the map is recorded on every node at first start (`<prefix>:nodemap`)
 * and a server whose configuration differs from what any node recorded refuses to start.
 * Redis Cluster mode needs none: the cluster itself says where each slot lives.
 */

export interface NodeMap {
  readonly nodes: readonly string[];
  readonly shards: number;
}

export class NodeMapMismatch extends Error {
  override name = 'NodeMapMismatch';
}

export function describeNodeMap(map: NodeMap): string {
  return `REDIS_NODES=${map.nodes.join(',')} REDIS_SHARDS=${map.shards}`;
}

/** Why `current` may not serve the data laid out by `recorded`, or undefined when it may (same nodes, same order, same count). */
export function nodeMapMismatch(recorded: NodeMap, current: NodeMap): string | undefined {
  const sameNodes = recorded.nodes.length === current.nodes.length && recorded.nodes.every((n, i) => n === current.nodes[i]);
  if (sameNodes && recorded.shards === current.shards) return undefined;
  return `recorded at first start: ${describeNodeMap(recorded)}; configured now: ${describeNodeMap(current)}`;
}

/** A recorded map as stored, or undefined when the value is not one (then it is reported, not trusted). */
export function parseNodeMap(text: string): NodeMap | undefined {
  try {
    const value = JSON.parse(text) as Partial<NodeMap>;
    if (!Array.isArray(value.nodes) || !value.nodes.every((n) => typeof n === 'string') || !Number.isInteger(value.shards)) return undefined;
    return { nodes: value.nodes, shards: value.shards as number };
  } catch {
    return undefined;
  }
}

/**
 * Checks the configured map against what every node recorded, then records it where it is missing
 * (first start, or a node that never had it). Throws NodeMapMismatch naming both maps. Every node
 * is checked, not only the first: a reordered list puts another node first, and a node added to
 * the list has no record of its own yet while the others do.
 */
export async function guardNodeMap(shards: RedisShards): Promise<void> {
  if (shards.cluster) return;
  const current: NodeMap = { nodes: shards.options.nodes, shards: shards.options.shardCount };
  const key = shards.keys.nodeMap();
  const recorded = await Promise.all(shards.clients.map((client) => client.get(key)));
  recorded.forEach((text, i) => {
    if (text === null) return;
    const map = parseNodeMap(text);
    const why = map ? nodeMapMismatch(map, current) : `${key} holds ${JSON.stringify(text)}, not a node map`;
    if (why) {
      throw new NodeMapMismatch(
        `refusing to start: the Redis node map differs from the one recorded on ${shards.options.nodes[i]} (${key}): ${why}. ` +
          'Shard s lives on node s mod N, so this configuration would read the wrong nodes. Restore the recorded ' +
          'REDIS_NODES and REDIS_SHARDS, or move the data first (README "Changing the Redis nodes").',
      );
    }
  });
  const value = JSON.stringify(current);
  await Promise.all(shards.clients.map((client, i) => (recorded[i] === null ? client.set(key, value, 'NX') : undefined)));
}
