import { readFileSync } from 'node:fs';
import { Metadata, Server, ServerCredentials } from '@grpc/grpc-js';
import { HealthImplementation } from 'grpc-health-check';
import { AdminServiceService } from '../gen/inventory/v1/admin.pb';
import { InventoryServiceService } from '../gen/inventory/v1/inventory.pb';
import { adminTokenCheck } from './admin-token';
import { Config, TlsFiles } from './config';
import { unauthenticated, unimplemented } from './errors';
import { Logger, createLogger } from '../kernel/logger';
import { HttpRoute, Metrics, startMetricsServer } from './metrics';
import { oneRequestMessage } from './framing';
import { outOfRangeField } from './proto-definition';
import { reflectionFor } from './reflection';
import { BindOptions, Handlers, UnaryMethodDefinition, bindService, decodingSafely } from './transport';
import { HealthReport, ServingStatus } from './health';
import { InFlightLimit } from './in-flight';

export const INVENTORY_SERVICE = 'inventory.v1.InventoryService';
export const ADMIN_SERVICE = 'inventory.v1.AdminService';

export type InventoryHandlers = Handlers<typeof InventoryServiceService>;
export type AdminHandlers = Handlers<typeof AdminServiceService>;

/** What the server can do now: a report, and news when it changes (HealthMonitor). */
export interface HealthSource {
  report(): HealthReport;
  on(event: 'change', listener: (report: HealthReport) => void): unknown;
}

export interface AppOptions {
  readonly config: Config;
  readonly logger?: Logger;
  /** Metrics registry; a fresh one when not given. */
  readonly metrics?: Metrics;
  /** Handlers to serve; a method left out answers UNIMPLEMENTED. */
  readonly inventory?: Partial<InventoryHandlers>;
  readonly admin?: Partial<AdminHandlers>;
  /** What the dependencies allow (server/health.ts): sets both ports' health and /healthz; always SERVING without it. */
  readonly health?: HealthSource;
  /** More paths on the metrics port (the web console, server/console-http.ts). */
  readonly http?: HttpRoute;
  /** Closed, in order, after the servers have drained (clients of Redis, etcd, MySQL, ...). */
  readonly closers?: Array<() => Promise<void> | void>;
}

/** A running server: both gRPC ports, the metrics port, and a graceful stop. */
export interface App {
  readonly inventoryPort: number;
  readonly adminPort: number;
  readonly metricsPort: number;
  readonly metrics: Metrics;
  readonly logger: Logger;
  /**
   * Graceful shutdown: health turns NOT_SERVING, the ports stop accepting calls, in-flight calls
   * finish (cut after config.shutdownGraceMs), then the clients are closed. Safe to call twice.
   */
  stop(): Promise<void>;
}

/** Starts InventoryService and AdminService on their ports, with health, reflection and metrics. */
export async function startApp(options: AppOptions): Promise<App> {
  const { config } = options;
  const logger = options.logger ?? createLogger(config.logLevel);
  const metrics = options.metrics ?? new Metrics();

  // Only InventoryService is shed: health, reflection and AdminService stay reachable under load.
  const inFlight = new InFlightLimit(config.maxInFlight);
  metrics.observeInFlight(inFlight);
  const inventory = new GrpcPort(INVENTORY_SERVICE, logger);
  inventory.serve(InventoryServiceService, options.inventory, { serviceName: 'InventoryService', logger, metrics, inFlight });
  const admin = new GrpcPort(ADMIN_SERVICE, logger);
  admin.serve(AdminServiceService, options.admin, {
    serviceName: 'AdminService',
    logger,
    metrics,
    authorize: bearerToken(config.adminToken),
  });

  const closers: Array<() => Promise<void> | void> = [];
  const health = options.health;
  if (health) {
    const apply = (report: HealthReport) => {
      inventory.setServing(report.inventory);
      admin.setServing(report.admin);
    };
    apply(health.report());
    health.on('change', apply);
  }
  try {
    const inventoryPort = await inventory.listen(config.host, config.inventoryPort, config.inventoryTls);
    closers.push(() => inventory.close(config.shutdownGraceMs));
    const adminPort = await admin.listen(config.host, config.adminPort, config.adminTls);
    closers.push(() => admin.close(config.shutdownGraceMs));
    const metricsServer = await startMetricsServer(metrics, config.host, config.metricsPort, health, options.http);
    closers.push(() => new Promise<void>((resolve) => metricsServer.close(() => resolve())));
    closers.push(...(options.closers ?? []));

    logger.info({ inventoryPort, adminPort, metricsPort: metricsServer.port }, 'inventory core listening');
    let stopping: Promise<void> | undefined;
    return {
      inventoryPort,
      adminPort,
      metricsPort: metricsServer.port,
      metrics,
      logger,
      stop: () => (stopping ??= runClosers(closers, logger)),
    };
  } catch (err) {
    inventory.server.forceShutdown();
    admin.server.forceShutdown();
    throw err;
  }
}

