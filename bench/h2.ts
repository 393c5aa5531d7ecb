/**
 * A minimal HTTP/2 client (RFC 9113, cleartext, prior knowledge) for unary gRPC calls, on a plain
 * net.Socket. node:http2's client costs ~120 µs of CPU per stream (a Duplex per call), which on a
 * 2-core machine makes the load generator as busy as the server it measures; this one parses
 * frames straight off the socket, batches writes per tick and keeps no per-call timers or
 * streams, for a few µs per call.
 *
 * Per call: one HEADERS frame (END_HEADERS; the request headers indexed in HPACK, see hpack.ts)
 * and one DATA frame (END_STREAM) carrying the gRPC message; the answer's body is collected and
 * grpc-status read from the trailers (or from the headers of a trailers-only answer). Flow control:
 * a 1 MiB stream window, a connection receive window topped up as data arrives, and the peer's
 * connection window respected when sending. SETTINGS are acknowledged, PINGs answered, GOAWAY and
 * RST_STREAM end the affected calls with code -1 (TRANSPORT).
 */
import net from 'node:net';
import { HpackDecoder, HpackRequestEncoder } from './hpack';

export const TRANSPORT = -1;
export type Done = (code: number, body: Buffer | undefined) => void;

interface Call {
  readonly done: Done;
  code: number;
  body: Buffer | undefined;
}

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PUSH_PROMISE: 5, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 };
const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 };
const STREAM_WINDOW = 1 << 20;
const CONNECTION_WINDOW = 1 << 30;

function frameHeader(out: Buffer, at: number, length: number, type: number, flags: number, stream: number): void {
  out[at] = (length >>> 16) & 0xff;
  out[at + 1] = (length >>> 8) & 0xff;
  out[at + 2] = length & 0xff;
  out[at + 3] = type;
  out[at + 4] = flags;
  out.writeUInt32BE(stream, at + 5);
}

function control(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const out = Buffer.allocUnsafe(9 + payload.length);
  frameHeader(out, 0, payload.length, type, flags, stream);
  payload.copy(out, 9);
  return out;
}

/** One HTTP/2 connection. */
export class H2Connection {
  private readonly socket: net.Socket;
  private readonly calls = new Map<number, Call>();
  private readonly decoder = new HpackDecoder();
  private readonly encoder: HpackRequestEncoder;
  private nextStream = 1;
  private input: Buffer | undefined;
  private continuation: { stream: number; endStream: boolean; parts: Buffer[] } | undefined;
  private sendWindow = 65535;
  private peerMaxStreams = Infinity;
  private readonly waiting: Array<{ path: string; body: Buffer; call: Call }> = [];
  private received = 0;
  private out: Buffer[] = [];
  private flushScheduled = false;
  private closed = false;
  private readonly ready: Promise<void>;

