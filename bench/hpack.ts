/**
 * The HPACK (RFC 7541) side of the raw HTTP/2 client: a decoder to read grpc-status from response
 * headers and trailers (static and dynamic tables, integers, string literals with Huffman coding),
 * and a small request encoder that indexes the few request headers once per connection and then
 * sends them as one-byte references, as grpc-js and h2load clients do.
 */

const STATIC: ReadonlyArray<readonly [string, string]> = [
  ['', ''], // index 0 is unused
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/**
 * Code lengths of the HPACK Huffman code (RFC 7541, Appendix B), symbols 0..256 (256 = EOS). The
 * code is canonical, so the codes themselves follow from the lengths (checked at load).
 */
const HUFFMAN_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

/** Canonical decoding tables: per length, the first code, and the symbols in code order. */
const MAX_LEN = 30;
const firstCode = new Array<number>(MAX_LEN + 2).fill(0);
const countOf = new Array<number>(MAX_LEN + 2).fill(0);
const offsetOf = new Array<number>(MAX_LEN + 2).fill(0);
const symbolsByCode: number[] = [];
(function buildHuffman() {
  if (HUFFMAN_LENGTHS.length !== 257) throw new Error('hpack: Huffman table must have 257 lengths');
  for (const len of HUFFMAN_LENGTHS) countOf[len]++;
  let code = 0;
  let offset = 0;
  let kraft = 0;
  for (let len = 1; len <= MAX_LEN; len++) {
    code = (code + countOf[len - 1]) * 2;
    firstCode[len] = code;
    offsetOf[len] = offset;
    offset += countOf[len];
    kraft += countOf[len] / 2 ** len;
  }
  for (let len = 1; len <= MAX_LEN; len++) {
    for (let sym = 0; sym < 257; sym++) if (HUFFMAN_LENGTHS[sym] === len) symbolsByCode.push(sym);
  }
  // A complete prefix code (Kraft sum exactly 1) whose first and last codes are RFC 7541's.
  if (kraft !== 1 || firstCode[5] !== 0 || codeOf(0) !== 0x1ff8 || codeOf(256) !== 0x3fffffff || codeOf(255) !== 0x3ffffee) {
    throw new Error('hpack: the Huffman table is not RFC 7541’s');
  }
})();

function codeOf(sym: number): number {
  const len = HUFFMAN_LENGTHS[sym];
  const rank = symbolsByCode.indexOf(sym) - offsetOf[len];
  return firstCode[len] + rank;
}

/** Decodes a Huffman-coded string (latin1). */
export function huffmanDecode(buf: Buffer, start: number, end: number): string {
  let out = '';
  let code = 0;
  let len = 0;
  for (let i = start; i < end; i++) {
    const byte = buf[i];
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const rank = code - firstCode[len];
      if (rank >= 0 && rank < countOf[len]) {
        const sym = symbolsByCode[offsetOf[len] + rank];
        if (sym === 256) throw new Error('hpack: EOS in a Huffman string');
        out += String.fromCharCode(sym);
        code = 0;
        len = 0;
      } else if (len > MAX_LEN) {
        throw new Error('hpack: bad Huffman code');
      }
    }
  }
  return out; // the remaining bits (< 8, all ones) are padding
}

/** Stateful decoder of one connection's header blocks (the dynamic table lives here). */
export class HpackDecoder {
  private dynamic: Array<[string, string]> = []; // newest first
  private size = 0;

  constructor(private maxSize = 4096) {}

