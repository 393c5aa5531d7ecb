import pino, { Logger } from 'pino';

export type { Logger };

/** Structured JSON logs on stdout, one object a line, with the service name on every line. */
export function createLogger(level: pino.LevelWithSilent, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'inventory-core', pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}
