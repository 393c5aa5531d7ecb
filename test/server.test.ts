import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { ReserveOutcome, ReserveRequest, ReserveResponse } from '../gen/inventory/v1/inventory.pb';
import { ListPartitionsRequest } from '../gen/inventory/v1/admin.pb';
import { AdminClient } from '../client';
import { ADMIN_SERVICE, INVENTORY_SERVICE } from '../server/app';
import { FIELD_KEY, REASON_KEY } from '../server/errors';
import { testConfig, uniqueName } from './helpers/config';
import { expectCode, healthClient, listServicesByReflection, unary } from './helpers/grpc';
import { TestServer, startTestServer } from './helpers/server';

describe('gRPC server', () => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer({ config: testConfig(uniqueName('server')) });
  });
  after(() => server.close());

  it('answers the standard health check on both ports', async () => {
    for (const [address, service] of [
      [server.inventoryAddress, INVENTORY_SERVICE],
      [server.adminAddress, ADMIN_SERVICE],
    ]) {
      const client = healthClient(address);
      const overall = await unary<{ status: string }>(client, 'Check', { service: '' });
      const own = await unary<{ status: string }>(client, 'Check', { service });
      client.close();
      assert.equal(overall.status, 'SERVING');
      assert.equal(own.status, 'SERVING');
    }
  });

  it('lists each port’s services through server reflection', async () => {
    const inventory = await listServicesByReflection(server.inventoryAddress);
    const admin = await listServicesByReflection(server.adminAddress);
    assert.ok(inventory.includes(INVENTORY_SERVICE), inventory.join());
    assert.ok(!inventory.includes(ADMIN_SERVICE), 'the inventory port must not advertise AdminService');
    assert.ok(admin.includes(ADMIN_SERVICE), admin.join());
    assert.ok(inventory.includes('grpc.health.v1.Health'));
  });

  it('refuses admin calls without the bearer token', async () => {
    const err = await expectCode(unary(server.admin, 'listPartitions', ListPartitionsRequest.fromPartial({})), grpc.status.UNAUTHENTICATED);
    assert.equal(err.metadata.get(REASON_KEY)[0], 'UNAUTHENTICATED');
    const md = new grpc.Metadata();
    md.set('authorization', 'Bearer wrong-token-value');
    await expectCode(unary(server.admin, 'listPartitions', ListPartitionsRequest.fromPartial({}), md), grpc.status.UNAUTHENTICATED);
  });

  it('answers a request it cannot decode INVALID_ARGUMENT (UNDECODABLE_REQUEST, or the int64 field out of range), not INTERNAL', async () => {
    const raw = (address: string, path: string, body: Buffer, metadata = new grpc.Metadata()) => {
      const client = new grpc.Client(address, grpc.credentials.createInsecure());
      return new Promise<unknown>((resolve, reject) =>
        client.makeUnaryRequest(path, (b: Buffer) => b, (b: Buffer) => b, body, metadata, (err, res) => {
          client.close();
          return err ? reject(err) : resolve(res);
        }),
      );
    };
    // Bytes that are no protobuf message at all.
    const garbage = await expectCode(raw(server.inventoryAddress, '/inventory.v1.InventoryService/Reserve', Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f, 0x07])), grpc.status.INVALID_ARGUMENT);
    assert.equal(garbage.metadata.get(REASON_KEY)[0], 'UNDECODABLE_REQUEST');
    // AdjustStock with delta = 2^63 - 1: an int64 no JavaScript number holds exactly.
    const int64Max = Buffer.from([0x0a, 0x01, 0x72, 0x12, 0x01, 0x73, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    const huge = await expectCode(raw(server.adminAddress, '/inventory.v1.AdminService/AdjustStock', int64Max, server.adminAuth()), grpc.status.INVALID_ARGUMENT);
    assert.equal(huge.metadata.get(REASON_KEY)[0], 'INVALID_FIELD');
    assert.equal(huge.metadata.get(FIELD_KEY)[0], 'delta');
    assert.match(huge.details, /^delta: 9223372036854775807 is out of range/);
  });

  it('serves Prometheus metrics that count answered calls', async () => {
    const res = await fetch(`http://127.0.0.1:${server.app.metricsPort}/metrics`);
    const text = await res.text();
    assert.equal(res.status, 200);
    assert.match(text, /inventory_rpc_calls_total\{service="AdminService",method="listPartitions",code="UNAUTHENTICATED"\} 2/);
  });
});

