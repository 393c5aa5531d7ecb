/**
 * The bare transport ceiling: a plain grpc-js Server serving InventoryService's Reserve (and
 * Confirm, Release) with the generated service definition (ts-proto's codec: each request decoded,
 * each answer encoded, as any grpc-js server of this proto does), handlers that call back with the
 * echo server's constant answers (echo-answers.ts: the same response bytes), and nothing else: no
 * interceptors, metrics, health, reflection, admission, validation, promise adapter or logger.
 * What our own stack costs per call is the echo server (echo-server.ts, same answers on startApp)
 * against this one; what the flash sale costs is it against this one.
 *
 * BARE_CODEC=raw swaps the codec for identity serializers answering a pre-encoded buffer: the
 * transport without even protobuf, to see what the codec itself costs (not used by the bench rows).
 *
 * It has no health service: bench/procs.ts probes it with a Reserve call. It prints the start-up
 * line the bench waits for ("inventory core listening"), as pino would. One process: WORKERS is
 * ignored. Env: HOST, INVENTORY_PORT.
 */
import { Server, ServerCredentials, ServerUnaryCall, UntypedServiceImplementation, sendUnaryData } from '@grpc/grpc-js';
import { InventoryServiceService, ReserveResponse } from '../gen/inventory/v1/inventory.pb';
import { CONFIRMED, RELEASED, RESERVED } from './echo-answers';

const host = process.env.HOST || '127.0.0.1';
const port = Number(process.env.INVENTORY_PORT || '50051');
const raw = process.env.BARE_CODEC === 'raw';

const server = new Server();
if (raw) {
  const identity = (b: Buffer) => b;
  const answer = Buffer.from(ReserveResponse.encode(RESERVED).finish());
  const method = { requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity };
  server.addService(
    { reserve: { ...method, path: InventoryServiceService.reserve.path } },
    { reserve: (_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => callback(null, answer) } as UntypedServiceImplementation,
  );
} else {
  server.addService(InventoryServiceService, {
    reserve: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => callback(null, RESERVED),
    confirm: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => callback(null, CONFIRMED),
    release: (_call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => callback(null, RELEASED),
  } as UntypedServiceImplementation);
}

server.bindAsync(`${host}:${port}`, ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    process.stderr.write(`bare echo server: cannot listen on ${host}:${port}: ${err.message}\n`);
    process.exit(1);
  }
  const codec = raw ? 'raw' : 'ts-proto';
  process.stdout.write(`${JSON.stringify({ level: 30, time: Date.now(), pid: process.pid, inventoryPort: bound, codec, msg: 'inventory core listening' })}\n`);
});

const stop = () => server.tryShutdown(() => process.exit(0));
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
