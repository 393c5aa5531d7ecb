import { startStockConsumer } from './mq-runner';
import { runOnItsOwn } from './stop-signals';

/**
 * The stock-message consumer as a process of its own: `node dist/server/mq-main.js`, configured by
 * the same environment as the server. The server starts one as its child (MQ_CONSUMER=process);
 * on other hosts it can run on its own (MQ_CONSUMER=off on the servers). Any number may run on one
 * queue. If its applier cannot be built at start (MySQL unreachable) it exits 1 and its supervisor
 * starts it again; messages wait in the queue. Started by a server, it exits when that server is
 * gone.
 */
runOnItsOwn('stock-consumer', 'stock consumer', startStockConsumer);
