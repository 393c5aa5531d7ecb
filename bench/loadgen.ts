/**
 * The load generator: a lean gRPC client, run as a child process of bench/run.ts. Every call is one
 * HTTP/2 stream (POST, content-type application/grpc, te trailers; see h2.ts, a raw HTTP/2 client
 * on net.Socket) carrying a hand-built or template-patched protobuf frame; the answer is scanned,
 * not decoded, and grpc-status is read from the trailers (or from the headers of a trailers-only
 * answer). No grpc-js, no node:http2 streams, no ts-proto, no timers per call: this keeps the
 * client far below the server's CPU.
 *
 * Protocol with the parent over IPC: parent `start` (spec) -> child `ready` (connected) -> parent
 * `go` -> child `progress`… -> child `result` -> parent `exit`. The child exits when the parent
 * goes away. Only 127.0.0.1 targets are accepted.
 */
import { performance } from 'node:perf_hooks';
import { H2Client, TRANSPORT } from './h2';
import { Histogram, SparseHistogram } from './hist';
import { PATHS, ReserveTemplate, Writer, confirmFrame, readRelease, readReserve, releaseFrame, reserveFrame } from './wire';

export interface CartSpec {
  readonly skuPrefix: string;
  readonly skuCount: number;
  /** SKUs per order: 1..maxSkus, distinct. */
  readonly maxSkus: number;
  /** Units per line: 1..maxQty. */
  readonly maxQty: number;
  /** Of the orders answered RESERVED: percent confirmed, percent released (the rest stay held). */
  readonly confirmPct: number;
  readonly releasePct: number;
  readonly seed: number;
}

export interface LoadSpec {
  /** host:port, 127.0.0.1 only. */
  readonly target: string;
  readonly workload: 'reserve' | 'cart';
  readonly durationMs: number;
  /** Calls (orders, for cart) in flight at all times. */
  readonly concurrency: number;
  /** HTTP/2 connections the concurrency is spread over. */
  readonly connections: number;
  /** Order ids are `<orderPrefix><counter>`: unique per process and scenario. */
  readonly orderPrefix: string;
  /** reserve: the SKU and units of every call. */
  readonly sku?: string;
  readonly quantity?: number;
  readonly cart?: CartSpec;
  /** After the duration, how long to wait for calls still in flight (then they count as TIMEOUT). */
  readonly drainMs: number;
}

export interface MethodStats {
  calls: number;
  hist: SparseHistogram;
}

export interface LoadResult {
  /** From `go` to the last answer. */
  readonly elapsedMs: number;
  readonly sent: number;
  readonly answered: number;
  /** Answers by gRPC status name (OK, UNAVAILABLE, …), plus TRANSPORT (stream reset, no status) and TIMEOUT. */
  readonly codes: Record<string, number>;
  readonly methods: Record<string, MethodStats>;
  readonly hist: SparseHistogram;
  readonly reserve: { reserved: number; rejected: number; replayed: number; other: number; unitsReserved: number };
  readonly release: { ok: number; unitsReleased: number; replayed: number };
  readonly confirm: { ok: number };
  /** Per 100 ms since `go`: [answered calls, RESERVED answers]. */
  readonly timeline: Array<[number, number]>;
  /** CPU of this process during the run (process.cpuUsage), ms. */
  readonly cpuMs: number;
}

export type ParentMessage = { type: 'start'; spec: LoadSpec } | { type: 'go' } | { type: 'exit' };
export type ChildMessage =
  | { type: 'ready' }
  | { type: 'progress'; answered: number; reserved: number; errors: number }
  | { type: 'result'; result: LoadResult }
  | { type: 'error'; message: string };

const CODE_NAMES = [
  'OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS',
  'PERMISSION_DENIED', 'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE',
  'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED',
];

