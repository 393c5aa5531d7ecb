import { Command, Option } from 'commander';
import { addressList, id, ids, wholeNumber } from '../args';
import { Ctl, withCtl } from '../context';
import { usageFailure } from '../exit-codes';
import { renderFields, renderTable, replayedText } from '../output';
import { PARTITION_COLUMNS, PartitionView, STOCK_COLUMNS, partitionView, stockView } from '../views';

const MAX_PARTITIONS = 256;

/** `partitions list`, `preallocate`, `rebalance`, `drain`: the pool's partitions. */
export function registerPartitions(program: Command): void {
  program
    .command('partitions')
    .description('partitions and their live avail')
    .command('list')
    .description('list partitions with their live avail, read from Redis')
    .argument('[sku]', 'only this SKU', id)
    .option('--all', 'also exhausted and drained partitions')
    .action(
      withCtl(async (ctl, skuId: string | undefined, opts: { all?: boolean }) => {
        const views = await listPartitions(ctl, skuId, Boolean(opts.all));
        ctl.output.result(views, () => `${renderTable(views, PARTITION_COLUMNS)}\n${partitionTotals(views)}`);
      }),
    );

  program
    .command('preallocate')
    .description('move units from base into new partitions, spread over the Redis nodes')
    .argument('<sku>', 'SKU id', id)
    .requiredOption('--units <n>', 'units to move from base into the pool', wholeNumber(1))
    .option('--partitions <p>', 'partitions to spread them over', wholeNumber(1, MAX_PARTITIONS), 1)
    .option('--request-id <id>', 'idempotency key (default: a new one, printed)', id)
    .action(
      withCtl(async (ctl, skuId: string, opts: { units: number; partitions: number; requestId?: string }) => {
        const requestId = ctl.adminRequestId(opts.requestId);
        const res = await ctl.admin().preallocate({ requestId, skuId, quantity: opts.units, partitions: opts.partitions });
        const data = { requestId, replayed: res.replayed, partitions: res.partitions.map(partitionView), stock: res.stock && stockView(res.stock) };
        ctl.output.result(data, () =>
          [renderFields({ 'request id': requestId, replayed: replayedText(data.replayed) }), renderTable(data.partitions, PARTITION_COLUMNS), data.stock ? renderTable([data.stock], STOCK_COLUMNS) : ''].filter(Boolean).join('\n'),
        );
      }),
    );

  program
    .command('rebalance')
    .description('reshape SKUs\' pools: grow or shrink to --pool units in --partitions partitions, while selling')
    .argument('<sku...>', 'SKU ids (each is rebalanced to the same shape)', ids)
    .requiredOption('--pool <n>', 'pool size wanted; units come from or go back to base', wholeNumber(0))
    .option('--partitions <p>', 'live partitions wanted (default: keep the count)', wholeNumber(1, MAX_PARTITIONS))
    .option('--nodes <host:port,...>', 'Redis nodes to spread over (default: all configured)', addressList)
    .option('--request-id <id>', 'base of the idempotency keys, one per SKU: <id>.<sku> (default: a new one, printed)', id)
    .action(
      withCtl(async (ctl, skuIds: string[], opts: { pool: number; partitions?: number; nodes?: string[]; requestId?: string }) => {
        const base = ctl.adminRequestId(opts.requestId);
        const results = await ctl.eachWithProgress(skuIds, 'rebalance', (skuId) => skuId, async (skuId) => {
          const requestId = ctl.stepId(base, skuId);
          const res = await ctl.admin().rebalance({ requestId, skuId, targetPool: opts.pool, partitionCount: opts.partitions ?? 0, redisNodes: opts.nodes ?? [] });
          return {
            skuId,
            requestId,
            replayed: res.replayed,
            before: res.before.map(partitionView),
            after: res.after.map(partitionView),
            stock: res.stock && stockView(res.stock),
          };
        });
        ctl.output.result(results, () =>
          results
            .map((r) => [`${r.skuId}: ${r.before.length} partitions before, ${r.after.length} after${r.replayed ? ' (replayed: applied before)' : ''}`, renderTable(r.after, PARTITION_COLUMNS), r.stock ? renderTable([r.stock], STOCK_COLUMNS) : ''].filter(Boolean).join('\n'))
            .join('\n\n'),
        );
      }),
    );

  program
    .command('drain')
    .description('empty partitions back into base (units held by open orders stay held)')
    .argument('<sku>', 'SKU id', id)
    .argument('[partition...]', 'partition ids', ids)
    .addOption(new Option('--all', 'every live partition of the SKU'))
    .option('--request-id <id>', 'base of the idempotency keys, one per partition: <id>.<partition> (default: a new one, printed)', id)
    .action(
      withCtl(async (ctl, skuId: string, partitionIds: string[] | undefined, opts: { all?: boolean; requestId?: string }) => {
        if (Boolean(opts.all) === Boolean(partitionIds?.length)) throw usageFailure('drain: name the partitions or give --all (one of the two)');
        const targets = opts.all ? (await listPartitions(ctl, skuId, false)).map((p) => p.partitionId) : (partitionIds ?? []);
        const base = ctl.adminRequestId(opts.requestId);
        const results = await ctl.eachWithProgress(targets, 'drain', (partitionId) => partitionId, async (partitionId) => {
          const requestId = ctl.stepId(base, partitionId);
          const res = await ctl.admin().drainPartition({ requestId, skuId, partitionId });
          return { partitionId, requestId, returned: res.returned, replayed: res.replayed, partition: res.partition && partitionView(res.partition) };
        });
        ctl.output.result(results, () =>
          renderTable(results, [
            { header: 'partition', cell: (r) => r.partitionId },
            { header: 'returned to base', cell: (r) => r.returned },
            { header: 'state', cell: (r) => r.partition?.state ?? '-' },
            { header: 'replayed', cell: (r) => (r.replayed ? 'yes' : 'no') },
          ]),
        );
      }),
    );
}

/** Partitions of one SKU (or all), as views. */
export async function listPartitions(ctl: Ctl, skuId: string | undefined, includeEnded: boolean): Promise<PartitionView[]> {
  const res = await ctl.admin().listPartitions({ skuId: skuId ?? '', includeEnded });
  return res.partitions.map(partitionView);
}

/** "4 live partitions, 100 units avail": the line under a partition table. */
export function partitionTotals(views: readonly PartitionView[]): string {
  const live = views.filter((p) => p.state === 'LIVE');
  return `${live.length} live partition${live.length === 1 ? '' : 's'}, ${live.reduce((sum, p) => sum + p.avail, 0)} units avail`;
}
