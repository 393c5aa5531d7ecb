import { randomBytes } from 'node:crypto';
import { InventoryFixture, waitFor } from '../helpers/inventory';
import { HealthWatch } from './health-watch';
import { checkInvariants } from './invariants';
import { DEFAULT_LOAD, OrderLoad } from './load';
import { ScenarioRow, healthPath, recordedRows, reservesBackAfter, summarizeAnswers } from './table';

/**
 * One fault scenario: steady load on a server, the fault in the middle, healed, then the checks.
 *
 *   load ──warm-up──▶ inject ──faultMs──▶ heal ──until Reserves and health are back, + settle──▶ stop
 *
 * then every order's answer, the ledger caught up, the invariants (invariants.ts), and one row of
 * the fault table. A scenario that fails records its row too, with what failed.
 */
export interface Scenario {
  readonly name: string;
  /** Its own stores and namespaces; the invariants are checked through its services. */
  readonly inv: InventoryFixture;
  /** The InventoryService the load calls when not the fixture's own (a server process beside it). */
  readonly address?: string;
  /** Degraded lines of the server under load; the fixture's when `address` is not given. */
  readonly degraded?: () => readonly string[];
  readonly skus: readonly string[];
  readonly faultMs: number;
  inject(): Promise<void>;
  heal(): Promise<void>;
  /** Runs alongside the load, told when the load stops (stock messages, for one). */
  readonly alongside?: (running: () => boolean) => Promise<void>;
  /** Checks of this scenario's own, by name, after the common ones. */
  readonly checks?: Record<string, (seen: Seen) => Promise<void> | void>;
  /** The fault may lose acknowledged writes (see InvariantOptions.lostWrites). */
  readonly lostWrites?: boolean;
}

/** What a scenario's own checks look at: the callers' answers and the health samples. */
export interface Seen {
  readonly load: OrderLoad;
  readonly health: HealthWatch;
  readonly faultAt: number;
  readonly healedAt: number;
}

const WARM_UP_MS = 3000;
const SETTLE_MS = 3000;
const RECOVERY_LIMIT_MS = 60_000;

/** Units of each SKU on hand, and carved into partitions up front: far more than any scenario's load buys. */
export const ON_HAND = 20_000;
const CARVED = 4000;

/** Puts `skus` on sale in the fixture's stores: on hand, carved into 8 partitions, in the registry cache. */
export async function stockSkus(inv: InventoryFixture, skus: readonly string[]): Promise<void> {
  for (const sku of skus) {
    await inv.services.operator.setStock(`set-${randomBytes(4).toString('hex')}`, sku, ON_HAND, 'count');
    await inv.services.operator.preallocate(`pre-${randomBytes(4).toString('hex')}`, sku, CARVED, 8);
  }
  await waitFor(() => skus.every((sku) => inv.services.cache.partitions(sku).length >= 8), 10_000, 'the partitions in the registry cache');
}

export async function runScenario(scenario: Scenario): Promise<ScenarioRow> {
  const address = scenario.address ?? scenario.inv.server.inventoryAddress;
  const degraded = scenario.address ? scenario.degraded : (scenario.degraded ?? degradedOf(scenario.inv));
  const load = new OrderLoad(address, { ...DEFAULT_LOAD, tag: `o${randomBytes(3).toString('hex')}`, skus: scenario.skus });
  const health = new HealthWatch(address, degraded);
  let running = true;
  const alongside = scenario.alongside?.(() => running);
  health.start();
  load.start();
  await sleep(WARM_UP_MS);
  const faultAt = Date.now();
  let healedAt = faultAt;
  let failure: unknown;
  try {
    await scenario.inject();
    await sleep(faultAt + scenario.faultMs - Date.now());
    // Recovery is timed from the start of the heal, so a restart's own start-up counts in it.
    healedAt = Date.now();
    await scenario.heal();
    await waitFor(() => health.servingSince(healedAt) !== undefined && reserveSucceededSince(load, healedAt), RECOVERY_LIMIT_MS, 'Reserves and health to come back');
    await sleep(SETTLE_MS);
  } catch (err) {
    failure = err;
  } finally {
    running = false;
    await load.stop();
    await alongside;
    await health.stop();
  }
  const base = {
    scenario: scenario.name,
    callers: summarizeAnswers(load.attempts) + (load.skipped ? `; orders not started (in-flight cap) ${load.skipped}` : ''),
    health: healthPath(health.samples.filter((s) => s.at >= faultAt)),
    reservesBackMs: reservesBackAfter(load.attempts, healedAt),
    servingBackMs: Math.max(0, (health.servingSince(healedAt) ?? Date.now()) - healedAt),
  };
  let row: ScenarioRow;
  try {
    if (failure) throw failure;
    const held = await checkInvariants(scenario.inv, load, { skus: scenario.skus, lostWrites: scenario.lostWrites });
    for (const [name, check] of Object.entries(scenario.checks ?? {})) {
      await check({ load, health, faultAt, healedAt });
      held.push(name);
    }
    held.push('health SERVING');
    row = { ...base, invariants: held.join(', '), passed: true };
  } catch (err) {
    recordedRows.push({ ...base, invariants: err instanceof Error ? err.message : String(err), passed: false });
    throw err;
  }
  recordedRows.push(row);
  return row;
}

/** The in-process server's degraded lines, for the health watch. */
export const degradedOf = (inv: InventoryFixture) => () => inv.services.health.report().degraded;

/**
 * Settings of every scenario's server: health probed, and Redis memory read (a full node is
 * NOT_SERVING), often enough to time recovery to 0.2 s.
 */
export const FAULT_ENV: Record<string, string> = { HEALTH_INTERVAL_MS: '200', REDIS_MEMORY_CHECK_MS: '200' };

/** A check that every failed call (of any operation) answered what `allowed` matches, code/reason and message. */
export function failuresOnly(allowed: RegExp) {
  return ({ load }: Seen): void => {
    const failed = load.attempts.filter((a) => a.answer !== 'OK' && a.answer !== 'RESERVED');
    const other = failed.filter((a) => !allowed.test(`${a.answer} ${a.message ?? ''}`));
    if (other.length > 0) throw new Error(`${other.length} answer(s) not matching ${allowed}: ${other.slice(0, 3).map((a) => `${a.op} ${a.answer} ${a.message}`).join('; ')}`);
  };
}

/** A check that no call failed at all. */
export function noFailures({ load }: Seen): void {
  failuresOnly(/^$/)({ load } as Seen);
}

/** A check that health never said NOT_SERVING (nor went unreachable) from the fault on. */
export function servingThroughout({ health, faultAt }: Seen): void {
  const down = health.samples.filter((s) => s.at >= faultAt && !s.status.startsWith('SERVING'));
  if (down.length > 0) throw new Error(`health said ${down[0].status} during the fault`);
}

function reserveSucceededSince(load: OrderLoad, since: number): boolean {
  return load.attempts.some((a) => a.op === 'Reserve' && a.start >= since && a.answer === 'RESERVED');
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}
