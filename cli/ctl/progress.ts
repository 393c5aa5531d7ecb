import { Presets, SingleBar } from 'cli-progress';

/** Counts steps of long work: reconcile batches, rebalanced SKUs, drained partitions, buyers. */
export interface Progress {
  /** One more step done; `label` says which (shown beside the bar). */
  tick(label?: string): void;
  stop(): void;
}

const silent: Progress = { tick() {}, stop() {} };

/**
 * A progress bar on stderr over `total` steps, shown only to a person: when stderr is a terminal
 * and the answer is not JSON. Scripts and tests see nothing of it.
 */
export function startProgress(total: number, what: string, shown = Boolean(process.stderr.isTTY)): Progress {
  if (!shown || total <= 0) return silent;
  const bar = new SingleBar(
    { format: `${what} [{bar}] {value}/{total} {label}`, hideCursor: true, clearOnComplete: false, stream: process.stderr },
    Presets.shades_classic,
  );
  bar.start(total, 0, { label: '' });
  return {
    tick(label = '') {
      bar.increment(1, { label });
    },
    stop() {
      bar.stop();
    },
  };
}
