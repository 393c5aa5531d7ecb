/**
 * What a run prints and keeps: the scenario and CPU tables, the details per row, the bare
 * transport ceiling per load shape, the ratios against the baseline, the ceiling and the bare
 * grpc-js echo with their targets (MET / NOT MET), the scaling group's split of Redis CPU over
 * the masters (scaling.ts), the profile summary, and the results JSON file.
 */
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BareRound, Bench } from './context';
import { fmt, median, ms, renderTable } from './format';
import { shapeName } from './options';
import { ROOT } from './paths';
import { formatSummary } from './profile-summary';
import { Row, errorCodes } from './rows';
import { scalingJson, scalingReport } from './scaling';
import { soakReport } from './soak';

export interface Ratio {
  what: string;
  value: number;
  display: string;
  /** Each round's value, when the ratio is the median of several. */
  rounds?: number[];
  target?: string;
  met?: boolean;
}

const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
const times = (v: number) => `${v.toFixed(2)}x`;
const shown = (what: string, value: number, show: (v: number) => string): Ratio => ({ what, value, display: show(value) });

export function ratios(bench: Bench): Ratio[] {
  const out: Ratio[] = [];
  const find = (id: string) => bench.rows.find((r) => r.id === id);
  const pairs = bench.rounds.filter((r): r is { ceiling: Row; flash: Row } => r.ceiling !== undefined && r.flash !== undefined);
  const flashRows = bench.rounds.flatMap((r) => (r.flash ? [r.flash] : []));
  const ceilingRows = bench.rounds.flatMap((r) => (r.ceiling ? [r.ceiling] : []));
  const flashRate = flashRows.length > 0 ? median(flashRows.map((r) => r.callsPerSec)) : undefined;
  const ceilingRate = ceilingRows.length > 0 ? median(ceilingRows.map((r) => r.callsPerSec)) : undefined;
  const ofRounds = bench.rounds.length > 1 ? '; median of the rounds' : '';
  // A ratio of each round's pair (ceiling, then flash sale right after it), and their median.
  const paired = (f: (p: { ceiling: Row; flash: Row }) => number, show: (v: number) => string) => {
    const rounds = pairs.map(f);
    const value = median(rounds);
    return { value, rounds, display: rounds.length > 1 ? `${show(value)} (rounds ${rounds.map(show).join(', ')})` : show(value) };
  };
  const base = find('baseline-flash-1w');
  if (flashRate !== undefined && base) {
    const v = flashRate / base.callsPerSec;
    out.push({ ...shown(`flash sale vs MySQL baseline, calls/s (1 worker each${ofRounds})`, v, times), target: '>= 4x', met: v >= 4 });
  }
  if (pairs.length > 0) {
    const calls = paired((p) => p.flash.callsPerSec / p.ceiling.callsPerSec, pct);
    out.push({ what: 'flash sale vs transport ceiling, calls/s', ...calls, target: '>= 60%', met: calls.value >= 0.6 });
    const p99 = paired((p) => p.flash.p99Ms / p.ceiling.p99Ms, times);
    out.push({ what: 'flash sale p99 vs transport ceiling p99', ...p99, target: '<= 1.5x', met: p99.value <= 1.5 });
    const ours = median(pairs.map((p) => p.flash.serverUsPerCall + p.flash.storeUsPerCall));
    const echoUs = median(pairs.map((p) => p.ceiling.serverUsPerCall));
    const cpu = paired((p) => (p.flash.serverUsPerCall + p.flash.storeUsPerCall) / p.ceiling.serverUsPerCall, times);
    out.push({
      what: `server+Redis CPU per Reserve (${fmt(ours)} µs${ofRounds}) vs echo server per call (${fmt(echoUs)} µs)`,
      ...cpu,
      target: '<= 2x',
      met: cpu.value <= 2,
    });
    const ledgerUs = median(pairs.map((p) => p.flash.ledgerUsPerCall));
    if (ledgerUs > 0) {
      const all = paired((p) => (p.flash.serverUsPerCall + p.flash.ledgerUsPerCall + p.flash.storeUsPerCall) / p.ceiling.serverUsPerCall, times);
      out.push({ what: `the same with the ledger writer process (+${fmt(ledgerUs)} µs)`, ...all });
    }
  }
  out.push(...bareRatios(bench));
  const storm = find('storm-1w');
  const stormCeil = find('storm-ceiling-1w');
  if (storm && stormCeil) {
    const v = storm.callsPerSec / stormCeil.callsPerSec;
    out.push({ ...shown('duplicate storm (one order id, h2load) vs h2load on the echo server', v, pct), target: 'close to 100%', met: v >= 0.8 });
  }
  for (const w of bench.o.workers.filter((x) => x > 1)) {
    const f = find(`flash-${w}w`);
    const c = find(`ceiling-${w}w`);
    if (f && flashRate) out.push(shown(`flash sale, ${w} workers vs 1${ofRounds}`, f.callsPerSec / flashRate, times));
    if (c && ceilingRate) out.push(shown(`transport ceiling, ${w} workers vs 1${ofRounds}`, c.callsPerSec / ceilingRate, times));
    if (f && c) out.push(shown(`flash sale vs transport ceiling, ${w} workers`, f.callsPerSec / c.callsPerSec, pct));
  }
  const checked = bench.rows.filter((r) => r.check);
  if (checked.length > 0) {
    const failed = checked.filter((r) => !r.check!.ok);
    out.push({
      what: `no unit sold twice (${checked.map((r) => r.id).join(', ')})`,
      value: failed.length,
      display: failed.length === 0 ? 'none oversold' : `FAILED: ${failed.map((r) => r.id).join(', ')}`,
      target: 'zero oversell',
      met: failed.length === 0,
    });
  }
  return out;
}

