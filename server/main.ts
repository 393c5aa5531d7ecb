import cluster, { Worker } from 'node:cluster';
import path from 'node:path';
import { Config, loadConfigOrExit } from './config';
import { Logger, createLogger } from '../kernel/logger';
import { startApp } from './app';
import { Metrics, startMetricsServer } from './metrics';
import { createServices } from './services';
import { createConsole, servedWith } from './console';
import { seedDemo } from './demo';
import { startLedgerWriter } from './ledger-runner';
import { startStockConsumer } from './mq-runner';
import { Supervised } from './supervisor';
import { stopOnSignals } from './stop-signals';

/** Something a process runs beside its services and stops on the way out. */
interface Stoppable {
  stop(): Promise<void>;
}

/** LEDGER_WRITER=process: the ledger writer in a child process, supervised by this one. */
function startLedgerProcess(config: Config, logger: Logger): Supervised | undefined {
  if (config.ledgerWriter !== 'process') return undefined;
  const ledger = new Supervised('ledger-writer', path.join(__dirname, 'ledger-main.js'), logger, { niceness: config.ledgerWriterNice });
  ledger.start();
  return ledger;
}

/** MQ_CONSUMER=process: the stock-message consumer in a child process, supervised by this one. */
function startStockConsumerProcess(config: Config, logger: Logger): Supervised | undefined {
  if (config.mqConsumer !== 'process') return undefined;
  const consumer = new Supervised('stock-consumer', path.join(__dirname, 'mq-main.js'), logger);
  consumer.start();
  return consumer;
}

/**
 * Background work of a cluster primary, one for the host rather than one per worker. `process`: a
 * supervised child. `inline`: in the primary itself, whose event loop is otherwise idle (it only
 * hands out connections); retried every 5 s while its dependencies cannot be reached.
 */
function startInPrimary(
  what: string,
  mode: 'process' | 'inline' | 'off',
  child: () => Supervised | undefined,
  inline: () => Promise<Stoppable>,
  logger: Logger,
): Stoppable | undefined {
  if (mode === 'process') return child();
  if (mode !== 'inline') return undefined;
  let running: Stoppable | undefined;
  let stopped = false;
  let retry: NodeJS.Timeout | undefined;
  const attempt = () => {
    inline().then(
      (started) => {
        if (stopped) void started.stop();
        else running = started;
      },
      (err) => {
        logger.error({ err }, `cluster primary: could not start the ${what}; retrying in 5 s`);
        if (!stopped) retry = setTimeout(attempt, 5000);
      },
    );
  };
  attempt();
  return {
    async stop() {
      stopped = true;
      clearTimeout(retry);
      await running?.stop();
    },
  };
}

/** What /healthz, /readyz and /livez answer while the services start: alive, not ready. */
const STARTING = {
  report: () => ({
    inventory: 'NOT_SERVING' as const,
    admin: 'NOT_SERVING' as const,
    degraded: ['starting: connecting to Redis, MySQL and etcd (the log says which one it waits for)'],
    checks: {},
  }),
};

/** One server process: the services, the app, and SIGTERM/SIGINT handling. */
async function main(config: Config): Promise<void> {
  const logger = createLogger(config.logLevel);
  const metrics = new Metrics();
  // Until the services are up (etcd may keep them waiting), the probes say so instead of refusing connections.
  const starting = await startMetricsServer(metrics, config.host, config.metricsPort, STARTING);
  let services: Awaited<ReturnType<typeof createServices>>;
  try {
    services = await createServices(config, logger, metrics);
  } finally {
    await new Promise((resolve) => starting.close(resolve));
  }
  if (config.demoData) await seedDemo(services, logger);
  const webConsole = config.console ? createConsole(services, config, logger) : undefined;
  const app = await startApp({ config, logger, metrics, ...servedWith(services, webConsole) });
  // Under a cluster primary the workers run no writer and no consumer (LEDGER_WRITER=off,
  // MQ_CONSUMER=off): the primary runs them. MQ_CONSUMER=inline runs in the services.
  const ledger = startLedgerProcess(config, logger);
  const stockConsumer = startStockConsumerProcess(config, logger);

  // Drains in-flight calls first (app.stop), then the children.
  stopOnSignals(logger, 'server', async () => {
    await app.stop();
    await Promise.all([ledger?.stop(), stockConsumer?.stop()]);
  });
}

/**
 * WORKERS=N (N > 1): this process is a cluster primary that forks N workers, each running the
 * normal server above. grpc-js listens through node's net module, so the workers share the gRPC,
 * admin and metrics ports (the primary hands out connections round-robin). The primary forwards
 * SIGTERM/SIGINT to every worker and exits once all of them have; a worker that dies on its own
 * takes the others down (exit 1), for the supervisor to restart the whole server. WORKERS unset or
 * 1: no cluster, the server runs in this process.
 */
function runPrimary(config: Config): void {
  const workers = config.workers;
  const logger = createLogger(config.logLevel);
  logger.info({ workers }, 'cluster primary: starting workers');

  const background = [
    startInPrimary('ledger writer', config.ledgerWriter, () => startLedgerProcess(config, logger), () => startLedgerWriter(config, logger), logger),
    startInPrimary('stock consumer', config.mqConsumer, () => startStockConsumerProcess(config, logger), () => startStockConsumer(config, logger), logger),
  ];
  const stopBackground = () => Promise.all(background.map((work) => work?.stop()));
  let stopping = false;
  let exitCode = 0;
  const live = new Set<Worker>();
  for (let i = 0; i < workers; i++) {
    // Demo data is seeded by the first worker only (seeding is idempotent; once is enough).
    // The workers run no ledger writer and no stock consumer: the primary runs the host's one.
    const worker = cluster.fork({ WORKER_INDEX: String(i), LEDGER_WRITER: 'off', MQ_CONSUMER: 'off', ...(i > 0 ? { DEMO_DATA: 'false' } : {}) });
    live.add(worker);
    worker.on('exit', (code, signal) => {
      live.delete(worker);
      if (!stopping) {
        logger.error({ worker: worker.process.pid, code, signal }, 'cluster primary: a worker died; stopping the others');
        exitCode = 1;
        stop('worker-exit');
      } else if (code !== 0) {
        exitCode = 1;
      }
      if (live.size === 0) {
        logger.info({ exitCode }, 'cluster primary: all workers stopped');
        void stopBackground().finally(() => process.exit(exitCode));
      }
    });
  }

  const stop = (reason: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ reason }, 'cluster primary: stopping workers');
    for (const worker of live) {
      // A worker that never finished starting may not listen for signals yet: kill it plainly.
      if (!worker.isDead()) worker.process.kill('SIGTERM');
    }
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

// Configuration is checked once, here, rather than in every worker.
const config = loadConfigOrExit();
if (config.workers > 1 && cluster.isPrimary) {
  runPrimary(config);
} else {
  main(config).catch((err) => {
    process.stderr.write(`inventory core failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
