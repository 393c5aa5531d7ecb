import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A throwaway redis-server of a test's own (a second node, or one to kill), on a free port. */
export interface RedisNode {
  readonly address: string;
  /** Its data directory (the AOF lives here when started with `aof`). */
  readonly dir: string;
  /** SIGKILL: gone at once, as in a crash (with `aof`, what reached the AOF survives). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data folder (after kill). */
  restart(): Promise<void>;
  /**
   * Kills it (SIGKILL: a crash), lets `change` alter its data directory (put back an older copy:
   * the node comes back having lost writes), and starts it again on the same port.
   */
  crashAndRestart(change?: (dir: string) => void): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisNodeOptions {
  /**
   * Persist every write to an append-only file before answering (appendfsync always), so a copy of
   * the directory is a consistent earlier state and a restart after kill() has every write.
   */
  readonly aof?: boolean;
  /**
   * The local stack's settings instead (scripts/stack/redis.sh): AOF fsynced every second, no
   * rewrite below 1gb, orders' hashes kept as listpacks. For measuring what Redis spends as it runs.
   */
  readonly stackSettings?: boolean;
  /** Memory limit (redis-server's maxmemory, e.g. "32mb"); writes past it are refused (noeviction). */
  readonly maxmemory?: string;
}

const STACK_SETTINGS = ['--appendonly', 'yes', '--appendfsync', 'everysec', '--auto-aof-rewrite-min-size', '1gb', '--hash-max-listpack-value', '1024'];

export async function startRedisNode(options: RedisNodeOptions = {}): Promise<RedisNode> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'inv-redis-'));
  const persistence = options.stackSettings ? STACK_SETTINGS : options.aof ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'];
  const memory = options.maxmemory ? ['--maxmemory', options.maxmemory] : [];
  const launch = async (): Promise<ChildProcess> => {
    const started = spawn(
      'redis-server',
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, '--dir', dir, '--maxmemory-policy', 'noeviction', ...memory],
      { stdio: 'ignore' },
    );
    await waitForPort(port, 10_000);
    return started;
  };
  const end = async (signal: NodeJS.Signals): Promise<void> => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  };
  let child = await launch();
  return {
    address: `127.0.0.1:${port}`,
    dir,
    kill: () => end('SIGKILL'),
    async restart() {
      child = await launch();
    },
    async crashAndRestart(change) {
      await end('SIGKILL');
      change?.(dir);
      child = await launch();
    },
    async stop() {
      await end('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
    server.once('error', reject);
  });
}

async function waitForPort(port: number, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1', () => socket.end(() => resolve(true)));
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > until) throw new Error(`redis-server on ${port} did not start`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
