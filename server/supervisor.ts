import { ChildProcess, fork } from 'node:child_process';
import { Logger } from './logger';

/**
 * Keeps one child process running (the ledger writer): starts it, restarts it when it exits
 * unasked (after 1 s, doubling to 30 s while it keeps failing within a minute of starting), and
 * stops it on request: SIGTERM, then SIGKILL after `killAfterMs`.
 */
export class Supervised {
  private child: ChildProcess | undefined;
  private stopping = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly name: string,
    private readonly script: string,
    private readonly logger: Logger,
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly killAfterMs = 15_000,
  ) {}

  start(): void {
    if (this.stopping) return;
    const startedAt = Date.now();
    const child = fork(this.script, [], { env: this.env, stdio: 'inherit' });
    this.child = child;
    this.logger.info({ child: this.name, childPid: child.pid }, 'started child process');
    child.once('exit', (code, signal) => {
      this.child = undefined;
      if (this.stopping) return;
      this.failures = Date.now() - startedAt > 60_000 ? 1 : this.failures + 1;
      const delayMs = Math.min(30_000, 1000 * 2 ** (this.failures - 1));
      this.logger.error({ child: this.name, code, signal, restartInMs: delayMs }, 'child process exited; restarting it');
      this.timer = setTimeout(() => this.start(), delayMs);
    });
  }

  /** Resolves once the child has exited (at once when none runs). */
  stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      const kill = setTimeout(() => child.kill('SIGKILL'), this.killAfterMs);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
