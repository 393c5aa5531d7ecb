/**
 * One bench run: its options, its namespace on the stack, the stack's process ids, the numbers of
 * the SKUs and order ids it hands out, and the results gathered so far (rows, rounds, notes,
 * profile, scaling rounds), which the scenarios add to and the report reads.
 */
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { stackPids } from './cpu';
import { ON_REQUEST, Options, Shape } from './options';
import { ROOT } from './paths';
import { ProfileSummary } from './profile-summary';
import { Store, plainLayout, storeOf } from './redis-nodes';
import { Row } from './rows';
import { ScriptCostRow } from './script-cost';
import { SoakResult } from './soak-result';
import { Namespace, newNamespace } from './stack';

/** A round of the transport ceiling and the flash sale, 1 worker, measured one right after the other. */
export interface Round {
  ceiling?: Row;
  flash?: Row;
}

/** A round of the scaling group: the same flash sale on the stack's one Redis node, then on the 3-master Redis Cluster. */
export interface ScalingRound {
  single?: Row;
  cluster?: Row;
}

/** A round of the bare group at one load shape: the bare grpc-js echo, our echo and our flash sale, one right after the other. */
export interface BareRound {
  shape: Shape;
  bare?: Row;
  echo?: Row;
  flash?: Row;
}

export class Bench {
  readonly runId = new Date().toISOString().replace(/[:.]/g, '-').replace(/-\d{3}Z$/, 'Z');
  readonly ns: Namespace = newNamespace();
  /** Server logs, load bodies and the profile of this run. */
  readonly dir: string;
  readonly rows: Row[] = [];
  readonly notes: string[] = [];
  readonly seeding: Record<string, unknown> = {};
  readonly rounds: Round[] = [];
  readonly bareRounds: BareRound[] = [];
  readonly scalingRounds: ScalingRound[] = [];
  profile: ProfileSummary | undefined;
  /** The bare group's measure of what Redis spends on one Reserve's script (script-cost.ts). */
  scriptCost: ScriptCostRow[] | undefined;
  soak: SoakResult | undefined;
  profileFile: string | undefined;
  /** performance.now() when the last measured load started (after the settle steps). */
  lastLoadStartedAt = 0;
  /** The measured flash sale within the profile (start-up, warm-up and shutdown left out). */
  profileWindow: { fromMs: number; toMs: number } | undefined;
  /** The stack's processes by name (redis, mariadb, etcd), whose CPU the scenarios measure. */
  stack: Record<string, number[]> = {};
  /** Where our servers keep their stock unless a scenario says otherwise: the stack's Redis node(s), in the bench's namespace. */
  store: Store;
  private counter = 0;

  constructor(readonly o: Options) {
    this.dir = path.join(o.out, this.runId);
    mkdirSync(this.dir, { recursive: true });
    this.store = this.stackStore();
  }

  wants(group: string): boolean {
    return (this.o.only ? this.o.only.has(group) : !ON_REQUEST.has(group)) && !this.o.skip.has(group);
  }

  refreshStack(): void {
    const ports = this.ns.config.redisNodes.map((n) => Number(n.slice(n.lastIndexOf(':') + 1)));
    this.stack = stackPids(ROOT, ports);
    this.store = this.stackStore();
  }

  private stackStore(): Store {
    return storeOf(this.ns.config, this.ns.inventoryDbUrl, plainLayout(this.ns.config.redisNodes));
  }

  /** A number not handed out before in this run: SKU names and warm-up order ids share it. */
  serial(): number {
    return ++this.counter;
  }

  sku(kind: string): string {
    return `${kind}-${this.serial()}`;
  }
}
