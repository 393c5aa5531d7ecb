/**
 * Child processes of the benchmark — servers (each in a process group of its own, so cluster
 * workers go with it) and load generators — and the clean-up that stops every one of them on
 * exit, Ctrl-C or a crash of the orchestrator.
 */
import { ChildProcess, fork, spawn } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import net from 'node:net';
import { createInterface } from 'node:readline';
import { unaryOnce } from './h2';
import { PATHS, reserveFrame, Writer } from './wire';

const live = new Set<ChildProcess>();

function killTree(child: ChildProcess, signal: NodeJS.Signals): void {
  if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
  try {
    if ((child as ChildProcess & { detachedGroup?: boolean }).detachedGroup) process.kill(-child.pid, signal);
    else child.kill(signal);
  } catch {
    /* already gone */
  }
}

/** SIGTERM to every child, SIGKILL to whatever is left after `graceMs`. */
export async function stopAll(graceMs = 5000): Promise<void> {
  const children = [...live];
  await Promise.all(children.map((c) => stopChild(c, graceMs)));
}

/** Stops one child: SIGTERM, then SIGKILL after graceMs; resolves when it has exited. */
export function stopChild(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) {
    live.delete(child);
    return Promise.resolve();
  }
  return new Promise((resolve) => {
    const timer = setTimeout(() => killTree(child, 'SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(timer);
      live.delete(child);
      resolve();
    });
    killTree(child, 'SIGTERM');
  });
}

/** Last resort at process exit (synchronous): SIGKILL to anything still running. */
process.on('exit', () => {
  for (const child of live) killTree(child, 'SIGKILL');
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}

export interface ServerProcess {
  readonly child: ChildProcess;
  readonly pid: number;
  readonly target: string;
  /** host:port of AdminService (our server; the others do not serve it). */
  readonly adminTarget: string;
  readonly metricsPort: number;
  readonly logFile: string;
  stop(): Promise<void>;
}

/**
 * The V8 flags `npm start` runs the server with (package.json): every server of the benchmark gets
 * them, ours, the echo server and the MySQL baseline alike. A 32 MB semi-space (young generation)
 * instead of 16 MB halves the scavenges of a server that allocates per call: on the 2-core machine
 * with the ledger writer in its own process, our flash sale went from 55-60% to 68-72% of the
 * ceiling, the echo server's ceiling did not move.
 */
export const SERVER_NODE_ARGS: readonly string[] = ['--max-semi-space-size=32'];

export interface ServerLaunch {
  readonly name: string;
  /** Script under dist/, e.g. dist/server/main.js. */
  readonly script: string;
  readonly nodeArgs?: readonly string[];
  readonly env: Record<string, string>;
  readonly workers: number;
  readonly logFile: string;
  readonly startTimeoutMs?: number;
  /**
   * How readiness is checked after the start-up line: a health check answering SERVING (default),
   * or, for a server without a health service (the bare grpc-js echo), a Reserve call answering OK.
   */
  readonly probe?: 'health' | 'reserve';
}

/**
 * Starts a server (HOST 127.0.0.1, free ports) and resolves once each worker has logged
 * "inventory core listening" and its readiness probe answers: a health check SERVING, or a
 * Reserve call OK (launch.probe).
 */
export async function startServer(launch: ServerLaunch): Promise<ServerProcess> {
  const [inventoryPort, adminPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  const log = createWriteStream(launch.logFile, { flags: 'a' });
  const child = spawn(process.execPath, [...SERVER_NODE_ARGS, ...(launch.nodeArgs ?? []), launch.script], {
    env: {
      ...process.env,
      // No stock-message consumer or event publisher (bench:mq measures those): the server's CPU is the server's.
      MQ_CONSUMER: 'off',
      ...launch.env,
      HOST: '127.0.0.1',
      INVENTORY_PORT: String(inventoryPort),
      ADMIN_PORT: String(adminPort),
      METRICS_PORT: String(metricsPort),
      WORKERS: String(launch.workers),
      LOG_LEVEL: launch.env.LOG_LEVEL ?? 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true, // its own process group: cluster workers are stopped with it
  });
  (child as ChildProcess & { detachedGroup?: boolean }).detachedGroup = true;
  live.add(child);
  child.once('exit', () => live.delete(child));
  child.stderr?.pipe(log, { end: false });

  let listening = 0;
  let onListening: () => void = () => undefined;
  createInterface({ input: child.stdout! }).on('line', (line) => {
    log.write(`${line}\n`);
    if (line.includes('"msg":"inventory core listening"')) {
      listening++;
      onListening();
    }
  });

  const target = `127.0.0.1:${inventoryPort}`;
  const timeoutMs = launch.startTimeoutMs ?? 30_000;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${launch.name} did not start in ${timeoutMs} ms (see ${launch.logFile})`)), timeoutMs);
      const exited = (code: number | null) => {
        clearTimeout(timer);
        reject(new Error(`${launch.name} exited during start-up (code ${code}); see ${launch.logFile}`));
      };
      child.once('exit', exited);
      onListening = () => {
        if (listening >= launch.workers) {
          clearTimeout(timer);
          child.off('exit', exited);
          resolve();
        }
      };
    });
    const [probe, path, body] =
      launch.probe === 'reserve'
        ? ['Reserve probe', PATHS.reserve, reserveFrame(new Writer(), 'bench-probe-0', [['echo-sku', 1]])]
        : ['health check', PATHS.health, Buffer.from([0, 0, 0, 0, 0])];
    const answer = await unaryOnce(target, path, body, 5000);
    if (answer.code !== 0) throw new Error(`${launch.name}: ${probe} answered grpc-status ${answer.code}`);
  } catch (err) {
    await stopChild(child, 3000);
    throw err;
  }
  return {
    child,
    pid: child.pid!,
    target,
    adminTarget: `127.0.0.1:${adminPort}`,
    metricsPort,
    logFile: launch.logFile,
    stop: () => stopChild(child, 15_000).then(() => new Promise<void>((resolve) => log.end(() => resolve()))),
  };
}

/** Forks a load generator (IPC channel for its messages). */
export function forkLoadgen(script: string): ChildProcess {
  const child = fork(script, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

/** Tracks any other child (h2load) for clean-up. */
export function track(child: ChildProcess): void {
  live.add(child);
  child.once('exit', () => live.delete(child));
}
