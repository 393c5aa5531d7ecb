import { readFileSync } from 'node:fs';
/**
 * The exit codes scripts can rely on (the README's table). One meaning each; never reuse a number.
 */
export const ExitCode = {
  /** Done as asked. */
  OK: 0,
  /** The server refused the call (a typed error: code, reason, field printed). */
  REFUSED: 1,
  /** The command line is wrong: unknown command, bad or missing argument, no admin token. */
  USAGE: 2,
  /** The server could not be reached or stayed unavailable through the client's retries. */
  UNREACHABLE: 3,
  /** A check found differences: Reconcile's discrepancies, flash-sale prepare's verification. */
  DIFFERENCES: 4,
} as const;

export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** A failure the command knows how to explain, with the exit code it means. */
export class CtlFailure extends Error {
  constructor(
    readonly exitCode: ExitCode,
    message: string,
  ) {
    super(message);
    this.name = 'CtlFailure';
  }
}

/** A usage failure found after parsing (two options that exclude each other, no token). */
export function usageFailure(message: string): CtlFailure {
  return new CtlFailure(ExitCode.USAGE, message);
}

/** The file an option names; one that cannot be read is a usage error naming the option, the file and why. */
export function readOptionFile(option: string, file: string): Buffer {
  try {
    return readFileSync(file);
  } catch (err) {
    throw usageFailure(`${option} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}
