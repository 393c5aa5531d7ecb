import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../server/config';
import { stackDefaults } from '../../server/stack-defaults';

describe('configuration', () => {
  it('defaults to the local stack, as config/stack.env writes it down, when nothing is set', () => {
    const config = loadConfig({});
    const stack = stackDefaults();
    assert.equal(config.inventoryPort, 50051);
    assert.equal(config.adminPort, 50052);
    assert.deepEqual(config.redisNodes, [stack.REDIS_NODES]);
    assert.deepEqual(config.etcdEndpoints, [stack.ETCD_ENDPOINTS]);
    assert.equal(config.mysqlUrl, stack.MYSQL_URL);
    assert.equal(config.amqpUrl, stack.AMQP_URL);
    assert.equal(stack.REDIS_NODES, '127.0.0.1:6390', 'the stack has ports of its own, not the standard ones a machine may run already');
    assert.equal(config.defaultTtlSeconds, 1800);
    assert.ok(Object.isFrozen(config));
  });

  it('reads lists and numbers', () => {
    const config = loadConfig({ REDIS_NODES: '127.0.0.1:6390, 127.0.0.1:6391', INVENTORY_PORT: '7000' });
    assert.deepEqual(config.redisNodes, ['127.0.0.1:6390', '127.0.0.1:6391']);
    assert.equal(config.inventoryPort, 7000);
  });

  it('reads REDIS_CLUSTER seeds; empty by default (plain mode)', () => {
    assert.deepEqual(loadConfig({}).redisCluster, []);
    assert.deepEqual(loadConfig({ REDIS_CLUSTER: '127.0.0.1:6400,127.0.0.1:6401' }).redisCluster, ['127.0.0.1:6400', '127.0.0.1:6401']);
  });

  it('refuses REDIS_CLUSTER together with REDIS_NODES, naming both', () => {
    assert.throws(
      () => loadConfig({ REDIS_CLUSTER: '127.0.0.1:6400', REDIS_NODES: '127.0.0.1:6390' }),
      (err: unknown) => err instanceof ConfigError && err.variable === 'REDIS_CLUSTER' && /REDIS_NODES/.test(err.message),
    );
    assert.throws(() => loadConfig({ REDIS_CLUSTER: 'not-a-node' }), /REDIS_CLUSTER: "not-a-node" is not host:port/);
  });

  const bad: Array<[string, string]> = [
    ['INVENTORY_PORT', 'abc'],
    ['ADMIN_PORT', '70000'],
    ['REDIS_NODES', 'localhost'],
    ['REDIS_NODES', '127.0.0.1:6390,127.0.0.1:6390'],
    ['REDIS_PREFIX', 'a{b}'],
    ['ETCD_ENDPOINTS', '127.0.0.1:2389'],
    ['ETCD_NAMESPACE', 'no-slashes'],
    ['MYSQL_URL', 'http://127.0.0.1/db'],
    ['AMQP_URL', 'not a url'],
    ['LOG_LEVEL', 'loud'],
    ['ADMIN_TOKEN', 'short'],
    ['MAX_ITEM_QUANTITY', '0'],
    ['DEMO_DATA', 'maybe'],
    ['WORKERS', '0'],
    ['RECOVERY_GRACE_MS', '50'],
    ['LEDGER_WRITER', 'maybe'],
    ['ADMISSION_RESERVES_PER_SECOND', '-1'],
    ['MAX_IN_FLIGHT', 'lots'],
    ['REDIS_MEMORY_CHECK_MS', '10'],
    ['REDIS_MEMORY_WARN_RATIO', '80%'],
    ['REDIS_MEMORY_WARN_RATIO', '0'],
    ['REDIS_MEMORY_FULL_RATIO', '1.5'],
    ['REDIS_MEMORY_FULL_RATIO', '-0.9'],
    ['ORDER_RETENTION_SECONDS', '0'],
    ['FORGET_INTERVAL_MS', 'often'],
    ['FORGOTTEN_FILTER_BITS', '8'],
    ['FORGOTTEN_HORIZON_SECONDS', '0'],
  ];
  for (const [variable, value] of bad) {
    it(`rejects ${variable}=${JSON.stringify(value)} naming the variable`, () => {
      assert.throws(
        () => loadConfig({ [variable]: value }),
        (err: unknown) => err instanceof ConfigError && err.variable === variable && err.message.includes(variable),
      );
    });
  }

  it('wants TLS certificate and key together, as files that exist', () => {
    assert.throws(() => loadConfig({ ADMIN_TLS_KEY: '/etc/hostname' }), /ADMIN_TLS_CERT: is required/);
    assert.throws(() => loadConfig({ INVENTORY_TLS_CERT: '/no/such.pem', INVENTORY_TLS_KEY: '/etc/hostname' }), /INVENTORY_TLS_CERT: \/no\/such.pem does not exist/);
    assert.deepEqual(loadConfig({ ADMIN_TLS_CERT: '/etc/hostname', ADMIN_TLS_KEY: '/etc/hostname' }).adminTls, {
      certFile: '/etc/hostname',
      keyFile: '/etc/hostname',
    });
  });

  it('checks values against each other', () => {
    assert.throws(() => loadConfig({ DEFAULT_TTL_SECONDS: '100', MAX_TTL_SECONDS: '50' }), /DEFAULT_TTL_SECONDS/);
    assert.throws(() => loadConfig({ ADMISSION_BURST: '10' }), /ADMISSION_BURST: must be 0 while ADMISSION_RESERVES_PER_SECOND is 0/);
    assert.throws(() => loadConfig({ REDIS_MEMORY_WARN_RATIO: '0.99' }), /REDIS_MEMORY_WARN_RATIO: must not exceed REDIS_MEMORY_FULL_RATIO \(0\.98\)/);
    // A Reserve's late script must never meet its take records forgotten.
    assert.throws(() => loadConfig({ ORDER_RETENTION_SECONDS: '10', RESERVE_TIMEOUT_MS: '10000' }), /ORDER_RETENTION_SECONDS: must exceed RESERVE_TIMEOUT_MS/);
    assert.equal(loadConfig({ ORDER_RETENTION_SECONDS: '11', RESERVE_TIMEOUT_MS: '10000' }).orderRetentionSeconds, 11);
  });

  it('keeps orders in Redis a day after their last change, and remembers forgotten ids for 30 days', () => {
    const config = loadConfig({});
    assert.deepEqual([config.orderRetentionSeconds, config.forgottenHorizonSeconds, config.forgottenFilterBits], [86400, 30 * 86400, 1 << 22]);
  });

  it('admits every SKU without limit by default and sheds past 2000 calls in flight', () => {
    const config = loadConfig({});
    assert.deepEqual([config.admissionReservesPerSecond, config.admissionBurst, config.maxInFlight], [0, 0, 2000]);
    const set = loadConfig({ ADMISSION_RESERVES_PER_SECOND: '500', ADMISSION_BURST: '50', MAX_IN_FLIGHT: '0' });
    assert.deepEqual([set.admissionReservesPerSecond, set.admissionBurst, set.maxInFlight], [500, 50, 0]);
  });

  it('watches Redis memory every 10 s, warning past 80% of maxmemory and counting a node full from 98%', () => {
    const config = loadConfig({});
    assert.deepEqual([config.redisMemoryCheckMs, config.redisMemoryWarnRatio, config.redisMemoryFullRatio], [10_000, 0.8, 0.98]);
    const set = loadConfig({ REDIS_MEMORY_WARN_RATIO: '.5', REDIS_MEMORY_FULL_RATIO: '1' });
    assert.deepEqual([set.redisMemoryWarnRatio, set.redisMemoryFullRatio], [0.5, 1]);
  });

  it('fails server start-up with the name of the bad variable', () => {
    const main = path.resolve(__dirname, '..', '..', 'server', 'main.js');
    const result = spawnSync(process.execPath, [main], {
      env: { ...process.env, METRICS_PORT: 'ninety' },
      encoding: 'utf8',
      timeout: 20_000,
    });
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /METRICS_PORT/);
  });
});
