import { CommanderError } from 'commander';
import { InventoryError } from '../../client';
import { CtlFailure, ExitCode } from './exit-codes';

/** What the entry prints and exits with for a failure. */
export interface Reported {
  readonly exitCode: number;
  /** For stderr; undefined when commander already printed it. */
  readonly message?: string;
  /** The same for scripts (`--json`), as `{ "error": ... }`. */
  readonly json?: Record<string, unknown>;
}

/** A bug of inventoryctl itself (BSD sysexits' EX_SOFTWARE), apart from every outcome in the table. */
export const EXIT_BUG = 70;

/** Kinds of typed client error that mean "no answer", after the client's own retries. */
const UNREACHABLE_KINDS = new Set(['UNAVAILABLE', 'DEADLINE_EXCEEDED']);

/** The server gave no answer (unreachable, or past the deadline), after the client's own retries. */
export function noAnswer(err: unknown): err is InventoryError {
  return err instanceof InventoryError && UNREACHABLE_KINDS.has(err.kind);
}

/** The one mapping from a thrown value to an exit code and words (exit-codes.ts). */
export function report(err: unknown): Reported {
  if (err instanceof CommanderError) {
    // Help and version are answers; commander has printed every usage error already.
    const asked = err.code === 'commander.helpDisplayed' || err.code === 'commander.version';
    return { exitCode: asked ? ExitCode.OK : ExitCode.USAGE };
  }
  if (err instanceof CtlFailure) {
    return { exitCode: err.exitCode, message: err.message, json: { exitCode: err.exitCode, message: err.message } };
  }
  if (err instanceof InventoryError) {
    const unreachable = noAnswer(err);
    const detail = [err.reason && err.reason !== err.kind && `reason ${err.reason}`, err.field && `field ${err.field}`].filter(Boolean).join(', ');
    const head = `${unreachable ? 'no answer' : 'refused'}: ${err.kind}${detail ? ` (${detail})` : ''}`;
    const retry = err.requestId && unreachable ? `\nthe command may or may not have been applied: repeat it with --request-id ${err.requestId} to apply it at most once` : '';
    return {
      exitCode: unreachable ? ExitCode.UNREACHABLE : ExitCode.REFUSED,
      message: `${head}: ${err.details}${retry}`,
      json: {
        kind: err.kind,
        code: err.code,
        reason: err.reason ?? null,
        field: err.field ?? null,
        message: err.details,
        requestId: err.requestId ?? null,
        attempts: err.attempts,
      },
    };
  }
  const message = err instanceof Error ? (err.stack ?? err.message) : String(err);
  return { exitCode: EXIT_BUG, message: `unexpected failure (a bug in inventoryctl): ${message}` };
}