/** One gRPC server with its health and reflection services. */
class GrpcPort {
  readonly server = new Server({ 'grpc.max_receive_message_length': 4 * 1024 * 1024, interceptors: [oneRequestMessage] });
  private readonly health: HealthImplementation;
  private closing = false;

  constructor(private readonly serviceName: string, private readonly logger: Logger) {
    this.health = new HealthImplementation({ '': 'SERVING', [serviceName]: 'SERVING' });
    this.health.addToServer(this.server);
    reflectionFor([serviceName]).addToServer(this.server);
  }

  /** Adds the API service; methods without a handler answer UNIMPLEMENTED. */
  serve<D extends Record<string, UnaryMethodDefinition<any, any>>>(definition: D, handlers: Partial<Handlers<D>> | undefined, options: BindOptions): void {
    this.server.addService(decodingSafely(definition, outOfRangeField), bindService(definition, withUnimplemented(definition, options.serviceName, handlers), options));
  }

  /** Binds the port, with TLS when certificate and key files are given. */
  listen(host: string, port: number, tls?: TlsFiles): Promise<number> {
    const credentials = tls
      ? ServerCredentials.createSsl(null, [{ cert_chain: readFileSync(tls.certFile), private_key: readFileSync(tls.keyFile) }], false)
      : ServerCredentials.createInsecure();
    return new Promise((resolve, reject) => {
      this.server.bindAsync(`${host}:${port}`, credentials, (err, bound) =>
        err ? reject(new Error(`cannot listen for ${this.serviceName} on ${host}:${port}: ${err.message}`)) : resolve(bound),
      );
    });
  }

  /** The service's health as the dependencies allow it; NOT_SERVING for good once closing. */
  setServing(status: ServingStatus): void {
    if (this.closing) return;
    this.health.setStatus('', status);
    this.health.setStatus(this.serviceName, status);
  }

  /** Stops accepting calls, lets in-flight ones finish, and cuts them after graceMs. */
  close(graceMs: number): Promise<void> {
    this.health.setStatus('', 'NOT_SERVING');
    this.health.setStatus(this.serviceName, 'NOT_SERVING');
    this.closing = true;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.logger.warn({ service: this.serviceName, graceMs }, 'grace period over: cutting in-flight calls');
        this.server.forceShutdown();
        resolve();
      }, graceMs);
      this.server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }
}

async function runClosers(closers: Array<() => Promise<void> | void>, logger: Logger): Promise<void> {
  // The gRPC ports close together (drain in parallel), the rest in order after them.
  const [inventory, admin, ...rest] = closers;
  await Promise.all([inventory(), admin()]);
  for (const close of rest) {
    try {
      await close();
    } catch (err) {
      logger.warn({ err }, 'error while closing');
    }
  }
  logger.info('inventory core stopped');
}

function withUnimplemented<D extends object, H>(definition: D, serviceName: string, given: Partial<H> | undefined): H {
  const handlers: Record<string, unknown> = {};
  for (const method of Object.keys(definition)) {
    handlers[method] = (given as Record<string, unknown> | undefined)?.[method] ??
      (() => Promise.reject(unimplemented(`${serviceName}/${method}`)));
  }
  return handlers as H;
}

/** Refuses calls without `authorization: Bearer <token>` (server/admin-token.ts). */
function bearerToken(token: string): (metadata: Metadata) => void {
  const valid = adminTokenCheck(token);
  return (metadata) => {
    const given = metadata.get('authorization')[0];
    if (!valid(typeof given === 'string' ? given : undefined)) {
      throw unauthenticated('AdminService requires "authorization: Bearer <ADMIN_TOKEN>" metadata');
    }
  };
}
