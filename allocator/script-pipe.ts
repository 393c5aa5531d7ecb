import { EventEmitter } from 'node:events';
import net from 'node:net';
import { DependencyTimeout, DependencyUnavailable } from '../kernel/dependency';
import { redisFailure } from './redis-edge';
import { LuaScript } from './scripts';
import { RedisReplyError, RespReader, RespValue, RespWriter } from './resp';

export interface ScriptPipeOptions {
  readonly host: string;
  readonly port: number;
  /** A command unanswered this long fails, and the connection is cut and made again. */
  readonly commandTimeoutMs: number;
  /** CLIENT SETNAME, so operators can tell the connection in CLIENT LIST. */
  readonly name: string;
  /** The scripts to load (SCRIPT LOAD) on every new connection. */
  readonly scripts: Iterable<LuaScript>;
  /** First wait before connecting again after a failure; doubles up to 2 s. Default 50 ms. */
  readonly reconnectMinMs?: number;
}

/** A call: a script with its keys and arguments, or a command of the pipe itself (no script; `args` is the command). */
interface Call {
  readonly script: LuaScript | undefined;
  readonly keys: readonly string[];
  readonly args: ReadonlyArray<string | number>;
  readonly since: number;
  resolve(value: unknown): void;
  reject(err: Error): void;
  /** Sent once more already (after NOSCRIPT or a reconnect): a second failure is final. */
  resent: boolean;
}

/**
 * One pipelined connection to a Redis node that runs our Lua scripts by EVALSHA: the Reserve hot
 * path's way to Redis. ioredis is a fine general client, but per script call it built a Command,
 * two promises and a NOSCRIPT catch, a Pipeline per tick and a string per command, and it was the
 * largest share of the server's CPU and garbage that we control in the flash-sale profile. Here a
 * call is written straight into this tick's write buffer and costs one entry in the reply queue.
 *
 * - Every command issued in one turn of the event loop goes out in one socket write (setImmediate).
 * - Replies come back in order; the reply queue pairs them with their callers.
 * - The scripts are loaded on every new connection; a NOSCRIPT (SCRIPT FLUSH by an operator, a
 *   failover to a replica that lacks them) loads that script and sends the call once more.
 * - Calls made while there is no connection wait for it (it is made on first use and again after
 *   a failure, with back-off); calls in flight when it breaks are sent again once on the new one.
 *   All our scripts are idempotent (each records what it did and answers a rerun the same), so a
 *   call that ran but whose reply was lost changes nothing when it runs again.
 * - A call unanswered after `commandTimeoutMs` fails with "Command timed out", and a connection
 *   whose oldest call has waited that long is cut: a stuck server must not hold calls forever.
 * - A gate (setGate) runs on every new connection before any call is sent on it: a node that came
 *   back having lost writes (docs/consistency.md) is checked, and its partitions that lost changes
 *   are stopped or restored, before this server sends it one Reserve. Calls wait for the gate as
 *   they wait for the connection (and time out the same way).
 * Failures are typed (kernel/dependency.ts): DependencyUnavailable when the connection is lost or
 * the node refuses the work (OOM, LOADING...), DependencyTimeout when a call went unanswered.
 * A connection lost other than by close() is reported by a 'disconnected' event (for the logs); a
 * connection made, by 'connected' (`again`: not the first one).
 */
export class ScriptPipe extends EventEmitter<{ disconnected: [err: Error | undefined]; connected: [again: boolean] }> {
  private socket: net.Socket | undefined;
  private state: 'idle' | 'connecting' | 'ready' | 'closed' = 'idle';
  private readonly reader = new RespReader();
  /** Sent, awaiting replies, oldest first (from `head`). */
  private inFlight: Array<Call | undefined> = [];
  private head = 0;
  /** Waiting for a connection. */
  private waiting: Call[] = [];
  private readonly writer = new RespWriter();
  private flushScheduled = false;
  private readonly scripts: LuaScript[];
  private reconnectMs: number;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private readonly sweeper: NodeJS.Timeout;
  /** connect() callers waiting for the connection attempt under way. */
  private connectWaiters: Array<{ resolve(): void; reject(err: Error): void }> = [];
  private lastError: Error | undefined;
  /** A connection was lost or refused since the last one was up. */
  private lost = false;
  /** host:port, as failures name the node. */
  readonly node: string;
  private gate: (() => Promise<void>) | undefined;
  /** The gate of the current connection has not opened yet: calls wait in `waiting`. */
  private gated = false;
  private connections = 0;

  constructor(private readonly options: ScriptPipeOptions) {
    super();
    this.node = `${options.host}:${options.port}`;
    this.scripts = [...options.scripts];
    this.reconnectMs = options.reconnectMinMs ?? 50;
    this.sweeper = setInterval(() => this.sweep(), Math.max(10, Math.min(250, options.commandTimeoutMs / 4)));
    this.sweeper.unref();
  }

