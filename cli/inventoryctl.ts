#!/usr/bin/env node
/**
 * inventoryctl: the operator's command line for the inventory core (README, "Operator CLI").
 * `npx inventoryctl --help` (after `npm run build`), or `npm run ctl -- --help` from a clone.
 */
import { report } from './ctl/failures';
import { buildProgram } from './ctl/program';

async function main(argv: readonly string[]): Promise<void> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (err) {
    const { exitCode, message, json } = report(err);
    if (message !== undefined) {
      const asJson = Boolean(program.opts<{ json?: boolean }>().json) && json !== undefined;
      process.stderr.write(asJson ? `${JSON.stringify({ error: json })}\n` : `inventoryctl: ${message}\n`);
    }
    process.exitCode = exitCode;
  }
}

// The exit code is left in process.exitCode, not forced with process.exit, so piped output is
// written out in full before the process ends.
void main(process.argv.slice(2));
