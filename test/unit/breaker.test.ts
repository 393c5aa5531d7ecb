import assert from 'node:assert/strict';
import { BreakerState, Breakers } from '../../kernel/breaker';
import { BreakerOpen, DependencyUnavailable } from '../../kernel/dependency';

const down = () => Promise.reject(new DependencyUnavailable('redis', 'a:1', 'connection is closed'));
const ok = () => Promise.resolve('ok');

describe('breakers', () => {
  it('opens on dependency failures past the volume and share, fails fast naming the node, then half-opens and closes', async () => {
    const board = new Breakers({ volumeThreshold: 4, errorThresholdPercentage: 50, resetTimeoutMs: 50, rollingWindowMs: 10_000 });
    const changes: BreakerState[] = [];
    board.on('change', (_, state) => changes.push(state));
    const breaker = board.for('redis', 'a:1');
    for (let i = 0; i < 4; i++) await assert.rejects(breaker.run(down), DependencyUnavailable);
    assert.equal(breaker.state, 'open');
    let tried = false;
    await assert.rejects(
      breaker.run(() => {
        tried = true;
        return ok();
      }),
      (err) => err instanceof BreakerOpen && err.where === 'redis a:1',
    );
    assert.equal(tried, false, 'an open breaker does not try the call');
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(breaker.state, 'half-open');
    assert.equal(await breaker.run(ok), 'ok');
    assert.equal(breaker.state, 'closed');
    assert.deepEqual(changes, ['open', 'half-open', 'closed']);
    board.shutdown();
  });

  it('never counts business outcomes or bugs, only dependency failures', async () => {
    const board = new Breakers({ volumeThreshold: 2, errorThresholdPercentage: 10, resetTimeoutMs: 1000, rollingWindowMs: 10_000 });
    const breaker = board.for('mysql');
    for (let i = 0; i < 20; i++) await assert.rejects(breaker.run(() => Promise.reject(new RangeError('a bug, or an answer'))), RangeError);
    assert.equal(breaker.state, 'closed');
    board.shutdown();
  });

  it('stays closed below the volume threshold', async () => {
    const board = new Breakers({ volumeThreshold: 10, errorThresholdPercentage: 50, resetTimeoutMs: 1000, rollingWindowMs: 10_000 });
    const breaker = board.for('etcd');
    for (let i = 0; i < 9; i++) await assert.rejects(breaker.run(down));
    assert.equal(breaker.state, 'closed');
    await assert.rejects(breaker.run(down));
    assert.equal(breaker.state, 'open');
    board.shutdown();
  });

  it('gives one breaker per dependency node', () => {
    const board = new Breakers();
    assert.equal(board.for('redis', 'a:1'), board.for('redis', 'a:1'));
    assert.notEqual(board.for('redis', 'a:1'), board.for('redis', 'b:2'));
    assert.equal(board.all().length, 2);
    board.shutdown();
  });
});