  /** Connects now (otherwise the first call does); resolves once up, rejects if this attempt fails. */
  connect(): Promise<void> {
    if (this.state === 'closed') return Promise.reject(this.closedError());
    if (this.state === 'ready' && !this.gated) return Promise.resolve();
    return new Promise((resolve, reject) => {
      this.connectWaiters.push({ resolve, reject });
      if (this.state === 'idle') {
        clearTimeout(this.reconnectTimer);
        this.open();
      }
    });
  }

  /**
   * Runs `gate` on every new connection before the calls waiting for it are sent (the lost-writes
   * check). A gate that fails opens all the same: it logs and retries on its own, and holding the
   * calls for good would stop every partition of the node, not only those that lost writes.
   */
  setGate(gate: () => Promise<void>): void {
    this.gate = gate;
  }

  /**
   * Runs a script: EVALSHA with its keys then its arguments. Resolves with the script's reply.
   * `asking`: preceded by ASKING on the same connection (Redis Cluster's -ASK redirect: one call
   * on the node importing the slot).
   */
  run<T = unknown>(script: LuaScript, keys: readonly string[], args: ReadonlyArray<string | number>, asking = false): Promise<T> {
    if (keys.length !== script.numberOfKeys) {
      return Promise.reject(new Error(`${script.name} takes ${script.numberOfKeys} keys, got ${keys.length}`));
    }
    if (this.state === 'closed') return Promise.reject(this.closedError());
    return new Promise<T>((resolve, reject) => {
      const call: Call = { script, keys, args, since: Date.now(), resolve: resolve as (v: unknown) => void, reject, resent: false };
      if (asking) this.enqueue(internalCall(['ASKING']));
      this.enqueue(call);
    });
  }

  /** Sends one command of our own (CLUSTER SLOTS, PING) and resolves with its reply; an error reply rejects. Not resent. */
  command(parts: ReadonlyArray<string | number>): Promise<RespValue> {
    if (this.state === 'closed') return Promise.reject(this.closedError());
    return new Promise<RespValue>((resolve, reject) => {
      const call: Call = { ...internalCall([...parts], reject), resolve: resolve as (v: unknown) => void };
      this.enqueue(call);
    });
  }

