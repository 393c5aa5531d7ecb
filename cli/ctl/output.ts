import Table from 'cli-table3';

/** One column of a table: its header and how a row fills it. Numbers are right-aligned. */
export interface Column<T> {
  readonly header: string;
  readonly cell: (row: T) => string | number | boolean;
}

/** Renders rows as a compact, uncoloured table (colour would garble piped output). */
export function renderTable<T>(rows: readonly T[], columns: readonly Column<T>[]): string {
  const cells = rows.map((row) => columns.map((column) => column.cell(row)));
  const numeric = columns.map((_, i) => cells.length > 0 && cells.every((line) => typeof line[i] === 'number'));
  const table = new Table({
    head: columns.map((column) => column.header),
    colAligns: numeric.map((isNumber) => (isNumber ? 'right' : 'left')),
    style: { head: [], border: [], compact: true },
  });
  for (const line of cells) table.push(line.map(String));
  return table.toString();
}

/** Renders label/value pairs as a two-column table, for one object (a stock change, a reservation). */
export function renderFields(fields: Readonly<Record<string, string | number | boolean>>): string {
  const table = new Table({ style: { head: [], border: [], compact: true } });
  for (const [label, value] of Object.entries(fields)) table.push({ [label]: String(value) });
  return table.toString();
}

/**
 * Where a command's answer goes: stdout, as tables for people or one JSON document for scripts
 * (`--json`). Notes (request ids, what is being done) go to stderr, so stdout stays parseable.
 */
export class Output {
  constructor(
    readonly json: boolean,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
    private readonly stderr: NodeJS.WritableStream = process.stderr,
  ) {}

  /** The command's answer: `data` as JSON, or the text `human()` renders. */
  result(data: unknown, human: () => string): void {
    this.stdout.write(this.json ? `${JSON.stringify(data, null, 2)}\n` : `${human()}\n`);
  }

  /** A line for people beside the answer (on stderr). */
  note(message: string): void {
    this.stderr.write(`${message}\n`);
  }
}

/** The words for an answer's `replayed` flag. */
export function replayedText(replayed: boolean): string {
  return replayed ? 'yes (applied before; nothing changed now)' : 'no';
}