/** The bare group's rounds by shape, in the order of --shapes. */
function bareShapes(bench: Bench): Array<{ name: string; rounds: BareRound[] }> {
  const byShape = new Map<string, BareRound[]>();
  for (const r of bench.bareRounds) {
    const name = shapeName(r.shape);
    byShape.set(name, [...(byShape.get(name) ?? []), r]);
  }
  return [...byShape].map(([name, rounds]) => ({ name, rounds }));
}

/** Server + store (Redis) CPU per call: what a call costs beside the load generator and the ledger writer. */
const perCall = (r: Row) => r.serverUsPerCall + r.storeUsPerCall;

/**
 * Per load shape: the flash sale and the same-stack echo against the bare grpc-js echo, each the
 * median of the rounds' ratios (each round's three loads ran one right after the other).
 */
function bareRatios(bench: Bench): Ratio[] {
  const out: Ratio[] = [];
  for (const { name, rounds } of bareShapes(bench)) {
    const full = rounds.filter((r): r is Required<BareRound> => r.bare !== undefined && r.echo !== undefined && r.flash !== undefined);
    if (full.length === 0) continue;
    const of = (f: (r: Required<BareRound>) => number, show: (v: number) => string) => {
      const values = full.map(f);
      const value = median(values);
      return { value, rounds: values, display: values.length > 1 ? `${show(value)} (rounds ${values.map(show).join(', ')})` : show(value) };
    };
    const bareUs = median(full.map((r) => perCall(r.bare)));
    const flashUs = median(full.map((r) => perCall(r.flash)));
    const echoUs = median(full.map((r) => perCall(r.echo)));
    const calls = of((r) => r.flash.callsPerSec / r.bare.callsPerSec, pct);
    out.push({ what: `${name}: flash sale vs bare grpc-js echo, calls/s`, ...calls, target: '>= 85%', met: calls.value >= 0.85 });
    const p99 = of((r) => r.flash.p99Ms / r.bare.p99Ms, times);
    out.push({ what: `${name}: flash sale p99 vs bare echo p99`, ...p99, target: '<= 1.3x', met: p99.value <= 1.3 });
    const cpu = of((r) => perCall(r.flash) / perCall(r.bare), times);
    out.push({
      what: `${name}: server+Redis CPU per Reserve (${fmt(flashUs)} µs) vs bare echo per call (${fmt(bareUs)} µs)`,
      ...cpu,
      target: '<= 1.5x',
      met: cpu.value <= 1.5,
    });
    // What no server of ours can go below: the bare echo's own cost plus Redis's work for the Reserve.
    const redisUs = median(full.map((r) => r.flash.storeUsPerCall));
    out.push({
      what: `${name}: floor of this design: bare echo per call + this sale's Redis CPU per Reserve (${fmt(redisUs)} µs), vs bare echo`,
      ...of((r) => (perCall(r.bare) + r.flash.storeUsPerCall) / perCall(r.bare), times),
    });
    const script = bench.scriptCost?.at(-1);
    if (script) {
      out.push({
        what: `${name}: the same with the script alone on a quiet Redis (${script.redisUs.toFixed(1)} µs, below)`,
        ...of((r) => (perCall(r.bare) + script.redisUs) / perCall(r.bare), times),
      });
    }
    out.push({ what: `${name}: same-stack echo vs bare echo, calls/s`, ...of((r) => r.echo.callsPerSec / r.bare.callsPerSec, pct) });
    out.push({ what: `${name}: same-stack echo p99 vs bare echo p99`, ...of((r) => r.echo.p99Ms / r.bare.p99Ms, times) });
    out.push({ what: `${name}: same-stack echo CPU per call (${fmt(echoUs)} µs) vs bare echo`, ...of((r) => perCall(r.echo) / perCall(r.bare), times) });
  }
  return out;
}

