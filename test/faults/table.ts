import type { Attempt, Operation } from './load';

/**
 * The fault table: one row per scenario (what callers saw, how long recovery took, which invariants
 * held), printed at the end of `npm run test:faults` for the issue's closing note. Pure functions of
 * what the load and the health watch recorded, so they have unit tests of their own.
 */
export interface ScenarioRow {
  readonly scenario: string;
  /** e.g. "Reserve: RESERVED 2100, UNAVAILABLE/DEPENDENCY_UNAVAILABLE 37; Confirm: OK 630". */
  readonly callers: string;
  /** Health statuses in the order seen, from the fault's start, e.g. "SERVING → NOT_SERVING → SERVING". */
  readonly health: string;
  /** From the fault's end until the last failed Reserve ended; undefined when no Reserve failed at all. */
  readonly reservesBackMs: number | undefined;
  /** From the fault's end until health said SERVING (without a degraded line) again. */
  readonly servingBackMs: number;
  /** Invariants checked and held, or what failed. */
  readonly invariants: string;
  readonly passed: boolean;
}

const OPERATIONS: readonly Operation[] = ['Reserve', 'Confirm', 'Release'];

/** Attempts per operation and answer, most frequent first: "Reserve: RESERVED 10, UNAVAILABLE/X 2; Confirm: OK 3". */
export function summarizeAnswers(attempts: readonly Attempt[]): string {
  const parts: string[] = [];
  for (const op of OPERATIONS) {
    const counts = new Map<string, number>();
    for (const a of attempts) if (a.op === op) counts.set(a.answer, (counts.get(a.answer) ?? 0) + 1);
    if (counts.size === 0) continue;
    const sorted = [...counts].sort((x, y) => y[1] - x[1] || x[0].localeCompare(y[0]));
    parts.push(`${op}: ${sorted.map(([answer, n]) => `${answer} ${n}`).join(', ')}`);
  }
  return parts.join('; ');
}

const succeeded = (a: Attempt) => a.answer === 'RESERVED' || a.answer.startsWith('REJECTED/');

/**
 * How long after `healedAt` Reserves still failed: the end of the last failed Reserve attempt,
 * relative to `healedAt` (0 if the last failure ended before it); undefined if none ever failed.
 */
export function reservesBackAfter(attempts: readonly Attempt[], healedAt: number): number | undefined {
  const failures = attempts.filter((a) => a.op === 'Reserve' && !succeeded(a));
  if (failures.length === 0) return undefined;
  return Math.max(0, Math.max(...failures.map((a) => a.end)) - healedAt);
}

/** A health watch's samples as the distinct statuses in order: "SERVING → NOT_SERVING → SERVING". */
export function healthPath(samples: ReadonlyArray<{ readonly status: string }>): string {
  const path: string[] = [];
  for (const { status } of samples) if (path[path.length - 1] !== status) path.push(status);
  return path.join(' → ');
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** The rows as a markdown table. */
export function renderTable(rows: readonly ScenarioRow[]): string {
  const lines = [
    '| scenario | what callers saw (answers per call, by code/reason) | health from the fault on | time to recover after the fault ended | invariants |',
    '|---|---|---|---|---|',
  ];
  for (const row of rows) {
    const reserves = row.reservesBackMs === undefined ? 'no Reserve failed' : `Reserves OK again +${seconds(row.reservesBackMs)}`;
    const cell = (text: string) => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');
    lines.push(
      `| ${cell(row.scenario)} | ${cell(row.callers)} | ${cell(row.health)} | ${reserves}; SERVING +${seconds(row.servingBackMs)} | ${row.passed ? '' : 'FAILED: '}${cell(row.invariants)} |`,
    );
  }
  return lines.join('\n');
}

/** Rows recorded by the scenarios of this run, printed by the suite's root hook. */
export const recordedRows: ScenarioRow[] = [];
