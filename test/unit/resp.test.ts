import assert from 'node:assert/strict';
import { RedisReplyError, RespReader, RespValue, RespWriter } from '../../allocator/resp';

function readAll(reader: RespReader, chunks: Buffer[]): RespValue[] {
  const replies: RespValue[] = [];
  for (const chunk of chunks) reader.push(chunk, (v) => replies.push(v));
  return replies;
}

describe('RESP', () => {
  const wire = Buffer.from('+OK\r\n:42\r\n:-7\r\n$4\r\nhé!\r\n$-1\r\n*3\r\n:1\r\n*2\r\n$1\r\na\r\n$0\r\n\r\n$-1\r\n*0\r\n-NOSCRIPT No matching script\r\n');
  const expected = ['OK', 42, -7, 'hé!', null, [1, ['a', ''], null], []];

  it('reads every reply type, nested arrays and errors', () => {
    const replies = readAll(new RespReader(), [wire]);
    assert.deepEqual(replies.slice(0, -1), expected);
    const err = replies[replies.length - 1];
    assert.ok(err instanceof RedisReplyError);
    assert.equal(err.message, 'NOSCRIPT No matching script');
  });

  it('reads the same replies whatever the chunk boundaries', () => {
    for (let cut = 1; cut < wire.length; cut++) {
      const reader = new RespReader();
      const replies = readAll(reader, [wire.subarray(0, cut), wire.subarray(cut)]);
      assert.deepEqual(replies.slice(0, -1), expected, `cut at byte ${cut}`);
      assert.equal(reader.buffered, 0);
    }
    const oneByOne = readAll(new RespReader(), [...wire].map((b) => Buffer.from([b])));
    assert.deepEqual(oneByOne.slice(0, -1), expected);
  });

  it('refuses a stream that is not RESP', () => {
    assert.throws(() => readAll(new RespReader(), [Buffer.from('HTTP/1.1 400\r\n')]), /unexpected reply type "H"/);
  });

  it('writes commands with argument lengths in bytes, numbers as their digits, and grows as needed', () => {
    const writer = new RespWriter();
    writer.command(['SET', 'k', 'é', 12, 0, 1e15 - 1, -3, 1.5]);
    writer.evalsha('abc', ['k1', 'k2'], [10, '']);
    assert.equal(
      writer.take().toString(),
      '*8\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\né\r\n$2\r\n12\r\n$1\r\n0\r\n$15\r\n999999999999999\r\n$2\r\n-3\r\n$3\r\n1.5\r\n' +
        '*7\r\n$7\r\nEVALSHA\r\n$3\r\nabc\r\n$1\r\n2\r\n$2\r\nk1\r\n$2\r\nk2\r\n$2\r\n10\r\n$0\r\n\r\n',
    );
    assert.equal(writer.length, 0);
    const big = 'x'.repeat(100_000);
    writer.command(['SET', 'big', big]);
    const wire = writer.take().toString();
    assert.equal(wire, `*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n$100000\r\n${big}\r\n`);
  });
});
