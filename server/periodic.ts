import { Logger } from '../kernel/logger';

/**
 * Runs `work` every `intervalMs` (jittered ±25%, so servers started together do not run in
 * lockstep), never two runs at once; failures are logged and the next run goes on. `stop` waits
 * for a run in progress.
 */
export function every(name: string, intervalMs: number, work: () => Promise<unknown>, logger: Logger): { stop(): Promise<void> } {
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      running = work()
        .then(() => undefined, (err) => logger.warn({ err, worker: name }, 'periodic work failed; retried next round'))
        .finally(schedule);
    }, intervalMs * (0.75 + Math.random() * 0.5));
    timer.unref();
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      clearTimeout(timer);
      await running;
    },
  };
}