/** The bare group's three servers, in the order of the table. */
const BARE_SERVERS = [
  ['bare grpc-js echo', (r: BareRound) => r.bare],
  ['same-stack echo', (r: BareRound) => r.echo],
  ['flash sale', (r: BareRound) => r.flash],
] as const;

/** One server's rows at one shape, as the medians of its rounds (undefined without rows). */
function bareMedians(rows: Row[]) {
  if (rows.length === 0) return undefined;
  const m = (f: (r: Row) => number) => median(rows.map(f));
  return {
    rounds: rows.map((r) => r.id),
    callsPerSec: m((r) => r.callsPerSec),
    p50Ms: m((r) => r.p50Ms),
    p99Ms: m((r) => r.p99Ms),
    serverUsPerCall: m((r) => r.serverUsPerCall),
    storeUsPerCall: m((r) => r.storeUsPerCall),
    serverPlusStoreUsPerCall: m(perCall),
  };
}

const roundsOf = (rounds: BareRound[], pick: (r: BareRound) => Row | undefined) => rounds.map(pick).filter((r): r is Row => r !== undefined);

/** The bare group per shape and server: medians of the rounds (the rows above have each round). */
function bareTable(bench: Bench): string[] {
  const shapes = bareShapes(bench);
  if (shapes.length === 0) return [];
  const table: string[][] = [['shape', 'server', 'rounds', 'calls/s', 'p50 ms', 'p99 ms', 'server µs/call', 'redis µs/call', 'server+redis µs/call']];
  for (const { name, rounds } of shapes) {
    for (const [label, pick] of BARE_SERVERS) {
      const rows = roundsOf(rounds, pick);
      const m = bareMedians(rows);
      if (!m) continue;
      table.push([
        name,
        label,
        String(rows.length),
        fmt(m.callsPerSec),
        ms(m.p50Ms),
        ms(m.p99Ms),
        fmt(m.serverUsPerCall),
        rows[0].server === 'inventory' ? fmt(m.storeUsPerCall) : '-',
        fmt(m.serverPlusStoreUsPerCall),
      ]);
    }
  }
  return [
    '',
    'Bare transport ceiling, per load shape (connections x streams), medians of the rounds:',
    ...renderTable(table, [false, false, true, true, true, true, true, true, true]),
    ...scriptCostTable(bench),
  ];
}

/** What Redis spends on one Reserve's script, by load (script-cost.ts), each row with what it adds to the one above. */
function scriptCostTable(bench: Bench): string[] {
  const rows = bench.scriptCost;
  if (!rows || rows.length === 0) return [];
  const table: string[][] = [['load', 'µs in EVALSHA', 'Redis CPU µs/call', 'over the row above']];
  rows.forEach((r, i) => {
    const above = i > 0 ? `+${(r.redisUs - rows[i - 1].redisUs).toFixed(1)}` : '';
    table.push([r.name, r.evalshaUs.toFixed(1), r.redisUs.toFixed(1), above]);
  });
  return [
    '',
    "What Redis spends on one Reserve's script (order-reserve, on a redis-server of its own with the stack's settings; medians of the rounds):",
    ...renderTable(table, [false, true, true, true]),
  ];
}

