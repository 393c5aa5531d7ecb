import path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';

/** Promise form of a unary call on any generated client, with metadata and call options. */
export function unary<Res>(
  client: grpc.Client,
  method: string,
  request: unknown,
  metadata: grpc.Metadata = new grpc.Metadata(),
  options: grpc.CallOptions = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, Function>)[method];
    fn.call(client, request, metadata, options, (err: grpc.ServiceError | null, res: Res) => (err ? reject(err) : resolve(res)));
  });
}

/** Expects a call to fail with `code`; returns the error for further checks. */
export async function expectCode(promise: Promise<unknown>, code: grpc.status): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    const e = err as grpc.ServiceError;
    if (e.code !== code) throw new Error(`expected ${grpc.status[code]}, got ${grpc.status[e.code]}: ${e.message}`);
    return e;
  }
  throw new Error(`expected ${grpc.status[code]}, but the call succeeded`);
}

const loadOptions = { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true };

function clientConstructor(protoFile: string, servicePath: string[], includeDirs: string[] = []): grpc.ServiceClientConstructor {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(protoFile, { ...loadOptions, includeDirs }));
  return servicePath.reduce((obj: any, key) => obj[key], pkg) as grpc.ServiceClientConstructor;
}

/** A client of the standard grpc.health.v1.Health service. */
export function healthClient(address: string, options: Partial<grpc.ClientOptions> = {}): grpc.Client {
  const Health = clientConstructor(healthProtoPath, ['grpc', 'health', 'v1', 'Health']);
  return new Health(address, grpc.credentials.createInsecure(), options);
}

/** Lists the services a server exposes through grpc.reflection.v1 server reflection. */
export function listServicesByReflection(address: string): Promise<string[]> {
  const protoFile = path.join(
    path.dirname(require.resolve('@grpc/reflection/package.json')),
    'build/proto/grpc/reflection/v1/reflection.proto',
  );
  const Reflection = clientConstructor(protoFile, ['grpc', 'reflection', 'v1', 'ServerReflection']);
  const client = new Reflection(address, grpc.credentials.createInsecure());
  return new Promise((resolve, reject) => {
    const stream = (client as any).ServerReflectionInfo();
    stream.on('data', (res: any) => {
      resolve(res.list_services_response.service.map((s: { name: string }) => s.name));
      stream.end();
      client.close();
    });
    stream.on('error', reject);
    stream.write({ list_services: '' });
  });
}
