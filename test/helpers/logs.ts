import { Logger, createLogger } from '../../kernel/logger';

/** One JSON log line as the logger wrote it (level as its label). */
export interface LogLine {
  readonly level: string;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/** A logger whose lines are kept in memory, for tests that assert what was logged. */
export function capturingLogger(level: 'debug' | 'info' = 'info'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = createLogger(level, { write: (line: string) => void lines.push(JSON.parse(line) as LogLine) });
  return { logger, lines };
}
