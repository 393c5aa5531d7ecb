import assert from 'node:assert/strict';
import http2 from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { RowDataPacket } from 'mysql2/promise';
import { FIELD_KEY, REASON_KEY } from '../server/errors';
import { expectCode } from './helpers/grpc';
import { InventoryFixture, startInventory } from './helpers/inventory';

/** Protobuf wire bytes by hand: the generated encoders cannot write an int64 beyond 2^53. */
function varint(value: bigint): Buffer {
  let v = BigInt.asUintN(64, value);
  const bytes: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    bytes.push(v > 0n ? low | 0x80 : low);
  } while (v > 0n);
  return Buffer.from(bytes);
}
const stringField = (n: number, s: string) => Buffer.concat([varint(BigInt((n << 3) | 2)), varint(BigInt(Buffer.byteLength(s))), Buffer.from(s)]);
const int64Field = (n: number, v: bigint) => Buffer.concat([varint(BigInt(n << 3)), varint(v)]);

/** SetStockRequest / AdjustStockRequest: request_id 1, sku_id 2, on_hand or delta 3, reason 4. */
const stockBody = (requestId: string, sku: string, value: bigint) =>
  Buffer.concat([stringField(1, requestId), stringField(2, sku), int64Field(3, value), stringField(4, 'count')]);

/**
 * A request that cannot be decoded is the caller's fault: INVALID_ARGUMENT, naming the field when
 * one is to blame (an int64 beyond what the server takes), and nothing changes.
 */