  constructor(readonly host: string, readonly port: number) {
    this.encoder = new HpackRequestEncoder(`${host}:${port}`);
    this.socket = net.connect({ host, port, noDelay: true });
    let settled = false;
    this.ready = new Promise((resolve, reject) => {
      this.onSettings = () => {
        if (!settled) (settled = true), resolve();
      };
      this.socket.once('error', (err) => {
        if (!settled) (settled = true), reject(err);
      });
    });
    this.socket.on('connect', () => {
      const settings = Buffer.alloc(12);
      settings.writeUInt16BE(0x2, 0); // ENABLE_PUSH
      settings.writeUInt32BE(0, 2);
      settings.writeUInt16BE(0x4, 6); // INITIAL_WINDOW_SIZE
      settings.writeUInt32BE(STREAM_WINDOW, 8);
      const grow = Buffer.alloc(4);
      grow.writeUInt32BE(CONNECTION_WINDOW - 65535, 0);
      this.socket.write(Buffer.concat([PREFACE, control(FRAME.SETTINGS, 0, 0, settings), control(FRAME.WINDOW_UPDATE, 0, 0, grow)]));
    });
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => this.fail('connection closed'));
  }

  private onSettings: () => void = () => undefined;

  connected(): Promise<void> {
    return this.ready;
  }

  get inFlight(): number {
    return this.calls.size + this.waiting.length;
  }

  /** Starts one unary call; `done` runs once with the grpc-status (or -1) and the response body. */
  call(path: string, body: Buffer, done: Done): void {
    const call: Call = { done, code: TRANSPORT, body: undefined };
    if (this.closed) {
      setImmediate(() => done(TRANSPORT, undefined));
      return;
    }
    if (this.waiting.length > 0 || this.calls.size >= this.peerMaxStreams || this.sendWindow < body.length) {
      this.waiting.push({ path, body, call });
      return;
    }
    this.send(path, body, call);
  }

  private send(path: string, body: Buffer, call: Call): void {
    const block = this.encoder.block(path);
    const stream = this.nextStream;
    this.nextStream += 2;
    const frames = Buffer.allocUnsafe(18 + block.length + body.length);
    frameHeader(frames, 0, block.length, FRAME.HEADERS, FLAG.END_HEADERS, stream);
    block.copy(frames, 9);
    const at = 9 + block.length;
    frameHeader(frames, at, body.length, FRAME.DATA, FLAG.END_STREAM, stream);
    body.copy(frames, at + 9);
    this.sendWindow -= body.length;
    this.calls.set(stream, call);
    this.write(frames);
  }

  private write(buf: Buffer): void {
    this.out.push(buf);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(() => this.flush());
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.out.length === 0 || this.closed) return;
    const data = this.out.length === 1 ? this.out[0] : Buffer.concat(this.out);
    this.out = [];
    this.socket.write(data);
  }

  private drainWaiting(): void {
    while (this.waiting.length > 0 && this.calls.size < this.peerMaxStreams && this.sendWindow >= this.waiting[0].body.length) {
      const next = this.waiting.shift()!;
      this.send(next.path, next.body, next.call);
    }
  }

  private onData(chunk: Buffer): void {
    let buf = this.input ? Buffer.concat([this.input, chunk]) : chunk;
    let pos = 0;
    let dataBytes = 0;
    while (buf.length - pos >= 9) {
      const length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2];
      if (buf.length - pos < 9 + length) break;
      const type = buf[pos + 3];
      const flags = buf[pos + 4];
      const stream = buf.readUInt32BE(pos + 5) & 0x7fffffff;
      const start = pos + 9;
      const end = start + length;
      pos = end;
      if (type === FRAME.DATA) dataBytes += length;
      this.onFrame(type, flags, stream, buf, start, end);
      if (this.closed) return;
    }
    this.input = pos < buf.length ? buf.subarray(pos) : undefined;
    if (this.input && pos > 0) this.input = Buffer.from(this.input); // do not pin the big chunk
    buf = Buffer.alloc(0);
    this.received += dataBytes;
    if (this.received >= CONNECTION_WINDOW / 4) {
      const inc = Buffer.alloc(4);
      inc.writeUInt32BE(this.received, 0);
      this.received = 0;
      this.write(control(FRAME.WINDOW_UPDATE, 0, 0, inc));
    }
    if (this.waiting.length > 0) this.drainWaiting();
  }

  private onFrame(type: number, flags: number, stream: number, buf: Buffer, start: number, end: number): void {
    switch (type) {
      case FRAME.DATA: {
        const call = this.calls.get(stream);
        if (flags & FLAG.PADDED) end -= buf[start++];
        if (call && end > start) {
          const piece = buf.subarray(start, end);
          call.body = call.body ? Buffer.concat([call.body, piece]) : Buffer.from(piece);
        }
        if (flags & FLAG.END_STREAM) this.finish(stream);
        return;
      }
      case FRAME.HEADERS: {
        if (flags & FLAG.PADDED) end -= buf[start++];
        if (flags & FLAG.PRIORITY) start += 5;
        const fragment = buf.subarray(start, end);
        const endStream = (flags & FLAG.END_STREAM) !== 0;
        if (flags & FLAG.END_HEADERS) this.headers(stream, fragment, endStream);
        else this.continuation = { stream, endStream, parts: [Buffer.from(fragment)] };
        return;
      }
      case FRAME.CONTINUATION: {
        const c = this.continuation;
        if (!c) return this.fail('CONTINUATION without HEADERS');
        c.parts.push(Buffer.from(buf.subarray(start, end)));
        if (flags & FLAG.END_HEADERS) {
          this.continuation = undefined;
          this.headers(c.stream, Buffer.concat(c.parts), c.endStream);
        }
        return;
      }
      case FRAME.RST_STREAM:
        this.finish(stream);
        return;
      case FRAME.SETTINGS: {
        if (flags & FLAG.ACK) return;
        for (let at = start; at + 6 <= end; at += 6) {
          const id = buf.readUInt16BE(at);
          const value = buf.readUInt32BE(at + 2);
          if (id === 0x3) this.peerMaxStreams = value;
          else if (id === 0x1) this.encoder.peerTableSize(value);
        }
        this.write(control(FRAME.SETTINGS, FLAG.ACK, 0));
        this.onSettings();
        return;
      }
      case FRAME.PING:
        if (!(flags & FLAG.ACK)) this.write(control(FRAME.PING, FLAG.ACK, 0, Buffer.from(buf.subarray(start, end))));
        return;
      case FRAME.GOAWAY: {
        const last = buf.readUInt32BE(start) & 0x7fffffff;
        this.closed = true;
        for (const id of [...this.calls.keys()]) if (id > last) this.finish(id);
        for (const w of this.waiting.splice(0)) setImmediate(() => w.call.done(TRANSPORT, undefined));
        return;
      }
      case FRAME.WINDOW_UPDATE:
        if (stream === 0) this.sendWindow += buf.readUInt32BE(start) & 0x7fffffff;
        return;
      default:
        return; // PRIORITY, PUSH_PROMISE (push is disabled), unknown: ignored
    }
  }

  private headers(stream: number, block: Buffer, endStream: boolean): void {
    const call = this.calls.get(stream);
    // Every block is decoded, in order, even for unknown streams: the dynamic table depends on it.
    this.decoder.decode(block, (name, value) => {
      if (call && name === 'grpc-status') call.code = Number(value);
    });
    if (endStream) this.finish(stream);
  }

  private finish(stream: number): void {
    const call = this.calls.get(stream);
    if (!call) return;
    this.calls.delete(stream);
    call.done(call.code, call.body);
  }

  private fail(_why: string): void {
    this.closed = true;
    const calls = [...this.calls.values()];
    this.calls.clear();
    const waiting = this.waiting.splice(0);
    for (const c of calls) c.done(TRANSPORT, undefined);
    for (const w of waiting) w.call.done(TRANSPORT, undefined);
    this.socket.destroy();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const goaway = Buffer.alloc(8);
    this.socket.end(control(FRAME.GOAWAY, 0, 0, goaway));
  }
}