/** xorshift32: deterministic and cheap. */
function rng(seed: number): () => number {
  let x = seed >>> 0 || 0x9e3779b9;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/** Zeroed answer tallies, shared by a load run and the merge of several. */
export function emptyTallies(): Pick<LoadResult, 'reserve' | 'release' | 'confirm'> {
  return {
    reserve: { reserved: 0, rejected: 0, replayed: 0, other: 0, unitsReserved: 0 },
    release: { ok: 0, unitsReleased: 0, replayed: 0 },
    confirm: { ok: 0 },
  };
}

export function runLoad(spec: LoadSpec, client: H2Client, onProgress?: (answered: number, reserved: number, errors: number) => void): Promise<LoadResult> {
  return new Promise((resolve) => {
    const hist = new Histogram();
    const methodHists: Record<string, Histogram> = {};
    const methodCalls: Record<string, number> = {};
    const codes: Record<string, number> = {};
    const timeline: Array<[number, number]> = [];
    const { reserve, release, confirm } = emptyTallies();
    let sent = 0;
    let answered = 0;
    let errors = 0;
    let inflight = 0;
    let stopped = false;
    let finished = false;
    let lastAnswer = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();

    const count = (code: number) => {
      const name = code === TRANSPORT ? 'TRANSPORT' : (CODE_NAMES[code] ?? `CODE_${code}`);
      codes[name] = (codes[name] ?? 0) + 1;
      if (code !== 0) errors++;
    };
    const tick = (now: number, reservedNow: boolean) => {
      const bucket = Math.floor((now - t0) / 100);
      while (timeline.length <= bucket) timeline.push([0, 0]);
      timeline[bucket][0]++;
      if (reservedNow) timeline[bucket][1]++;
    };
    const methodHist = (m: string) => (methodHists[m] ??= new Histogram());

    /** Sends one call and accounts for it; `then` runs after the answer is counted. */
    const send = (
      slot: number,
      method: 'reserve' | 'confirm' | 'release',
      body: Buffer,
      then: (code: number, data: Buffer | undefined, outcome: number, replayed: boolean) => void,
    ) => {
      sent++;
      inflight++;
      methodCalls[method] = (methodCalls[method] ?? 0) + 1;
      const started = performance.now();
      client.call(slot, PATHS[method], body, (code, data) => {
        inflight--;
        if (finished) return;
        const now = performance.now();
        const micros = (now - started) * 1000;
        hist.record(micros);
        methodHist(method).record(micros);
        answered++;
        lastAnswer = now;
        count(code);
        let reservedNow = false;
        let outcome = 0;
        let replayed = false;
        if (method === 'reserve' && code === 0) {
          ({ outcome, replayed } = readReserve(data));
          if (replayed) reserve.replayed++;
          if (outcome === 1) {
            reservedNow = !replayed;
            if (!replayed) reserve.reserved++;
          } else if (outcome === 2) reserve.rejected++;
          else reserve.other++;
        }
        tick(now, reservedNow);
        then(code, data, outcome, replayed);
        if (stopped && inflight === 0) finish();
      });
    };

    const finish = () => {
      if (finished) return;
      finished = true;
      clearInterval(progressTimer);
      clearTimeout(stopTimer);
      clearTimeout(drainTimer);
      if (inflight > 0) codes.TIMEOUT = (codes.TIMEOUT ?? 0) + inflight;
      const cpu = process.cpuUsage(cpu0);
      const methods: Record<string, MethodStats> = {};
      for (const [m, h] of Object.entries(methodHists)) methods[m] = { calls: methodCalls[m] ?? 0, hist: h.toSparse() };
      resolve({
        elapsedMs: (lastAnswer || performance.now()) - t0,
        sent,
        answered,
        codes,
        methods,
        hist: hist.toSparse(),
        reserve,
        release,
        confirm,
        timeline,
        cpuMs: (cpu.user + cpu.system) / 1000,
      });
    };

    let drainTimer: NodeJS.Timeout | undefined;
    const stopTimer = setTimeout(() => {
      stopped = true;
      if (inflight === 0) finish();
      else drainTimer = setTimeout(finish, spec.drainMs);
    }, spec.durationMs);
    const progressTimer = setInterval(() => onProgress?.(answered, reserve.reserved, errors), 250);

    if (spec.workload === 'reserve') {
      if (!spec.sku) throw new Error('reserve workload needs a sku');
      const template = new ReserveTemplate(spec.orderPrefix, 10, spec.sku, spec.quantity ?? 1);
      const units = spec.quantity ?? 1;
      let counter = 0;
      const loop = (slot: number) => {
        if (stopped) return;
        send(slot, 'reserve', template.patch(counter++), (_code, _data, outcome, replayed) => {
          if (outcome === 1 && !replayed) reserve.unitsReserved += units;
          loop(slot);
        });
      };
      for (let slot = 0; slot < spec.concurrency; slot++) loop(slot);
    } else {
      const cart = spec.cart;
      if (!cart) throw new Error('cart workload needs a cart spec');
      const random = rng(cart.seed);
      const w = new Writer();
      let orderSeq = 0;
      const order = (slot: number) => {
        if (stopped) return;
        const orderId = `${spec.orderPrefix}${orderSeq++}`;
        const n = 1 + Math.floor(random() * cart.maxSkus);
        const picked = new Set<number>();
        while (picked.size < n) picked.add(Math.floor(random() * cart.skuCount));
        const items: Array<[string, number]> = [...picked].map((i) => [`${cart.skuPrefix}${i}`, 1 + Math.floor(random() * cart.maxQty)]);
        const units = items.reduce((a, [, q]) => a + q, 0);
        send(slot, 'reserve', reserveFrame(w, orderId, items), (_code, _data, outcome, replayed) => {
          if (outcome !== 1 || replayed) return order(slot);
          reserve.unitsReserved += units;
          const roll = random() * 100;
          if (stopped) return;
          if (roll < cart.confirmPct) {
            send(slot, 'confirm', confirmFrame(w, orderId), (c) => {
              if (c === 0) confirm.ok++;
              order(slot);
            });
          } else if (roll < cart.confirmPct + cart.releasePct) {
            send(slot, 'release', releaseFrame(w, orderId, 1 /* CANCEL_BEFORE_PAYMENT */), (c, body) => {
              if (c === 0) {
                const rel = readRelease(body);
                release.ok++;
                release.unitsReleased += rel.units;
                if (rel.replayed) release.replayed++;
              }
              order(slot);
            });
          } else {
            order(slot);
          }
        });
      };
      for (let slot = 0; slot < spec.concurrency; slot++) order(slot);
    }
  });
}

/** Child-process entry. */
if (require.main === module) {
  let spec: LoadSpec | undefined;
  let client: H2Client | undefined;
  const send = (m: ChildMessage) => process.send?.(m);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m: ParentMessage) => {
    if (m.type === 'start') {
      spec = m.spec;
      try {
        client = new H2Client(spec.target, spec.connections);
      } catch (err) {
        send({ type: 'error', message: String(err) });
        return;
      }
      client.connected().then(
        () => send({ type: 'ready' }),
        (err) => send({ type: 'error', message: `cannot connect to ${spec?.target}: ${err instanceof Error ? err.message : String(err)}` }),
      );
    } else if (m.type === 'go' && spec && client) {
      runLoad(spec, client, (answered, reserved, errors) => send({ type: 'progress', answered, reserved, errors })).then(
        (result) => send({ type: 'result', result }),
        (err) => send({ type: 'error', message: err instanceof Error ? err.stack ?? err.message : String(err) }),
      );
    } else if (m.type === 'exit') {
      client?.close();
      process.exit(0);
    }
  });
}
