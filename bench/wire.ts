/**
 * The little protobuf and gRPC framing the load generator needs, written by hand so that building
 * a request and reading an answer cost next to nothing on the client: requests are laid out byte
 * by byte (or patched into a pre-encoded template) and answers are scanned for the two or three
 * fields the benchmark counts, never fully decoded.
 *
 * gRPC message framing: 1 byte compressed flag (0), 4 bytes big-endian length, the message.
 */

export const PATHS = {
  reserve: '/inventory.v1.InventoryService/Reserve',
  confirm: '/inventory.v1.InventoryService/Confirm',
  release: '/inventory.v1.InventoryService/Release',
  health: '/grpc.health.v1.Health/Check',
} as const;

/** Wraps one protobuf message in a gRPC length-prefixed frame. */
export function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** A growable byte writer for hand-built messages. */
export class Writer {
  private buf = Buffer.allocUnsafe(256);
  pos = 0;

  private room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  varint(value: number): this {
    this.room(10);
    let v = value; // non-negative integers only
    while (v > 0x7f) {
      this.buf[this.pos++] = (v & 0x7f) | 0x80;
      v = Math.floor(v / 128);
    }
    this.buf[this.pos++] = v;
    return this;
  }

  tag(field: number, wireType: 0 | 2): this {
    return this.varint((field << 3) | wireType);
  }

  string(field: number, text: string): this {
    const len = Buffer.byteLength(text);
    this.tag(field, 2).varint(len);
    this.room(len);
    this.pos += this.buf.write(text, this.pos, 'latin1');
    return this;
  }

  bytes(field: number, bytes: Uint8Array): this {
    this.tag(field, 2).varint(bytes.length);
    this.room(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
    return this;
  }

  uint(field: number, value: number): this {
    if (value === 0) return this; // proto3 default: omitted
    return this.tag(field, 0).varint(value);
  }

  /** The message as a gRPC frame (copied: the writer can be reused). */
  framed(): Buffer {
    const out = Buffer.allocUnsafe(5 + this.pos);
    out[0] = 0;
    out.writeUInt32BE(this.pos, 1);
    this.buf.copy(out, 5, 0, this.pos);
    this.pos = 0;
    return out;
  }

  finish(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}

/** ReserveRequest{order_id=1, items=2 [LineItem{sku_id=1, quantity=2}], user_id=3, ttl_seconds=4}. */
export function reserveFrame(w: Writer, orderId: string, items: ReadonlyArray<readonly [string, number]>, userId = ''): Buffer {
  w.string(1, orderId);
  for (const [sku, qty] of items) {
    const inner = new Writer().string(1, sku).uint(2, qty).finish();
    w.bytes(2, inner);
  }
  if (userId) w.string(3, userId);
  return w.framed();
}

/** ConfirmRequest{order_id=1}. */
export function confirmFrame(w: Writer, orderId: string): Buffer {
  return w.string(1, orderId).framed();
}

/** ReleaseRequest{order_id=1, reason=2}: release everything still held. */
export function releaseFrame(w: Writer, orderId: string, reason: number): Buffer {
  return w.string(1, orderId).uint(2, reason).framed();
}

/**
 * A Reserve frame with a fixed-width decimal counter inside its order id: `patch(n)` writes n into
 * a copy, so the frame length never changes and nothing is encoded per call.
 */
export class ReserveTemplate {
  readonly template: Buffer;
  private readonly offset: number;

  constructor(readonly orderPrefix: string, readonly digits: number, sku: string, quantity: number) {
    const placeholder = '0'.repeat(digits);
    const frameBytes = reserveFrame(new Writer(), orderPrefix + placeholder, [[sku, quantity]]);
    this.template = frameBytes;
    // The order id is the first field: 5 frame bytes, tag, length (one byte up to 127 chars).
    const idStart = frameBytes.indexOf(Buffer.from(orderPrefix + placeholder, 'latin1'));
    if (idStart < 0) throw new Error('order id not found in the template');
    this.offset = idStart + orderPrefix.length;
  }

  /** A fresh frame whose order id ends with n, zero-padded to `digits`. */
  patch(n: number): Buffer {
    const out = Buffer.allocUnsafe(this.template.length);
    this.template.copy(out);
    let v = n;
    for (let i = this.offset + this.digits - 1; i >= this.offset; i--) {
      out[i] = 48 + (v % 10);
      v = Math.floor(v / 10);
    }
    return out;
  }

  orderId(n: number): string {
    return this.orderPrefix + String(n).padStart(this.digits, '0');
  }
}

/** Reads a varint at pos; returns [value, next pos]. Values up to 2^53 are exact. */
function varintAt(buf: Buffer, pos: number): [number, number] {
  let result = 0;
  let mul = 1;
  for (;;) {
    if (pos >= buf.length) return [result, -1];
    const b = buf[pos++];
    result += (b & 0x7f) * mul;
    if (b < 0x80) return [result, pos];
    mul *= 128;
  }
}

/**
 * Calls `visit(field, wireType, value, start, end)` for every top-level field of a message in
 * buf[start, end): value is the varint for wire type 0, the length for wire type 2 (start/end then
 * bound the payload). Stops at the first malformed byte.
 */
export function scanFields(
  buf: Buffer,
  start: number,
  end: number,
  visit: (field: number, wireType: number, value: number, from: number, to: number) => void,
): void {
  let pos = start;
  while (pos < end) {
    const [tag, p1] = varintAt(buf, pos);
    if (p1 < 0) return;
    const field = Math.floor(tag / 8);
    const wt = tag & 7;
    if (wt === 0) {
      const [v, p2] = varintAt(buf, p1);
      if (p2 < 0) return;
      visit(field, wt, v, p1, p2);
      pos = p2;
    } else if (wt === 2) {
      const [len, p2] = varintAt(buf, p1);
      if (p2 < 0 || p2 + len > end) return;
      visit(field, wt, len, p2, p2 + len);
      pos = p2 + len;
    } else if (wt === 1) {
      pos = p1 + 8;
    } else if (wt === 5) {
      pos = p1 + 4;
    } else {
      return;
    }
  }
}

/** The message inside the first gRPC frame of a response body (or undefined). */
export function unframe(body: Buffer | undefined): [number, number] | undefined {
  if (!body || body.length < 5) return undefined;
  const len = body.readUInt32BE(1);
  if (body.length < 5 + len) return undefined;
  return [5, 5 + len];
}

/** ReserveResponse: outcome (1 RESERVED, 2 REJECTED, 0 unknown) and the `replayed` flag. */
export function readReserve(body: Buffer | undefined): { outcome: number; replayed: boolean } {
  const at = unframe(body);
  let outcome = 0;
  let replayed = false;
  if (at && body) {
    scanFields(body, at[0], at[1], (field, wt, value) => {
      if (field === 1 && wt === 0) outcome = value;
      else if (field === 4 && wt === 0) replayed = value === 1;
    });
  }
  return { outcome, replayed };
}

/** ReleaseResponse: units released by this call (sum of `released[].quantity`) and `replayed`. */
export function readRelease(body: Buffer | undefined): { units: number; replayed: boolean } {
  const at = unframe(body);
  let units = 0;
  let replayed = false;
  if (at && body) {
    scanFields(body, at[0], at[1], (field, wt, value, from, to) => {
      if (field === 2 && wt === 2) {
        scanFields(body, from, to, (f, w, v) => {
          if (f === 2 && w === 0) units += v;
        });
      } else if (field === 3 && wt === 0) replayed = value === 1;
    });
  }
  return { units, replayed };
}
