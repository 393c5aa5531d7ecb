import { loadConfigOrExit } from './config';
import { startLedgerWriter } from './ledger-runner';
import { createLogger } from '../kernel/logger';
import { stopOnSignals } from './stop-signals';

/**
 * The ledger writer as a process of its own: `node dist/server/ledger-main.js`, configured by the
 * same environment as the server. The server starts one as its child (LEDGER_WRITER=process) so
 * that applying batches to MySQL never stalls the request event loop; on other hosts it can run on
 * its own (LEDGER_WRITER=off on the servers). Any number may run: they share the work through the
 * consumer group. If MySQL is unreachable at start it exits 1 and its supervisor starts it again;
 * records wait in Redis meanwhile. Started by a server, it exits when that server is gone, so a
 * server killed with SIGKILL leaves no writer behind.
 */
async function main(): Promise<void> {
  const config = loadConfigOrExit();
  const logger = createLogger(config.logLevel).child({ role: 'ledger-writer' });
  const writer = await startLedgerWriter(config, logger);

  const stop = stopOnSignals(logger, 'ledger writer process', () => writer.stop());
  // Started by a server (it has an IPC channel): stop when that server is gone, even by SIGKILL,
  // which closes no channel we could rely on but does re-parent this process.
  if (process.send) {
    const parent = process.ppid;
    setInterval(() => process.ppid !== parent && stop('parent gone'), 1000).unref();
  }
}

main().catch((err) => {
  process.stderr.write(`ledger writer failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
