/**
 * CPU accounting from /proc: utime + stime of each process (fields 14 and 15 of /proc/<pid>/stat,
 * in clock ticks), read before and after a scenario, and the whole machine's busy time from
 * /proc/stat, so that what the other engineers' processes used at the same time shows as "other".
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';

let tick = 100;
try {
  tick = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  /* Linux's usual 100 Hz */
}
const MS_PER_TICK = 1000 / tick;

/** CPU time (user + system) of one process in ms, or undefined when it is gone. */
export function processCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // fields from #3 (state) on
    return (Number(fields[11]) + Number(fields[12])) * MS_PER_TICK;
  } catch {
    return undefined;
  }
}

/**
 * CPU time of a process and its children in ms: those still running and those it has waited for
 * (cutime + cstime, fields 16 and 17). Redis does its AOF rewrites and RDB saves in forked
 * children, which are its work as much as the commands are.
 */
export function processWithChildrenCpuMs(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let ms = (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * MS_PER_TICK;
    for (const child of childrenOf(pid)) ms += processCpuMs(child) ?? 0;
    return ms;
  } catch {
    return undefined;
  }
}

/** Direct children of a process (cluster workers of a primary). */
export function childrenOf(pid: number): number[] {
  try {
    const text = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    if (text) return text.split(/\s+/).map(Number);
  } catch {
    /* fall back to scanning /proc */
  }
  const kids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) kids.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return kids;
}

/** A process and all its descendants. */
export function processTree(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length && all.length < 256; i++) all.push(...childrenOf(all[i]));
  return all;
}

/**
 * A server's processes, split: its ledger writer child (LEDGER_WRITER=process runs
 * dist/server/ledger-main.js) apart from the processes that answer calls (the server, its workers).
 */
export function serverProcesses(pid: number): { server: number[]; ledger: number[] } {
  const server: number[] = [];
  const ledger: number[] = [];
  for (const p of processTree(pid)) {
    let cmdline = '';
    try {
      cmdline = readFileSync(`/proc/${p}/cmdline`, 'utf8');
    } catch {
      /* gone */
    }
    (cmdline.includes('ledger-main') ? ledger : server).push(p);
  }
  return { server, ledger };
}

/** Busy and total CPU time of the whole machine (all cores), ms; steal (time the hypervisor gave other machines) is part of busy. */
export function machineCpuMs(): { busy: number; total: number; steal: number } {
  const line = readFileSync('/proc/stat', 'utf8').split('\n')[0];
  const v = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user.
  const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
  const idle = v[3] + v[4];
  return { busy: (total - idle) * MS_PER_TICK, total: total * MS_PER_TICK, steal: v[7] * MS_PER_TICK };
}

function pidAlive(pid: number, comm?: RegExp): boolean {
  try {
    if (!comm) return existsSync(`/proc/${pid}`);
    return comm.test(readFileSync(`/proc/${pid}/comm`, 'utf8').trim());
  } catch {
    return false;
  }
}

function pgrep(args: string[]): number | undefined {
  try {
    const out = execFileSync('pgrep', args, { encoding: 'utf8' }).trim().split('\n')[0];
    return out ? Number(out) : undefined;
  } catch {
    return undefined;
  }
}

/** The live process a pid file of scripts/stack.sh names (`.stack/<unit>.pid`), when its name matches `comm`. */
function fromPidFile(root: string, unit: string, comm: RegExp): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(root, '.stack', `${unit}.pid`), 'utf8').trim());
    return pid && pidAlive(pid, comm) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The redis-server listening on `port`: the stack's pid file (a single node, or a node of its cluster), else pgrep. */
export function redisPid(root: string, port: number): number | undefined {
  return fromPidFile(root, `redis-${port}`, /redis/) ?? fromPidFile(root, `rcluster-${port}`, /redis/) ?? pgrep(['-f', `redis-server.*:${port}\\b`]);
}

