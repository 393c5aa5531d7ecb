import { Command } from 'commander';
import { AdminClient, InventoryClient, newRequestId } from '../../client';
import { ID_PATTERN } from '../../kernel/ids';
import { ExitCode, usageFailure } from './exit-codes';
import { Output } from './output';
import { Progress, startProgress } from './progress';
import { TlsOptions, channelCredentials } from './tls';
import { adminToken } from './token';

/** The root's options, which every command sees (program.ts). */
export interface GlobalOptions extends TlsOptions {
  readonly inventoryAddr: string;
  readonly adminAddr: string;
  readonly tokenFile?: string;
  readonly timeout?: number;
  readonly json?: boolean;
}

/**
 * What a command works with: the output, the two clients (built on first use, so a read of
 * InventoryService needs no token), request ids, and progress bars.
 */
export class Ctl {
  readonly output: Output;
  private inventoryClient?: InventoryClient;
  private adminClient?: AdminClient;

  constructor(
    private readonly options: GlobalOptions,
    private readonly env: NodeJS.ProcessEnv = process.env,
  ) {
    this.output = new Output(Boolean(options.json));
  }

  inventory(): InventoryClient {
    this.inventoryClient ??= new InventoryClient({
      address: this.options.inventoryAddr,
      credentials: channelCredentials(this.options),
      timeoutMs: this.options.timeout,
    });
    return this.inventoryClient;
  }

  admin(): AdminClient {
    this.adminClient ??= new AdminClient({
      address: this.options.adminAddr,
      credentials: channelCredentials(this.options),
      token: adminToken({ tokenFile: this.options.tokenFile, env: this.env }),
      timeoutMs: this.options.timeout,
    });
    return this.adminClient;
  }

  /**
   * The request id of a command: the one given, or a new one. Said on stderr before the call, so a
   * command cut short (Ctrl-C, a lost connection) can be sent again under it and applies once.
   */
  requestId(given: string | undefined): string {
    const id = given ?? `ctl-${newRequestId()}`;
    this.output.note(`request id ${id} (to retry safely, repeat the command with --request-id ${id})`);
    return id;
  }

  /** requestId for AdminService: the token is checked first, so a missing one is said before any id. */
  adminRequestId(given: string | undefined): string {
    this.admin();
    return this.requestId(given);
  }

  /** The id of one step of a command of several calls, derived from its request id. */
  stepId(base: string, step: string): string {
    const id = `${base}.${step}`;
    if (!ID_PATTERN.test(id)) throw usageFailure(`--request-id ${base}: too long to derive the id of step "${step}" (${id.length} > 128 characters)`);
    return id;
  }

  /** A progress bar over `total` steps, for people only (not with --json, not when stderr is piped). */
  progress(total: number, what: string): Progress {
    return startProgress(total, what, !this.output.json && Boolean(process.stderr.isTTY));
  }

  /** Runs `step` on each item in turn under a progress bar named `what`; their results in order. */
  async eachWithProgress<T, R>(items: readonly T[], what: string, label: (item: T) => string, step: (item: T) => Promise<R>): Promise<R[]> {
    const progress = this.progress(items.length, what);
    const results: R[] = [];
    try {
      for (const item of items) {
        results.push(await step(item));
        progress.tick(label(item));
      }
    } finally {
      progress.stop();
    }
    return results;
  }

  close(): void {
    this.inventoryClient?.close();
    this.adminClient?.close();
  }
}

/** A command's action: its arguments and options as commander passes them, an exit code back. */
export type Action = (ctl: Ctl, ...args: any[]) => Promise<ExitCode | void>;

/**
 * Wraps an action for commander: builds the Ctl from the root's options, runs the action, closes
 * the clients, and leaves the exit code in process.exitCode (the entry reads it).
 */
export function withCtl(action: Action): (...args: any[]) => Promise<void> {
  return async (...args: any[]) => {
    const command = args[args.length - 1] as Command;
    const ctl = new Ctl(command.optsWithGlobals<GlobalOptions>());
    try {
      process.exitCode = (await action(ctl, ...args.slice(0, -1))) ?? ExitCode.OK;
    } finally {
      ctl.close();
    }
  };
}
