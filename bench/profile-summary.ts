/**
 * Summarises a V8 .cpuprofile (node --cpu-prof): the top functions by self time, aggregated by
 * function + file, and the share of each part of the stack (grpc-js, node's http2/net/streams,
 * ts-proto/protobuf, ioredis, prom-client, our code, GC…), where a native or builtin frame counts
 * for the nearest JavaScript caller that has a file.
 *
 *   node dist/bench/profile-summary.js <file.cpuprofile> [--top 25] [--from-ms N] [--to-ms M]
 *
 * --from-ms/--to-ms keep only the samples taken in that window after the profile started (the
 * benchmark passes the measured scenario's window, so start-up and shutdown are left out).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

export interface ProfileSummary {
  readonly totalMs: number;
  /** Non-idle time (everything but "(idle)"). */
  readonly busyMs: number;
  readonly top: Array<{ fn: string; where: string; category: string; selfMs: number; pct: number }>;
  readonly categories: Array<{ category: string; ms: number; pct: number }>;
}

/** Which part of the stack a file belongs to. */
export function categoryOf(url: string, fn: string): string {
  if (!url) {
    if (fn === '(garbage collector)') return 'GC';
    if (fn === '(idle)') return 'idle';
    if (fn === '(program)') return 'V8/native (program)';
    return '';
  }
  const u = url.replace(/^file:\/\//, '');
  if (u.includes('node_modules/@grpc/grpc-js')) return 'grpc-js';
  if (u.includes('node_modules/grpc-health-check') || u.includes('node_modules/@grpc/')) return 'grpc-js';
  if (/node_modules\/(ioredis|redis-parser|denque|standard-as-callback|cluster-key-slot|redis-errors)\//.test(u)) return 'ioredis';
  if (u.includes('node_modules/@bufbuild/protobuf') || u.includes('node_modules/protobufjs') || /\/dist\/gen\//.test(u)) return 'protobuf (ts-proto)';
  if (/node_modules\/(prom-client|tdigest|bintrees)\//.test(u)) return 'prom-client';
  if (/node_modules\/(pino|sonic-boom|thread-stream)/.test(u)) return 'pino';
  if (u.includes('node_modules/etcd3')) return 'etcd3';
  if (u.includes('node_modules/opossum') || u.includes('node_modules/cockatiel')) return 'breakers';
  if (u.includes('node_modules/')) return `npm:${u.split('node_modules/')[1].split('/')[0]}`;
  if (/\/dist\/allocator\//.test(u)) return 'ours: allocator';
  if (/\/dist\/server\//.test(u)) return 'ours: server';
  if (/\/dist\/registry\//.test(u)) return 'ours: registry';
  if (/\/dist\//.test(u)) return 'ours: other';
  if (u.startsWith('node:internal/http2') || u.startsWith('node:http2')) return 'node: http2';
  if (/^node:(net|internal\/stream_base_commons|internal\/net|dgram|internal\/dns)/.test(u)) return 'node: net/socket';
  if (/^node:(internal\/streams|stream)/.test(u)) return 'node: streams';
  if (/^node:(internal\/timers|timers|internal\/process\/task_queues|events|internal\/event_target|internal\/async_hooks|internal\/abort_controller)/.test(u)) {
    return 'node: events/timers/abort';
  }
  if (u.startsWith('node:')) return 'node: other';
  return 'other';
}

function shortFile(url: string): string {
  const u = url.replace(/^file:\/\//, '');
  if (u.includes('node_modules/')) return u.slice(u.lastIndexOf('node_modules/') + 'node_modules/'.length);
  const dist = u.indexOf('/dist/');
  if (dist >= 0) return u.slice(dist + 1);
  return u.startsWith('node:') ? u : path.basename(u);
}

/** `window`: only samples taken between fromMs and toMs after the profile started (skip start-up and shutdown). */
export function summarize(profile: CpuProfile, topN = 25, window?: { fromMs: number; toMs: number }): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of profile.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  // Self time per node from the samples: sample i lasted timeDeltas[i + 1] (the last one: the mean).
  const selfUs = new Map<number, number>();
  const deltas = profile.timeDeltas;
  const mean = deltas.length > 0 ? (profile.endTime - profile.startTime) / deltas.length : 0;
  let at = 0; // µs since the profile started
  for (let i = 0; i < profile.samples.length; i++) {
    at += deltas[i] ?? 0;
    if (window && (at < window.fromMs * 1000 || at > window.toMs * 1000)) continue;
    const d = i + 1 < deltas.length ? Math.max(0, deltas[i + 1]) : mean;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + d);
  }
  const categoryCache = new Map<number, string>();
  const nearestCategory = (id: number): string => {
    const cached = categoryCache.get(id);
    if (cached !== undefined) return cached;
    const n = byId.get(id)!;
    let c = categoryOf(n.callFrame.url, n.callFrame.functionName);
    if (!c) {
      const p = parent.get(id);
      c = p === undefined || byId.get(p)!.callFrame.functionName === '(root)' ? 'V8/native (no JS caller)' : nearestCategory(p);
    }
    categoryCache.set(id, c);
    return c;
  };

  const fns = new Map<string, { fn: string; where: string; category: string; us: number }>();
  const cats = new Map<string, number>();
  let totalUs = 0;
  let idleUs = 0;
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const { functionName, url, lineNumber } = n.callFrame;
    totalUs += us;
    if (functionName === '(idle)') {
      idleUs += us;
      continue;
    }
    const category = nearestCategory(id);
    cats.set(category, (cats.get(category) ?? 0) + us);
    const where = url ? `${shortFile(url)}:${lineNumber + 1}` : '(native)';
    const key = `${functionName}\u0000${where}`;
    const entry = fns.get(key) ?? { fn: functionName || '(anonymous)', where, category, us: 0 };
    entry.us += us;
    fns.set(key, entry);
  }
  const busyUs = totalUs - idleUs;
  const pct = (us: number) => (busyUs > 0 ? (100 * us) / busyUs : 0);
  return {
    totalMs: totalUs / 1000,
    busyMs: busyUs / 1000,
    top: [...fns.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, topN)
      .map((e) => ({ fn: e.fn, where: e.where, category: e.category, selfMs: e.us / 1000, pct: pct(e.us) })),
    categories: [...cats.entries()].sort((a, b) => b[1] - a[1]).map(([category, us]) => ({ category, ms: us / 1000, pct: pct(us) })),
  };
}

export function formatSummary(s: ProfileSummary): string {
  const lines: string[] = [];
  lines.push(`CPU profile: ${(s.busyMs / 1000).toFixed(2)} s busy of ${(s.totalMs / 1000).toFixed(2)} s sampled (percentages of busy time)`);
  lines.push('');
  lines.push('By part of the stack (native/builtin frames count for their nearest JS caller):');
  for (const c of s.categories) lines.push(`  ${c.pct.toFixed(1).padStart(5)}%  ${c.category}`);
  lines.push('');
  lines.push(`Top ${s.top.length} functions by self time:`);
  lines.push(`  ${'self %'.padStart(6)}  ${'ms'.padStart(7)}  ${'function'.padEnd(36)} ${'part'.padEnd(22)} where`);
  for (const t of s.top) {
    lines.push(`  ${t.pct.toFixed(1).padStart(5)}%  ${t.selfMs.toFixed(0).padStart(7)}  ${t.fn.slice(0, 36).padEnd(36)} ${t.category.slice(0, 22).padEnd(22)} ${t.where}`);
  }
  return lines.join('\n');
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const file = args.find((a, i) => !a.startsWith('--') && !['--top', '--from-ms', '--to-ms'].includes(args[i - 1]));
  const topAt = args.indexOf('--top');
  const top = topAt >= 0 ? Number(args[topAt + 1]) : 25;
  const fromAt = args.indexOf('--from-ms');
  const toAt = args.indexOf('--to-ms');
  const window = fromAt >= 0 || toAt >= 0 ? { fromMs: fromAt >= 0 ? Number(args[fromAt + 1]) : 0, toMs: toAt >= 0 ? Number(args[toAt + 1]) : Infinity } : undefined;
  if (!file) {
    process.stderr.write('usage: node dist/bench/profile-summary.js <file.cpuprofile> [--top N] [--from-ms N] [--to-ms M]\n');
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  process.stdout.write(`${formatSummary(summarize(profile, top, window))}\n`);
}
