/**
 * The Redis protocol (RESP2), as much as running Lua scripts needs: commands out as arrays of bulk
 * strings, replies in as nested values. Kept apart from the connection so both are unit-testable.
 */

/** An error reply (`-ERR ...`): Redis answered, the command failed. */
export class RedisReplyError extends Error {
  override readonly name = 'ReplyError';
}

export type RespValue = string | number | null | RedisReplyError | RespValue[];

/** One command as RESP: `*<n>\r\n` then `$<bytes>\r\n<arg>\r\n` per argument. */
export function encodeCommand(args: ReadonlyArray<string | number>): string {
  let out = `*${args.length}\r\n`;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i];
    const text = typeof arg === 'string' ? arg : String(arg);
    out += `$${Buffer.byteLength(text)}\r\n${text}\r\n`;
  }
  return out;
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
