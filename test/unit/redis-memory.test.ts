import assert from 'node:assert/strict';
import { RedisMemoryWatch, memoryLevel, memoryRatio, parseMemoryInfo } from '../../server/redis-memory';
import { capturingLogger } from '../helpers/logs';

/** The start of a real `INFO memory` answer (Redis 7), CRLF and all. */
const INFO = [
  '# Memory',
  'used_memory:4110312',
  'used_memory_human:3.92M',
  'used_memory_rss:21192704',
  'used_memory_peak:45675464',
  'maxmemory:1073741824',
  'maxmemory_human:1.00G',
  'maxmemory_policy:noeviction',
  '',
].join('\r\n');

const info = (used: number, max: number) => `# Memory\r\nused_memory:${used}\r\nused_memory_human:x\r\nmaxmemory:${max}\r\nmaxmemory_policy:noeviction\r\n`;
const limits = { warnRatio: 0.8, fullRatio: 0.98 };

describe('redis memory', () => {
  it('reads used_memory and maxmemory out of INFO memory, not their _human or _peak neighbours', () => {
    assert.deepEqual(parseMemoryInfo(INFO), { usedBytes: 4110312, maxBytes: 1073741824 });
    assert.deepEqual(parseMemoryInfo('used_memory:10\nmaxmemory:0\n'), { usedBytes: 10, maxBytes: 0 });
    assert.throws(() => parseMemoryInfo('# Memory\r\nused_memory_human:3.92M\r\nmaxmemory:0\r\n'), /without used_memory/);
    assert.throws(() => parseMemoryInfo('used_memory:10\r\n'), /without maxmemory/);
  });

  it('rates memory against maxmemory: 0 without a limit, high from the warn ratio, full from the full ratio', () => {
    assert.equal(memoryRatio({ usedBytes: 50, maxBytes: 200 }), 0.25);
    assert.equal(memoryRatio({ usedBytes: 5e9, maxBytes: 0 }), 0);
    const level = (used: number) => memoryLevel({ usedBytes: used, maxBytes: 1000 }, limits);
    assert.deepEqual([level(799), level(800), level(979), level(980), level(1200)], ['ok', 'high', 'high', 'full', 'full']);
    assert.equal(memoryLevel({ usedBytes: 5e9, maxBytes: 0 }, limits), 'ok');
  });

  /** A watch over fake nodes whose INFO answers the test sets (an Error: the node does not answer). */
  function watchOf(...nodes: string[]) {
    const answers = new Map<string, string | Error>();
    const { logger, lines } = capturingLogger();
    const answerOf = (node: string): string => {
      const answer = answers.get(node)!;
      if (answer instanceof Error) throw answer;
      return answer;
    };
    const watch = new RedisMemoryWatch(() => nodes.map((node) => ({ node, client: { info: async () => answerOf(node) } })), limits, logger);
    return { watch, lines, set: (node: string, answer: string | Error) => answers.set(node, answer) };
  }

  it('logs each crossing once: a warning past the warn ratio, an error when full, info on the way back', async () => {
    const { watch, lines, set } = watchOf('a:1');
    const seen = () => lines.splice(0).map((l) => `${l.level}: ${l.msg.replace(/^redis a:1 uses 0\.0 MiB of its maxmemory 0\.0 MiB \(\d+%\)[,:] /, '').replace(/;.*/, '')}`);
    set('a:1', info(100, 1000));
    await watch.check();
    assert.deepEqual(seen(), []);
    set('a:1', info(850, 1000));
    await watch.check();
    const [warning] = lines;
    assert.equal(warning.level, 'warn');
    assert.deepEqual([warning.node, warning.usedBytes, warning.maxmemoryBytes, warning.ratio], ['a:1', 850, 1000, 0.85]);
    for (const advice of [/raise maxmemory/, /ORDER_RETENTION_SECONDS/, /inventory_forget_backlog_orders/]) assert.match(warning.msg, advice);
    assert.deepEqual(seen(), ['warn: past REDIS_MEMORY_WARN_RATIO: writes will be refused when it is full']);
    await watch.check();
    set('a:1', info(870, 1000));
    await watch.check();
    assert.deepEqual(seen(), [], 'not again on every check');
    assert.deepEqual([watch.notices().length, watch.fullNodes()], [1, []]);
    set('a:1', info(990, 1000));
    await watch.check();
    assert.deepEqual(seen(), ['error: full, its writes are refused (noeviction) and Reserves on it fail']);
    assert.deepEqual([watch.notices(), watch.fullNodes()], [[], ['a:1']]);
    set('a:1', info(900, 1000));
    await watch.check();
    assert.deepEqual(seen(), ['info: below REDIS_MEMORY_FULL_RATIO again (still past REDIS_MEMORY_WARN_RATIO)'], 'no second warning for the same rise');
    assert.deepEqual([watch.notices().length, watch.fullNodes()], [1, []]);
    set('a:1', info(100, 1000));
    await watch.check();
    assert.deepEqual(seen(), ['info: below REDIS_MEMORY_WARN_RATIO again']);
    assert.deepEqual([watch.notices(), watch.fullNodes()], [[], []]);
    set('a:1', info(990, 1000));
    await watch.check();
    assert.deepEqual(seen(), ['error: full, its writes are refused (noeviction) and Reserves on it fail'], 'straight to full: one error');
  });

  it('warns once about a node without maxmemory, and reads a silent node as unknown without forgetting its level', async () => {
    const { watch, lines, set } = watchOf('a:1', 'b:2');
    set('a:1', info(5e9, 0));
    set('b:2', info(990, 1000));
    await watch.check();
    await watch.check();
    const unlimited = lines.filter((l) => /no maxmemory/.test(l.msg));
    assert.equal(unlimited.length, 1);
    assert.match(unlimited[0].msg, /Redis will grow until the machine runs out/);
    assert.equal(unlimited[0].node, 'a:1');
    set('b:2', new Error('connection is closed'));
    await watch.check();
    assert.deepEqual(watch.readings(), [
      { node: 'a:1', reading: { usedBytes: 5e9, maxBytes: 0 } },
      { node: 'b:2', reading: undefined },
    ]);
    assert.deepEqual(watch.fullNodes(), ['b:2']);
  });
});
