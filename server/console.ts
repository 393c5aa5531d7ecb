import { Logger } from '../kernel/logger';
import { EventTap } from '../mq/event-tap';
import { skuIdsPage } from '../store/stock';
import type { AppOptions } from './app';
import { Config } from './config';
import { ConsoleApi } from './console-api';
import { consoleRoutes } from './console-http';
import type { HttpRoute } from './metrics';
import type { Services } from './services';

/** The web console of one server process: its routes for the metrics port, and what to stop. */
export interface WebConsole {
  readonly routes: HttpRoute;
  /** Events as the console heard them (its own subscription to the events exchange). */
  readonly events: EventTap;
  stop(): Promise<void>;
}

/**
 * The web console on a process's services (README "Web console"): the page and its API under
 * /console/ of the metrics port, behind ADMIN_TOKEN, and the subscription to the events exchange
 * that feeds its list of recent events (started here, stopped by `stop`).
 */
export function createConsole(services: Services, config: Config, logger: Logger): WebConsole {
  const events = new EventTap({ url: config.amqpUrl, exchange: config.mqEventsExchange }, logger);
  events.start();
  const api = new ConsoleApi(
    {
      admin: services.admin,
      inventory: services.inventory,
      skuIds: (prefix, limit) => skuIdsPage(services.mysql, prefix, limit),
      registeredSkus: () => services.cache.skus(),
      health: services.health,
      breakers: services.breakers,
      ledger: services.ledger,
      events,
    },
    logger,
  );
  return { routes: consoleRoutes(api, config.adminToken, logger), events, stop: () => events.stop() };
}

/** What startApp serves of a process's services: both APIs, health, and the console's routes when there is one (stopped before the services close). */
export function servedWith(services: Services, webConsole?: WebConsole): Pick<AppOptions, 'inventory' | 'admin' | 'health' | 'http' | 'closers'> {
  return {
    inventory: services.inventory,
    admin: services.admin,
    health: services.health,
    http: webConsole?.routes,
    closers: webConsole ? [() => webConsole.stop(), ...services.closers] : services.closers,
  };
}