/** The stack's servers: pid files of scripts/stack.sh, else pgrep. */
export function stackPids(root: string, redisPorts: readonly number[]): Record<string, number[]> {
  const fromFile = (unit: string, comm: RegExp) => fromPidFile(root, unit, comm);
  const redis = redisPorts.map((port) => redisPid(root, port)).filter((p): p is number => p !== undefined);
  const one = (p: number | undefined) => (p === undefined ? [] : [p]);
  return {
    redis,
    mariadb: one(fromFile('mariadb', /mariadbd|mysqld/) ?? pgrep(['-x', 'mariadbd']) ?? pgrep(['-x', 'mysqld'])),
    etcd: one(fromFile('etcd', /etcd/) ?? pgrep(['-x', 'etcd'])),
  };
}

/** CPU of named groups of processes between start() and stop(). */
export class CpuMeter {
  private before = new Map<number, number>();
  private machineBefore = { busy: 0, total: 0, steal: 0 };
  private started = 0;
  private pids: Record<string, number[]> = {};

  private readonly withChildren: ReadonlySet<string>;
  private readonly split: ReadonlySet<string>;

  /**
   * `withChildren`: groups whose processes count their forked children too (Redis: see
   * processWithChildrenCpuMs). `split`: groups whose processes the report also gives one by one
   * (the masters of a Redis Cluster).
   */
  constructor(
    private readonly groups: () => Record<string, number[]>,
    options: { withChildren?: ReadonlySet<string>; split?: ReadonlySet<string> } = {},
  ) {
    this.withChildren = options.withChildren ?? new Set(['redis', 'replicas']);
    this.split = options.split ?? new Set();
  }

  private cpuOf(group: string, pid: number): number | undefined {
    return this.withChildren.has(group) ? processWithChildrenCpuMs(pid) : processCpuMs(pid);
  }

  start(): void {
    this.pids = this.groups();
    this.before.clear();
    for (const [name, list] of Object.entries(this.pids)) for (const pid of list) this.before.set(pid, this.cpuOf(name, pid) ?? 0);
    this.machineBefore = machineCpuMs();
    this.started = performance.now();
  }

  /** CPU per group in ms and in percent of one core, plus the machine's busy time and what others used. */
  stop(): CpuReport {
    const wallMs = performance.now() - this.started;
    const machine = machineCpuMs();
    const groups: Record<string, { ms: number; pct: number }> = {};
    const byPid: Record<number, number> = {};
    let ours = 0;
    for (const [name, list] of Object.entries(this.pids)) {
      let ms = 0;
      for (const pid of list) {
        const now = this.cpuOf(name, pid);
        if (now === undefined) continue;
        ms += now - (this.before.get(pid) ?? now);
        if (this.split.has(name)) byPid[pid] = now - (this.before.get(pid) ?? now);
      }
      ours += ms;
      groups[name] = { ms, pct: (100 * ms) / wallMs };
    }
    const busy = machine.busy - this.machineBefore.busy;
    const total = machine.total - this.machineBefore.total;
    return {
      wallMs,
      groups,
      machineBusyPct: (100 * busy) / wallMs,
      machineCapacityPct: (100 * total) / wallMs,
      otherPct: Math.max(0, (100 * (busy - ours)) / wallMs),
      stealPct: (100 * (machine.steal - this.machineBefore.steal)) / wallMs,
      ...(this.split.size > 0 ? { byPid } : {}),
    };
  }
}

export interface CpuReport {
  readonly wallMs: number;
  /** Per group: CPU ms and percent of one core over the wall time. */
  readonly groups: Record<string, { ms: number; pct: number }>;
  /** All cores' busy time over the wall time (200% = both cores of a 2-core machine busy). */
  readonly machineBusyPct: number;
  readonly machineCapacityPct: number;
  /** Busy time of processes outside the groups (other engineers' tests, the kernel) and steal. */
  readonly otherPct: number;
  /** Time the hypervisor gave to other virtual machines while ours wanted to run (part of otherPct). */
  readonly stealPct: number;
  /** CPU ms of each process of the `split` groups. */
  readonly byPid?: Readonly<Record<number, number>>;
}