describe('requests that cannot be decoded', function () {
  this.timeout(30_000);
  let inv: InventoryFixture;

  before(async () => {
    inv = await startInventory('decode');
  });
  after(() => inv.close());

  /** A unary call with a raw body, past the generated encoders. */
  function raw(address: string, path: string, body: Buffer, metadata = new grpc.Metadata()): Promise<unknown> {
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    return new Promise((resolve, reject) =>
      client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, metadata, (err, res) => {
        client.close();
        return err ? reject(err) : resolve(res);
      }),
    );
  }
  const admin = (method: string, body: Buffer) => raw(inv.server.adminAddress, `/inventory.v1.AdminService/${method}`, body, inv.server.adminAuth());

  async function stockRow(sku: string): Promise<{ on_hand: number } | undefined> {
    const [rows] = await inv.services.mysql.query<RowDataPacket[]>('SELECT on_hand FROM skus WHERE sku_id = ?', [sku]);
    return rows[0] as { on_hand: number } | undefined;
  }
  async function claimed(requestId: string): Promise<boolean> {
    const [rows] = await inv.services.mysql.query<RowDataPacket[]>('SELECT 1 FROM admin_requests WHERE request_id = ?', [requestId]);
    return rows.length > 0;
  }

  it('an int64 beyond 2^53 (on_hand 2^63-1, delta -2^63) is INVALID_ARGUMENT naming the field, and changes nothing', async () => {
    await admin('SetStock', stockBody('dec-set-1', 'dec-a', 10n));
    assert.equal(Number((await stockRow('dec-a'))!.on_hand), 10);

    const cases: Array<[string, string, bigint, string]> = [
      ['SetStock', 'dec-set-2', 9223372036854775807n, 'on_hand'],
      ['AdjustStock', 'dec-adj-1', -(2n ** 63n), 'delta'],
      ['AdjustStock', 'dec-adj-2', 2n ** 53n, 'delta'],
    ];
    for (const [method, requestId, value, field] of cases) {
      const err = await expectCode(admin(method, stockBody(requestId, 'dec-a', value)), grpc.status.INVALID_ARGUMENT);
      assert.equal(err.metadata.get(FIELD_KEY)[0], field, `${method} ${value}`);
      assert.equal(err.metadata.get(REASON_KEY)[0], 'INVALID_FIELD');
      assert.match(err.details, new RegExp(`^${field}: ${value} is out of range`));
      assert.equal(await claimed(requestId), false);
    }
    assert.equal(Number((await stockRow('dec-a'))!.on_hand), 10);
    // A SKU that does not exist yet is not created by a refused SetStock.
    await expectCode(admin('SetStock', stockBody('dec-set-3', 'dec-new', 2n ** 63n - 1n)), grpc.status.INVALID_ARGUMENT);
    assert.equal(await stockRow('dec-new'), undefined);
    assert.equal(inv.services.cache.sku('dec-new'), undefined);
  });

  it('bytes that are no message at all are UNDECODABLE_REQUEST, with no field', async () => {
    const err = await expectCode(
      raw(inv.server.inventoryAddress, '/inventory.v1.InventoryService/Reserve', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x07])),
      grpc.status.INVALID_ARGUMENT,
    );
    assert.equal(err.metadata.get(REASON_KEY)[0], 'UNDECODABLE_REQUEST');
    assert.equal(err.metadata.get(FIELD_KEY).length, 0);
  });

  describe('a frame whose length prefix lies', () => {
    /** A gRPC frame's 5-byte prefix (not compressed) claiming `claimed` bytes, then `body`. */
    const frame = (claimed: number, body: Buffer) => {
      const prefix = Buffer.alloc(5);
      prefix.writeUInt32BE(claimed, 1);
      return Buffer.concat([prefix, body]);
    };
    /** Sends one gRPC request over raw HTTP/2: a frame claiming `claimed` bytes with `body`, or the bytes given. */
    function framed(path: string, claimed: number, body: Buffer, metadata: Record<string, string> = {}, payload = frame(claimed, body)): Promise<{ status: number; message: string; reason?: string; field?: string }> {
      const session = http2.connect(`http://${inv.server.adminAddress}`);
      return new Promise((resolve, reject) => {
        session.on('error', reject);
        const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...metadata });
        let headers: http2.IncomingHttpHeaders = {};
        stream.on('response', (h) => (headers = h));
        stream.on('trailers', (t) => (headers = { ...headers, ...t }));
        stream.on('data', () => {});
        stream.on('error', reject);
        stream.on('close', () => {
          session.close();
          resolve({
            status: Number(headers['grpc-status']),
            message: decodeURIComponent(String(headers['grpc-message'] ?? '')),
            reason: headers[REASON_KEY] as string | undefined,
            field: headers[FIELD_KEY] as string | undefined,
          });
        });
        stream.end(payload);
      });
    }
    const auth = () => ({ authorization: String(inv.server.adminAuth().get('authorization')[0]) });

    it('claiming more bytes than follow is INVALID_ARGUMENT, not UNIMPLEMENTED', async () => {
      const body = stockBody('dec-frame-1', 'dec-a', 5n);
      const answer = await framed('/inventory.v1.AdminService/SetStock', body.length + 10, body, auth());
      assert.equal(grpc.status[answer.status], 'INVALID_ARGUMENT', answer.message);
      assert.equal(answer.reason, 'UNDECODABLE_REQUEST');
      assert.equal(await claimed('dec-frame-1'), false);
    });

    it('claiming fewer bytes than follow is INVALID_ARGUMENT, and changes nothing', async () => {
      // The claimed bytes end inside a field (a truncated message); what follows is a second frame.
      const body = stockBody('dec-frame-2', 'dec-a', 5n);
      const answer = await framed('/inventory.v1.AdminService/SetStock', body.length - 3, body, auth());
      assert.equal(grpc.status[answer.status], 'INVALID_ARGUMENT', answer.message);
      assert.equal(await claimed('dec-frame-2'), false);
      assert.equal(Number((await stockRow('dec-a'))!.on_hand), 10);
    });

    it('a second whole message in a unary call is INVALID_ARGUMENT, and neither is applied', async () => {
      const first = stockBody('dec-frame-3', 'dec-a', 7n);
      const second = stockBody('dec-frame-4', 'dec-a', 8n);
      const answer = await framed('/inventory.v1.AdminService/SetStock', 0, first, auth(), Buffer.concat([frame(first.length, first), frame(second.length, second)]));
      assert.equal(grpc.status[answer.status], 'INVALID_ARGUMENT', answer.message);
      assert.equal(answer.reason, 'UNDECODABLE_REQUEST');
      assert.match(answer.message, /a second message/);
      assert.equal(await claimed('dec-frame-3'), false);
      assert.equal(Number((await stockRow('dec-a'))!.on_hand), 10);
    });

    it('an honest frame still goes through', async () => {
      const body = stockBody('dec-frame-5', 'dec-a', 12n);
      const answer = await framed('/inventory.v1.AdminService/SetStock', body.length, body, auth());
      assert.equal(answer.status, grpc.status.OK, answer.message);
      assert.equal(Number((await stockRow('dec-a'))!.on_hand), 12);
    });
  });
});
