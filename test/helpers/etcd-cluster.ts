import { ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, openSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';

/**
 * A 3-member etcd cluster of a test's own (ports in 2500-2599, data in a temp dir), never the
 * shared stack's: members can be SIGKILLed and started again on their data. Elections are quick
 * (heartbeat 50 ms, election timeout 500 ms) so a leader change fits a short test.
 */
export interface EtcdMember {
  readonly name: string;
  readonly clientUrl: string;
  readonly running: boolean;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /** Starts it again on its data (it rejoins the cluster); resolves once it answers /health. */
  restart(): Promise<void>;
}

export interface EtcdCluster {
  readonly members: readonly EtcdMember[];
  /** Every member's client URL: what ETCD_ENDPOINTS lists. */
  readonly endpoints: string[];
  /** The member the running ones agree is the leader. */
  leader(timeoutMs?: number): Promise<EtcdMember>;
  /** Watchers open on a member, from its /metrics (only this test watches this cluster). */
  watchers(member: EtcdMember): Promise<number>;
  stop(): Promise<void>;
}

const RANGE = { from: 2500, to: 2599 };

export async function startEtcdCluster(size = 3): Promise<EtcdCluster> {
  const base = await freeRun(size * 2);
  const dir = mkdtempSync(join(tmpdir(), 'etcd-cluster-'));
  const peers = Array.from({ length: size }, (_, i) => ({ name: `m${i}`, client: base + 2 * i, peer: base + 2 * i + 1 }));
  const initialCluster = peers.map((p) => `${p.name}=http://127.0.0.1:${p.peer}`).join(',');
  const members = peers.map((p) => new Member(p.name, p.client, p.peer, dir, initialCluster));
  members.forEach((m) => m.spawn());
  try {
    await Promise.all(members.map((m) => m.ready()));
  } catch (err) {
    await Promise.all(members.map((m) => m.kill()));
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    members,
    endpoints: members.map((m) => m.clientUrl),
    async leader(timeoutMs = 10_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const found = await findLeader(members.filter((m) => m.running));
        if (found) return found;
        if (Date.now() > until) throw new Error('etcd cluster: no leader');
        await sleep(100);
      }
    },
    async watchers(member) {
      const text = await (await fetch(`${member.clientUrl}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('etcd_debugging_mvcc_watcher_total '));
      return line ? Number(line.split(' ')[1]) : 0;
    },
    async stop() {
      await Promise.all(members.map((m) => m.kill()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

class Member implements EtcdMember {
  readonly clientUrl: string;
  private child: ChildProcess | undefined;

  constructor(
    readonly name: string,
    clientPort: number,
    private readonly peerPort: number,
    private readonly dir: string,
    private readonly initialCluster: string,
  ) {
    this.clientUrl = `http://127.0.0.1:${clientPort}`;
  }

  get running(): boolean {
    return this.child !== undefined;
  }

  spawn(): void {
    const data = join(this.dir, this.name);
    const log = openSync(join(this.dir, `${this.name}.log`), 'a');
    const peer = `http://127.0.0.1:${this.peerPort}`;
    this.child = spawn(
      'etcd',
      [
        '--name', this.name, '--data-dir', data,
        '--listen-client-urls', this.clientUrl, '--advertise-client-urls', this.clientUrl,
        '--listen-peer-urls', peer, '--initial-advertise-peer-urls', peer,
        '--initial-cluster', this.initialCluster, '--initial-cluster-state', 'new',
        '--heartbeat-interval', '50', '--election-timeout', '500', '--logger', 'zap', '--log-outputs', 'stderr',
      ],
      { stdio: ['ignore', log, log] },
    );
    const child = this.child;
    child.once('exit', () => this.child === child && (this.child = undefined));
  }

  async ready(timeoutMs = 15_000): Promise<void> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      if (!this.child) throw new Error(`etcd ${this.name} exited during start-up (log: ${this.dir}/${this.name}.log)`);
      const ok = await fetch(`${this.clientUrl}/health`, { signal: AbortSignal.timeout(1000) })
        .then(async (res) => (await res.text()).includes('"health":"true"'))
        .catch(() => false);
      if (ok) return;
      if (Date.now() > until) throw new Error(`etcd ${this.name} did not become healthy in ${timeoutMs} ms`);
      await sleep(100);
    }
  }

  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    await exited;
  }

  async restart(): Promise<void> {
    if (this.child) throw new Error(`etcd ${this.name} is still running`);
    this.spawn();
    await this.ready();
  }
}

/** The member whose id the running members report as their leader, asked one by one. */
async function findLeader(running: readonly Member[]): Promise<Member | undefined> {
  const ids = new Map<string, Member>();
  let leaderId: string | undefined;
  for (const m of running) {
    const client = new Etcd3({ hosts: m.clientUrl, defaultCallOptions: { deadline: Date.now() + 1000 } });
    try {
      const status = await client.maintenance.status();
      ids.set(status.header.member_id, m);
      if (status.leader !== '0') leaderId = status.leader;
    } catch {
      // not answering yet
    } finally {
      client.close();
    }
  }
  return leaderId === undefined ? undefined : ids.get(leaderId);
}

/** `count` consecutive free ports in RANGE, from a random start so parallel runs rarely collide. */
async function freeRun(count: number): Promise<number> {
  const span = RANGE.to - RANGE.from + 1 - count;
  const offset = Math.floor(Math.random() * span);
  for (let i = 0; i < span; i++) {
    const base = RANGE.from + ((offset + i) % span);
    let free = true;
    for (let p = base; p < base + count && free; p++) free = await portFree(p);
    if (free) return base;
  }
  throw new Error(`no ${count} free ports in ${RANGE.from}-${RANGE.to}`);
}

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
