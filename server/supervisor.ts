import { ChildProcess, fork } from 'node:child_process';
import os from 'node:os';
import { Logger } from '../kernel/logger';

/**
 * Keeps one child process running (the ledger writer): starts it, restarts it when it exits
 * unasked (after 1 s, doubling to 30 s while it keeps failing within a minute of starting), and
 * stops it on request: SIGTERM, then SIGKILL after `killAfterMs`. A `niceness` above 0 lowers the
 * child's CPU priority below this process's, for background work that should yield to the requests
 * this process serves.
 */
export interface SupervisedOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** SIGKILL a child that has not exited this long after SIGTERM. Default 15000 ms. */
  readonly killAfterMs?: number;
  /** Added to this process's nice value for the child (0..19: lower priority; capped at 19). Default 0. */
  readonly niceness?: number;
}

export class Supervised {
  private child: ChildProcess | undefined;
  private stopping = false;
  private failures = 0;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly name: string,
    private readonly script: string,
    private readonly logger: Logger,
    private readonly options: SupervisedOptions = {},
  ) {}

  start(): void {
    if (this.stopping) return;
    const startedAt = Date.now();
    const child = fork(this.script, [], { env: this.options.env ?? process.env, stdio: 'inherit' });
    this.child = child;
    const niceness = this.options.niceness ?? 0;
    if (niceness !== 0 && child.pid !== undefined) {
      try {
        os.setPriority(child.pid, Math.min(19, os.getPriority() + niceness));
      } catch (err) {
        this.logger.warn({ err, child: this.name, niceness }, 'could not set the child process priority; it runs at ours');
      }
    }
    this.logger.info({ child: this.name, childPid: child.pid, niceness }, 'started child process');
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
      const kill = setTimeout(() => child.kill('SIGKILL'), this.options.killAfterMs ?? 15_000);
      child.once('exit', () => {
        clearTimeout(kill);
        resolve();
      });
      child.kill('SIGTERM');
    });
  }
}
