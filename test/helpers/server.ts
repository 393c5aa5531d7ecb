import * as grpc from '@grpc/grpc-js';
import { AdminServiceClient } from '../../gen/inventory/v1/admin.pb';
import { InventoryServiceClient } from '../../gen/inventory/v1/inventory.pb';
import { App, AppOptions, startApp } from '../../server/app';
import { Config } from '../../server/config';

/** An in-process server on free ports with a client of each service. */
export interface TestServer {
  readonly app: App;
  readonly config: Config;
  readonly inventoryAddress: string;
  readonly adminAddress: string;
  readonly inventory: InventoryServiceClient;
  readonly admin: AdminServiceClient;
  /** Metadata that passes AdminService authentication. */
  adminAuth(): grpc.Metadata;
  close(): Promise<void>;
}

export async function startTestServer(options: AppOptions): Promise<TestServer> {
  const app = await startApp(options);
  const inventoryAddress = `127.0.0.1:${app.inventoryPort}`;
  const adminAddress = `127.0.0.1:${app.adminPort}`;
  const inventory = new InventoryServiceClient(inventoryAddress, grpc.credentials.createInsecure());
  const admin = new AdminServiceClient(adminAddress, grpc.credentials.createInsecure());
  return {
    app,
    config: options.config,
    inventoryAddress,
    adminAddress,
    inventory,
    admin,
    adminAuth() {
      const md = new grpc.Metadata();
      md.set('authorization', `Bearer ${options.config.adminToken}`);
      return md;
    },
    async close() {
      inventory.close();
      admin.close();
      await app.stop();
    },
  };
}