/** The bare group's medians per shape and server, for the results JSON. */
function bareJson(bench: Bench) {
  return bareShapes(bench).map(({ name, rounds }) => {
    const of = (pick: (r: BareRound) => Row | undefined) => bareMedians(roundsOf(rounds, pick));
    return { shape: name, ...rounds[0].shape, bare: of((r) => r.bare), echo: of((r) => r.echo), flash: of((r) => r.flash) };
  });
}

export function report(bench: Bench): string {
  const lines: string[] = [];
  const o = bench.o;
  lines.push('');
  lines.push(
    `Inventory core benchmark ${bench.runId}${o.quick ? ' (--quick)' : ''}: ${os.cpus().length} cores, node ${process.version}; ` +
      `${o.concurrency} calls in flight over ${o.connections} HTTP/2 connections from ${o.loadgens} load generator${o.loadgens > 1 ? 's' : ''}, ` +
      `${o.durationMs / 1000} s per scenario; flash ${fmt(o.units)} units / ${o.partitions} partitions, sell-out ${fmt(o.selloutUnits)} units, ` +
      `cart ${fmt(o.skus)} SKUs x ${o.skuPartitions} partitions x ${fmt(o.skuUnits)} units`,
  );
  if (bench.rows.length > 0) lines.push(...loadTables(bench));
  if (bench.profile) {
    lines.push('');
    const w = bench.profileWindow;
    lines.push(
      `Server profile of the flash sale (${path.relative(ROOT, bench.profileFile!)}` +
        (w ? `, samples ${(w.fromMs / 1000).toFixed(1)}-${(w.toMs / 1000).toFixed(1)} s after start: the measured load only` : '') +
        '):',
    );
    lines.push(...formatSummary(bench.profile).split('\n').map((l) => `  ${l}`));
  }
  lines.push(...scalingReport(bench));
  if (bench.soak) lines.push('', ...soakReport(bench.soak));
  if (bench.notes.length > 0) {
    lines.push('');
    lines.push('Notes:');
    for (const n of bench.notes) lines.push(`  ${n}`);
  }
  return lines.join('\n');
}

