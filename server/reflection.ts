import { ReflectionService } from '@grpc/reflection';
import { protoDefinition } from './proto-definition';

export const HEALTH_SERVICE = 'grpc.health.v1.Health';

/**
 * Server reflection for grpcurl-style tools, listing only the services a port really serves
 * (its API service and health) so a client of one port is not shown the other's.
 */
export function reflectionFor(services: string[]): ReflectionService {
  return new ReflectionService(protoDefinition(), { services: [...services, HEALTH_SERVICE] });
}
