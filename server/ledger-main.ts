import { startLedgerWriter } from './ledger-runner';
import { runOnItsOwn } from './stop-signals';

/**
 * The ledger writer as a process of its own: `node dist/server/ledger-main.js`, configured by the
 * same environment as the server. The server starts one as its child (LEDGER_WRITER=process) so
 * that applying batches to MySQL never stalls the request event loop; on other hosts it can run on
 * its own (LEDGER_WRITER=off on the servers). Any number may run: they share the work through the
 * consumer group. If MySQL is unreachable at start it exits 1 and its supervisor starts it again;
 * records wait in Redis meanwhile. Started by a server, it exits when that server is gone, so a
 * server killed with SIGKILL leaves no writer behind.
 */
runOnItsOwn('ledger-writer', 'ledger writer', startLedgerWriter);
