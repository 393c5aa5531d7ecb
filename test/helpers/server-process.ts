import { ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

/** A log line of a server process (pino JSON). */
export type LogLine = Record<string, unknown> & { msg?: string };

export interface ServerProcess {
  readonly child: ChildProcess;
  /** host:port of its InventoryService. */
  readonly address: string;
  /** Log lines so far, its own and its children's (they share stdout). */
  readonly lines: readonly LogLine[];
  /** The first log line, seen or to come, that matches; rejects after `timeoutMs`. */
  waitForLine(match: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** SIGTERM, resolving with its exit code. */
  stop(): Promise<number | null>;
}

/**
 * Starts `node dist/server/main.js` on free ports with `env` over this environment; resolves once it
 * listens. No stock-message consumer unless `env` asks for one (MQ_CONSUMER): the default queue is
 * the stack's, shared with `npm start`.
 */
export async function spawnServer(env: Record<string, string>): Promise<ServerProcess> {
  const launched = launchServer(env);
  return { ...launched, address: await launched.listening };
}

/** Starts the server process without waiting for it: `listening` resolves with its address once it listens. */
export function launchServer(env: Record<string, string>): Omit<ServerProcess, 'address'> & { listening: Promise<string> } {
  const main = path.resolve(__dirname, '..', '..', 'server', 'main.js');
  const child = spawn(process.execPath, [main], {
    env: { ...process.env, HOST: '127.0.0.1', INVENTORY_PORT: '0', ADMIN_PORT: '0', METRICS_PORT: '0', MQ_METRICS_PORT: '0', LOG_LEVEL: 'info', MQ_CONSUMER: 'off', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const lines: LogLine[] = [];
  const waiters = new Set<(line: LogLine) => void>();
  createInterface({ input: child.stdout! }).on('line', (text) => {
    let line: LogLine;
    try {
      line = JSON.parse(text) as LogLine;
    } catch {
      line = { msg: text };
    }
    lines.push(line);
    for (const waiter of waiters) waiter(line);
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const waitForLine = (match: (line: LogLine) => boolean, timeoutMs = 20_000) =>
    new Promise<LogLine>((resolve, reject) => {
      const seen = lines.find(match);
      if (seen) return resolve(seen);
      const done = (fn: () => void) => {
        clearTimeout(timer);
        waiters.delete(waiter);
        fn();
      };
      const waiter = (line: LogLine) => match(line) && done(() => resolve(line));
      const timer = setTimeout(() => done(() => reject(new Error('no such log line from the server process in time'))), timeoutMs);
      waiters.add(waiter);
      void exited.then((code) => done(() => reject(new Error(`the server process exited with ${code}`))));
    });

  return {
    child,
    listening: waitForLine((line) => line.msg === 'inventory core listening', 120_000).then((line) => `127.0.0.1:${String(line.inventoryPort)}`),
    lines,
    waitForLine,
    stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** spawnServer on the same Redis prefix, etcd namespace and MySQL database as a test's own services. */
export function spawnServerBeside(
  config: { readonly redisPrefix: string; readonly etcdNamespace: string; readonly mysqlUrl: string },
  env: Record<string, string> = {},
): Promise<ServerProcess> {
  return spawnServer({ REDIS_PREFIX: config.redisPrefix, ETCD_NAMESPACE: config.etcdNamespace, MYSQL_URL: config.mysqlUrl, ...env });
}
