import { randomBytes } from 'node:crypto';
import { Config, loadConfig } from '../../server/config';

/**
 * A name no other test run uses, for one test file's own namespace: Redis key prefix, etcd prefix,
 * MySQL database. Runs (and files) therefore never see each other's data.
 */
export function uniqueName(tag: string): string {
  return `t_${tag}_${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
}

/**
 * The configuration of the local stack (from the environment, like the server) with every port 0
 * and every namespace private to `name`.
 */
export function testConfig(name: string, overrides: Record<string, string> = {}): Config {
  const mysql = new URL(loadConfig().mysqlUrl);
  mysql.pathname = `/${name}`;
  return loadConfig({
    ...process.env,
    HOST: '127.0.0.1',
    INVENTORY_PORT: '0',
    ADMIN_PORT: '0',
    METRICS_PORT: '0',
    MQ_METRICS_PORT: '0',
    REDIS_PREFIX: name,
    ETCD_NAMESPACE: `/${name}/`,
    MYSQL_URL: mysql.toString(),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // The fixture runs the services in the test's own process, with no main.ts to start a child.
    LEDGER_WRITER: 'inline',
    // No stock-message consumer on the stack's default queue; a test that wants one names its own.
    MQ_CONSUMER: 'off',
    ...overrides,
  });
}
