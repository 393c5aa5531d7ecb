/**
 * The bench's command line: every option with its help text, parsed with node:util parseArgs
 * (strict) and resolved once, defaults and ranges applied, into the Options the rest of the bench
 * trusts.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './paths';
import { SoakOptions } from './soak-result';

/** The groups of scenarios that --only and --skip choose from. */
export const GROUPS = ['ceiling', 'flash', 'bare', 'sellout', 'cart', 'baseline', 'storm', 'workers', 'profile', 'soak', 'scaling'];
/**
 * Groups run only when --only names them: the soak takes minutes and measures memory, not speed;
 * scaling starts the stack's Redis Cluster (6 more redis-server processes).
 */
export const ON_REQUEST = new Set(['soak', 'scaling']);

/** A load shape: HTTP/2 connections x calls in flight on each (streams). */
export interface Shape {
  readonly connections: number;
  readonly streams: number;
}

export const shapeName = (s: Shape) => `${s.connections} x ${s.streams}`;

export interface Options {
  quick: boolean;
  durationMs: number;
  warmupMs: number;
  concurrency: number;
  connections: number;
  loadgens: number;
  units: number;
  partitions: number;
  selloutUnits: number;
  skus: number;
  skuPartitions: number;
  skuUnits: number;
  workers: number[];
  /** Alternating ceiling/flash rounds (1 worker); the ratios are their medians. */
  rounds: number;
  /** The bare group's load shapes (each run with --rounds rounds of bare echo, echo, flash sale). */
  shapes: Shape[];
  baselinePool: number;
  only: Set<string> | undefined;
  skip: Set<string>;
  keep: boolean;
  out: string;
  soak: SoakOptions;
  /** Before each measured scenario, wait (up to 2 min) until the machine's other load is under this % of a core. */
  waitQuiet: number | undefined;
}

/** --wait-quiet without a value. */
const WAIT_QUIET_PCT = 40;

interface OptionSpec {
  readonly type: 'string' | 'boolean';
  readonly short?: string;
  /** The value's name in the help text. */
  readonly arg?: string;
  /** The help text, a line each; defaults are given here and applied in parseOptions. */
  readonly help?: readonly string[];
}

