import path from 'node:path';
import * as protoLoader from '@grpc/proto-loader';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { ReflectionService } from '@grpc/reflection';

/** proto/ of this checkout (compiled code runs from dist/server/). */
export const PROTO_DIR = path.resolve(__dirname, '..', '..', 'proto');

export const HEALTH_SERVICE = 'grpc.health.v1.Health';

let packageDefinition: protoLoader.PackageDefinition | undefined;

/**
 * Server reflection for grpcurl-style tools, listing only the services a port really serves
 * (its API service and health) so a client of one port is not shown the other's.
 */
export function reflectionFor(services: string[]): ReflectionService {
  packageDefinition ??= protoLoader.loadSync(
    [path.join(PROTO_DIR, 'inventory/v1/inventory.proto'), path.join(PROTO_DIR, 'inventory/v1/admin.proto'), healthProtoPath],
    { includeDirs: [PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true },
  );
  return new ReflectionService(packageDefinition, { services: [...services, HEALTH_SERVICE] });
}
