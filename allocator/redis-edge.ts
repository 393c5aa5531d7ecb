import { exists as isRedisCommand } from '@ioredis/commands';
import type { Cluster, Redis } from 'ioredis';
import type { DependencyBreaker } from '../kernel/breaker';
import { DependencyTimeout, DependencyUnavailable } from '../kernel/dependency';

/**
 * The Redis edge: which failures of a node mean "down" (kernel/dependency.ts), decided here for both
 * connections to a node (the script pipe and ioredis), and the ioredis client wrapped so that every
 * command goes through the node's breaker and fails typed. ioredis rejects with plain Errors whose
 * text is all that tells them apart, so this is the one place that reads that text.
 */

/** Reply errors of a node that cannot do the work now (memory full, loading, a failover): not our bug. */
const NODE_CANNOT = /^(OOM|LOADING|BUSY|MASTERDOWN|READONLY|TRYAGAIN|CLUSTERDOWN|NOREPLICAS|MISCONF)\b|\bOOM command not allowed\b/;
/** Connection failures as ioredis words them. */
const CONNECTION_GONE = /^Connection is closed|^Stream isn't writeable|^connect .* timed out/;
const SOCKET_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN']);

/** The typed failure an error of Redis node `node` stands for, or the error itself (a bug, a script error). */
export function redisFailure(err: unknown, node: string): unknown {
  if (err instanceof DependencyUnavailable || !(err instanceof Error)) return err;
  if (err.name === 'ReplyError') return NODE_CANNOT.test(err.message) ? new DependencyUnavailable('redis', node, err.message, err) : err;
  if (err.message === 'Command timed out') return new DependencyTimeout('redis', node, 'no answer within the command timeout', err);
  const code = (err as { code?: unknown }).code;
  if (err.name === 'MaxRetriesPerRequestError' || CONNECTION_GONE.test(err.message) || (typeof code === 'string' && SOCKET_CODES.has(code))) {
    return new DependencyUnavailable('redis', node, `connection lost or refused (${err.message})`, err);
  }
  return err;
}

/** Commands that are the connection's own lifecycle, not work on the node: never refused by the breaker. */
const LIFECYCLE = new Set(['quit', 'monitor', 'subscribe', 'psubscribe', 'ssubscribe', 'unsubscribe', 'punsubscribe', 'sunsubscribe']);

/** A method that sends a command: one of the table, its Buffer twin, or the generic call(). */
function isCommand(method: string): boolean {
  if (method === 'call' || method === 'callBuffer') return true;
  const name = method.endsWith('Buffer') ? method.slice(0, -6) : method;
  return isRedisCommand(name) && !LIFECYCLE.has(name);
}

/**
 * The client with every Redis command (by ioredis's own command table) run through `breaker` and its
 * failures typed; `pipeline()`/`multi()` batches are guarded as one call at exec, and `duplicate()`
 * connections like this one. Events, connect and the rest pass through untouched. `node` names the
 * node in typed failures; a function when it is only known per call (a Cluster client's view of one
 * shard names the master serving the shard's slot then).
 */
export function guardRedisClient<C extends Redis | Cluster>(client: C, node: string | (() => string), breaker: Pick<DependencyBreaker, 'run'>): C {
  const classify = (err: unknown): never => {
    throw redisFailure(err, typeof node === 'string' ? node : node());
  };
  const guardedCommands = new Map<string | symbol, unknown>();
  const guardBatch = (batch: { exec: (...args: unknown[]) => Promise<unknown> }) => {
    const exec = batch.exec.bind(batch);
    batch.exec = (...args: unknown[]) => breaker.run(() => exec(...args).then(undefined, classify));
    return batch;
  };
  return new Proxy(client, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      let wrapped = guardedCommands.get(prop);
      if (wrapped === undefined) {
        const fn = value as (...args: unknown[]) => unknown;
        if (prop === 'duplicate') {
          // A connection of its own (a blocking reader) to the same node: guarded by the same breaker.
          wrapped = (...args: unknown[]) => guardRedisClient(fn.apply(target, args) as C, node, breaker);
        } else if (prop === 'pipeline' || prop === 'multi') {
          wrapped = (...args: unknown[]) => guardBatch(fn.apply(target, args) as { exec: (...a: unknown[]) => Promise<unknown> });
        } else if (isCommand(prop)) {
          wrapped = (...args: unknown[]) => breaker.run(() => (fn.apply(target, args) as Promise<unknown>).then(undefined, classify));
        } else {
          wrapped = fn.bind(target);
        }
        guardedCommands.set(prop, wrapped);
      }
      return wrapped;
    },
  });
}
