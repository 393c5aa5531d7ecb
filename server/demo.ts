import { Services } from './services';
import { Logger } from '../kernel/logger';

/** What `npm start` puts on sale so the API can be tried at once (grpcurl examples in the README). */
export const DEMO_SKUS = [
  { sku: 'demo-phone', units: 1000, partitions: 8, perUserLimit: 0 },
  { sku: 'demo-flash', units: 100, partitions: 4, perUserLimit: 2 },
] as const;

/**
 * Stocks and pre-allocates the demo SKUs through the same operations as AdminService, under fixed
 * request ids: idempotent, so every start after the first changes nothing.
 */
export async function seedDemo(services: Services, logger: Logger): Promise<void> {
  for (const demo of DEMO_SKUS) {
    const stock = await services.operator.setStock(`demo-stock-${demo.sku}`, demo.sku, demo.units, 'demo data', demo.perUserLimit);
    await services.operator.preallocate(`demo-prealloc-${demo.sku}`, demo.sku, demo.units, demo.partitions);
    if (!stock.replayed) logger.info({ sku: demo.sku, units: demo.units, partitions: demo.partitions }, 'demo SKU seeded');
  }
}