  /** Calls onField(name, value) for each field of a complete header block. */
  decode(block: Buffer, onField: (name: string, value: string) => void): void {
    let pos = 0;
    const end = block.length;
    const int = (prefixBits: number): number => {
      const mask = (1 << prefixBits) - 1;
      let value = block[pos++] & mask;
      if (value < mask) return value;
      let m = 0;
      for (;;) {
        const b = block[pos++];
        value += (b & 0x7f) * 2 ** m;
        m += 7;
        if (b < 0x80) return value;
        if (pos >= end) throw new Error('hpack: truncated integer');
      }
    };
    const str = (): string => {
      const huffman = (block[pos] & 0x80) !== 0;
      const len = int(7);
      const from = pos;
      pos += len;
      if (pos > end) throw new Error('hpack: truncated string');
      return huffman ? huffmanDecode(block, from, pos) : block.toString('latin1', from, pos);
    };
    while (pos < end) {
      const b = block[pos];
      if (b & 0x80) {
        const [name, value] = this.entry(int(7));
        onField(name, value);
      } else if (b & 0x40) {
        const index = int(6);
        const name = index === 0 ? str() : this.entry(index)[0];
        const value = str();
        this.add(name, value);
        onField(name, value);
      } else if (b & 0x20) {
        this.maxSize = int(5);
        this.evict();
      } else {
        const index = int(4); // literal without indexing / never indexed
        const name = index === 0 ? str() : this.entry(index)[0];
        onField(name, str());
      }
    }
  }

  private entry(index: number): readonly [string, string] {
    if (index > 0 && index < STATIC.length) return STATIC[index];
    const d = this.dynamic[index - STATIC.length];
    if (!d) throw new Error(`hpack: no table entry ${index}`);
    return d;
  }

  private add(name: string, value: string): void {
    this.dynamic.unshift([name, value]);
    this.size += name.length + value.length + 32;
    this.evict();
  }

  private evict(): void {
    while (this.size > this.maxSize && this.dynamic.length > 0) {
      const [n, v] = this.dynamic.pop()!;
      this.size -= n.length + v.length + 32;
    }
  }
}

/**
 * Request header blocks of one connection: `:method POST` and `:scheme http` from the static table;
 * `:path`, `:authority`, `content-type: application/grpc` and `te: trailers` added to the peer
 * decoder's dynamic table the first time they are sent (literal with incremental indexing, no
 * Huffman), then sent as indexed fields. The few entries (well under the 4,096-byte default table)
 * are never evicted; with a peer table under `minTableSize` nothing is indexed.
 */
export class HpackRequestEncoder {
  /** Entries this encoder added to the peer's table, oldest first ("name\0value"). */
  private readonly added: string[] = [];
  private readonly cache = new Map<string, Buffer>();
  private cachedAt = -1;
  private indexing = true;

  constructor(private readonly authority: string, private readonly minTableSize = 1024) {}

  /** The peer's SETTINGS_HEADER_TABLE_SIZE. */
  peerTableSize(size: number): void {
    if (size < this.minTableSize) this.indexing = false;
  }

  block(path: string): Buffer {
    if (this.cachedAt !== this.added.length) {
      this.cache.clear();
      this.cachedAt = this.added.length;
    }
    const cached = this.cache.get(path);
    if (cached) return cached;
    const parts: number[] = [0x83, 0x86];
    let inserted = false;
    const field = (nameIndex: number, name: string, value: string) => {
      const key = `${name}\u0000${value}`;
      const at = this.added.indexOf(key);
      if (this.indexing && at >= 0) {
        parts.push(0x80 | (STATIC.length + (this.added.length - 1 - at))); // < 127 for these few entries
        return;
      }
      // Literal with incremental indexing (6-bit name index), or without indexing (4-bit) when not indexing.
      if (this.indexing) parts.push(0x40 | nameIndex);
      else if (nameIndex < 15) parts.push(nameIndex);
      else parts.push(0x0f, nameIndex - 15);
      if (nameIndex === 0) lit(parts, name);
      lit(parts, value);
      if (this.indexing) {
        this.added.push(key);
        inserted = true;
      }
    };
    field(4, ':path', path);
    field(1, ':authority', this.authority);
    field(31, 'content-type', 'application/grpc');
    field(0, 'te', 'trailers');
    const block = Buffer.from(parts);
    if (inserted) this.cachedAt = -1; // indices moved: rebuild next time
    else this.cache.set(path, block);
    return block;
  }
}

function lit(parts: number[], text: string): void {
  const bytes = Buffer.from(text, 'latin1');
  if (bytes.length >= 127) throw new Error('hpack: header too long for this encoder');
  parts.push(bytes.length, ...bytes);
}
