import { servedWith } from '../../server/console';
import { rmSync } from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import {
  GetReservationResponse,
  ReleaseReason,
  ReleaseResponse,
  ReserveRequest,
  ReserveResponse,
  ConfirmResponse,
  GetStockResponse,
} from '../../gen/inventory/v1/inventory.pb';
import { CreatedPartition } from '../../allocator/partitions';
import { StockMessageApplier } from '../../mq/apply';
import { Config } from '../../server/config';
import { Logger, createLogger } from '../../kernel/logger';
import { Metrics } from '../../server/metrics';
import { Services, createServices } from '../../server/services';
import { AdminClient, InventoryClient, InventoryError } from '../../client';
import { testConfig, uniqueName } from './config';
import { TestServer, startTestServer } from './server';

/** A real server (in process, free ports) on its own Redis prefix and etcd namespace. */
export interface InventoryFixture {
  readonly server: TestServer;
  readonly services: Services;
  readonly config: Config;
  readonly metrics: Metrics;
  /**
   * The typed clients (client/) of the server, as order services and operators call it. They do not
   * retry and wait as long as a test may, so tests see each answer as the server gave it.
   */
  readonly client: InventoryClient;
  readonly admin: AdminClient;
  /** Registers a SKU and carves `units` into `partitions` partitions. */
  stock(sku: string, units: number, partitions: number, perUserLimit?: number): Promise<CreatedPartition[]>;
  reserve(orderId: string, items: Array<[string, number]>, extra?: Partial<ReserveRequest>): Promise<ReserveResponse>;
  confirm(orderId: string): Promise<ConfirmResponse>;
  release(orderId: string, reason: ReleaseReason, items?: Array<[string, number]>, releaseId?: string): Promise<ReleaseResponse>;
  getReservation(orderId: string): Promise<GetReservationResponse>;
  getStock(...skus: string[]): Promise<GetStockResponse>;
  /** Sum of live avail over every partition ever created for a SKU (live or not). */
  availOf(partitions: readonly CreatedPartition[]): Promise<number>;
  close(): Promise<void>;
}

/** As long as a test may wait for one call (the raw grpc-js calls the fixture made before had no deadline). */
const TEST_CALL_TIMEOUT_MS = 10 * 60_000;

/** `logger`: one of the test's own, to assert what the server logs (helpers/logs.ts). */
export async function startInventory(tag: string, overrides: Record<string, string> = {}, config?: Config, logger?: Logger): Promise<InventoryFixture> {
  config ??= testConfig(uniqueName(tag), overrides);
  logger ??= createLogger(config.logLevel);
  const metrics = new Metrics();
  const services = await createServices(config, logger, metrics);
  const server = await startTestServer({ config, logger, metrics, ...servedWith(services) });
  const asIs = { timeoutMs: TEST_CALL_TIMEOUT_MS, retry: { maxAttempts: 1 } };
  const client = new InventoryClient({ address: server.inventoryAddress, ...asIs });
  const admin = new AdminClient({ address: server.adminAddress, token: config.adminToken, ...asIs });
  const lineItems = (items: Array<[string, number]>) => items.map(([skuId, quantity]) => ({ skuId, quantity }));
  return {
    server,
    services,
    config,
    metrics,
    client,
    admin,
    async stock(sku, units, partitions, perUserLimit = 0) {
      await services.registry.putSku(sku, { perUserLimit });
      const created = await services.partitions.create(sku, units, partitions);
      await waitFor(() => services.cache.partitions(sku).length >= partitions && services.cache.sku(sku)?.perUserLimit === perUserLimit);
      return created;
    },
    reserve: (orderId, items, extra = {}) => client.reserve({ orderId, items: lineItems(items), ...extra }),
    confirm: (orderId) => client.confirm({ orderId }),
    release: (orderId, reason, items = [], releaseId = '') => client.release({ orderId, reason, items: lineItems(items), releaseId }),
    getReservation: (orderId) => client.getReservation({ orderId }),
    getStock: (...skuIds) => client.getStock({ skuIds }),
    async availOf(partitions) {
      const values = await services.gateway.avail(partitions);
      return values.reduce((a, b) => a + b, 0);
    },
    async close() {
      client.close();
      admin.close();
      await server.close();
      await dropNamespace(config);
    },
  };
}

/** Deletes a test's Redis keys, etcd keys and MySQL database. */
export async function dropNamespace(config: Config): Promise<void> {
  if (config.registrySnapshotFile) rmSync(config.registrySnapshotFile, { force: true });
  const { default: Redis } = await import('ioredis');
  const { Etcd3 } = await import('etcd3');
  for (const node of config.redisNodes) {
    const [host, port] = node.split(':');
    const redis = new Redis({ host, port: Number(port) });
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${config.redisPrefix}:*`, 'COUNT', 1000);
      if (keys.length) await redis.unlink(...keys);
      cursor = next;
    } while (cursor !== '0');
    redis.disconnect();
  }
  const etcd = new Etcd3({ hosts: [...config.etcdEndpoints] });
  await etcd.namespace(config.etcdNamespace).delete().all();
  etcd.close();
  const { default: mysql } = await import('mysql2/promise');
  const url = new URL(config.mysqlUrl);
  const database = url.pathname.slice(1);
  url.pathname = '/';
  const conn = await mysql.createConnection(url.toString());
  await conn.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await conn.end();
}

/** The real stock-message applier (mq/apply.ts) on a fixture's own stores. */
export function stockApplierOf(inv: InventoryFixture): StockMessageApplier {
  const { mysql, operator, gateway, registry } = inv.services;
  return new StockMessageApplier({ pool: mysql, operator, gateway, registry, logger: createLogger('silent') });
}

/** Polls until `check` holds (a watch round trip, a sweep) or fails after `timeoutMs`. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** The error reason of a failed call: a typed client's InventoryError or a raw grpc-js error. */
export function reasonOf(err: grpc.ServiceError | InventoryError): string | undefined {
  return err instanceof InventoryError ? err.reason : (err.metadata.get('inventory-error-reason')[0] as string | undefined);
}
