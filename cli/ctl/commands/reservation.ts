import { Command } from 'commander';
import { id } from '../args';
import { withCtl } from '../context';
import { renderFields, renderTable } from '../output';
import { RESERVATION_ITEM_COLUMNS, reservationView } from '../views';

/** `reservation get ORDER_ID`: one order's hold, as InventoryService reads it. */
export function registerReservation(program: Command): void {
  program
    .command('reservation')
    .description('read orders\' reservations')
    .command('get')
    .description('one reservation: its state, items and the partitions they came from')
    .argument('<order_id>', 'the order id', id)
    .action(
      withCtl(async (ctl, orderId: string) => {
        const res = await ctl.inventory().getReservation({ orderId });
        const view = res.reservation && reservationView(res.reservation);
        ctl.output.result(view ?? null, () =>
          view
            ? [
                renderFields({
                  order: view.orderId,
                  state: view.state,
                  user: view.userId || '(anonymous)',
                  created: view.createdAt,
                  expires: view.expiresAt ?? '-',
                  confirmed: view.confirmedAt ?? '-',
                  ended: view.endedAt ?? '-',
                }),
                renderTable(view.items, RESERVATION_ITEM_COLUMNS),
              ].join('\n')
            : 'no reservation in the answer',
        );
      }),
    );
}
