import { Logger } from '../kernel/logger';

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
