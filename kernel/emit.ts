import type { EventEmitter } from 'node:events';
import type { Logger } from './logger';

/**
 * Emits an event of a long-lived background object (a writer, a consumer, a publisher) so that a
 * listener that throws is logged instead of breaking the loop that raised the event.
 */
export function emitSafely(emitter: EventEmitter<any>, logger: Logger, what: string, event: string, args: readonly unknown[]): void {
  try {
    (emitter as EventEmitter).emit(event, ...args);
  } catch (err) {
    logger.error({ err, event }, `${what}: event listener threw`);
  }
}