describe('graceful shutdown', () => {
  it('finishes an in-flight call, then refuses new ones', async () => {
    let entered!: () => void;
    const inFlight = new Promise<void>((resolve) => (entered = resolve));
    const server = await startTestServer({
      config: testConfig(uniqueName('shutdown')),
      inventory: {
        // A slow handler standing in for a Reserve that is half way when SIGTERM arrives.
        reserve: async () => {
          entered();
          await new Promise((resolve) => setTimeout(resolve, 300));
          return ReserveResponse.fromPartial({ outcome: ReserveOutcome.RESERVE_OUTCOME_RESERVED });
        },
      },
    });
    const call = unary<ReserveResponse>(server.inventory, 'reserve', ReserveRequest.fromPartial({ orderId: 'o-1' }));
    await inFlight;
    const stopped = server.app.stop();
    const answer = await call;
    assert.equal(answer.outcome, ReserveOutcome.RESERVE_OUTCOME_RESERVED);
    await stopped;
    const refused = await unary(server.inventory, 'reserve', ReserveRequest.fromPartial({ orderId: 'o-2' }), new grpc.Metadata(), {
      deadline: Date.now() + 1000,
    }).then(
      () => assert.fail('a call after shutdown must not be served'),
      (err: grpc.ServiceError) => err.code,
    );
    // A closed port surfaces as UNAVAILABLE, or DEADLINE_EXCEEDED while the client retries the connect.
    assert.ok([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED].includes(refused), grpc.status[refused]);
    server.inventory.close();
    server.admin.close();
  });
});

describe('call context', () => {
  it('aborts the handler’s signal when the client’s deadline passes', async () => {
    let seen: AbortSignal | undefined;
    const server = await startTestServer({
      config: testConfig(uniqueName('abort')),
      inventory: {
        reserve: (_req, ctx) =>
          new Promise((resolve) => {
            seen = ctx.signal;
            ctx.signal.addEventListener('abort', () => resolve(ReserveResponse.fromPartial({})));
          }),
      },
    });
    try {
      const call = unary(server.inventory, 'reserve', ReserveRequest.fromPartial({ orderId: 'o' }), new grpc.Metadata(), { deadline: Date.now() + 200 });
      await expectCode(call, grpc.status.DEADLINE_EXCEEDED);
      await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal(seen?.aborted, true);
    } finally {
      await server.close();
    }
  });
});

describe('TLS', () => {
  it('serves AdminService over TLS when given a certificate, and refuses plaintext', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'inv-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    const server = await startTestServer({ config: testConfig(uniqueName('tls'), { ADMIN_TLS_CERT: cert, ADMIN_TLS_KEY: key }) });
    const address = `localhost:${server.app.adminPort}`;
    const secure = new AdminClient({ address, token: 'not-the-admin-token', credentials: grpc.credentials.createSsl(readFileSync(cert)) });
    try {
      // Over TLS the call reaches the service (which then wants the right token).
      await expectCode(secure.listPartitions(), grpc.status.UNAUTHENTICATED);
      const plain = await unary(server.admin, 'listPartitions', ListPartitionsRequest.fromPartial({}), new grpc.Metadata(), {
        deadline: Date.now() + 1000,
      }).then(
        () => assert.fail('plaintext must not be served on a TLS port'),
        (err: grpc.ServiceError) => err.code,
      );
      assert.ok([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED].includes(plain), grpc.status[plain]);
    } finally {
      secure.close();
      await server.close();
    }
  });
});
