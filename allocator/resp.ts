/**
 * The Redis protocol (RESP2), as much as running Lua scripts needs: commands out as arrays of bulk
 * strings, replies in as nested values. Kept apart from the connection so both are unit-testable.
 */

/** An error reply (`-ERR ...`): Redis answered, the command failed. */
export class RedisReplyError extends Error {
  override readonly name = 'ReplyError';
}

export type RespValue = string | number | null | RedisReplyError | RespValue[];

/**
 * Commands out, as RESP arrays of bulk strings, written straight into one growing buffer: a whole
 * tick's calls become one Buffer for one socket write, with no string built per call.
 */
export class RespWriter {
  private buf = Buffer.allocUnsafe(16 * 1024);
  private len = 0;

  /** Bytes written since the last take. */
  get length(): number {
    return this.len;
  }

  /** EVALSHA <sha> <number of keys> <keys...> <args...> */
  evalsha(sha: string, keys: readonly string[], args: ReadonlyArray<string | number>): void {
    this.header(0x2a, 3 + keys.length + args.length);
    this.bulk('EVALSHA');
    this.bulk(sha);
    this.bulk(keys.length);
    for (let i = 0; i < keys.length; i++) this.bulk(keys[i]);
    for (let i = 0; i < args.length; i++) this.bulk(args[i]);
  }

  command(parts: ReadonlyArray<string | number>): void {
    this.header(0x2a, parts.length);
    for (let i = 0; i < parts.length; i++) this.bulk(parts[i]);
  }

  /** What was written, as a buffer of its own (the writer's is reused at once). */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.len);
    this.buf.copy(out, 0, 0, this.len);
    this.len = 0;
    return out;
  }

  reset(): void {
    this.len = 0;
  }

  private bulk(value: string | number): void {
    if (typeof value === 'number' && Number.isSafeInteger(value) && value >= 0) {
      const digits = digitCount(value);
      this.header(0x24, digits);
      this.room(digits + 2);
      this.digits(value, digits);
    } else {
      const text = typeof value === 'string' ? value : String(value);
      if (!(text.length <= 64 && this.ascii(text))) {
        const bytes = Buffer.byteLength(text);
        this.header(0x24, bytes);
        this.room(bytes + 2);
        this.len += this.buf.write(text, this.len, bytes, 'utf8');
      }
    }
    this.buf[this.len++] = 0x0d;
    this.buf[this.len++] = 0x0a;
  }

  /**
   * Writes a short string as `$<n>\r\n<bytes>` byte by byte when it is all ASCII (keys, ids,
   * numbers: most arguments), cheaper than the two native calls of the general path. False, with
   * nothing written, when it is not.
   */
  private ascii(text: string): boolean {
    const start = this.len;
    this.header(0x24, text.length);
    this.room(text.length + 2);
    const { buf } = this;
    let at = this.len;
    for (let i = 0; i < text.length; i++) {
      const code = text.charCodeAt(i);
      if (code >= 0x80) {
        this.len = start;
        return false;
      }
      buf[at++] = code;
    }
    this.len = at;
    return true;
  }

  /** `*<n>\r\n` or `$<n>\r\n`. */
  private header(type: number, n: number): void {
    this.room(24);
    this.buf[this.len++] = type;
    this.digits(n, digitCount(n));
    this.buf[this.len++] = 0x0d;
    this.buf[this.len++] = 0x0a;
  }

  private digits(n: number, count: number): void {
    for (let i = count - 1; i >= 0; i--) {
      this.buf[this.len + i] = 48 + (n % 10);
      n = Math.floor(n / 10);
    }
    this.len += count;
  }

  private room(bytes: number): void {
    if (this.len + bytes <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.len + bytes));
    this.buf.copy(bigger, 0, 0, this.len);
    this.buf = bigger;
  }
}

function digitCount(n: number): number {
  let count = 1;
  for (let rest = n; rest >= 10; rest = Math.floor(rest / 10)) count++;
  return count;
}

const CR = 13;
/** Returned by the parser when the buffer ends inside a reply. */
const INCOMPLETE = Symbol('incomplete');

/**
 * Turns the byte stream of a connection back into replies, across chunk boundaries: `push` each
 * chunk as it arrives and get the replies it completes, in order. A reply cut by a chunk boundary
 * is parsed again from its start when the rest arrives (replies to scripts are small).
 */
export class RespReader {
  private rest: Buffer | undefined;
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;

  push(chunk: Buffer, onReply: (value: RespValue) => void): void {
    this.buf = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
    this.rest = undefined;
    let start = 0;
    this.pos = 0;
    while (this.pos < this.buf.length) {
      const value = this.value();
      if (value === INCOMPLETE) {
        this.rest = this.buf.subarray(start);
        return;
      }
      start = this.pos;
      onReply(value);
    }
  }

  /** Bytes of a reply received only in part (0 between replies). */
  get buffered(): number {
    return this.rest?.length ?? 0;
  }

  reset(): void {
    this.rest = undefined;
    this.buf = Buffer.alloc(0);
    this.pos = 0;
  }

  private value(): RespValue | typeof INCOMPLETE {
    const { buf } = this;
    if (this.pos >= buf.length) return INCOMPLETE;
    const type = buf[this.pos];
    const lineEnd = buf.indexOf(CR, this.pos + 1);
    if (lineEnd < 0 || lineEnd + 1 >= buf.length) return INCOMPLETE;
    const lineStart = this.pos + 1;
    this.pos = lineEnd + 2;
    switch (type) {
      case 0x2b: // + simple string
        return buf.toString('utf8', lineStart, lineEnd);
      case 0x2d: // - error
        return new RedisReplyError(buf.toString('utf8', lineStart, lineEnd));
      case 0x3a: // : integer
        return integer(buf, lineStart, lineEnd);
      case 0x24: {
        // $ bulk string
        const length = integer(buf, lineStart, lineEnd);
        if (length < 0) return null;
        const end = this.pos + length;
        if (end + 2 > buf.length) return INCOMPLETE;
        const text = buf.toString('utf8', this.pos, end);
        this.pos = end + 2;
        return text;
      }
      case 0x2a: {
        // * array
        const length = integer(buf, lineStart, lineEnd);
        if (length < 0) return null;
        const items: RespValue[] = new Array(length);
        for (let i = 0; i < length; i++) {
          const item = this.value();
          if (item === INCOMPLETE) return INCOMPLETE;
          items[i] = item;
        }
        return items;
      }
      default:
        throw new Error(`redis protocol: unexpected reply type ${JSON.stringify(String.fromCharCode(type))}`);
    }
  }
}

function integer(buf: Buffer, from: number, to: number): number {
  let i = from;
  const negative = buf[i] === 0x2d;
  if (negative) i++;
  let n = 0;
  for (; i < to; i++) n = n * 10 + (buf[i] - 48);
  return negative ? -n : n;
}
