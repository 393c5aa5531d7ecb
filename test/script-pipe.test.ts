import assert from 'node:assert/strict';
import Redis from 'ioredis';
import { RedisReplyError } from '../allocator/resp';
import { ScriptPipe } from '../allocator/script-pipe';
import { DependencyTimeout, DependencyUnavailable } from '../kernel/dependency';
import { LuaScript } from '../allocator/scripts';
import { createHash } from 'node:crypto';
import { RedisNode, startRedisNode } from './helpers/redis-node';
import { TcpProxy } from './helpers/tcp-proxy';

function script(name: string, numberOfKeys: number, source: string): LuaScript {
  return { name, numberOfKeys, source, sha: createHash('sha1').update(source).digest('hex') };
}

describe('ScriptPipe', function () {
  this.timeout(20_000);
  let node: RedisNode;
  let admin: Redis;
  const echo = script('echo', 1, "return {KEYS[1], tonumber(ARGV[1]), {ARGV[2]}, redis.call('INCR', KEYS[1])}");
  const fail = script('fail', 0, "return redis.error_reply('OUT_OF_LUCK ' .. ARGV[1])");
  const scripts = [echo, fail];
  const pipes: ScriptPipe[] = [];
  const proxies: TcpProxy[] = [];

  function pipeTo(address: string, commandTimeoutMs = 2000): ScriptPipe {
    const [host, port] = address.split(':');
    const pipe = new ScriptPipe({ host, port: Number(port), commandTimeoutMs, name: 'script-pipe-test', scripts, reconnectMinMs: 10 });
    pipes.push(pipe);
    return pipe;
  }

  before(async () => {
    node = await startRedisNode();
    const [host, port] = node.address.split(':');
    admin = new Redis({ host, port: Number(port) });
  });
  afterEach(async () => {
    await Promise.all(pipes.splice(0).map((p) => p.close()));
    await Promise.all(proxies.splice(0).map((p) => p.close()));
  });
  after(async () => {
    admin.disconnect();
    await node.stop();
  });

  it('runs scripts and answers each call with its own reply, in order, many per write', async () => {
    const pipe = pipeTo(node.address);
    const calls = Array.from({ length: 2000 }, (_, i) => pipe.run(echo, ['k:order'], [i, `v${i}`]));
    const replies = await Promise.all(calls);
    replies.forEach((reply, i) => assert.deepEqual(reply, ['k:order', i, [`v${i}`], i + 1]));
    assert.equal(pipe.pending, 0);
  });

  it('rejects an error reply with its message, and checks the key count before sending', async () => {
    const pipe = pipeTo(node.address);
    await assert.rejects(pipe.run(fail, [], ['today']), (err: Error) => err instanceof RedisReplyError && /OUT_OF_LUCK today/.test(err.message));
    await assert.rejects(pipe.run(echo, [], []), /echo takes 1 keys, got 0/);
    assert.deepEqual(await pipe.run<unknown[]>(echo, ['k:after'], [1, 'x']), ['k:after', 1, ['x'], 1]);
  });

  it('loads a script the server lost (SCRIPT FLUSH) and runs the call once', async () => {
    const pipe = pipeTo(node.address);
    await pipe.run(echo, ['k:flush'], [0, '']);
    await admin.script('FLUSH');
    assert.deepEqual(await pipe.run<unknown[]>(echo, ['k:flush'], [1, 'again']), ['k:flush', 1, ['again'], 2]);
    assert.equal(await admin.get('k:flush'), '2');
  });

  it('sends calls cut off by a broken connection once more on the next one', async () => {
    const proxy = await TcpProxy.start(node.address);
    proxies.push(proxy);
    const pipe = pipeTo(proxy.address);
    const lost: Array<Error | undefined> = [];
    pipe.on('disconnected', (err) => lost.push(err));
    await pipe.connect();
    proxy.pause('hold-replies');
    const inFlight = pipe.run(echo, ['k:resend'], [5, 'lost reply']);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await admin.get('k:resend'), '1', 'the call ran, its reply is held');
    proxy.pause('reset');
    proxy.resume();
    // Sent again on the new connection: this script is not idempotent, so it counts twice (ours are).
    assert.deepEqual(await inFlight, ['k:resend', 5, ['lost reply'], 2]);
    assert.ok(lost.length >= 1, 'the lost connection was reported');
  });

  it('fails calls that get no answer within the timeout, then works again once the node answers', async () => {
    const proxy = await TcpProxy.start(node.address);
    proxies.push(proxy);
    const pipe = pipeTo(proxy.address, 300);
    await pipe.connect();
    proxy.pause('blackhole');
    const started = Date.now();
    await assert.rejects(pipe.run(echo, ['k:slow'], [1, '']), (err) => err instanceof DependencyTimeout && err.node === pipe.node);
    assert.ok(Date.now() - started < 2000);
    proxy.resume();
    assert.deepEqual((await pipe.run<unknown[]>(echo, ['k:slow'], [2, 'back']))[2], ['back']);
  });

  it('makes the first connection on first use, and says why it cannot', async () => {
    const lazy = pipeTo(node.address);
    assert.deepEqual((await lazy.run<unknown[]>(echo, ['k:lazy'], [1, 'first']))[2], ['first']);

    const proxy = await TcpProxy.start(node.address);
    proxies.push(proxy);
    proxy.pause('reset');
    const down = pipeTo(proxy.address, 300);
    await assert.rejects(down.connect(), (err) => err instanceof DependencyUnavailable && /connection is closed/.test(err.message));
    // Never sent: unavailable (not a timeout, whose call may have run).
    await assert.rejects(down.run(echo, ['k:down'], [1, '']), (err) => err instanceof DependencyUnavailable && !(err instanceof DependencyTimeout));
    proxy.resume();
    assert.deepEqual((await down.run<unknown[]>(echo, ['k:down'], [2, 'up']))[2], ['up']);
  });

  it('closes after the calls in flight are answered, and refuses calls after', async () => {
    const pipe = pipeTo(node.address);
    const last = pipe.run(echo, ['k:close'], [1, 'last']);
    await pipe.close();
    assert.deepEqual(((await last) as unknown[])[2], ['last']);
    await assert.rejects(pipe.run(echo, ['k:close'], [2, '']), (err) => err instanceof DependencyUnavailable && /connection is closed/.test(err.message));
  });
});
