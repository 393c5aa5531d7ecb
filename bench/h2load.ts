/**
 * The duplicate-submission storm: h2load (nghttp2-client) replays ONE pre-encoded Reserve — the
 * same order id every time — over HTTP/2, as a double-clicking buyer or a retrying order service
 * would at scale. h2load sees HTTP statuses only, so the gRPC codes come from the server's
 * Prometheus counters, and per-call latency from h2load's --log-file. h2load's own CPU is read
 * from the rusage of the bash that waited for it (cutime/cstime of /proc/<bash>/stat).
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Histogram } from './hist';
import { track } from './procs';

export function h2loadPath(): string | undefined {
  try {
    return execFileSync('bash', ['-c', 'command -v h2load'], { encoding: 'utf8' }).trim() || undefined;
  } catch {
    return undefined;
  }
}

export interface H2loadRun {
  readonly target: string;
  readonly path: string;
  readonly bodyFile: string;
  readonly durationS: number;
  readonly warmupS: number;
  readonly clients: number;
  readonly streams: number;
  readonly logFile: string;
}

export interface H2loadResult {
  readonly requests: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  readonly reqPerSec: number;
  readonly elapsedMs: number;
  readonly hist: Histogram;
  readonly statuses: Record<string, number>;
  readonly cpuMs: number;
  readonly output: string;
}

let ticksPerSec = 100;
try {
  ticksPerSec = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
} catch {
  /* 100 */
}

export function runH2load(run: H2loadRun, onOutput?: (line: string) => void): Promise<H2loadResult> {
  if (!/^127\.0\.0\.1:\d+$/.test(run.target)) throw new Error(`h2load: target must be 127.0.0.1:<port>, got ${run.target}`);
  const args = [
    '-c', String(run.clients),
    '-m', String(run.streams),
    '-D', `${Math.round(run.durationS * 1000)}ms`,
    `--warm-up-time=${Math.round(run.warmupS * 1000)}ms`,
    '-d', run.bodyFile,
    '-H', 'content-type: application/grpc',
    '-H', 'te: trailers',
    `--log-file=${run.logFile}`,
    `http://${run.target}${run.path}`,
  ];
  // bash waits for h2load, then reports its children's CPU (fields 16-17 of its own stat).
  const script = 'h2load "$@"; rc=$?; read -r stat < /proc/$$/stat; echo "BENCH_CHILD_STAT ${stat##*) }"; exit $rc';
  const child = spawn('bash', ['-c', script, 'h2load', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  track(child);
  let output = '';
  child.stdout!.on('data', (d: Buffer) => {
    const text = d.toString();
    output += text;
    for (const line of text.split('\n')) if (line.startsWith('progress')) onOutput?.(line);
  });
  child.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => {
      const m = /BENCH_CHILD_STAT (.*)/.exec(output);
      let cpuMs = NaN;
      if (m) {
        const f = m[1].trim().split(' '); // from field 3 (state): cutime = field 16 -> index 13
        cpuMs = ((Number(f[13]) + Number(f[14])) * 1000) / ticksPerSec;
      }
      const finished = /finished in ([\d.]+)(ms|s), ([\d.]+) req\/s/.exec(output);
      const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/.exec(output);
      if (!finished || !req) {
        reject(new Error(`h2load failed (exit ${code}):\n${output.slice(-2000)}`));
        return;
      }
      const hist = new Histogram();
      const statuses: Record<string, number> = {};
      let first = Infinity;
      let last = 0;
      try {
        for (const line of readFileSync(run.logFile, 'utf8').split('\n')) {
          if (!line) continue;
          const [start, status, micros] = line.split('\t');
          hist.record(Number(micros));
          statuses[status] = (statuses[status] ?? 0) + 1;
          const s = Number(start);
          first = Math.min(first, s);
          last = Math.max(last, s + Number(micros));
        }
      } catch {
        /* no log: latency unknown */
      }
      const elapsedMs = Number(finished[1]) * (finished[2] === 's' ? 1000 : 1);
      resolve({
        requests: Number(req[1]),
        succeeded: Number(req[4]),
        failed: Number(req[5]),
        errored: Number(req[6]),
        timeout: Number(req[7]),
        reqPerSec: Number(finished[3]),
        elapsedMs: first < Infinity ? (last - first) / 1000 : elapsedMs,
        hist,
        statuses,
        cpuMs,
        output,
      });
    });
  });
}

/** Reads `inventory_rpc_calls_total{…method="reserve",code=…}` and `inventory_reserve_total` from /metrics. */
export async function scrapeReserveCounters(metricsPort: number): Promise<{ codes: Record<string, number>; nonReplays: number }> {
  const res = await fetch(`http://127.0.0.1:${metricsPort}/metrics`);
  const text = await res.text();
  const codes: Record<string, number> = {};
  let nonReplays = 0;
  for (const line of text.split('\n')) {
    let m = /^inventory_rpc_calls_total\{[^}]*method="reserve"[^}]*code="([A-Z_]+)"[^}]*\} ([\d.e+]+)/.exec(line);
    if (m) codes[m[1]] = (codes[m[1]] ?? 0) + Number(m[2]);
    m = /^inventory_reserve_total\{[^}]*\} ([\d.e+]+)/.exec(line);
    if (m) nonReplays += Number(m[1]);
  }
  return { codes, nonReplays };
}
