import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A throwaway redis-server of a test's own (a second node, or one to kill), on a free port. */
export interface RedisNode {
  readonly address: string;
  /** SIGKILL: gone at once, as in a crash (with `appendonly`, what reached the AOF survives). */
  kill(): Promise<void>;
  /** Starts it again on the same port and data folder (after kill). */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisNodeOptions {
  /** Keep an append-only file (fsync every second), so a restart after kill() has the data. Default false. */
  readonly appendonly?: boolean;
}

export async function startRedisNode(options: RedisNodeOptions = {}): Promise<RedisNode> {
  const port = await freePort();
  const dir = mkdtempSync(path.join(os.tmpdir(), 'inv-redis-'));
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', options.appendonly ? 'yes' : 'no', '--dir', dir, '--maxmemory-policy', 'noeviction'];
  let child: ChildProcess;
  const start = async () => {
    child = spawn('redis-server', args, { stdio: 'ignore' });
    await waitForPort(port, 10_000);
  };
  const end = async (signal: NodeJS.Signals) => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  };
  await start();
  return {
    address: `127.0.0.1:${port}`,
    kill: () => end('SIGKILL'),
    restart: start,
    async stop() {
      await end('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function freePort(): Promise<number> {
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
