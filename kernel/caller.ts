import { DomainError } from './errors';

/**
 * What the domain knows of the caller it works for: when it stops waiting and whether it has gone.
 * The transport's call context is one (server/transport.ts: the client's deadline, and `cancelled`
 * once grpc-js reports the call cancelled); workers and tests pass NO_CALLER. Work checks it before
 * each step that writes or waits, so no new step starts for a caller that has gone. A clock read and
 * a flag: cheap enough for the flash-sale path, where an AbortSignal per call was not (transport.ts).
 */
export interface Caller {
  /** Absolute deadline in ms since the epoch; Infinity when none. */
  readonly deadline: number;
  readonly cancelled: boolean;
}

export const NO_CALLER: Caller = Object.freeze({ deadline: Infinity, cancelled: false });

/**
 * The error that ends work for `caller` now, or undefined while it is there: CANCELLED once it
 * cancelled, DEADLINE_EXCEEDED once its deadline or the work's own give-up time (`until`) passed.
 * `what` names the work in the message.
 */
export function callerGone(caller: Caller, what: string, until = caller.deadline): DomainError | undefined {
  // The deadline first: grpc-js reports a call whose deadline passed as cancelled too.
  if (Date.now() >= Math.min(until, caller.deadline)) {
    return new DomainError('DEADLINE_EXCEEDED', `${what}: ran out of time (${until < caller.deadline ? "the server's own time limit" : "the call's deadline"})`);
  }
  if (caller.cancelled) return new DomainError('CANCELLED', `${what}: the call was cancelled by the client`);
  return undefined;
}

/** Throws callerGone's error, if any: the check before a step. */
export function stayForCaller(caller: Caller, what: string, until = caller.deadline): void {
  const gone = callerGone(caller, what, until);
  if (gone) throw gone;
}

/** Whether an error is a cut (the caller went, or time ran out), not an outcome of the work. */
export function isCut(err: unknown): err is DomainError {
  return err instanceof DomainError && (err.kind === 'DEADLINE_EXCEEDED' || err.kind === 'CANCELLED');
}

/** Sleeps `ms`, or less when the caller's deadline comes first. */
export function pause(ms: number, caller: Caller = NO_CALLER): Promise<void> {
  const wait = Math.max(0, Math.min(ms, caller.deadline - Date.now()));
  return new Promise((resolve) => setTimeout(resolve, wait));
}
