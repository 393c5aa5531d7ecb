/**
 * A row of the results: one measured scenario's calls, latencies, answers by code, CPU per
 * process group and per call, and its check, as the report prints it and the results JSON stores
 * it. Built here from the figures of a load alone; the scenarios add what they checked.
 */
import { CpuReport } from './cpu';
import { Histogram } from './hist';
import { LoadResult } from './loadgen';
import { NodeLoad, NodeShare, nodeShares } from './redis-nodes';
import { Verdict } from './verify';

/** What one measured load gave: the load generators' results, the CPU of every process, Redis's forks meanwhile, each Redis node's part. */
export interface Drive {
  result: LoadResult;
  cpu: CpuReport;
  redisForks: number;
  redisNodes: NodeLoad[];
}

export interface Row {
  id: string;
  title: string;
  server: 'inventory' | 'baseline' | 'echo' | 'bare';
  workers: number;
  client: 'lean' | 'h2load';
  answered: number;
  elapsedMs: number;
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
  p999Ms: number;
  maxMs: number;
  codes: Record<string, number>;
  errors: number;
  reserved?: number;
  rejected?: number;
  replayed?: number;
  stocked?: number;
  sold?: number;
  soldOutAtMs?: number;
  sellingCallsPerSec?: number;
  beyondCallsPerSec?: number;
  methods?: Record<string, { calls: number; p50Ms: number; p99Ms: number }>;
  cart?: { orders: number; ordersPerSec: number; confirms: number; releases: number; unitsReserved: number; unitsReleased: number };
  cpu: CpuReport;
  serverUsPerCall: number;
  /** The server's ledger writer child (LEDGER_WRITER=process), per call. */
  ledgerUsPerCall: number;
  storeUsPerCall: number;
  /** Our server's Redis nodes one by one: CPU per call, and each master's share of the scripts (scaling group). */
  redisNodes?: NodeShare[];
  check: Verdict | undefined;
  notes: string[];
}

/** Answers by code other than OK: out of stock is an answer (REJECTED, status OK), these are not. */
export function errorCodes(codes: Record<string, number>): Array<[string, number]> {
  return Object.entries(codes).filter(([code]) => code !== 'OK');
}

/** Calls, latencies and answers by code: the figures every row has, whichever client measured them. */
export function callFigures(
  answered: number,
  elapsedMs: number,
  callsPerSec: number,
  hist: Histogram,
  codes: Record<string, number>,
): Pick<Row, 'answered' | 'elapsedMs' | 'callsPerSec' | 'p50Ms' | 'p99Ms' | 'p999Ms' | 'maxMs' | 'codes' | 'errors'> {
  return {
    answered,
    elapsedMs,
    callsPerSec,
    p50Ms: hist.quantile(0.5) / 1000,
    p99Ms: hist.quantile(0.99) / 1000,
    p999Ms: hist.quantile(0.999) / 1000,
    maxMs: hist.max / 1000,
    codes,
    errors: errorCodes(codes).reduce((a, [, n]) => a + n, 0),
  };
}

/** CPU µs per answered call of the server, its ledger writer and its store (MySQL for the baseline, Redis for ours, none for the echo servers). */
export function cpuPerCall(server: Row['server'], cpu: CpuReport, answered: number): Pick<Row, 'serverUsPerCall' | 'ledgerUsPerCall' | 'storeUsPerCall'> {
  const perCall = (groupMs: number | undefined) => ((groupMs ?? 0) * 1000) / Math.max(1, answered);
  const store = server === 'baseline' ? cpu.groups.mariadb?.ms : server === 'inventory' ? cpu.groups.redis?.ms : 0;
  return { serverUsPerCall: perCall(cpu.groups.server?.ms), ledgerUsPerCall: perCall(cpu.groups.ledger?.ms), storeUsPerCall: perCall(store) };
}

/** The row of a load of the bench's own load generators; `extra` (stock, sales, check) goes over what the load gave. */
export function loadRow(id: string, title: string, server: Row['server'], workers: number, { result, cpu, redisForks, redisNodes }: Drive, extra: Partial<Row> = {}): Row {
  const row: Row = {
    id,
    title,
    server,
    workers,
    client: 'lean',
    ...callFigures(result.answered, result.elapsedMs, (result.answered * 1000) / result.elapsedMs, Histogram.fromSparse(result.hist), result.codes),
    reserved: result.reserve.reserved,
    rejected: result.reserve.rejected,
    replayed: result.reserve.replayed,
    cpu,
    ...cpuPerCall(server, cpu, result.answered),
    ...(server === 'inventory' ? { redisNodes: nodeShares(redisNodes, result.answered, cpu.wallMs) } : {}),
    check: undefined,
    notes: [],
    ...extra,
  };
  const methods: Row['methods'] = {};
  for (const [m, s] of Object.entries(result.methods)) {
    const h = Histogram.fromSparse(s.hist);
    methods[m] = { calls: s.calls, p50Ms: h.quantile(0.5) / 1000, p99Ms: h.quantile(0.99) / 1000 };
  }
  row.methods = methods;
  // Selling vs sold-out phases from the timeline (100 ms buckets).
  let lastSale = -1;
  result.timeline.forEach(([, r], i) => {
    if (r > 0) lastSale = i;
  });
  if (row.stocked !== undefined && row.reserved !== undefined && row.reserved >= row.stocked && lastSale >= 0) {
    const sellingCalls = result.timeline.slice(0, lastSale + 1).reduce((a, [n]) => a + n, 0);
    const sellingMs = (lastSale + 1) * 100;
    row.soldOutAtMs = sellingMs;
    row.sellingCallsPerSec = (sellingCalls * 1000) / sellingMs;
    const beyondMs = result.elapsedMs - sellingMs;
    if (beyondMs > 0) row.beyondCallsPerSec = ((result.answered - sellingCalls) * 1000) / beyondMs;
  }
  // The stack's Redis forks only to rewrite its AOF (it saves no RDB); one of the user's own may also save RDB snapshots.
  if (redisForks > 0) row.notes.push(`Redis forked ${redisForks} time${redisForks > 1 ? 's' : ''} during it (AOF rewrite or RDB save; counted in its CPU)`);
  if (result.codes.TIMEOUT) row.notes.push(`${result.codes.TIMEOUT} calls unanswered ${30} s after the load stopped`);
  if (cpu.otherPct > 25) {
    const steal = cpu.stealPct > 5 ? `, ${cpu.stealPct.toFixed(0)}% of it steal (the hypervisor serving other machines)` : '';
    row.notes.push(`noisy: other processes used ${cpu.otherPct.toFixed(0)}% of a core meanwhile${steal}`);
  }
  const lg = cpu.groups.loadgen?.pct ?? 0;
  if (lg > 50) row.notes.push(`load generator used ${lg.toFixed(0)}% of a core (> 50%): try --loadgens 2`);
  return row;
}
