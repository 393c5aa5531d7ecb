import { recordedRows, renderTable } from './table';

/**
 * Mocha root hook of the fault suite (.mocharc.faults.json requires this file): once every
 * scenario has run, prints the fault table to stdout, for the closing note of the issue.
 */
export const mochaHooks = {
  afterAll(): void {
    if (recordedRows.length === 0) return;
    process.stdout.write(`\nFault table (${recordedRows.length} scenario(s)):\n\n${renderTable(recordedRows)}\n\n`);
  },
};
