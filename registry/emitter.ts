import { EventEmitter } from 'node:events';
import { emitSafely } from '../kernel/emit';
import { Logger } from '../kernel/logger';

/** Turns `{ name: (a: A) => void }` into the `{ name: [A] }` map Node's typed EventEmitter takes. */
export type EventArgs<E> = { [K in keyof E]: E[K] extends (...args: infer A) => void ? A : never };

/**
 * A typed EventEmitter for long-lived registry objects. Events are raised through `notify`, which
 * keeps a background failure from ever becoming a crash: an 'error' nobody listens to is logged
 * instead of thrown (Node would throw it from a timer), and a listener that throws is logged
 * instead of breaking the loop that raised the event.
 */
export class RegistryEmitter<E extends { [K in keyof E]: (...args: any[]) => void }> extends EventEmitter<EventArgs<E>> {
  constructor(protected readonly logger: Logger) {
    super();
  }

  protected notify<K extends keyof E & string>(event: K, ...args: EventArgs<E>[K]): void {
    const emitter = this as EventEmitter;
    if (event === 'error' && emitter.listenerCount('error') === 0) {
      this.logger.error({ err: args[0] }, 'registry error (no error listener)');
      return;
    }
    emitSafely(emitter, this.logger, 'registry', event, args);
  }
}
