import assert from 'node:assert/strict';
import { createLogger } from '../kernel/logger';
import { EventTap } from '../mq/event-tap';
import { testConfig, uniqueName } from './helpers/config';

/**
 * The web console's tap of the events exchange stops whenever it is asked to, also while it is
 * still connecting or subscribing: a server stopped right after it started must not hang in its
 * shutdown waiting for deliveries that no one will interrupt.
 */
describe('event tap', function () {
  this.timeout(60_000);
  const config = testConfig(uniqueName('tap'));
  const logger = createLogger('silent');

  it('stops promptly at any moment of its start, and says whether it is connected', async () => {
    // Every 2 ms from 0 to 100: connecting, opening channels, declaring the queue, consuming, consuming.
    for (let afterMs = 0; afterMs <= 100; afterMs += 2) {
      const tap = new EventTap({ url: config.amqpUrl, exchange: config.mqEventsExchange }, logger);
      tap.start();
      await new Promise((resolve) => setTimeout(resolve, afterMs));
      let timer: NodeJS.Timeout | undefined;
      const stopped = await Promise.race([
        tap.stop().then(() => 'stopped'),
        new Promise((resolve) => (timer = setTimeout(() => resolve('hung'), 5000))),
      ]);
      clearTimeout(timer);
      assert.equal(stopped, 'stopped', `stop ${afterMs} ms after start`);
      assert.equal(tap.state().connected, false);
    }
  });
});
