import { claimRequest } from '../../store/admin-requests';
import { openIntent } from '../../store/intents';
import { applyMovement, transaction } from '../../store/mysql';
import { insertPartitions } from '../../store/partitions';
import { lockStock } from '../../store/stock';
import { InventoryFixture } from './inventory';

/**
 * What Preallocate does in MySQL before its process dies: claims the request, moves `units` from
 * base to pool, records `count` partitions as creating and opens the intent. Nothing in Redis or
 * etcd: the recovery worker (or a replay of the request) has to finish it.
 */
export async function abandonPreallocate(inv: InventoryFixture, requestId: string, sku: string, units: number, count: number): Promise<void> {
  const planned = inv.services.partitions.plan(sku, units, count);
  await transaction(inv.services.mysql, async (conn) => {
    await claimRequest(conn, requestId, 'Preallocate', `${sku}|${units}|${count}`);
    await lockStock(conn, sku);
    await applyMovement(conn, { eventId: `prealloc:${requestId}`, kind: 'preallocate', sku, qty: units, from: 'base', to: 'pool', source: 'admin' });
    await insertPartitions(conn, planned.map((p) => ({ ...p, capacity: p.units })), 'creating');
    await openIntent(conn, requestId, 'preallocate', sku, { partitions: planned.map(({ sku: _sku, ...p }) => p) });
  });
}
