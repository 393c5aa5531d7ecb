import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { FieldDescriptor, OutOfRange, findOutOfRange } from './out-of-range';

/** proto/ of this checkout (compiled code runs from dist/server/). */
export const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto');

let loaded: protoLoader.PackageDefinition | undefined;

/**
 * The API's .proto files (and health's) loaded by @grpc/proto-loader, once: what server reflection
 * describes, and a second decoder for requests the generated one refused. Field names as in the
 * .proto and int64s as decimal strings, so nothing of what the caller sent is lost.
 */
export function protoDefinition(): protoLoader.PackageDefinition {
  loaded ??= protoLoader.loadSync(
    [path.join(PROTO_DIR, 'inventory/v1/inventory.proto'), path.join(PROTO_DIR, 'inventory/v1/admin.proto'), healthProtoPath],
    { includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
  );
  return loaded;
}

/**
 * The int64 field of a request to `methodPath` ('/inventory.v1.AdminService/SetStock') whose value
 * this server cannot take, or undefined when the body is no such message at all (or the method
 * unknown).
 */
export function outOfRangeField(methodPath: string, body: Buffer): OutOfRange | undefined {
  const definition = protoDefinition();
  const [, service, method] = methodPath.split('/');
  const methods = definition[service] as Record<string, protoLoader.MethodDefinition<object, object>> | undefined;
  const m = methods?.[method];
  if (!m?.requestType) return undefined;
  let decoded: Record<string, unknown>;
  try {
    decoded = m.requestDeserialize(body) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  // The request's descriptor names it within its package; this API's requests live in the service's.
  const requestName = `${service.slice(0, service.lastIndexOf('.') + 1)}${(m.requestType.type as { name: string }).name}`;
  return findOutOfRange(decoded, requestName, (fullName) => (definition[fullName] as { type?: { field?: FieldDescriptor[] } } | undefined)?.type?.field);
}
