import { Command } from 'commander';
import { ID_PATTERN, ID_RULE } from '../../../kernel/ids';
import { id, ids, wholeNumber } from '../args';
import { Ctl, withCtl } from '../context';
import { ExitCode, readOptionFile, usageFailure } from '../exit-codes';
import { renderTable } from '../output';
import { DISCREPANCY_COLUMNS, DiscrepancyView, discrepancyView } from '../views';

interface ReconcileOptions {
  repair?: boolean;
  skusFile?: string;
  batch: number;
  requestId?: string;
}

/**
 * `reconcile [sku...]`: Redis against MySQL. Named SKUs are checked in batches (one call each, a
 * progress bar over them); none checks every SKU in one call. Exit code 4 while any discrepancy is
 * left unrepaired, so a script can act on it.
 */
export function registerReconcile(program: Command): void {
  program
    .command('reconcile')
    .description('compare Redis with MySQL and report every discrepancy; --repair fixes what is safe to fix')
    .argument('[sku...]', 'SKUs to check (default: every SKU)', ids)
    .option('--repair', 'fix what can be fixed safely (default: only report)')
    .option('--skus-file <file>', 'also check the SKUs listed in this file, one a line (# comments)')
    .option('--batch <n>', 'SKUs per call', wholeNumber(1, 1000), 50)
    .option('--request-id <id>', 'with --repair: the idempotency key; <id>.<n> for batch n when there are several (default: a new one, printed)', id)
    .action(
      withCtl(async (ctl, named: string[], opts: ReconcileOptions) => {
        const skuIds = [...named, ...(opts.skusFile === undefined ? [] : readSkuFile(opts.skusFile))];
        const repair = Boolean(opts.repair);
        const base = repair ? ctl.adminRequestId(opts.requestId) : undefined;
        const result = await reconcileInBatches(ctl, skuIds, opts.batch, repair, base);
        const open = result.discrepancies.filter((d) => !d.repaired).length;
        ctl.output.result({ ...result, requestId: base ?? null, unrepaired: open }, () => {
          const summary = `${result.skusChecked} SKUs and ${result.partitionsChecked} partitions checked: ${result.discrepancies.length} discrepancies, ${result.discrepancies.length - open} repaired`;
          return result.discrepancies.length === 0 ? summary : `${renderTable(result.discrepancies, DISCREPANCY_COLUMNS)}\n${summary}`;
        });
        return open > 0 ? ExitCode.DIFFERENCES : ExitCode.OK;
      }),
    );
}

interface Reconciled {
  skusChecked: number;
  partitionsChecked: number;
  discrepancies: DiscrepancyView[];
}

async function reconcileInBatches(ctl: Ctl, skuIds: string[], batchSize: number, repair: boolean, base: string | undefined): Promise<Reconciled> {
  // No SKUs named: one call, and the server checks every SKU it knows.
  const batches = skuIds.length === 0 ? [[]] : chunk([...new Set(skuIds)], batchSize);
  const numbered = batches.map((batch, i) => ({ batch, n: i + 1 }));
  const answers = await ctl.eachWithProgress(
    numbered,
    'reconcile',
    ({ batch }) => (batch.length === 0 ? 'all SKUs' : `${batch[0]}..${batch.at(-1)}`),
    ({ batch, n }) => {
      const requestId = base === undefined ? undefined : batches.length === 1 ? base : ctl.stepId(base, String(n));
      return ctl.admin().reconcile({ skuIds: batch, repair, requestId });
    },
  );
  return {
    skusChecked: answers.reduce((sum, res) => sum + res.skusChecked, 0),
    partitionsChecked: answers.reduce((sum, res) => sum + res.partitionsChecked, 0),
    discrepancies: answers.flatMap((res) => res.discrepancies.map(discrepancyView)),
  };
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

/** SKU ids from a file, one a line; blank lines and `#` comments skipped; a bad one named by its line. */
function readSkuFile(file: string): string[] {
  const text = readOptionFile('--skus-file', file).toString('utf8');
  const skuIds: string[] = [];
  for (const [i, raw] of text.split('\n').entries()) {
    const line = raw.replace(/#.*/, '').trim();
    if (line === '') continue;
    if (!ID_PATTERN.test(line)) throw usageFailure(`--skus-file ${file}:${i + 1}: ${JSON.stringify(line)} ${ID_RULE}`);
    skuIds.push(line);
  }
  return skuIds;
}
