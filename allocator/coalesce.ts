/**
 * Duplicate calls under one key share their work: at most one runs at a time per key, and the
 * calls that arrive while it runs wait and share the next one, which starts as soon as it ends.
 * So every caller gets the answer of a run that started after it arrived (it sees every change
 * that completed before it called: nothing stale), and a storm of duplicates costs one run per
 * run-time instead of one per call. A key with nothing running costs a map entry for the run.
 *
 * The first caller of a run gets its value as it is; the others, its duplicates, get it through
 * `asDuplicate` (Reserve marks them replays). A run that fails fails all of its callers.
 */
export class Coalescer<T> {
  private readonly keys = new Map<string, { next: Batch<T> | undefined }>();

  /** Live keys (a run in progress), for tests and metrics. */
  get size(): number {
    return this.keys.size;
  }

  run(key: string, work: () => Promise<T>, asDuplicate: (value: T) => T = (value) => value): Promise<T> {
    const entry = this.keys.get(key);
    if (entry === undefined) {
      // The common case, no duplicate in flight: the work's own promise, nothing wrapped around it.
      const fresh = { next: undefined as Batch<T> | undefined };
      this.keys.set(key, fresh);
      return this.start(key, fresh, work);
    }
    if (entry.next === undefined) {
      entry.next = new Batch(work);
      return entry.next.promise;
    }
    return entry.next.promise.then(asDuplicate);
  }

  private start(key: string, entry: { next: Batch<T> | undefined }, work: () => Promise<T>): Promise<T> {
    let running: Promise<T>;
    try {
      running = work();
    } catch (err) {
      running = Promise.reject(err);
    }
    const after = () => {
      const next = entry.next;
      if (next === undefined) {
        this.keys.delete(key);
        return;
      }
      entry.next = undefined;
      next.settle(this.start(key, entry, next.work));
    };
    running.then(after, after);
    return running;
  }
}

/** The callers waiting for the next run of a key, with the first one's work. */
class Batch<T> {
  readonly promise: Promise<T>;
  settle!: (run: Promise<T>) => void;

  constructor(readonly work: () => Promise<T>) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.settle = (run) => run.then(resolve, reject);
    });
  }
}
