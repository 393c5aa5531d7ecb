import { Logger, createLogger } from '../kernel/logger';
import { Config, loadConfigOrExit } from './config';

/**
 * Stops a process cleanly once: on SIGTERM or SIGINT, or when the returned function is called
 * (another reason, such as a parent that is gone), logs `<what>: stopping`, runs `stop`, and exits
 * 0, or 1 when it fails. Later calls and signals are ignored while it stops.
 */
export function stopOnSignals(logger: Logger, what: string, stop: () => Promise<unknown>): (why: string) => void {
  let stopping = false;
  const trigger = (why: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ why }, `${what}: stopping`);
    stop().then(
      () => process.exit(0),
      (err) => {
        logger.error({ err }, `${what}: stop failed`);
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => trigger('SIGTERM'));
  process.once('SIGINT', () => trigger('SIGINT'));
  return trigger;
}

/**
 * Runs a worker as a process of its own (ledger-main, mq-main): configured by the same environment
 * as the server, logging with `role`, stopped cleanly on SIGTERM/SIGINT. Started by a server (it
 * has an IPC channel), it stops when that server is gone, even by SIGKILL, which closes no channel
 * we could rely on but does re-parent this process. A start that fails exits 1: the supervisor
 * starts it again.
 */
export function runOnItsOwn(role: string, what: string, start: (config: Config, logger: Logger) => Promise<{ stop(): Promise<void> }>): void {
  const main = async () => {
    const config = loadConfigOrExit();
    const logger = createLogger(config.logLevel).child({ role });
    const running = await start(config, logger);
    const stop = stopOnSignals(logger, `${what} process`, () => running.stop());
    if (process.send) {
      const parent = process.ppid;
      setInterval(() => process.ppid !== parent && stop('parent gone'), 1000).unref();
    }
  };
  main().catch((err) => {
    process.stderr.write(`${what} failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