/** The load scenarios' tables: answers, CPU, details and ratios. */
function loadTables(bench: Bench): string[] {
  const lines: string[] = [''];
  const head = ['scenario', 'client', 'calls', 'calls/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'errors by code', 'sold / stocked', 'check'];
  const table: string[][] = [head];
  for (const r of bench.rows) {
    const errs = errorCodes(r.codes)
      .map(([c, n]) => `${c} ${fmt(n)}`)
      .join(', ');
    let sold = '';
    if (r.stocked !== undefined && r.sold !== undefined) sold = `${fmt(r.sold)} / ${fmt(r.stocked)}`;
    table.push([
      r.title,
      r.client,
      fmt(r.answered),
      fmt(r.callsPerSec),
      ms(r.p50Ms),
      ms(r.p99Ms),
      ms(r.p999Ms),
      errs || '0',
      sold,
      r.check ? (r.check.ok ? 'ok' : 'FAILED') : '',
    ]);
  }
  lines.push(...renderTable(table, [false, false, true, true, true, true, true, false, true, false]));
  lines.push('');
  lines.push('CPU during each scenario, % of one core (machine = all cores busy; other = processes outside the benchmark):');
  const cpuHead = ['scenario', 'loadgen', 'server', 'ledger', 'redis', 'mariadb', 'etcd', 'other', 'machine', 'server µs/call', 'ledger µs/call', 'store µs/call'];
  const cpuTable: string[][] = [cpuHead];
  const groupPct = (r: Row, g: string) => (r.cpu.groups[g] ? `${r.cpu.groups[g].pct.toFixed(0)}%` : '-');
  for (const r of bench.rows) {
    cpuTable.push([
      r.title,
      ...['loadgen', 'server', 'ledger', 'redis', 'mariadb', 'etcd'].map((g) => groupPct(r, g)),
      `${r.cpu.otherPct.toFixed(0)}%`,
      `${r.cpu.machineBusyPct.toFixed(0)}%`,
      fmt(r.serverUsPerCall),
      r.server === 'inventory' ? fmt(r.ledgerUsPerCall) : '-',
      r.server === 'echo' || r.server === 'bare' ? '-' : fmt(r.storeUsPerCall),
    ]);
  }
  lines.push(...renderTable(cpuTable, [false, true, true, true, true, true, true, true, true, true, true, true]));

  const details = bench.rows.flatMap((r) => {
    const bits = rowDetails(r);
    return bits.length > 0 ? [`  ${r.title}: ${bits.join('; ')}`] : [];
  });
  if (details.length > 0) {
    lines.push('');
    lines.push('Details:');
    lines.push(...details);
  }

  lines.push(...bareTable(bench));

  lines.push('');
  lines.push('Ratios (same machine, same client settings, same run):');
  for (const r of ratios(bench)) {
    const target = r.target ? `  target ${r.target}: ${r.met ? 'MET' : 'NOT MET'}` : '';
    lines.push(`  ${r.what}: ${r.display}${target}`);
  }
  return lines;
}

/** A row's line under Details: its answers, its sell-out, its cart, its failed check and its notes. */
function rowDetails(r: Row): string[] {
  const bits: string[] = [];
  if (r.reserved !== undefined && r.client === 'lean') bits.push(`RESERVED ${fmt(r.reserved)}, REJECTED ${fmt(r.rejected ?? 0)}${r.replayed ? `, replayed ${fmt(r.replayed)}` : ''}`);
  if (r.client === 'h2load' && r.replayed !== undefined) bits.push(`replayed answers ${fmt(r.replayed)}, deductions ${fmt(r.sold ?? 0)}`);
  if (r.soldOutAtMs !== undefined) {
    bits.push(
      `sold out after ${(r.soldOutAtMs / 1000).toFixed(1)} s: selling ${fmt(r.sellingCallsPerSec ?? NaN)} calls/s, then sold out ${fmt(r.beyondCallsPerSec ?? NaN)} calls/s`,
    );
  }
  if (r.cart) {
    const m = r.methods ?? {};
    bits.push(
      `${fmt(r.cart.orders)} orders (${fmt(r.cart.ordersPerSec)}/s), ${fmt(r.cart.confirms)} confirms, ${fmt(r.cart.releases)} releases; ` +
        `p99 reserve ${ms(m.reserve?.p99Ms ?? NaN)} / confirm ${ms(m.confirm?.p99Ms ?? NaN)} / release ${ms(m.release?.p99Ms ?? NaN)} ms; ` +
        `units reserved ${fmt(r.cart.unitsReserved)}, released ${fmt(r.cart.unitsReleased)}, held ${fmt(r.sold ?? 0)}`,
    );
  }
  if (r.check && !r.check.ok) bits.push(`CHECK FAILED: ${r.check.problems.join('; ')}`);
  bits.push(...r.notes);
  return bits;
}

/** Writes bench-results/<run>.json, for comparison between runs; returns its path. */
export function writeJson(bench: Bench): string {
  const file = path.join(bench.o.out, `${bench.runId}.json`);
  const json = {
    runId: bench.runId,
    namespace: bench.ns.tag,
    machine: { cores: os.cpus().length, model: os.cpus()[0]?.model, node: process.version, loadavg: os.loadavg() },
    options: { ...bench.o, only: bench.o.only ? [...bench.o.only] : undefined, skip: [...bench.o.skip] },
    seeding: bench.seeding,
    rows: bench.rows,
    ratios: ratios(bench),
    bare: bareJson(bench),
    scriptCost: bench.scriptCost,
    scaling: scalingJson(bench),
    profile: bench.profile ? { file: path.relative(ROOT, bench.profileFile!), window: bench.profileWindow, ...bench.profile } : undefined,
    soak: bench.soak,
    notes: bench.notes,
  };
  writeFileSync(file, `${JSON.stringify(json, null, 2)}\n`);
  return file;
}