/** Unary gRPC calls over several connections. */
export class H2Client {
  readonly connections: H2Connection[];

  constructor(readonly target: string, connections: number) {
    const m = /^127\.0\.0\.1:(\d+)$/.exec(target);
    if (!m) throw new Error(`load generator: target must be 127.0.0.1:<port>, got ${target}`);
    this.connections = Array.from({ length: connections }, () => new H2Connection('127.0.0.1', Number(m[1])));
  }

  connected(): Promise<void> {
    return Promise.all(this.connections.map((c) => c.connected())).then(() => undefined);
  }

  /** One call on connection `slot % n`. */
  call(slot: number, path: string, body: Buffer, done: Done): void {
    this.connections[slot % this.connections.length].call(path, body, done);
  }

  close(): void {
    for (const c of this.connections) c.close();
  }
}

/** One unary call on a fresh connection (readiness checks, single requests); resolves with the grpc-status and body. */
export async function unaryOnce(target: string, path: string, body: Buffer, timeoutMs = 2000): Promise<{ code: number; body?: Buffer }> {
  const client = new H2Client(target, 1);
  const timer = new Promise<never>((_, reject) => setTimeout(() => reject(new Error(`no answer from ${target} in ${timeoutMs} ms`)), timeoutMs).unref());
  try {
    await Promise.race([client.connected(), timer]);
    return await Promise.race([new Promise<{ code: number; body?: Buffer }>((resolve) => client.call(0, path, body, (code, b) => resolve({ code, body: b }))), timer]);
  } finally {
    client.close();
  }
}
