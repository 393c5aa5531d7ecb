/** A progress bar on stderr (redrawn in place on a terminal, a line every few seconds otherwise). */
export class Progress {
  private readonly tty = Boolean(process.stderr.isTTY);
  private lastLine = performance.now();
  private shown = false;

  constructor(private readonly label: string, private readonly totalMs: number) {}

  /** Time-based: elapsed of totalMs. */
  update(elapsedMs: number, detail: string): void {
    const time = `${(elapsedMs / 1000).toFixed(1).padStart(5)}s/${(this.totalMs / 1000).toFixed(0)}s`;
    this.draw(elapsedMs / this.totalMs, `${time}  ${detail}`);
  }

  /** Work-based: a fraction done. */
  fraction(frac: number, detail: string): void {
    this.draw(frac, `${(100 * frac).toFixed(0).padStart(3)}%  ${detail}`);
  }

  private draw(frac: number, text: string): void {
    const width = 24;
    const filled = Math.round(Math.max(0, Math.min(1, frac)) * width);
    const line = `${this.label.padEnd(28)} [${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${text}`;
    const now = performance.now();
    if (this.tty) {
      process.stderr.write(`\r${line}\x1b[K`);
      this.shown = true;
    } else if (now - this.lastLine >= 2500) {
      this.lastLine = now;
      process.stderr.write(`${line}\n`);
    }
  }

  done(summary: string): void {
    if (this.tty && this.shown) process.stderr.write('\r\x1b[K');
    process.stderr.write(`${this.label.padEnd(28)} ${summary}\n`);
  }
}

/** A one-line status for set-up steps. */
export function note(text: string): void {
  process.stderr.write(`bench: ${text}\n`);
}