/** Every option, in the order of --help. parseArgs reads `type` and `short`, the help text `arg` and `help`. */
const OPTIONS = {
  quick: { type: 'boolean', help: ['smoke check, under a minute: 2 s per scenario, 500 cart SKUs'] },
  duration: { type: 'string', arg: '<s>', help: ['seconds of load per scenario (default 10; quick 2)'] },
  warmup: { type: 'string', arg: '<s>', help: ["seconds of load before each server's first scenario (default 2; quick 0.5)"] },
  concurrency: { type: 'string', arg: '<n>', help: ['calls in flight (default 500)'] },
  connections: { type: 'string', arg: '<n>', help: ['HTTP/2 connections they are spread over (default 20)'] },
  loadgens: { type: 'string', arg: '<n>', help: ['load-generator processes (default 1)'] },
  units: { type: 'string', arg: '<n>', help: ['flash sale units (default 100000)'] },
  partitions: { type: 'string', arg: '<n>', help: ['flash sale partitions (default 16; scaling: at least 3)'] },
  'sellout-units': { type: 'string', arg: '<n>', help: ['units of the sell-out scenario (default 5000; quick 1000)'] },
  skus: { type: 'string', arg: '<n>', help: ['cart SKUs (default 10000; quick 500)'] },
  workers: { type: 'string', arg: '<list>', help: ['worker counts to compare (default 1,2)'] },
  rounds: {
    type: 'string',
    arg: '<n>',
    help: ['ceiling and flash sale (1 worker) rounds, run alternately; the ratios are', "the medians of the rounds' (default 3; quick 1)"],
  },
  shapes: {
    type: 'string',
    arg: '<list>',
    help: ['bare group: load shapes, connections x streams each (default 4x125,20x25)'],
  },
  'baseline-pool': { type: 'string', arg: '<n>', help: ['mysql2 pool size of the baseline server (default 32)'] },
  only: { type: 'string', arg: '<list>', help: [`groups to run: ${GROUPS.join(',')}`, `(${[...ON_REQUEST].join(', ')}: only when named here)`] },
  skip: { type: 'string', arg: '<list>', help: ['groups to leave out'] },
  keep: { type: 'boolean', help: ['keep the bench namespace (Redis prefix, etcd prefix, databases) afterwards'] },
  'wait-quiet': {
    type: 'string',
    arg: '[pct]',
    help: ['before each scenario wait (up to 2 min) until other processes use less than', `pct% of a core (default ${WAIT_QUIET_PCT}): for shared machines`],
  },
  'soak-duration': { type: 'string', arg: '<s>', help: ['soak: seconds of steady orders (default 180; quick 40)'] },
  'soak-rate': { type: 'string', arg: '<n>', help: ['soak: orders started per second (default 300)'] },
  'soak-retention': { type: 'string', arg: '<s>', help: ['soak: ORDER_RETENTION_SECONDS of its server (default 15; quick 5)'] },
  'soak-probe': { type: 'string', arg: '<n>', help: ['soak: orders of the bytes-per-order probe (default 20000; quick 3000)'] },
  out: { type: 'string', arg: '<dir>', help: ['results folder (default bench-results)'] },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Record<string, OptionSpec>;

const SPECS: Readonly<Record<string, OptionSpec>> = OPTIONS;

const usage = (name: string, spec: OptionSpec) => `--${name}${spec.arg ? ` ${spec.arg}` : ''}`;

export const HELP = [
  'npm run bench [-- options]',
  '',
  ...Object.entries(SPECS).flatMap(([name, spec]) =>
    (spec.help ?? []).map((line, i) => `  ${(i === 0 ? usage(name, spec) : '').padEnd(20)}  ${line}`),
  ),
  '',
].join('\n');

/** The options of `argv` (the arguments after the script), or 'help' for --help. Throws an Error that names the option at fault. */
export function parseOptions(argv: readonly string[]): Options | 'help' {
  const args = spellOutWaitQuiet(argv);
  let parsed;
  try {
    parsed = parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false });
  } catch (err) {
    throw new Error(explain(args, err));
  }
  const v = parsed.values;
  if (v.help) return 'help';
  const number = (name: string, text: string | undefined, min: number, max: number, fallback?: number): number => {
    if (text === undefined && fallback !== undefined) return fallback;
    const n = Number(text);
    if (text === undefined || !Number.isFinite(n) || n < min || n > max) throw new Error(`--${name}: expected a number in ${min}..${max}, got ${text}`);
    return n;
  };
  const groups = (name: string, text: string | undefined): Set<string> | undefined => {
    if (text === undefined) return undefined;
    const set = new Set(text.split(','));
    for (const g of set) if (!GROUPS.includes(g)) throw new Error(`--${name}: unknown group ${g}; groups: ${GROUPS.join(', ')}`);
    return set;
  };
  const quick = v.quick ?? false;
  const o: Options = {
    quick,
    durationMs: number('duration', v.duration, 0.5, 600, quick ? 2 : 10) * 1000,
    warmupMs: number('warmup', v.warmup, 0, 60, quick ? 0.5 : 2) * 1000,
    concurrency: number('concurrency', v.concurrency, 1, 20_000, 500),
    connections: number('connections', v.connections, 1, 1000, 20),
    loadgens: number('loadgens', v.loadgens, 1, 16, 1),
    units: number('units', v.units, 1, 1e9, 100_000),
    partitions: number('partitions', v.partitions, 1, 1024, 16),
    selloutUnits: number('sellout-units', v['sellout-units'], 1, 1e9, quick ? 1000 : 5000),
    skus: number('skus', v.skus, 10, 1_000_000, quick ? 500 : 10_000),
    skuPartitions: 2,
    skuUnits: 1000,
    workers: v.workers === undefined ? [1, 2] : v.workers.split(',').map((w) => number('workers', w, 1, 64)),
    rounds: number('rounds', v.rounds, 1, 20, quick ? 1 : 3),
    shapes: (v.shapes ?? '4x125,20x25').split(',').map((text) => {
      const m = /^(\d+)x(\d+)$/.exec(text.trim());
      if (!m) throw new Error(`--shapes: expected connections x streams like 4x125, got ${text}`);
      return { connections: number('shapes', m[1], 1, 1000), streams: number('shapes', m[2], 1, 10_000) };
    }),
    baselinePool: number('baseline-pool', v['baseline-pool'], 1, 400, 32),
    only: groups('only', v.only),
    skip: groups('skip', v.skip) ?? new Set(),
    keep: v.keep ?? false,
    soak: {
      durationMs: number('soak-duration', v['soak-duration'], 10, 3600, quick ? 40 : 180) * 1000,
      rate: number('soak-rate', v['soak-rate'], 1, 100_000, 300),
      retentionS: number('soak-retention', v['soak-retention'], 2, 3600, quick ? 5 : 15),
      probeOrders: number('soak-probe', v['soak-probe'], 100, 1_000_000, quick ? 3000 : 20_000),
    },
    out: v.out === undefined ? path.join(ROOT, 'bench-results') : path.resolve(v.out),
    waitQuiet: v['wait-quiet'] === undefined ? undefined : number('wait-quiet', v['wait-quiet'], 1, 200),
  };
  if (!Number.isInteger(o.rounds)) throw new Error(`--rounds: expected a whole number of rounds, got ${v.rounds}`);
  if (o.connections > o.concurrency) o.connections = o.concurrency;
  return o;
}

/** `--wait-quiet [pct]` takes an optional value, which parseArgs cannot express: spelled out here as `--wait-quiet=<pct>`. */
function spellOutWaitQuiet(argv: readonly string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] !== '--wait-quiet') out.push(argv[i]);
    else if (/^\d+$/.test(argv[i + 1] ?? '')) out.push(`--wait-quiet=${argv[++i]}`);
    else out.push(`--wait-quiet=${WAIT_QUIET_PCT}`);
  }
  return out;
}

/** parseArgs's own messages talk of positional arguments, which the bench takes none of: this one names the option and what it takes. */
function explain(args: string[], err: unknown): string {
  const { tokens } = parseArgs({ args, options: OPTIONS, strict: false, allowPositionals: true, tokens: true });
  for (const t of tokens) {
    if (t.kind === 'positional') return `unexpected argument ${t.value}: options start with -- (see --help)`;
    if (t.kind !== 'option') continue;
    const spec = SPECS[t.name];
    if (!spec) return `unknown option ${t.rawName} (see --help)`;
    if (spec.type === 'boolean' && t.value !== undefined) return `${t.rawName} takes no value, got ${t.value}`;
    if (spec.type === 'string' && (t.value === undefined || (!t.inlineValue && t.value.startsWith('-')))) {
      return `${usage(t.name, spec)} needs a value, got ${t.value ?? 'none'}: ${spec.help?.join(' ')}`;
    }
  }
  return err instanceof Error ? err.message : String(err);
}
