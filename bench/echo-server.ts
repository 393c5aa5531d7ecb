/**
 * The transport ceiling: the same gRPC stack as the inventory server (startApp, the transport
 * adapter, health, reflection, metrics), with a Reserve handler that does no work and answers a
 * constant RESERVED response of the real one's shape (echo-answers.ts). Confirm and Release answer
 * constants too. bare-echo-server.ts answers the same on plain grpc-js.
 * Env: the server's (INVENTORY_PORT, ADMIN_PORT, METRICS_PORT, HOST, LOG_LEVEL) and WORKERS.
 */
import { startApp } from '../server/app';
import { CONFIRMED, RELEASED, RESERVED } from './echo-answers';
import { serve } from './serve';

serve('echo server', (config, logger) =>
  startApp({
    config,
    logger,
    inventory: {
      reserve: () => Promise.resolve(RESERVED),
      confirm: () => Promise.resolve(CONFIRMED),
      release: () => Promise.resolve(RELEASED),
    },
  }),
);
