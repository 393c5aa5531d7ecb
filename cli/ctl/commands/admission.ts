import { Command } from 'commander';
import { id, wholeNumber } from '../args';
import { withCtl } from '../context';
import { usageFailure } from '../exit-codes';
import { renderFields, replayedText } from '../output';

const MAX_RATE = 1_000_000_000;

/** `admission set SKU --rate N [--burst B] | --default`: a SKU's Reserve rate per server. */
export function registerAdmission(program: Command): void {
  program
    .command('admission')
    .description('per-SKU admission limits')
    .command('set')
    .description('set how many Reserves of a SKU each server admits per second (or return it to the default)')
    .argument('<sku>', 'SKU id', id)
    .option('--rate <n>', 'Reserves per second per server; 0 is unlimited', wholeNumber(0, MAX_RATE))
    .option('--burst <n>', 'Reserves admitted at once after a quiet spell (default: one second\'s worth)', wholeNumber(0, MAX_RATE))
    .option('--default', 'remove the override: follow each server\'s default')
    .option('--request-id <id>', 'idempotency key (default: a new one, printed)', id)
    .action(
      withCtl(async (ctl, skuId: string, opts: { rate?: number; burst?: number; default?: boolean; requestId?: string }) => {
        const useDefault = Boolean(opts.default);
        if (useDefault === (opts.rate !== undefined)) throw usageFailure('admission set: give --rate or --default (one of the two)');
        if (useDefault && opts.burst !== undefined) throw usageFailure('admission set: --burst goes with --rate, not --default');
        const requestId = ctl.adminRequestId(opts.requestId);
        const res = await ctl.admin().setAdmissionLimit({ requestId, skuId, reservesPerSecond: opts.rate ?? 0, burst: opts.burst ?? 0, useDefault });
        const data = {
          requestId,
          replayed: res.replayed,
          reservesPerSecond: res.limit?.reservesPerSecond ?? 0,
          burst: res.limit?.burst ?? 0,
          overridden: res.limit?.overridden ?? false,
        };
        ctl.output.result(data, () =>
          renderFields({
            sku: skuId,
            'reserves/s per server': data.reservesPerSecond === 0 ? 'unlimited' : data.reservesPerSecond,
            burst: data.burst,
            source: data.overridden ? 'this SKU\'s override' : 'the server\'s default',
            replayed: replayedText(data.replayed),
          }),
        );
      }),
    );
}
