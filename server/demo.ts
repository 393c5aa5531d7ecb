import { Services } from './services';
import { Logger } from './logger';

/** What `npm start` puts on sale so the API can be tried at once (grpcurl examples in the README). */
export const DEMO_SKUS = [
  { sku: 'demo-phone', units: 1000, partitions: 8, perUserLimit: 0 },
  { sku: 'demo-flash', units: 100, partitions: 4, perUserLimit: 2 },
] as const;

/** Registers and pre-allocates the demo SKUs that do not exist yet; existing ones are left alone. */
export async function seedDemo(services: Services, logger: Logger): Promise<void> {
  for (const demo of DEMO_SKUS) {
    if (await services.registry.getSku(demo.sku)) continue;
    await services.registry.putSku(demo.sku, { perUserLimit: demo.perUserLimit });
    await services.partitions.create(demo.sku, demo.units, demo.partitions);
    logger.info({ sku: demo.sku, units: demo.units, partitions: demo.partitions }, 'demo SKU seeded');
  }
}
