import { AdmissionSettings } from '../admin/admission';
import { StockOperator } from '../admin/operator';
import { Reconciler } from '../admin/reconcile';
import { RateLimit } from './rate-limiter';
import { MAX_ADMISSION } from './config';
import { AdminHandlers } from './app';
import { domain } from './domain-errors';
import { invalidArgument } from './errors';
import { admissionLimit, partition, stockLevel } from './mapping';
import { MAX_ITEMS, validCount, validId, validReason } from './validation';

const MAX_UNITS = Number.MAX_SAFE_INTEGER;
const MAX_PARTITIONS = 256;

/**
 * AdminService: validate, run the stock operation for the call (its deadline and cancellation: the
 * context is the domain's Caller), map to proto. Authentication is the transport's.
 */
export function adminHandlers(operator: StockOperator, reconciler: Reconciler, admission: AdmissionSettings, admissionDefaults: RateLimit): AdminHandlers {
  return {
    async setStock(req, ctx) {
      const requestId = validId('request_id', req.requestId);
      const sku = validId('sku_id', req.skuId);
      const onHand = validCount('on_hand', req.onHand, 0, MAX_UNITS);
      const limit = req.perUserLimit === undefined ? undefined : validCount('per_user_limit', req.perUserLimit, 0, MAX_UNITS);
      const r = await domain(() => operator.setStock(requestId, sku, onHand, validReason('reason', req.reason), limit, ctx));
      return { change: { stock: stockLevel(r.stock), shortfall: r.shortfall, replayed: r.replayed } };
    },

    async adjustStock(req, ctx) {
      const requestId = validId('request_id', req.requestId);
      const sku = validId('sku_id', req.skuId);
      if (req.delta === 0) throw invalidArgument('delta', 'must not be 0');
      const delta = validCount('delta', req.delta, -MAX_UNITS, MAX_UNITS);
      const r = await domain(() => operator.adjustStock(requestId, sku, delta, validReason('reason', req.reason), ctx));
      return { change: { stock: stockLevel(r.stock), shortfall: r.shortfall, replayed: r.replayed } };
    },

    async preallocate(req, ctx) {
      const requestId = validId('request_id', req.requestId);
      const sku = validId('sku_id', req.skuId);
      const quantity = validCount('quantity', req.quantity, 1, MAX_UNITS);
      const count = validCount('partitions', req.partitions || 1, 1, Math.min(MAX_PARTITIONS, quantity));
      const r = await domain(() => operator.preallocate(requestId, sku, quantity, count, ctx));
      return { partitions: r.partitions.map(partition), stock: stockLevel(r.stock), replayed: r.replayed };
    },

    async rebalance(req, ctx) {
      const requestId = validId('request_id', req.requestId);
      const sku = validId('sku_id', req.skuId);
      const target = validCount('target_pool', req.targetPool, 0, MAX_UNITS);
      const count = validCount('partition_count', req.partitionCount, 0, MAX_PARTITIONS);
      if (count > target && target > 0) throw invalidArgument('partition_count', `must not exceed target_pool (${target})`);
      const r = await domain(() => operator.rebalance(requestId, sku, target, count, req.redisNodes, ctx));
      return { before: r.before.map(partition), after: r.after.map(partition), stock: stockLevel(r.stock), replayed: r.replayed };
    },

    async drainPartition(req, ctx) {
      const requestId = validId('request_id', req.requestId);
      const sku = validId('sku_id', req.skuId);
      const partitionId = validId('partition_id', req.partitionId);
      const r = await domain(() => operator.drainPartition(requestId, sku, partitionId, ctx));
      return { returned: r.returned, partition: partition(r.partition), stock: stockLevel(r.stock), replayed: r.replayed };
    },

    async listPartitions(req, ctx) {
      const sku = req.skuId === '' ? undefined : validId('sku_id', req.skuId);
      const views = await domain(() => operator.listPartitions(sku, req.includeEnded, ctx));
      return { partitions: views.map(partition) };
    },

    async setAdmissionLimit(req, ctx) {
      const requestId = validId('request_id', req.requestId);
      const sku = validId('sku_id', req.skuId);
      const rate = validCount('reserves_per_second', req.reservesPerSecond, 0, MAX_ADMISSION);
      const burst = validCount('burst', req.burst, 0, MAX_ADMISSION);
      if (req.useDefault && rate !== 0) throw invalidArgument('reserves_per_second', 'must be 0 with use_default');
      if (req.useDefault && burst !== 0) throw invalidArgument('burst', 'must be 0 with use_default');
      if (rate === 0 && burst !== 0) throw invalidArgument('burst', 'must be 0 when reserves_per_second is 0 (unlimited)');
      // Stored with the burst resolved, so every server counts the same bucket whatever its defaults.
      const limit = req.useDefault ? undefined : { reservesPerSecond: rate, burst: burst || rate };
      const r = await domain(() => admission.set(requestId, sku, limit, ctx));
      return { limit: admissionLimit(r.limit ?? admissionDefaults, r.limit !== undefined), replayed: r.replayed };
    },

    async reconcile(req, ctx) {
      if (req.skuIds.length > 10 * MAX_ITEMS) throw invalidArgument('sku_ids', `must list at most ${10 * MAX_ITEMS} SKUs`);
      const skus = req.skuIds.map((sku, i) => validId(`sku_ids[${i}]`, sku));
      const requestId = req.repair ? validId('request_id', req.requestId) : req.requestId === '' ? '' : validId('request_id', req.requestId);
      const r = await domain(() => reconciler.reconcile(skus, req.repair, requestId, ctx));
      return {
        discrepancies: r.discrepancies.map((d) => ({ ...d, skuId: d.sku })),
        skusChecked: r.skusChecked,
        partitionsChecked: r.partitionsChecked,
      };
    },
  };
}

