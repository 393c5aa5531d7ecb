import { Command, Option } from 'commander';
import { target, wholeNumber } from './args';
import { registerAdmission } from './commands/admission';
import { registerDemo } from './commands/demo';
import { registerFlashSale } from './commands/flash-sale';
import { registerPartitions } from './commands/partitions';
import { registerReconcile } from './commands/reconcile';
import { registerReservation } from './commands/reservation';
import { registerStock } from './commands/stock';
import { registerWatch } from './commands/watch';

export const EXIT_CODES = `
Exit codes:
  0  done
  1  the server refused the call (its code, reason and field are printed)
  2  usage: unknown command, bad or missing argument, no admin token
  3  the server is unreachable or stayed unavailable through retries
  4  a check found differences (reconcile's discrepancies, flash-sale prepare's verification)
  70 a bug in inventoryctl itself (the stack is printed: please report it)

The admin token comes from INVENTORY_ADMIN_TOKEN (or ADMIN_TOKEN) or --token-file, never from a flag.
Warehouse stock messages over RabbitMQ are another tool: npm run stock -- --help`;

/**
 * The whole command tree. Usage errors are thrown (exitOverride), never exited on, so the entry
 * decides every exit code in one place; subcommands made with `.command()` inherit that.
 */
export function buildProgram(): Command {
  const program = new Command('inventoryctl')
    .description('Operate the inventory core: stock, partitions, flash sales, reconciliation.')
    .exitOverride()
    .showHelpAfterError('(add --help for usage)')
    .addOption(new Option('--inventory-addr <host:port>', 'InventoryService address').env('INVENTORY_ADDR').default('localhost:50051').argParser(target))
    .addOption(new Option('--admin-addr <host:port>', 'AdminService address').env('ADMIN_ADDR').default('localhost:50052').argParser(target))
    .addOption(new Option('--token-file <file>', 'file holding the admin token (else INVENTORY_ADMIN_TOKEN or ADMIN_TOKEN)').env('INVENTORY_ADMIN_TOKEN_FILE'))
    .addOption(new Option('--tls', 'use TLS with the system trust roots'))
    .addOption(new Option('--ca <file>', 'use TLS, trusting these PEM roots'))
    .addOption(new Option('--cert <file>', 'client certificate (PEM) for TLS'))
    .addOption(new Option('--key <file>', 'client key (PEM) for TLS'))
    .addOption(new Option('--timeout <ms>', 'time for each call, retries included').argParser(wholeNumber(1)))
    .addOption(new Option('--json', 'print answers as JSON for scripts'))
    .addHelpText('after', EXIT_CODES);
  registerStock(program);
  registerPartitions(program);
  registerReconcile(program);
  registerReservation(program);
  registerAdmission(program);
  registerWatch(program);
  registerFlashSale(program);
  registerDemo(program);
  return program;
}
