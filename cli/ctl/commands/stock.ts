import { Command, Option } from 'commander';
import { StockChange } from '../../../client';
import { id, ids, nonZeroDelta, wholeNumber } from '../args';
import { Ctl, withCtl } from '../context';
import { renderFields, renderTable, replayedText } from '../output';
import { STOCK_COLUMNS, stockView } from '../views';

/** `stock get|set|adjust`: read levels (InventoryService), count or change on_hand (AdminService). */
export function registerStock(program: Command): void {
  const stock = program.command('stock').description('read and change SKUs\' stock levels');

  stock
    .command('get')
    .description('stock levels of up to 100 SKUs (on_hand = base + pool + reserved + committed)')
    .argument('<sku...>', 'SKU ids', ids)
    .action(
      withCtl(async (ctl, skuIds: string[]) => {
        const res = await ctl.inventory().getStock({ skuIds });
        const views = res.stock.map(stockView);
        ctl.output.result(views, () => renderTable(views, STOCK_COLUMNS));
      }),
    );

  stock
    .command('set')
    .description('set on_hand to a counted value (a stock-take); creates the SKU if new')
    .argument('<sku>', 'SKU id', id)
    .argument('<on_hand>', 'units counted', wholeNumber(0))
    .addOption(new Option('--per-user-limit <n>', 'units one buyer may hold or buy (0 removes the limit)').argParser(wholeNumber(0)))
    .option('--reason <text>', 'note for the ledger', 'inventoryctl stock set')
    .option('--request-id <id>', 'idempotency key (default: a new one, printed)', id)
    .action(
      withCtl(async (ctl, skuId: string, onHand: number, opts: { perUserLimit?: number; reason: string; requestId?: string }) => {
        const requestId = ctl.adminRequestId(opts.requestId);
        const res = await ctl.admin().setStock({ requestId, skuId, onHand, reason: opts.reason, perUserLimit: opts.perUserLimit });
        printChange(ctl, requestId, res.change);
      }),
    );

  stock
    .command('adjust')
    .description('change on_hand by a signed delta (received +, broken or lost -)')
    .argument('<sku>', 'SKU id', id)
    .argument('<delta>', 'signed change, e.g. 30 or -5', nonZeroDelta)
    .option('--reason <text>', 'note for the ledger', 'inventoryctl stock adjust')
    .option('--request-id <id>', 'idempotency key (default: a new one, printed)', id)
    .action(
      withCtl(async (ctl, skuId: string, delta: number, opts: { reason: string; requestId?: string }) => {
        const requestId = ctl.adminRequestId(opts.requestId);
        const res = await ctl.admin().adjustStock({ requestId, skuId, delta, reason: opts.reason });
        printChange(ctl, requestId, res.change);
      }),
    );
}

function printChange(ctl: Ctl, requestId: string, change: StockChange | undefined): void {
  const stock = change?.stock && stockView(change.stock);
  const data = { requestId, replayed: change?.replayed ?? false, shortfall: change?.shortfall ?? 0, stock };
  ctl.output.result(data, () => {
    const lines = [renderFields({ 'request id': requestId, replayed: replayedText(data.replayed), shortfall: data.shortfall })];
    if (stock) lines.push(renderTable([stock], STOCK_COLUMNS));
    return lines.join('\n');
  });
}