  /** Fails every call now with `err` and closes: the node left the cluster's masters, callers resend elsewhere. */
  abandon(err: Error): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    for (const waiter of this.connectWaiters.splice(0)) waiter.reject(err);
    clearInterval(this.sweeper);
    clearTimeout(this.reconnectTimer);
    this.failAll(err);
    this.socket?.destroy();
    this.socket = undefined;
  }

  private enqueue(call: Call): void {
    if (this.state === 'ready' && !this.gated) this.send(call);
    else {
      this.waiting.push(call);
      if (this.state === 'idle' && this.reconnectTimer === undefined) this.open();
    }
  }

  /**
   * The node is known to be unreachable: the connection was lost or could not be made, and no new
   * one is up yet. (Not before a first attempt: a pipe nobody used yet is not down.)
   */
  get down(): boolean {
    return this.lost && this.state !== 'ready';
  }

  /** Calls sent or waiting, not yet answered. */
  get pending(): number {
    return this.inFlight.length - this.head + this.waiting.length;
  }

  /** Waits (up to the command timeout) for the calls in flight, then closes. New calls fail. */
  async close(): Promise<void> {
    if (this.state === 'closed') return;
    const until = Date.now() + this.options.commandTimeoutMs;
    while (this.pending > 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
    this.state = 'closed';
    for (const waiter of this.connectWaiters.splice(0)) waiter.reject(this.closedError());
    clearInterval(this.sweeper);
    clearTimeout(this.reconnectTimer);
    this.failAll(this.closedError());
    this.socket?.end();
    this.socket?.destroy();
    this.socket = undefined;
  }

  private open(): void {
    this.state = 'connecting';
    this.reconnectTimer = undefined;
    const socket = net.connect({ host: this.options.host, port: this.options.port, noDelay: true });
    this.socket = socket;
    socket.setKeepAlive(true, 30_000);
    // A connect that hangs (a host that drops packets) is given up like a slow command.
    socket.setTimeout(this.options.commandTimeoutMs, () => socket.destroy(new Error(`connect to ${this.options.host}:${this.options.port} timed out`)));
    socket.on('connect', () => this.onConnect(socket));
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('error', (err) => (this.lastError = err)); // 'close' follows and handles it
    socket.on('close', () => this.onClose(socket));
  }

  private onConnect(socket: net.Socket): void {
    if (socket !== this.socket) return;
    socket.setTimeout(0);
    this.state = 'ready';
    this.lost = false;
    this.reconnectMs = this.options.reconnectMinMs ?? 50;
    // Replies to these come first; the calls that waited queue up behind them.
    const setup = (parts: Array<string | number>) => this.send(internalCall(parts));
    setup(['CLIENT', 'SETNAME', this.options.name]);
    for (const script of this.scripts) setup(['SCRIPT', 'LOAD', script.source]);
    this.emit('connected', this.connections++ > 0);
    const gate = this.gate;
    if (!gate) return this.admit();
    this.gated = true;
    void gate()
      .catch(() => undefined)
      .finally(() => {
        if (socket !== this.socket || this.state !== 'ready') return;
        this.gated = false;
        this.admit();
      });
  }

  /** Sends the calls that waited for the connection (and its gate) and wakes connect()'s callers. */
  private admit(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const call of waiting) this.send(call);
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    for (const waiter of waiters) waiter.resolve();
  }

  private send(call: Call): void {
    this.inFlight.push(call);
    if (call.script) this.writer.evalsha(call.script.sha, call.keys, call.args);
    else this.writer.command(call.args);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.writer.length === 0 || !this.socket || this.state !== 'ready') return;
    this.socket.write(this.writer.take());
  };

  private onData(socket: net.Socket, chunk: Buffer): void {
    if (socket !== this.socket) return;
    try {
      this.reader.push(chunk, this.onReply);
    } catch (err) {
      // Not RESP: nothing after this can be trusted to pair with its call.
      socket.destroy(err as Error);
    }
  }

  private readonly onReply = (value: RespValue): void => {
    const call = this.inFlight[this.head];
    if (call === undefined) throw new Error('redis protocol: a reply nobody asked for');
    this.inFlight[this.head++] = undefined;
    if (this.head > 1024 && this.head * 2 > this.inFlight.length) {
      this.inFlight = this.inFlight.slice(this.head);
      this.head = 0;
    }
    if (value instanceof RedisReplyError) {
      if (call.script && !call.resent && value.message.startsWith('NOSCRIPT')) {
        // The server lost our scripts: load this one and run the call once more, in that order.
        call.resent = true;
        const failed = call.reject;
        this.send(internalCall(['SCRIPT', 'LOAD', call.script.source], failed));
        this.send(call);
        return;
      }
      call.reject(redisFailure(value, this.node) as Error);
      return;
    }
    call.resolve(value);
  };

  private onClose(socket: net.Socket): void {
    if (socket !== this.socket) return;
    this.socket = undefined;
    this.gated = false;
    this.reader.reset();
    this.writer.reset();
    this.flushScheduled = false;
    if (this.state === 'closed') return;
    this.lost = true;
    const waiters = this.connectWaiters;
    this.connectWaiters = [];
    const why = new DependencyUnavailable('redis', this.node, `connection is closed (${this.lastError?.message ?? 'closed by the server'})`, this.lastError);
    for (const waiter of waiters) waiter.reject(why);
    this.emit('disconnected', this.lastError);
    this.lastError = undefined;
    // Calls in flight may or may not have run: send them once more on the next connection
    // (scripts are idempotent); a call already sent twice fails instead.
    const unanswered = this.inFlight.slice(this.head).filter((c): c is Call => c !== undefined);
    this.inFlight = [];
    this.head = 0;
    const again: Call[] = [];
    for (const call of unanswered) {
      if (call.script && !call.resent) {
        call.resent = true;
        again.push(call);
      } else call.reject(this.closedError());
    }
    this.waiting = [...again, ...this.waiting];
    this.state = 'idle';
    const wait = this.reconnectMs;
    this.reconnectMs = Math.min(2000, this.reconnectMs * 2);
    this.reconnectTimer = setTimeout(() => this.open(), wait * (0.5 + Math.random() / 2));
    this.reconnectTimer.unref();
  }

  /** Fails calls that have waited past the timeout; cuts a connection whose oldest call has. */
  private sweep(): void {
    const expired = Date.now() - this.options.commandTimeoutMs;
    if (this.waiting.length > 0 && this.waiting[0].since <= expired) {
      const keep: Call[] = [];
      for (const call of this.waiting) {
        // Never sent: the node was not reachable all that time.
        if (call.since <= expired) call.reject(new DependencyUnavailable('redis', this.node, `not connected for ${this.options.commandTimeoutMs} ms`));
        else keep.push(call);
      }
      this.waiting = keep;
    }
    const oldest = this.inFlight[this.head];
    if (oldest !== undefined && oldest.since <= expired && this.socket) {
      const calls = this.inFlight.slice(this.head);
      this.inFlight = [];
      this.head = 0;
      for (const call of calls) call?.reject(this.timeoutError());
      this.socket.destroy();
    }
  }

  private closedError(): DependencyUnavailable {
    return new DependencyUnavailable('redis', this.node, 'connection is closed');
  }

  private timeoutError(): DependencyTimeout {
    return new DependencyTimeout('redis', this.node, `no answer within ${this.options.commandTimeoutMs} ms`);
  }

  private failAll(err: Error): void {
    const calls = [...this.inFlight.slice(this.head), ...this.waiting];
    this.inFlight = [];
    this.head = 0;
    this.waiting = [];
    for (const call of calls) call?.reject(err);
  }
}

/** A setup command of the pipe itself: its reply is dropped, its error goes to `onError` if given. */
function internalCall(parts: Array<string | number>, onError?: (err: Error) => void): Call {
  return { script: undefined, keys: [], args: parts, since: Date.now(), resolve: () => undefined, reject: onError ?? (() => undefined), resent: true };
}

